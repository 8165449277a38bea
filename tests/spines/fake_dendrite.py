"""A small stand-alone dendrite + spine renderer for tests and benchmarks.

Draws curved (optionally branching or crossing) dendritic shafts as tubes and spines as
neck cylinders with spherical heads on a fine grid, blurs with a Gaussian PSF,
bins to the pixel grid and adds Poisson noise. The truth table gives each spine's head
centre (pixels), dendrite id, arc length along the drawn centreline, and the intensity
ratio computed from noiseless head-only and shaft-only renderings with the same
definition as :mod:`imagingkit.spines.measure` (head sum / shaft sum over equal disks).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.transform import downscale_local_mean


@dataclasses.dataclass
class FakeDendrites:
    image: np.ndarray
    truth: pd.DataFrame
    centrelines: list  # per dendrite (n, 2) (y, x) pixel coordinates along the drawn curve
    pixel_size_um: float
    z_step_um: float | None


def _curves(kind: str, shape: tuple[int, int], rng) -> list[np.ndarray]:
    h, w = shape
    t = np.linspace(-0.05, 1.05, 4000)
    amp = 0.12 * h
    main = np.column_stack([0.5 * h + amp * np.sin(2 * np.pi * (0.8 * t + rng.uniform())), t * w])
    curves = [main]
    if kind == "branch":
        k = len(t) // 2
        s = np.linspace(0, 0.55, 2000)
        start = main[k]
        curves.append(np.column_stack([start[0] - s * h, start[1] + 0.35 * s * w + 0.05 * h * np.sin(6 * s)]))
    elif kind == "cross":
        curves.append(np.column_stack([t * h, 0.5 * w + 0.15 * w * np.sin(2 * np.pi * 0.6 * t)]))
    return curves


def _arc(curve_um: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve_um, axis=0), axis=1))])


def make_fake_dendrites(
    shape: tuple[int, int] = (192, 192),
    pixel_size_um: float = 0.2,
    kind: str = "curved",
    ndim: int = 2,
    n_z: int = 12,
    z_step_um: float = 1.0,
    spine_spacing_um: float = 2.0,
    head_radius_um: tuple[float, float] = (0.3, 0.5),
    neck_length_um: tuple[float, float] = (0.3, 1.2),
    shaft_radius_um: float = 0.5,
    peak_photons: float = 40.0,
    background_photons: float = 2.0,
    psf_sigma_um: float = 0.15,
    psf_sigma_z_um: float = 0.6,
    up_down_fraction: float = 0.25,
    head_disk_um: float = 0.6,
    seed: int = 0,
) -> FakeDendrites:
    """Render dendrites with spines; see the module docstring."""
    rng = np.random.default_rng(seed)
    up = 4 if ndim == 2 else 2  # supersampling of the fine grid laterally
    fine_um = pixel_size_um / up
    fine_shape = (shape[0] * up, shape[1] * up)
    zs_per_plane = 4
    n_fz = n_z * zs_per_plane if ndim == 3 else 1
    fz_um = z_step_um / zs_per_plane
    curves = _curves(kind, shape, rng)
    yy, xx = np.mgrid[0 : fine_shape[0], 0 : fine_shape[1]]
    grid_um = (np.column_stack([yy.ravel(), xx.ravel()]) + 0.5) * fine_um - 0.5 * pixel_size_um
    z_centre_um = 0.5 * (n_z - 1) * z_step_um
    fz_um_coords = (np.arange(n_fz) + 0.5) * fz_um - 0.5 * z_step_um
    shaft = np.zeros((n_fz, *fine_shape), np.float32)
    heads = []
    rows = []
    for dendrite_id, curve in enumerate(curves):
        curve_um = curve * pixel_size_um
        zc = np.full(len(curve), z_centre_um)
        if ndim == 3:
            zc = zc + 1.5 * np.sin(np.linspace(0, np.pi, len(curve)) + dendrite_id)
        dist, idx = cKDTree(curve_um).query(grid_um, distance_upper_bound=3 * shaft_radius_um)
        near = np.isfinite(dist)
        lat = np.full(grid_um.shape[0], np.inf)
        lat[near] = dist[near]
        lat = lat.reshape(fine_shape)
        if ndim == 3:
            zcen = np.zeros(grid_um.shape[0])
            zcen[near] = zc[idx[near]]
            dz = fz_um_coords[:, None, None] - zcen.reshape(fine_shape)[None]
            tube = lat[None] ** 2 + dz**2 <= shaft_radius_um**2
        else:
            tube = (lat <= shaft_radius_um)[None]
        shaft = np.maximum(shaft, tube.astype(np.float32))
        arc = _arc(curve_um)
        inside = (
            (curve[:, 0] > 8)
            & (curve[:, 0] < shape[0] - 8)
            & (curve[:, 1] > 8)
            & (curve[:, 1] < shape[1] - 8)
        )
        arc_in = arc[inside]
        if arc_in.size == 0:
            continue
        positions = np.arange(arc_in[0] + 2.0, arc_in[-1] - 2.0, spine_spacing_um)
        positions = positions + rng.uniform(-0.3, 0.3, positions.size) * spine_spacing_um
        for a in positions:
            k = int(np.clip(np.searchsorted(arc, a), 1, len(curve) - 2))
            tangent = curve_um[k + 1] - curve_um[k - 1]
            tangent /= np.linalg.norm(tangent)
            normal = np.array([-tangent[1], tangent[0]])
            side = rng.choice([-1, 1])
            ang = rng.uniform(-0.4, 0.4)
            lateral = side * (np.cos(ang) * normal + np.sin(ang) * tangent)
            direction = np.array([0.0, *lateral])
            if ndim == 3 and rng.uniform() < up_down_fraction:
                direction = np.array([rng.choice([-1.0, 1.0]), 0.0, 0.0])
            rh = rng.uniform(*head_radius_um)
            neck = rng.uniform(*neck_length_um)
            base = np.array([zc[k], *curve_um[k]])
            head = base + direction * (shaft_radius_um + neck + rh)
            heads.append((base, head, rh))
            rows.append(
                {
                    "dendrite_id": dendrite_id,
                    "arc_um": float(arc[k]),
                    "y": head[1] / pixel_size_um,
                    "x": head[2] / pixel_size_um,
                    "z": head[0] / z_step_um if ndim == 3 else np.nan,
                    "head_radius_um": rh,
                    "neck_length_um": neck,
                    "base_y": curve[k, 0],
                    "base_x": curve[k, 1],
                    "base_z": zc[k] / z_step_um if ndim == 3 else np.nan,
                    "up_down": bool(direction[0] != 0),
                }
            )
    head_img = np.zeros_like(shaft)
    for base, head, rh in heads:
        _draw_spine(head_img, base, head, rh, fine_um, fz_um, fz_um_coords, ndim, pixel_size_um)
    sig = (psf_sigma_z_um / fz_um if ndim == 3 else 0, psf_sigma_um / fine_um, psf_sigma_um / fine_um)

    def render(volume):
        blurred = ndi.gaussian_filter(volume, sig)
        factors = (zs_per_plane if ndim == 3 else 1, up, up)
        return downscale_local_mean(blurred, factors)

    shaft_lo = render(shaft)
    head_lo = render(head_img)
    scale = peak_photons / max(np.percentile(shaft_lo[shaft_lo > 0], 99.5), 1e-9)
    clean = background_photons + scale * np.maximum(shaft_lo, head_lo + shaft_lo)
    image = rng.poisson(clean).astype(np.float32)
    if ndim == 2:
        image, shaft_lo, head_lo = image[0], shaft_lo[0], head_lo[0]
    truth = pd.DataFrame(rows)
    if len(truth):
        truth["intensity_ratio"] = [
            _disk_ratio(head_lo, shaft_lo, r, pixel_size_um, z_step_um, head_disk_um)
            for _, r in truth.iterrows()
        ]
        keep = (truth.y > 2) & (truth.y < shape[0] - 3) & (truth.x > 2) & (truth.x < shape[1] - 3)
        truth = truth[keep].reset_index(drop=True)
    return FakeDendrites(image, truth, curves, pixel_size_um, z_step_um if ndim == 3 else None)


def _draw_spine(img, base, head, rh, fine_um, fz_um, fz_coords, ndim, pixel_size_um):
    """Neck cylinder (radius 0.1 um) from base to head plus a ball head, on the fine grid."""
    lo = np.minimum(base, head) - rh - 0.2
    hi = np.maximum(base, head) + rh + 0.2
    yx0 = np.maximum(((lo[1:] + 0.5 * pixel_size_um) / fine_um).astype(int), 0)
    yx1 = np.minimum(((hi[1:] + 0.5 * pixel_size_um) / fine_um).astype(int) + 1, img.shape[1:])
    if ndim == 3:
        z0 = max(int((lo[0] + 0.5 * fz_um * 4) / fz_um), 0)
        z1 = min(int((hi[0] + 0.5 * fz_um * 4) / fz_um) + 1, img.shape[0])
    else:
        z0, z1 = 0, 1
    if yx1[0] <= yx0[0] or yx1[1] <= yx0[1] or z1 <= z0:
        return
    zz, yy, xx = np.meshgrid(
        fz_coords[z0:z1] if ndim == 3 else np.array([base[0]]),
        (np.arange(yx0[0], yx1[0]) + 0.5) * fine_um - 0.5 * pixel_size_um,
        (np.arange(yx0[1], yx1[1]) + 0.5) * fine_um - 0.5 * pixel_size_um,
        indexing="ij",
    )
    pts = np.stack([zz, yy, xx], -1)
    ball = np.linalg.norm(pts - head, axis=-1) <= rh
    seg = head - base
    t = np.clip(((pts - base) @ seg) / max(seg @ seg, 1e-12), 0, 1)
    neck = np.linalg.norm(pts - (base + t[..., None] * seg), axis=-1) <= 0.1
    region = img[z0:z1, yx0[0] : yx1[0], yx0[1] : yx1[1]]
    np.maximum(region, (ball | neck).astype(np.float32), out=region)
    # heads only (necks are faint) enter the intensity truth through the same array


def _disk_ratio(head_lo, shaft_lo, row, pixel_size_um, z_step_um, head_disk_um):
    """Head sum / shaft sum over equal disks (balls in 3D), noiseless."""
    r_px = head_disk_um / pixel_size_um
    if head_lo.ndim == 2:
        yy, xx = np.ogrid[: head_lo.shape[0], : head_lo.shape[1]]
        head_mask = (yy - row.y) ** 2 + (xx - row.x) ** 2 <= r_px**2
        shaft_mask = (yy - row.base_y) ** 2 + (xx - row.base_x) ** 2 <= r_px**2
    else:
        zz, yy, xx = np.ogrid[: head_lo.shape[0], : head_lo.shape[1], : head_lo.shape[2]]
        depth = max(1.5, head_disk_um) / z_step_um
        head_mask = ((yy - row.y) ** 2 + (xx - row.x) ** 2 <= r_px**2) & (np.abs(zz - row.z) <= depth)
        shaft_mask = ((yy - row.base_y) ** 2 + (xx - row.base_x) ** 2 <= r_px**2) & (
            np.abs(zz - row.base_z) <= depth
        )
    return float(head_lo[head_mask].sum() / max(shaft_lo[shaft_mask].sum(), 1e-12))


def dendrite_end_image(seed: int = 0, end_head: bool = True) -> np.ndarray:
    """A straight shaft along row 40 ending at x = 120 (0.2 um pixels), heads at (33, 40) and (47, 80)
    beside it and, with ``end_head``, one at (33, 126): 1.4 um beside and 1.2 um beyond its end."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:80, :200].astype(float)
    image = 5 + 60 * np.exp(-((yy - 40) ** 2) / (2 * 2.0**2)) / (1 + np.exp(xx - 120))
    for y, x in [(33, 40), (47, 80)] + ([(33, 126)] if end_head else []):
        image += 40 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.3**2))
    return rng.poisson(image).astype(np.float32)
