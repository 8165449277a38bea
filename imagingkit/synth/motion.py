"""Simulated brain motion: rigid shifts, smooth non-rigid warps and corrupt frames.

Sign convention (docs/architecture.md): a shift ``(dy, dx)`` means what sits
at ``(y, x)`` in the reference is at ``(y + dy, x + dx)`` in the frame, so a
frame is made by sampling the reference scene at ``(y - dy, x - dx)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import fft, ndimage

from imagingkit.errors import ParameterError


@dataclasses.dataclass(frozen=True)
class MotionSpec:
    """How the field of view moves during a recording.

    Attributes
    ----------
    random_walk_sigma_px : float
        Standard deviation of the frame-to-frame step of the rigid random walk.
    restoring : float
        Pull back towards zero per frame (0 = pure random walk, 1 = white noise).
    jump_probability : float
        Probability per frame of a sudden jump (e.g. a body movement).
    jump_size_px : float
        Standard deviation of a jump, per axis.
    max_shift_px : float
        Shifts are clipped to this magnitude per axis.
    nonrigid_amplitude_px : float
        Peak amplitude of the smooth non-rigid displacement (0 = rigid only).
    nonrigid_scale_px : float
        Spatial scale (Gaussian sigma) of the non-rigid field.
    nonrigid_timescale_frames : float
        Temporal correlation of the non-rigid field.
    corrupt_frame_fraction : float
        Fraction of frames replaced by a corrupt frame (torn, dropped or saturated).
    interpolation : str
        ``"linear"`` (fast, bilinear) or ``"fourier"`` (exact band-limited shift).
    """

    random_walk_sigma_px: float = 0.15
    restoring: float = 0.02
    jump_probability: float = 0.002
    jump_size_px: float = 3.0
    max_shift_px: float = 8.0
    nonrigid_amplitude_px: float = 0.0
    nonrigid_scale_px: float = 40.0
    nonrigid_timescale_frames: float = 30.0
    corrupt_frame_fraction: float = 0.0
    interpolation: str = "linear"

    def __post_init__(self):
        if self.interpolation not in ("linear", "fourier"):
            raise ParameterError(
                f"MotionSpec.interpolation must be 'linear' or 'fourier', got {self.interpolation!r}"
            )
        if not 0 <= self.restoring <= 1 or not 0 <= self.jump_probability <= 1:
            raise ParameterError("MotionSpec.restoring and jump_probability must be in [0, 1]")
        if not 0 <= self.corrupt_frame_fraction < 0.5:
            raise ParameterError("MotionSpec.corrupt_frame_fraction must be in [0, 0.5)")
        if self.max_shift_px < 0:
            raise ParameterError("MotionSpec.max_shift_px must be >= 0")


NO_MOTION = MotionSpec(random_walk_sigma_px=0.0, jump_probability=0.0, corrupt_frame_fraction=0.0)


def simulate_shifts(
    n_frames: int, spec: MotionSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid (dy, dx) per frame: mean-reverting random walk plus jumps.

    Returns
    -------
    shifts : ndarray
        (T, 2) float64 shifts in pixels.
    jumps : ndarray
        (T,) bool, frames where a jump happened.
    """
    steps = rng.normal(0.0, spec.random_walk_sigma_px, (n_frames, 2))
    jumps = rng.random(n_frames) < spec.jump_probability
    steps[jumps] += rng.normal(0.0, spec.jump_size_px, (int(jumps.sum()), 2))
    shifts = np.zeros((n_frames, 2))
    pos = np.zeros(2)
    for t in range(n_frames):
        pos = (1.0 - spec.restoring) * pos + steps[t]
        pos = np.clip(pos, -spec.max_shift_px, spec.max_shift_px)
        shifts[t] = pos
    return shifts, jumps


def smooth_field(shape_yx: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """(2, Y, X) smooth random displacement field with peak magnitude 1."""
    field = np.stack(
        [ndimage.gaussian_filter(rng.normal(size=shape_yx), scale_px, mode="wrap") for _ in range(2)]
    )
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field


def nonrigid_basis(
    n_frames: int, shape_yx: tuple[int, int], spec: MotionSpec, rng: np.random.Generator, n_modes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth spatial modes (K, 2, Y, X) and their slow time courses (T, K).

    The non-rigid displacement of frame t (pixels, same sign convention as the
    rigid shift, added to it) is ``sum_k weights[t, k] * modes[k]``.
    """
    modes = np.stack([smooth_field(shape_yx, spec.nonrigid_scale_px, rng) for _ in range(n_modes)])
    raw = rng.normal(size=(n_frames, n_modes))
    weights = ndimage.gaussian_filter1d(raw, spec.nonrigid_timescale_frames, axis=0, mode="nearest")
    weights /= max(np.abs(weights).max(), 1e-12)
    return modes.astype(np.float32), (spec.nonrigid_amplitude_px * weights / n_modes).astype(np.float32)


def shift_frame(
    padded: np.ndarray,
    pad: int,
    shift_yx: np.ndarray,
    shape_yx: tuple[int, int],
    method: str,
    gain: float = 1.0,
) -> np.ndarray:
    """Crop a frame of ``shape_yx`` from a padded scene moved by ``shift_yx``.

    ``padded`` is the reference scene with ``pad`` extra pixels on every side
    (more than the largest shift). Output pixel ``(y, x)`` is ``gain`` times the
    scene at ``(y - dy, x - dx)``.
    """
    ny, nx = shape_yx
    dy, dx = float(shift_yx[0]), float(shift_yx[1])
    if method == "fourier":
        iy, ix = int(np.round(dy)), int(np.round(dx))
        crop = padded[pad - iy - 1 : pad - iy + ny + 1, pad - ix - 1 : pad - ix + nx + 1]
        moved = ndimage.fourier_shift(fft.rfft2(crop), (dy - iy, dx - ix), n=crop.shape[1])
        return (gain * fft.irfft2(moved, s=crop.shape)[1:-1, 1:-1]).astype(np.float32)
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - iy, dx - ix
    y0, x0 = pad - iy, pad - ix  # output (0,0) samples scene at (-dy, -dx) -> padded (pad - dy, pad - dx)
    a = padded[y0 : y0 + ny, x0 : x0 + nx]
    b = padded[y0 - 1 : y0 - 1 + ny, x0 : x0 + nx]
    c = padded[y0 : y0 + ny, x0 - 1 : x0 - 1 + nx]
    d = padded[y0 - 1 : y0 - 1 + ny, x0 - 1 : x0 - 1 + nx]
    w = np.float32(gain) * np.array(
        [(1 - fy) * (1 - fx), fy * (1 - fx), (1 - fy) * fx, fy * fx], dtype=np.float32
    )
    out = w[0] * a
    for weight, part in zip(w[1:], (b, c, d), strict=True):
        if weight:
            out += weight * part
    return out


def warp_frame(
    padded: np.ndarray,
    pad: int,
    shift_yx: np.ndarray,
    field_yx: np.ndarray,
    shape_yx: tuple[int, int],
    gain: float = 1.0,
) -> np.ndarray:
    """Like :func:`shift_frame` with an extra per-pixel displacement ``field_yx`` (2, Y, X).

    Output pixel ``(y, x)`` is the scene at ``(y - dy - uy(y, x), x - dx - ux(y, x))``
    (bilinear); the field is defined on the output grid.
    """
    ny, nx = shape_yx
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    coords = np.stack([yy - shift_yx[0] - field_yx[0] + pad, xx - shift_yx[1] - field_yx[1] + pad])
    return (gain * ndimage.map_coordinates(padded, coords, order=1, mode="nearest")).astype(np.float32)
