"""Parameters of the neurons room: one frozen dataclass per step, with units in the names."""

from __future__ import annotations

import dataclasses

from imagingkit.errors import ParameterError

MODES = ("soma", "small")


@dataclasses.dataclass(frozen=True)
class DetectionParams:
    """How to find ROIs.

    Attributes
    ----------
    mode : {"soma", "small"}
        "soma": cell bodies of about ``diameter_px`` with a round-shape prior.
        "small": dendritic segments, spines and boutons: small expected size,
        no shape prior (elongated and tiny ROIs are kept).
    diameter_px : float or None
        Expected ROI diameter in pixels; None = 12 (soma) or 4 (small).
    tau_s : float
        Indicator decay time; the movie is averaged in bins of about this length.
    frame_rate_hz : float or None
        Frame rate; None = taken from the recording (30 Hz if it has none).
    max_binned_frames : int
        Upper bound on the number of time bins kept in memory (bins grow for
        long recordings): memory is ``n_bins * Y * X * 4`` bytes.
    max_binned_mb : float
        Second cap on the binned movie, in MiB: the number of bins is at most
        ``max_binned_mb * 2**20 / (4 * Y * X)`` (600 MiB: 1000 bins up to
        ~400x400 pixels, 600 bins at 512x512). Peak memory of detection is
        about this plus one chunk of frames.
    highpass_window_s : float
        Window of the running mean removed from every pixel (slow drifts).
    threshold : float
        Minimum peak of an ROI's binned activity trace, in noise standard deviations.
    max_rois : int
        Stop after this many ROIs.
    cross_validate : bool or None
        Test an ROI's peak SNR on time bins its footprint was not fitted to (see
        :func:`imagingkit.neurons.builtin.held_out_snr`; ROIs need two or more
        events). None = on in "small" mode, where a handful of pixels fitted to
        a few bins easily turn noise into a transient; off in "soma" mode.
    chunk_frames : int
        Frames read from disk at a time.
    plane, channel : int
        Which plane and channel of the recording to analyse.
    """

    mode: str = "soma"
    diameter_px: float | None = None
    tau_s: float = 0.7
    frame_rate_hz: float | None = None
    max_binned_frames: int = 1000
    max_binned_mb: float = 600.0
    highpass_window_s: float = 30.0
    threshold: float = 5.0
    max_rois: int = 5000
    cross_validate: bool | None = None
    chunk_frames: int = 500
    plane: int = 0
    channel: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.diameter_px is not None and not self.diameter_px >= 1:
            raise ParameterError(f"diameter_px must be >= 1, got {self.diameter_px}")
        for name in ("tau_s", "highpass_window_s", "threshold", "max_binned_mb"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be positive, got {getattr(self, name)}")
        if self.frame_rate_hz is not None and not self.frame_rate_hz > 0:
            raise ParameterError(f"frame_rate_hz must be positive, got {self.frame_rate_hz}")
        for name in ("max_binned_frames", "max_rois", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")

    def n_bins_cap(self, shape_yx: tuple[int, int]) -> int:
        """Most time bins allowed for frames of ``shape_yx`` (both caps applied, at least 3)."""
        by_memory = int(self.max_binned_mb * 2**20 // (4 * shape_yx[0] * shape_yx[1]))
        return max(3, min(self.max_binned_frames, by_memory))

    @property
    def use_cross_validation(self) -> bool:
        """Whether held-out SNR testing applies (the mode's default filled in)."""
        return self.mode == "small" if self.cross_validate is None else bool(self.cross_validate)

    @property
    def diameter(self) -> float:
        """The expected diameter in pixels, with the mode's default filled in."""
        if self.diameter_px is not None:
            return float(self.diameter_px)
        return 12.0 if self.mode == "soma" else 4.0


@dataclasses.dataclass(frozen=True)
class ExtractionParams:
    """How to turn ROIs into traces.

    Attributes
    ----------
    neuropil_gap_px : float
        Pixels between an ROI's edge and the start of its neuropil annulus.
    neuropil_min_pixels : int
        The annulus grows until it has this many pixels (or reaches
        ``neuropil_max_radius_px`` from the ROI's edge).
    neuropil_max_radius_px : float
        Outer limit of the annulus, from the ROI's edge.
    neuropil_coefficient : float or "estimate"
        Fraction of the neuropil trace subtracted from the ROI trace; "estimate"
        fits it per ROI (see :func:`imagingkit.neurons.extract.estimate_neuropil_coefficient`).
    baseline_method : {"maximin", "percentile"}
        Running baseline of the neuropil-corrected trace.
    baseline_window_s : float
        Window of the running baseline.
    baseline_smooth_s : float
        Gaussian smoothing (sigma) before the baseline filter.
    baseline_percentile : float
        Percentile for ``baseline_method="percentile"``.
    tau_decay_s : float
        Indicator decay time for OASIS.
    deconvolve : bool
        Run OASIS spike inference.
    demix : bool
        Demix overlapping ROIs: least-squares traces from the ROI footprints
        (:mod:`imagingkit.neurons.demix`) instead of independent weighted means,
        so an ROI no longer carries an overlapping neighbour's light. The
        neuropil (``coefficient * Fneu``) is subtracted before demixing and
        added back, so ``F - coefficient * Fneu`` is the demixed corrected
        trace and ``Fneu`` is unchanged. ROIs that share no pixel with another
        ROI are unaffected (bit-identical ``F``).
    chunk_frames : int
        Frames read at a time.
    plane, channel : int
        Which plane and channel.
    """

    neuropil_gap_px: float = 2.0
    neuropil_min_pixels: int = 350
    neuropil_max_radius_px: float = 40.0
    neuropil_coefficient: float | str = 0.7
    baseline_method: str = "maximin"
    baseline_window_s: float = 60.0
    baseline_smooth_s: float = 0.3
    baseline_percentile: float = 8.0
    tau_decay_s: float = 0.7
    deconvolve: bool = True
    demix: bool = True
    chunk_frames: int = 500
    plane: int = 0
    channel: int = 0

    def __post_init__(self) -> None:
        coef = self.neuropil_coefficient
        if isinstance(coef, str):
            if coef != "estimate":
                raise ParameterError(f"neuropil_coefficient must be a number or 'estimate', got {coef!r}")
        elif not 0 <= coef <= 2:
            raise ParameterError(f"neuropil_coefficient must be in [0, 2], got {coef}")
        if self.baseline_method not in ("maximin", "percentile"):
            raise ParameterError(
                f"baseline_method must be 'maximin' or 'percentile', got {self.baseline_method!r}"
            )
        if not 0 < self.baseline_percentile < 100:
            raise ParameterError(f"baseline_percentile must be in (0, 100), got {self.baseline_percentile}")
        for name in ("baseline_window_s", "tau_decay_s", "neuropil_max_radius_px"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be positive, got {getattr(self, name)}")
        if self.baseline_smooth_s < 0 or self.neuropil_gap_px < 0:
            raise ParameterError("baseline_smooth_s and neuropil_gap_px must be >= 0")
        if self.chunk_frames < 1:
            raise ParameterError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
