"""Parameters of within-session registration (frozen dataclasses, units in names)."""

from __future__ import annotations

import dataclasses

from imagingkit.errors import ParameterError


@dataclasses.dataclass(frozen=True)
class RigidParams:
    """Rigid (whole-frame, sub-pixel) registration.

    Attributes
    ----------
    max_shift_fraction : float
        Largest shift searched, as a fraction of the smaller frame side.
    smooth_sigma_px : float
        Gaussian smoothing (pixels) of the whitened cross-power; also shapes the
        correlation peak for the sub-pixel fit.
    taper_slope_px : float
        Slope (pixels) of the sigmoid edge taper applied before the FFT.
    interpolation : {"fourier", "bilinear"}
        How shifted frames are resampled.
    reference_frames : int
        Frames sampled (evenly through the recording) to build the reference.
    reference_iterations : int
        Refinement rounds of the reference (register, keep the best, average).
    chunk_frames : int
        Frames per streamed block (bounds memory).
    n_workers : int
        Threads processing blocks in parallel.
    bidi_correction : bool or None
        Estimate and correct the bidirectional scan phase; ``None`` means when
        the recording says it is bidirectional.
    bad_corr_mad : float
        A frame is bad when its correlation to the reference is more than this
        many robust standard deviations (1.4826 MAD) below the median.
    bad_jump_px : float
        A frame is bad when its shift departs by more than this from the
        median of its neighbours (5 frames each side).
    bad_corr_min_drop : float
        ... and only when its correlation is also at least this far below the median.
    bad_intensity_mad : float
        A frame is bad when its mean intensity (over its clean lines) departs by
        more than this many robust standard deviations from the median (flashes, blanking).
    artifact_line_z : float or None
        Scan lines brighter than usual by more than this many robust standard
        deviations are stimulation-light artifact lines (see
        :mod:`imagingkit.motion.artifacts`); their frames are aligned on the
        clean lines and marked ``artifact``. ``None`` switches detection off.
    artifact_dilate_lines : int
        Lines added on each side of a detected artifact run.
    artifact_max_line_fraction : float
        A frame with more than this fraction of artifact lines is bad (too little left to align).
    """

    max_shift_fraction: float = 0.1
    smooth_sigma_px: float = 1.15
    taper_slope_px: float = 3.45
    interpolation: str = "fourier"
    reference_frames: int = 200
    reference_iterations: int = 5
    chunk_frames: int = 128
    n_workers: int = 2
    bidi_correction: bool | None = None
    bad_corr_mad: float = 6.0
    bad_jump_px: float = 4.0
    bad_intensity_mad: float = 8.0
    bad_corr_min_drop: float = 0.05
    artifact_line_z: float | None = 8.0
    artifact_dilate_lines: int = 1
    artifact_max_line_fraction: float = 0.5

    def __post_init__(self):
        if not 0 < self.max_shift_fraction <= 0.5:
            raise ParameterError(f"max_shift_fraction must be in (0, 0.5], got {self.max_shift_fraction}")
        if self.interpolation not in ("fourier", "bilinear"):
            raise ParameterError(f"interpolation must be 'fourier' or 'bilinear', got {self.interpolation!r}")
        for name in ("reference_frames", "chunk_frames", "n_workers", "reference_iterations"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.artifact_line_z is not None and self.artifact_line_z <= 0:
            raise ParameterError(f"artifact_line_z must be > 0 or None, got {self.artifact_line_z}")
        if not 0 < self.artifact_max_line_fraction <= 1:
            raise ParameterError(
                f"artifact_max_line_fraction must be in (0, 1], got {self.artifact_max_line_fraction}"
            )
        if self.smooth_sigma_px <= 0:
            raise ParameterError(f"smooth_sigma_px must be > 0, got {self.smooth_sigma_px}")

    @property
    def nonrigid(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class NonRigidParams(RigidParams):
    """Piecewise-rigid registration: a rigid pass, then overlapping blocks.

    Attributes
    ----------
    block_size_px : int
        Side of the square blocks (pixels); blocks overlap by about a third.
    max_block_shift_px : float
        Largest residual shift of a block after the rigid pass.
    snr_threshold : float
        Blocks whose correlation peak is weaker than this (peak over the
        surrounding maximum) borrow the correlation of their neighbours.
    """

    block_size_px: int = 128
    max_block_shift_px: float = 5.0
    snr_threshold: float = 1.2

    def __post_init__(self):
        super().__post_init__()
        if self.block_size_px < 16:
            raise ParameterError(f"block_size_px must be >= 16, got {self.block_size_px}")
        if self.max_block_shift_px <= 0:
            raise ParameterError(f"max_block_shift_px must be > 0, got {self.max_block_shift_px}")

    @property
    def nonrigid(self) -> bool:
        return True
