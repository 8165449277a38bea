"""Parameters of spine detection and measurement (frozen dataclasses, units in names)."""

from __future__ import annotations

import dataclasses

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
    sensitivity : float
        The one knob: > 1 finds dimmer spines (higher recall) at the cost of more
        noise peaks (lower precision); < 1 the opposite. Default 1.
    min_separation_um : float
        Of two peaks closer than this (3D distance for stacks), the weaker is dropped.
    prominence_sigma : float
        A peak must rise this many noise sigmas above the saddle to any higher
        peak (h-maxima), so plateaus along necks and shaft edges count once.
    """

    threshold_sigma: float = 5.0
    sensitivity: float = 1.0
    min_separation_um: float = 0.5
    prominence_sigma: float = 2.0

    def __post_init__(self):
        if not self.sensitivity > 0:
            raise ParameterError(f"sensitivity must be positive, got {self.sensitivity}")
        if not self.threshold_sigma > 0:
            raise ParameterError(f"threshold_sigma must be positive, got {self.threshold_sigma}")

    @property
    def threshold(self) -> float:
        return self.threshold_sigma / self.sensitivity


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
