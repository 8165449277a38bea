"""Piecewise-rigid registration: overlapping blocks, smoothed block shifts, per-pixel warp.

After the rigid pass, each frame is cut into overlapping square blocks (taken
at the frame's whole-pixel rigid offset, so no resampling happens before the
final warp). Each block is phase-correlated with the same block of the
reference; blocks with a weak peak borrow the correlation maps of their
neighbours (a Gaussian over the block grid, as in suite2p), so the shift field
stays smooth where the image has little structure. Block shifts are then
interpolated bilinearly between block centres to every pixel and the frame is
resampled once at ``(y + dy(y, x), x + dx(y, x))``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.fft as sfft
import scipy.ndimage as ndi

from imagingkit.motion.rigid import _EPS, gaussian_spectrum, peak_subpixel, spatial_taper


@dataclasses.dataclass(frozen=True)
class BlockGrid:
    """Overlapping blocks covering a frame.

    Attributes
    ----------
    y_starts, x_starts : ndarray
        First row / column of each block row / column.
    size_yx : tuple of int
        Block height and width in pixels.
    """

    y_starts: np.ndarray
    x_starts: np.ndarray
    size_yx: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(n block rows, n block columns)."""
        return len(self.y_starts), len(self.x_starts)

    @property
    def centres_y(self) -> np.ndarray:
        return self.y_starts + (self.size_yx[0] - 1) / 2.0

    @property
    def centres_x(self) -> np.ndarray:
        return self.x_starts + (self.size_yx[1] - 1) / 2.0


def make_block_grid(shape_yx: tuple[int, int], block_size_px: int) -> BlockGrid:
    """Blocks of ``block_size_px`` (or the whole side when smaller) overlapping by about a third."""
    starts, sizes = [], []
    for n in shape_yx:
        size = min(block_size_px, n)
        count = 1 if size >= n else int(np.ceil(1.5 * n / size))
        starts.append(np.linspace(0, n - size, count).round().astype(int))
        sizes.append(size)
    return BlockGrid(starts[0], starts[1], (sizes[0], sizes[1]))


def _grid_smoothing_matrix(grid_shape: tuple[int, int], sigma_blocks: float = 0.85) -> np.ndarray:
    """(nb, nb) row-normalised Gaussian weights between blocks on the grid."""
    gy, gx = np.meshgrid(np.arange(grid_shape[0]), np.arange(grid_shape[1]), indexing="ij")
    pos = np.stack([gy.ravel(), gx.ravel()], axis=1).astype(float)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma_blocks**2))
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class BlockReference:
    """Per-block taper and whitened reference spectra for :func:`estimate_block_shifts`."""

    grid: BlockGrid
    mask_mul: np.ndarray  # (nb, by, bx)
    mask_offset: np.ndarray  # (nb, by, bx)
    spectrum: np.ndarray  # (nb, by, bx//2+1) complex64
    smoothing: np.ndarray  # (nb, nb)
    max_shift_px: int


