"""Spatial layout of a simulated field of view: somata, dendrites, boutons, neuropil, vessels.

Footprints are stored sparse (n_rois x pixels) so that 512x512 fields with
hundreds of cells stay small; rendering a frame is one sparse matrix product.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage, sparse


class Patch(NamedTuple):
    """A footprint stored as a small dense patch whose corner sits at (y0, x0)."""

    y0: int
    x0: int
    values: np.ndarray

    def shifted(self, dy: int, dx: int) -> Patch:
        return Patch(self.y0 + dy, self.x0 + dx, self.values)

    def centroid(self) -> np.ndarray:
        w = self.values.astype(float)
        yy, xx = np.indices(w.shape)
        tot = max(w.sum(), 1e-12)
        return np.array([(w * yy).sum() / tot + self.y0, (w * xx).sum() / tot + self.x0])


def soma_footprint(
    shape_yx: tuple[int, int],
    centre_yx: np.ndarray,
    radii_px: tuple[float, float],
    angle_rad: float,
    nucleus_fraction: float,
    nucleus_brightness: float,
    psf_sigma_px: float,
) -> np.ndarray:
    """Soma patch: ellipse with a dark nucleus, blurred by the PSF, peak 1 (clipped to ``shape_yx``)."""
    ny, nx = shape_yx
    half = int(np.ceil(max(radii_px) + 3 * psf_sigma_px + 2))
    cy, cx = int(round(centre_yx[0])), int(round(centre_yx[1]))
    y0, y1 = max(cy - half, 0), min(cy + half + 1, ny)
    x0, x1 = max(cx - half, 0), min(cx + half + 1, nx)
    if y0 >= y1 or x0 >= x1:
        return Patch(0, 0, np.zeros((0, 0), np.float32))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
    dy, dx = yy - centre_yx[0], xx - centre_yx[1]
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    u, v = c * dy + s * dx, -s * dy + c * dx
    r = np.sqrt((u / radii_px[0]) ** 2 + (v / radii_px[1]) ** 2)
    body = (r <= 1.0).astype(float)
    nucleus = (r <= nucleus_fraction).astype(float)
    patch = body * (1.0 - (1.0 - nucleus_brightness) * nucleus)
    patch = ndimage.gaussian_filter(patch, psf_sigma_px) if psf_sigma_px > 0 else patch
    return Patch(y0, x0, (patch / max(patch.max(), 1e-12)).astype(np.float32))


def dendrite_footprint(
    shape_yx: tuple[int, int],
    start_yx: np.ndarray,
    length_px: float,
    angle_rad: float,
    width_px: float,
    curvature: float,
    psf_sigma_px: float,
) -> np.ndarray:
    """Patch of a thin curved process segment, peak 1."""
    n = max(int(length_px * 2), 2)
    s = np.linspace(0, length_px, n)
    theta = angle_rad + curvature * s / max(length_px, 1)
    pts = np.stack(
        [
            start_yx[0] + np.cumsum(np.sin(theta)) * length_px / n,
            start_yx[1] + np.cumsum(np.cos(theta)) * length_px / n,
        ],
        axis=1,
    )
    sigma = max(width_px / 2.355, psf_sigma_px)
    margin = int(np.ceil(4 * sigma)) + 1
    iy, ix = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    ok = (iy >= 0) & (iy < shape_yx[0]) & (ix >= 0) & (ix < shape_yx[1])
    if not ok.any():
        return Patch(0, 0, np.zeros((0, 0), np.float32))
    y0, x0 = max(iy[ok].min() - margin, 0), max(ix[ok].min() - margin, 0)
    y1, x1 = min(iy[ok].max() + margin + 1, shape_yx[0]), min(ix[ok].max() + margin + 1, shape_yx[1])
    canvas = np.zeros((y1 - y0, x1 - x0))
    canvas[iy[ok] - y0, ix[ok] - x0] = 1.0
    canvas = ndimage.gaussian_filter(canvas, sigma)
    return Patch(y0, x0, (canvas / max(canvas.max(), 1e-12)).astype(np.float32))


def bouton_footprint(shape_yx, centre_yx, radius_px, psf_sigma_px) -> np.ndarray:
    """Patch of a small round bouton, peak 1."""
    return soma_footprint(shape_yx, centre_yx, (radius_px, radius_px), 0.0, 0.0, 1.0, psf_sigma_px)


def to_sparse(patches: list[Patch], shape_yx: tuple[int, int], threshold: float = 0.01) -> sparse.csr_matrix:
    """Footprint patches as a CSR matrix (n_rois, Y*X); parts outside ``shape_yx`` and weights
    below ``threshold`` are dropped."""
    ny, nx = shape_yx
    rows, cols, vals = [], [], []
    for k, p in enumerate(patches):
        yy, xx = np.nonzero(p.values > threshold)
        y, x = yy + p.y0, xx + p.x0
        ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
        rows.append(np.full(ok.sum(), k))
        cols.append(y[ok] * nx + x[ok])
        vals.append(p.values[yy[ok], xx[ok]])
    if not patches:
        return sparse.csr_matrix((0, ny * nx), dtype=np.float32)
    return sparse.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(patches), ny * nx),
    )


def label_image(
    footprints: sparse.csr_matrix, rows: np.ndarray, shape_yx: tuple[int, int], min_weight: float = 0.25
):
    """(Y, X) int32 labels ``row + 1`` of the strongest footprint (weight > ``min_weight``) per pixel."""
    best = np.zeros(int(np.prod(shape_yx)), dtype=np.float32)
    labels = np.zeros(best.size, dtype=np.int32)
    for k in rows:
        lo, hi = footprints.indptr[k], footprints.indptr[k + 1]
        idx, w = footprints.indices[lo:hi], footprints.data[lo:hi]
        win = (w > best[idx]) & (w > min_weight)
        best[idx[win]] = w[win]
        labels[idx[win]] = k + 1
    return labels.reshape(shape_yx)


def smooth_positive_field(
    shape_yx: tuple[int, int], scale_px: float, rng: np.random.Generator, contrast: float
) -> np.ndarray:
    """(Y, X) float32 smooth random field with mean 1 and roughly +/- ``contrast`` variation."""
    field = ndimage.gaussian_filter(rng.normal(size=shape_yx), scale_px, mode="reflect")
    field -= field.mean()
    field /= max(field.std(), 1e-12)
    return np.exp(contrast * field - 0.5 * contrast**2).astype(np.float32)


def vessel_mask(
    shape_yx: tuple[int, int], n_vessels: int, width_px: float, rng: np.random.Generator
) -> np.ndarray:
    """(Y, X) float32 in [0, 1]: 1 inside dark blood vessels crossing the field."""
    ny, nx = shape_yx
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    mask = np.zeros(shape_yx)
    for _ in range(n_vessels):
        py, px = rng.uniform(0, ny), rng.uniform(0, nx)
        angle = rng.uniform(0, np.pi)
        bend = rng.uniform(-1, 1) / max(ny, nx)
        along = (yy - py) * np.sin(angle) + (xx - px) * np.cos(angle)
        across = -(yy - py) * np.cos(angle) + (xx - px) * np.sin(angle) + bend * along**2
        w = width_px * rng.uniform(0.6, 1.4)
        mask = np.maximum(mask, 1.0 / (1.0 + np.exp((np.abs(across) - w / 2) / 0.8)))
    return mask.astype(np.float32)
