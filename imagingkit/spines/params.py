"""Parameters of spine detection and measurement (frozen dataclasses, units in names)."""

from __future__ import annotations

import dataclasses

import numpy as np

from imagingkit.errors import ParameterError
from imagingkit.spines.dendrite import TraceParams
from imagingkit.spines.model import ModelParams


@dataclasses.dataclass(frozen=True)
class DetectParams:
    """Spine candidate detection.

    Attributes
    ----------
    threshold_sigma : float
        A residual peak is a spine when its score (residual of the matched-filtered
        image over the shaft model, in robust noise sigmas) exceeds
        ``threshold_sigma / sensitivity``.
    edge_threshold_sigma : float
        The threshold (also divided by ``sensitivity``) within ``edge_um`` outside the
        shaft's apparent radius, where the shaft's steep flank makes the model least
        certain (bulges of the shaft, a centreline a fraction of a pixel off): on the
        benchmark's tuning images at noise 1, nine in ten peaks there above ~3 sigma
        were not spines. Used for 2D images and by :meth:`local_threshold`; stacks use
        ``one_sided_edge_threshold_sigma`` or ``symmetric_edge_threshold_sigma`` instead.
    edge_um : float
        Width of that zone beyond the apparent shaft radius (in 3D scaled like the
        core: an ellipsoidal shell). A narrower, stricter zone (0.25 um, 7 sigma) did
        slightly better than 0.35 um, 6 sigma on the tuning images, 2D and 3D.
    sensitivity : float
        The one knob: > 1 finds dimmer spines (higher recall) at the cost of more
        noise peaks (lower precision); < 1 the opposite. Default 1.
    min_separation_um : float
        Of two peaks closer than this (3D distance for stacks), the weaker is dropped.
    prominence_sigma : float
        A peak must rise this many noise sigmas above the saddle to any higher
        peak (h-maxima), so plateaus along necks and shaft edges count once.
    crossing_clearance_um : float
        Peaks closer than this to the shaft edge of another dendrite (crossings,
        touching dendrites) are dropped: the shaft model there follows one shaft only.
    min_isotropy : float
        Peaks whose residual is elongated laterally — ratio of the weaker to the stronger
        principal curvature (dimensionless, 0..1) below this — are dropped as ridges along
        a shaft rather than spine heads (round heads give 0.7-1). On the benchmark's tuning
        images (seeds 10-29, noise 1) 0.35-0.45 removed about 70 % (2D) and 40 % (3D) of
        the false positives for about 1 % of the true ones (matched filter 0.2 um).
    one_sided_edge_threshold_sigma : float
        In z-stacks, the flank threshold (instead of ``edge_threshold_sigma``, also divided
        by ``sensitivity``) for peaks whose light is one-sided in depth: the score exceeds
        the score at the mirror depth (reflected about the centreline's z) by at least
        ``axial_asymmetry_sigma``. A short-necked spine pointing up or down adds light on one
        side of the shaft's centre plane only.
    symmetric_edge_threshold_sigma : float
        In z-stacks, the flank threshold for the other peaks: a bulge of the shaft, or a
        model error on its flank, is symmetric in depth. On the benchmark's tuning stacks
        (seeds 10-29, noise 1) 5 and 20 sigma (asymmetry 4 sigma) instead of 7 sigma
        everywhere found 6 more spines with 2 fewer false positives (visible F1 0.921 ->
        0.928); validation seeds 30-49: 1 more spine, 6 fewer false positives (0.899 -> 0.904).
    axial_asymmetry_sigma : float
        See ``one_sided_edge_threshold_sigma`` (noise sigmas).
    end_threshold_factor : float
        Peaks whose nearest centreline point is a dendrite's end point are kept only when
        their score is at least this many times the local threshold (``inf``: never, as
        before). On the tuning images (seeds 10-29, noise 1) 3 found 3 more spines in 3D
        (no more false positives), 4 in 2D (+1) and 13 in crowded 2D (+1); validation seeds
        30-49: 3D +3 (+1), 2D +5 (+0), crowded 2D +14 (+0).
    deblend_rounds : int
        In z-stacks, rounds of deblending (0: off): the accepted heads, as Gaussians of the
        typical head's width, are subtracted from the residual and the remainder is searched
        again with every test above (see :func:`imagingkit.spines.detect.find_candidates`), so
        a head blended into a brighter one — 1-2 um away, mostly stacked in depth, where the
        axial PSF (FWHM 1.5-2 um) merges them into one peak — is found. On the benchmark's
        stacks one round found, visible spines / false positives, at noise 1: tuning seeds
        10-29 +11/+0 (F1 0.932 -> 0.942), validation 30-49 +7/+3 (0.921 -> 0.925), seeds
        50-69 +13/+11 (0.908 -> 0.911); tuning seeds at noise 0.5 +9/+2 (0.930 -> 0.936); at
        noise 2 about neutral: tuning +10/+8 (0.875 -> 0.878), validation +7/+12 (0.873 ->
        0.870), seeds 50-69 +13/+12 (0.864 -> 0.868). More rounds found nothing more. Not used on 2D
        images: there the second search found mostly shoulders of big heads (tuning seeds
        +10 spines / +52 false positives).
    deblend_min_own_fraction : float
        A deblended peak must keep at least this fraction (0..1) of its original score after
        the subtraction; below, its light is mostly the subtracted head's (a big head's
        shoulder, its neck). On the tuning stacks the new peaks keeping 0.8 or more were
        11 spines and no false positives; 0.6-0.8: 2 spines and 13 false positives.
    fit_head_depth : bool
        In z-stacks, take each head's depth from a least-squares Gaussian fit over five
        planes, blended neighbours fitted together (see
        :func:`imagingkit.spines.detect.fit_head_depths`), instead of the three-plane parabola
        alone. On the benchmark's stacks at noise 1 the median depth error of detections
        within 1.2 um of a visible spine fell 0.064 -> 0.049 um (tuning seeds 10-29), 0.059 ->
        0.045 (validation 30-49), 0.058 -> 0.052 (seeds 50-69), and visible spines / false
        positives changed +2/-2 (F1 0.942 -> 0.945), +0/-3 (0.925 -> 0.928), +3/-3 (0.911 ->
        0.916); at noise 2, validation +4/-6 (0.871 -> 0.879). 2D images are not affected.
    """

    threshold_sigma: float = 3.5
    edge_threshold_sigma: float = 7.0
    edge_um: float = 0.25
    sensitivity: float = 1.0
    min_separation_um: float = 0.5
    prominence_sigma: float = 2.0
    crossing_clearance_um: float = 0.6
    min_isotropy: float = 0.4
    one_sided_edge_threshold_sigma: float = 5.0
    symmetric_edge_threshold_sigma: float = 20.0
    axial_asymmetry_sigma: float = 4.0
    end_threshold_factor: float = 3.0
    deblend_rounds: int = 1
    deblend_min_own_fraction: float = 0.8
    fit_head_depth: bool = True

    def __post_init__(self):
        if not self.sensitivity > 0:
            raise ParameterError(f"sensitivity must be positive, got {self.sensitivity}")
        if not self.threshold_sigma > 0:
            raise ParameterError(f"threshold_sigma must be positive, got {self.threshold_sigma}")
        if not 0 <= self.min_isotropy < 1:
            raise ParameterError(f"min_isotropy must be in [0, 1), got {self.min_isotropy}")
        if not self.deblend_rounds >= 0:
            raise ParameterError(f"deblend_rounds must be >= 0, got {self.deblend_rounds}")
        if not 0 < self.deblend_min_own_fraction <= 1:
            raise ParameterError(
                f"deblend_min_own_fraction must be in (0, 1], got {self.deblend_min_own_fraction}"
            )
        if not self.end_threshold_factor >= 1:
            raise ParameterError(f"end_threshold_factor must be >= 1, got {self.end_threshold_factor}")
        if not self.one_sided_edge_threshold_sigma > 0 or not self.symmetric_edge_threshold_sigma > 0:
            raise ParameterError(
                f"one_sided_edge_threshold_sigma and symmetric_edge_threshold_sigma must be positive, got "
                f"{self.one_sided_edge_threshold_sigma} and {self.symmetric_edge_threshold_sigma}"
            )
        if not self.edge_threshold_sigma > 0 or not self.edge_um >= 0:
            raise ParameterError(
                f"edge_threshold_sigma must be positive and edge_um >= 0, got "
                f"{self.edge_threshold_sigma} and {self.edge_um}"
            )

    @property
    def threshold(self) -> float:
        return self.threshold_sigma / self.sensitivity

    def on_flank(self, distance_um: np.ndarray, shaft_radius_um: np.ndarray) -> np.ndarray:
        """Mask of distances within ``edge_um`` outside the apparent shaft radius (the flank zone)."""
        return np.asarray(distance_um) < np.asarray(shaft_radius_um) + self.edge_um

    def local_threshold(self, distance_um: np.ndarray, shaft_radius_um: np.ndarray) -> np.ndarray:
        """Threshold (noise sigmas) at a distance from the centreline, given the apparent shaft radius.

        In z-stacks the detector refines the flank's threshold by the peak's axial
        asymmetry (``one_sided_edge_threshold_sigma``, ``symmetric_edge_threshold_sigma``);
        this is the threshold without that test.
        """
        edge = self.on_flank(distance_um, shaft_radius_um)
        return np.where(edge, self.edge_threshold_sigma, self.threshold_sigma) / self.sensitivity


@dataclasses.dataclass(frozen=True)
class MeasureParams:
    """Per-spine measurements.

    Attributes
    ----------
    head_disk_um : float
        Radius of the disk (ball laterally in 3D) over which head and shaft
        intensities are integrated for ``intensity_ratio``.
    head_depth_um : float
        Axial half-extent of that region in 3D stacks.
    psf_sigma_um : float
        Lateral PSF sigma removed from the apparent head size.
    peak_search_um : float
        A spine's score is the largest within this lateral radius of its position.
    """

    head_disk_um: float = 0.6
    head_depth_um: float = 1.5
    psf_sigma_um: float = 0.15
    peak_search_um: float = 0.3


@dataclasses.dataclass(frozen=True)
class SpineParams:
    """All parameters of :func:`imagingkit.spines.detect_spines`."""

    trace: TraceParams = TraceParams()
    model: ModelParams = ModelParams()
    detect: DetectParams = DetectParams()
    measure: MeasureParams = MeasureParams()