def prepare_block_reference(
    reference: np.ndarray,
    block_size_px: int = 128,
    max_shift_px: float = 5.0,
    smooth_sigma_px: float = 1.15,
) -> BlockReference:
    """Cut the reference into blocks and precompute their tapers and whitened spectra."""
    ref = np.asarray(reference, dtype=np.float32)
    grid = make_block_grid(ref.shape, block_size_px)
    by, bx = grid.size_yx
    taper = spatial_taper((by, bx), 2.0 * smooth_sigma_px)
    gauss = gaussian_spectrum((by, bx), smooth_sigma_px)
    blocks = np.stack([ref[y : y + by, x : x + bx] for y in grid.y_starts for x in grid.x_starts])
    mask_mul = np.broadcast_to(taper, blocks.shape).astype(np.float32)
    mask_offset = (blocks.mean(axis=(1, 2), keepdims=True) * (1.0 - taper)).astype(np.float32)
    spec = sfft.rfft2(blocks * mask_mul + mask_offset)
    spec = np.conj(spec) / (np.abs(spec) + _EPS) * gauss
    radius = int(min(np.ceil(max_shift_px), min(by, bx) // 2 - 3))
    return BlockReference(
        grid, mask_mul, mask_offset, spec.astype(np.complex64), _grid_smoothing_matrix(grid.shape), radius
    )


def _peak_snr(cc: np.ndarray, exclude_px: int = 2) -> np.ndarray:
    """(N,) peak height over the largest value farther than ``exclude_px`` from the peak."""
    n, size = cc.shape[0], cc.shape[-1]
    flat = cc.reshape(n, -1)
    arg = np.argmax(flat, axis=1)
    py, px = np.unravel_index(arg, (size, size))
    yy, xx = np.arange(size)[None, :, None], np.arange(size)[None, None, :]
    near = (np.abs(yy - py[:, None, None]) <= exclude_px) & (np.abs(xx - px[:, None, None]) <= exclude_px)
    peak = flat[np.arange(n), arg]
    other = np.where(near, -np.inf, cc).reshape(n, -1).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(other > 0, peak / other, np.inf)
    return np.nan_to_num(snr, posinf=1e6)


def _cut_blocks(
    frames: np.ndarray, grid: BlockGrid, offset_y: np.ndarray, offset_x: np.ndarray
) -> np.ndarray:
    """(T, nb, by, bx) blocks of each frame taken at its whole-pixel offset.

    Where a moved block leaves the frame, the missing pixels take the frame's
    mean (neutral for the tapered phase correlation).
    """
    t, ny, nx = frames.shape
    by, bx = grid.size_yx
    pad = int(max(np.abs(offset_y).max(initial=0), np.abs(offset_x).max(initial=0)))
    if pad:
        padded = np.empty((t, ny + 2 * pad, nx + 2 * pad), dtype=np.float32)
        padded[:] = frames.mean(axis=(1, 2))[:, None, None]
        padded[:, pad : pad + ny, pad : pad + nx] = frames
    else:
        padded = frames
    out = np.empty((t, grid.shape[0] * grid.shape[1], by, bx), dtype=np.float32)
    for i in range(t):
        k = 0
        for y0 in grid.y_starts:
            ys = int(y0 + offset_y[i] + pad)
            for x0 in grid.x_starts:
                xs = int(x0 + offset_x[i] + pad)
                out[i, k] = padded[i, ys : ys + by, xs : xs + bx]
                k += 1
    return out


def estimate_block_shifts(
    frames: np.ndarray,
    block_reference: BlockReference,
    rigid_dy: np.ndarray,
    rigid_dx: np.ndarray,
    snr_threshold: float = 1.2,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift of every block of every frame (total, rigid part included).

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) raw frames (not yet shifted).
    block_reference : BlockReference
        From :func:`prepare_block_reference`.
    rigid_dy, rigid_dx : ndarray
        (T,) rigid shifts of the frames; blocks are cut at their whole-pixel part.
    snr_threshold : float
        Blocks with a weaker peak use neighbour-smoothed correlation maps.

    Returns
    -------
    dy, dx : ndarray
        (T, n_block_rows, n_block_cols) float32 block shifts (house convention).
    peak : ndarray
        (T, n_block_rows, n_block_cols) correlation peak heights.
    """
    br = block_reference
    frames = np.asarray(frames, dtype=np.float32)
    t = len(frames)
    offset_y, offset_x = np.round(rigid_dy).astype(int), np.round(rigid_dx).astype(int)
    blocks = _cut_blocks(frames, br.grid, offset_y, offset_x)
    blocks *= br.mask_mul
    blocks += br.mask_offset
    spec = sfft.rfft2(blocks, workers=workers)
    spec /= np.abs(spec) + _EPS
    spec *= br.spectrum
    cc_full = sfft.irfft2(spec, s=br.grid.size_yx, workers=workers)
    r = br.max_shift_px + 1
    iy = np.arange(-r, r + 1) % br.grid.size_yx[0]
    ix = np.arange(-r, r + 1) % br.grid.size_yx[1]
    cc = cc_full[:, :, iy][:, :, :, ix]  # (T, nb, w, w)
    nb, w = cc.shape[1], cc.shape[-1]
    chosen = cc.copy()
    current = cc
    weak = (_peak_snr(cc.reshape(-1, w, w)) < snr_threshold).reshape(t, nb)
    for _ in range(2):
        if not weak.any():
            break
        current = np.einsum("ij,tjab->tiab", br.smoothing, current)
        chosen[weak] = current[weak]
        weak &= (_peak_snr(current.reshape(-1, w, w)) < snr_threshold).reshape(t, nb)
    dy, dx, peak = peak_subpixel(chosen.reshape(-1, w, w), r)
    shape = (t, *br.grid.shape)
    dy = (dy.reshape(t, nb) + offset_y[:, None]).reshape(shape).astype(np.float32)
    dx = (dx.reshape(t, nb) + offset_x[:, None]).reshape(shape).astype(np.float32)
    return dy, dx, peak.reshape(shape)


def _interp_matrix(n: int, centres: np.ndarray) -> np.ndarray:
    """(n, len(centres)) linear interpolation weights from block centres to pixels (clamped at the ends)."""
    m = np.zeros((n, len(centres)), dtype=np.float32)
    if len(centres) == 1:
        m[:, 0] = 1.0
        return m
    pos = np.clip(np.arange(n, dtype=float), centres[0], centres[-1])
    j = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, len(centres) - 2)
    w = (pos - centres[j]) / (centres[j + 1] - centres[j])
    m[np.arange(n), j] = 1.0 - w
    m[np.arange(n), j + 1] += w
    return m


def upsample_block_shifts(
    block_dy: np.ndarray, block_dx: np.ndarray, grid: BlockGrid, shape_yx: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (T, Y, X) shift fields by bilinear interpolation between block centres."""
    my = _interp_matrix(shape_yx[0], grid.centres_y)
    mx = _interp_matrix(shape_yx[1], grid.centres_x)
    fy = np.einsum("yi,tij,xj->tyx", my, np.asarray(block_dy, np.float32), mx, optimize=True)
    fx = np.einsum("yi,tij,xj->tyx", my, np.asarray(block_dx, np.float32), mx, optimize=True)
    return fy, fx


def warp_frames(frames: np.ndarray, field_dy: np.ndarray, field_dx: np.ndarray) -> np.ndarray:
    """Sample each frame at (y + dy(y, x), x + dx(y, x)) bilinearly, edges clamped.

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) frames.
    field_dy, field_dx : ndarray
        (T, Y, X) per-pixel shifts (house convention).

    Returns
    -------
    ndarray
        (T, Y, X) float32 registered frames.
    """
    frames = np.asarray(frames, dtype=np.float32)
    _, ny, nx = frames.shape
    grid_y = np.arange(ny, dtype=np.float32)[:, None]
    grid_x = np.arange(nx, dtype=np.float32)[None, :]
    out = np.empty(frames.shape, dtype=np.float32)
    for i, frame in enumerate(frames):
        coords = np.stack([grid_y + field_dy[i], grid_x + field_dx[i]])
        ndi.map_coordinates(frame, coords, output=out[i], order=1, mode="nearest", prefilter=False)
    return out
