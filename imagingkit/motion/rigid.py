"""Rigid sub-pixel registration by whitened phase correlation, batched over frames.

A frame's shift ``(dy, dx)`` follows the house convention: what sits at
``(y, x)`` in the reference is at ``(y + dy, x + dx)`` in the frame, so the
registered frame samples the raw frame at ``(y + dy, x + dx)``.

The cross-power spectrum is whitened (phase only) and multiplied by a Gaussian
of ``smooth_sigma_px`` as in suite2p, which makes the correlation peak close to
a Gaussian; its sub-pixel position comes from a three-point Gaussian fit per
axis, vectorised over the batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.fft as sfft

_EPS = np.float32(1e-5)
BATCH_FRAMES = 32  # frames per FFT batch: keeps the spectra in cache, bounds memory


def spatial_taper(shape_yx: tuple[int, int], slope_px: float) -> np.ndarray:
    """(Y, X) float32 mask falling smoothly to 0 at the frame edges (sigmoid of slope ``slope_px``)."""
    masks = []
    for n in shape_yx:
        pos = np.abs(np.arange(n, dtype=np.float64) - (n - 1) / 2.0)
        edge = (n - 1) / 2.0 - 2.0 * slope_px
        masks.append(1.0 / (1.0 + np.exp((pos - edge) / slope_px)))
    return np.outer(masks[0], masks[1]).astype(np.float32)


def gaussian_spectrum(shape_yx: tuple[int, int], sigma_px: float) -> np.ndarray:
    """(Y, X//2+1) float32 transfer function (rfft layout) of a Gaussian blur of ``sigma_px``."""
    fy = sfft.fftfreq(shape_yx[0])[:, None]
    fx = sfft.rfftfreq(shape_yx[1])[None, :]
    return np.exp(-2.0 * np.pi**2 * sigma_px**2 * (fy**2 + fx**2)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PreparedReference:
    """A reference image with what phase correlation needs precomputed.

    Attributes
    ----------
    image : ndarray
        (Y, X) float32 reference.
    mask_mul, mask_offset : ndarray
        (Y, X) taper: frames become ``frame * mask_mul + mask_offset``.
    spectrum : ndarray
        (Y, X//2+1) complex64 conjugate whitened reference spectrum times the Gaussian.
    max_shift_px : int
        Search radius of the correlation peak.
    """

    image: np.ndarray
    mask_mul: np.ndarray
    mask_offset: np.ndarray
    spectrum: np.ndarray
    max_shift_px: int


def prepare_reference(
    reference: np.ndarray,
    max_shift_px: int,
    smooth_sigma_px: float = 1.15,
    taper_slope_px: float = 3.45,
) -> PreparedReference:
    """Precompute the taper and the whitened reference spectrum.

    Parameters
    ----------
    reference : ndarray
        (Y, X) reference image.
    max_shift_px : int
        Search radius; clipped to just under half the smaller side.
    smooth_sigma_px, taper_slope_px : float
        See :class:`~imagingkit.motion.params.RigidParams`.
    """
    ref = np.asarray(reference, dtype=np.float32)
    shape = ref.shape
    max_shift_px = int(min(max_shift_px, min(shape) // 2 - 2))
    mask_mul = spatial_taper(shape, taper_slope_px)
    mask_offset = (ref.mean() * (1.0 - mask_mul)).astype(np.float32)
    spec = sfft.rfft2(ref * mask_mul + mask_offset)
    spec = np.conj(spec) / (np.abs(spec) + _EPS)
    spec *= gaussian_spectrum(shape, smooth_sigma_px)
    return PreparedReference(ref, mask_mul, mask_offset, spec.astype(np.complex64), max_shift_px)


def correlation_window(
    frames: np.ndarray, prepared: PreparedReference, radius_px: int, workers: int = 1
) -> np.ndarray:
    """(B, 2r+1, 2r+1) whitened phase correlation around zero shift; centre index is shift 0."""
    data = np.asarray(frames, dtype=np.float32) * prepared.mask_mul + prepared.mask_offset
    spec = sfft.rfft2(data, workers=workers)
    spec /= np.abs(spec) + _EPS
    spec *= prepared.spectrum
    cc = sfft.irfft2(spec, s=data.shape[-2:], workers=workers, overwrite_x=True)
    iy = np.arange(-radius_px, radius_px + 1) % data.shape[-2]
    ix = np.arange(-radius_px, radius_px + 1) % data.shape[-1]
    return cc[:, iy][:, :, ix]


def gaussian_peak_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset in [-0.5, 0.5] of a peak from three samples (Gaussian fit, parabola fallback)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (left > 0) & (centre > 0) & (right > 0)
        lo = np.log(np.where(positive, left, 1.0))
        lc = np.log(np.where(positive, centre, 1.0))
        lr = np.log(np.where(positive, right, 1.0))
        a, b, c = np.where(positive, lo, left), np.where(positive, lc, centre), np.where(positive, lr, right)
        denom = a - 2.0 * b + c
        offset = np.where(denom < 0, 0.5 * (a - c) / denom, 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)


def peak_subpixel(cc: np.ndarray, radius_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel peak of (B, 2r+1, 2r+1) correlation windows, searching the inner (2r-1)^2.

    Returns ``dy, dx, peak`` (float64, float64, float32), shifts relative to the window centre.
    """
    n, size = cc.shape[0], cc.shape[-1]
    inner = cc[:, 1:-1, 1:-1].reshape(n, -1)
    flat = np.argmax(inner, axis=1)
    iy, ix = np.unravel_index(flat, (size - 2, size - 2))
    iy, ix = iy + 1, ix + 1
    rows = np.arange(n)
    centre = cc[rows, iy, ix]
    oy = gaussian_peak_offset(cc[rows, iy - 1, ix], centre, cc[rows, iy + 1, ix])
    ox = gaussian_peak_offset(cc[rows, iy, ix - 1], centre, cc[rows, iy, ix + 1])
    dy = iy - radius_px + oy
    dx = ix - radius_px + ox
    return dy.astype(np.float64), dx.astype(np.float64), centre.astype(np.float32)


def estimate_rigid_shifts(
    frames: np.ndarray,
    reference: np.ndarray | PreparedReference,
    max_shift_px: int | None = None,
    smooth_sigma_px: float = 1.15,
    taper_slope_px: float = 3.45,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rigid sub-pixel shifts of frames relative to a reference.

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) or (Y, X) frames.
    reference : ndarray or PreparedReference
        (Y, X) reference image, or one prepared by :func:`prepare_reference`.
    max_shift_px : int, optional
        Search radius (default 10 % of the smaller side).
    workers : int
        Threads for scipy.fft.

    Returns
    -------
    dy, dx : ndarray
        (T,) shifts in pixels: content at (y, x) in the reference is at (y + dy, x + dx) in the frame.
    peak : ndarray
        (T,) height of the whitened correlation peak (0..1).
    """
    frames = np.asarray(frames)
    single = frames.ndim == 2
    frames = frames[None] if single else frames
    if not isinstance(reference, PreparedReference):
        if max_shift_px is None:
            max_shift_px = max(2, int(round(0.1 * min(frames.shape[-2:]))))
        reference = prepare_reference(reference, max_shift_px, smooth_sigma_px, taper_slope_px)
    radius = reference.max_shift_px + 1
    parts = [
        peak_subpixel(correlation_window(frames[i : i + BATCH_FRAMES], reference, radius, workers), radius)
        for i in range(0, len(frames), BATCH_FRAMES)
    ]
    dy, dx, peak = (np.concatenate(p) for p in zip(*parts, strict=True))
    if single:
        return dy[0], dx[0], peak[0]
    return dy, dx, peak


def _fill_wrapped_edges(out: np.ndarray, dy: float, dx: float) -> None:
    """Replace rows/columns that a periodic shift wrapped around with the nearest valid ones."""
    ny, nx = out.shape
    ky, kx = int(np.ceil(abs(dy))), int(np.ceil(abs(dx)))
    ky, kx = min(ky, ny - 1), min(kx, nx - 1)
    if ky and dy > 0:
        out[ny - ky :] = out[ny - ky - 1]
    elif ky:
        out[:ky] = out[ky]
    if kx and dx > 0:
        out[:, nx - kx :] = out[:, nx - kx - 1 : nx - kx]
    elif kx:
        out[:, :kx] = out[:, kx : kx + 1]


def shift_frames_fourier(frames: np.ndarray, dy: np.ndarray, dx: np.ndarray, workers: int = 1) -> np.ndarray:
    """Resample frames at (y + dy, x + dx) by a Fourier phase ramp; wrapped edges take the nearest valid line.

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) frames.
    dy, dx : ndarray
        (T,) shifts in pixels (house convention).

    Returns
    -------
    ndarray
        (T, Y, X) float32 registered frames.
    """
    frames = np.asarray(frames, dtype=np.float32)
    ny, nx = frames.shape[-2:]
    fy = sfft.fftfreq(ny).astype(np.float32)
    fx = sfft.rfftfreq(nx).astype(np.float32)
    dy32 = np.asarray(dy, dtype=np.float32)[:, None, None]
    dx32 = np.asarray(dx, dtype=np.float32)[:, None, None]
    ey = np.exp((2j * np.pi) * (fy[None, :, None] * dy32)).astype(np.complex64)
    ex = np.exp((2j * np.pi) * (fx[None, None, :] * dx32)).astype(np.complex64)
    out = np.empty(frames.shape, dtype=np.float32)
    for i in range(0, len(frames), BATCH_FRAMES):
        sl = slice(i, i + BATCH_FRAMES)
        spec = sfft.rfft2(frames[sl], workers=workers)
        spec *= ey[sl]
        spec *= ex[sl]
        out[sl] = sfft.irfft2(spec, s=(ny, nx), workers=workers, overwrite_x=True)
    for frame, y, x in zip(out, np.asarray(dy), np.asarray(dx), strict=True):
        _fill_wrapped_edges(frame, float(y), float(x))
    return out


def shift_frames_bilinear(frames: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Resample frames at (y + dy, x + dx) by bilinear interpolation, edges clamped.

    Shapes as :func:`shift_frames_fourier`.
    """
    frames = np.asarray(frames, dtype=np.float32)
    _, ny, nx = frames.shape
    out = np.empty(frames.shape, dtype=np.float32)
    ys, xs = np.arange(ny), np.arange(nx)
    for i, (frame, y, x) in enumerate(zip(frames, np.asarray(dy), np.asarray(dx), strict=True)):
        iy, ix = int(np.floor(y)), int(np.floor(x))
        wy, wx = np.float32(y - iy), np.float32(x - ix)
        r0, r1 = np.clip(ys + iy, 0, ny - 1), np.clip(ys + iy + 1, 0, ny - 1)
        c0, c1 = np.clip(xs + ix, 0, nx - 1), np.clip(xs + ix + 1, 0, nx - 1)
        top = frame[r0] * (1 - wy) + frame[r1] * wy
        out[i] = top[:, c0] * (1 - wx) + top[:, c1] * wx
    return out


def shift_frames(
    frames: np.ndarray, dy: np.ndarray, dx: np.ndarray, method: str = "fourier", workers: int = 1
) -> np.ndarray:
    """Register frames given their shifts (``method`` "fourier" or "bilinear"); returns float32."""
    if method == "fourier":
        return shift_frames_fourier(frames, dy, dx, workers=workers)
    return shift_frames_bilinear(frames, dy, dx)
