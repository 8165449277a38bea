"""Spine detection: peaks of the residual over the shaft model, near the traced dendrites.

A spine candidate is a local maximum of the matched-filtered image minus the shaft
model (see :mod:`imagingkit.spines.model`), in units of robust noise sigma, that lies
outside the shaft core and within ``max_distance_um`` of a centreline, on either side;
in a z-stack the search is 3D, so spines pointing up or down in z — which overlap the
shaft in a projection — are found above or below the shaft's centre plane. On a
stack's flank the threshold depends on the peak's axial asymmetry (see
:func:`axial_asymmetry`): low for light on one side of the shaft's centre plane (a spine
pointing up or down), high for light symmetric in depth (the shaft's own bulges).

The ``sensitivity`` parameter scales the thresholds (``threshold_sigma / sensitivity``, and
the higher ``edge_threshold_sigma / sensitivity`` on the shaft's flank):
raise it to find dim, sub-resolution spines (recall) at the price of more noise peaks
(precision); lower it for the opposite.

A spine head is a compact blob: peaks whose residual is elongated in the lateral plane
(curvature ratio below ``min_isotropy``, see :func:`lateral_isotropy`) are ridges along a
shaft — its flank where the centreline is a little off, or a second dendrite crossing
above or below in a stack — and are dropped.

In a stack two heads 1-2 um apart, mostly one above the other, blend into one peak (the
axial PSF is 3-4 times longer than the lateral one). The heads accepted in the first search
are therefore subtracted from the residual as Gaussians of the typical head's width and the
remainder is searched again (deblending, as CLEAN or DAOPHOT do for blended stars); a new
peak must keep most of its own score, else it is the shoulder or neck of a subtracted head.

Positions are sub-voxel: a parabola of the log through the peak and its two neighbours
per axis. In stacks the depth is then taken from a least-squares fit of a Gaussian of the
typical head's width to a few planes around the peak, blended neighbours fitted
together (see :func:`fit_head_depths`): planes are 5 times coarser than pixels, and three
planes through a noisy, blended peak placed some heads more than half a plane off.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage import morphology

from imagingkit.io.recording import Recording
from imagingkit.spines.dendrite import DendriteTrace, trace_dendrites
from imagingkit.spines.image import PreparedImage, prepare_image
from imagingkit.spines.measure import analyse_positions
from imagingkit.spines.model import ShaftModel, build_shaft_model
from imagingkit.spines.params import SpineParams
from imagingkit.spines.table import SpineResult


def _enforce_separation(peaks: np.ndarray, score: np.ndarray, image: PreparedImage, separation_um: float):
    """Keep the stronger of peaks closer than ``separation_um`` (scaled distance), greedily."""
    if len(peaks) < 2:
        return peaks
    order = np.argsort(-score[tuple(peaks.T)])
    peaks = peaks[order]
    coords = peaks * np.asarray(image.spacing_um)
    tree = cKDTree(coords)
    keep = np.ones(len(peaks), bool)
    for i in range(len(peaks)):
        if keep[i]:
            for j in tree.query_ball_point(coords[i], separation_um):
                if j > i:
                    keep[j] = False
    return peaks[keep]


def _refine(peaks: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Sub-voxel peak positions: a Gaussian (parabola of the log) through the peak and its two
    neighbours, per axis; a plain parabola where a value is not positive."""
    refined = peaks.astype(float)
    for axis in range(score.ndim):
        lo = peaks.copy()
        hi = peaks.copy()
        lo[:, axis] = np.maximum(peaks[:, axis] - 1, 0)
        hi[:, axis] = np.minimum(peaks[:, axis] + 1, score.shape[axis] - 1)
        f0, fl, fh = score[tuple(peaks.T)], score[tuple(lo.T)], score[tuple(hi.T)]
        positive = (f0 > 0) & (fl > 0) & (fh > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            f0, fl, fh = (np.where(positive, np.log(np.where(positive, v, 1.0)), v) for v in (f0, fl, fh))
        denom = fl - 2 * f0 + fh
        ok = (denom < 0) & (lo[:, axis] < peaks[:, axis]) & (hi[:, axis] > peaks[:, axis])
        shift = np.zeros(len(peaks))
        shift[ok] = 0.5 * (fl[ok] - fh[ok]) / denom[ok]
        refined[:, axis] += np.clip(shift, -0.5, 0.5)
    return refined


def _local_threshold(peaks: np.ndarray, trace: DendriteTrace, model: ShaftModel, params: SpineParams):
    """Detection threshold at each peak (higher on the shaft's flank), see :class:`DetectParams`."""
    at = tuple(peaks.T)
    dendrite = trace.centreline["dendrite_id"].to_numpy()[model.nearest[at]]
    radius = np.array([model.shaft_radius_um.get(int(d), 0.0) for d in dendrite])
    # on the flank: within edge_um of the core, scaled like the core (ellipsoidal in 3D)
    return params.detect.local_threshold(model.rho[at] * radius, radius)


def axial_asymmetry(
    peaks: np.ndarray,
    image: PreparedImage,
    trace: DendriteTrace,
    model: ShaftModel,
    score: np.ndarray | None = None,
) -> np.ndarray:
    """Score at each stack peak minus the score at its mirror depth (noise sigmas; 0 in 2D).

    The mirror voxel has the peak's y, x and its depth reflected about the depth of the
    nearest centreline point. A spine pointing up or down adds light on one side of the
    shaft's centre plane only (large asymmetry); a bulge of the shaft, or a model error
    on its flank, is symmetric in depth (near 0), and so is any peak in the centre plane.
    """
    if not image.is_3d or len(peaks) == 0:
        return np.zeros(len(peaks))
    at = tuple(peaks.T)
    score = np.nan_to_num(model.score if score is None else score, nan=0.0)
    zc = trace.centreline["z"].to_numpy()[model.nearest[at]]
    mirror_z = np.clip(np.round(2 * zc - peaks[:, 0]).astype(int), 0, score.shape[0] - 1)
    return score[at] - score[mirror_z, peaks[:, 1], peaks[:, 2]]


def _stack_flank_threshold(
    peaks: np.ndarray,
    image: PreparedImage,
    trace: DendriteTrace,
    model: ShaftModel,
    params: SpineParams,
    score: np.ndarray | None = None,
) -> np.ndarray:
    """In stacks, the flank threshold by axial asymmetry (see :class:`DetectParams`); NaN off the flank."""
    at = tuple(peaks.T)
    dendrite = trace.centreline["dendrite_id"].to_numpy()[model.nearest[at]]
    radius = np.array([model.shaft_radius_um.get(int(d), 0.0) for d in dendrite])
    on_flank = params.detect.on_flank(model.rho[at] * radius, radius)
    one_sided = axial_asymmetry(peaks, image, trace, model, score) >= params.detect.axial_asymmetry_sigma
    detect = params.detect
    sigma = np.where(one_sided, detect.one_sided_edge_threshold_sigma, detect.symmetric_edge_threshold_sigma)
    return np.where(on_flank, sigma / detect.sensitivity, np.nan)


def _clear_of_other_dendrites(
    peaks: np.ndarray, image: PreparedImage, trace: DendriteTrace, model: ShaftModel, clearance_um: float
) -> np.ndarray:
    """Mask of peaks farther than ``clearance_um`` from every other dendrite's shaft edge.

    Where dendrites cross or touch, one shaft's light lies in the other's residual (its
    model follows one shaft only), so peaks next to another dendrite are not trusted.
    """
    cl = trace.centreline
    if trace.n_dendrites < 2 or clearance_um <= 0:
        return np.ones(len(peaks), bool)
    spacing = np.asarray(image.spacing_um, float)
    dend = cl["dendrite_id"].to_numpy()
    own = dend[model.nearest[tuple(peaks.T)]]
    cols = ["z", "y", "x"] if image.is_3d else ["y", "x"]
    pts = cl[cols].to_numpy() * spacing
    radius = np.array([model.shaft_radius_um.get(int(d), 0.0) for d in dend])
    keep = np.ones(len(peaks), bool)
    coords = peaks * spacing
    for d in np.unique(dend):
        sel = dend == d
        dist, idx = cKDTree(pts[sel]).query(coords)
        near = dist < radius[sel][idx] + clearance_um
        keep &= ~(near & (own != d))
    return keep


def lateral_isotropy(
    residual: np.ndarray, peaks: np.ndarray, image: PreparedImage, sigma_um: float, sigma_z_um: float
) -> np.ndarray:
    """Ratio of the weaker to the stronger lateral curvature of the residual at each peak (0..1).

    The residual is Gaussian-smoothed (``sigma_um`` laterally, ``sigma_z_um`` but at
    least half a plane axially) in a small box around each peak, and the eigenvalues of
    its lateral (y, x) Hessian are taken at the peak: a spine head is a compact blob
    (ratio near 1), a ridge along a shaft's flank or a second shaft is elongated (ratio
    near 0). A peak that is not a maximum along both axes gets ratio 0.
    """
    if len(peaks) == 0:
        return np.zeros(0)
    sigma = [sigma_um / s for s in image.pixel_size_um]
    if image.is_3d:
        sigma = [max(0.5, sigma_z_um / image.spacing_um[0])] + sigma
    half = [int(np.ceil(4 * s)) + 2 for s in sigma]
    shape = np.asarray(residual.shape)
    ratio = np.zeros(len(peaks))
    for i, peak in enumerate(peaks):
        lo = np.maximum(peak - half, 0)
        hi = np.minimum(peak + np.asarray(half) + 1, shape)
        crop = ndi.gaussian_filter(residual[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], sigma)
        centre = tuple(peak - lo)
        gy = np.gradient(crop, axis=-2)
        gx = np.gradient(crop, axis=-1)
        hyy = np.gradient(gy, axis=-2)[centre]
        hxx = np.gradient(gx, axis=-1)[centre]
        hxy = np.gradient(gy, axis=-1)[centre]
        spread = np.sqrt(0.25 * (hyy - hxx) ** 2 + hxy**2)
        strong, weak = 0.5 * (hyy + hxx) - spread, 0.5 * (hyy + hxx) + spread
        ratio[i] = weak / strong if strong < 0 and weak < 0 else 0.0
    return ratio


def _search_region(model: ShaftModel, params: SpineParams) -> np.ndarray:
    """Voxels where spines are looked for: in the band, outside the core, not on the outermost rows."""
    region = (
        (model.nearest >= 0)
        & ~model.core
        & (model.distance_um <= params.model.max_distance_um)
        & np.isfinite(model.score)
    )
    # a maximum on the outermost row or column is not verified (its far side is not imaged):
    # there it is mostly a shaft leaving the field of view
    region[..., [0, -1], :] = False
    region[..., :, [0, -1]] = False
    return region


def _accepted_peaks(
    score: np.ndarray,
    residual: np.ndarray,
    region: np.ndarray,
    image: PreparedImage,
    trace: DendriteTrace,
    model: ShaftModel,
    params: SpineParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of ``score`` in ``region`` that pass every test: ``(peaks, masked score)``.

    ``residual`` (intensity units) is used for the shape test, ``score`` (noise sigmas) for
    the prominence, thresholds and axial asymmetry.
    """
    masked = np.where(region, np.clip(np.nan_to_num(score, nan=-5.0), -5.0, None), -5.0).astype(np.float32)
    # a spine is a maximum standing ``prominence_sigma`` above its surroundings (its saddle):
    # plateaus along a neck or a shaft edge are not separate spines
    box = ndi.find_objects(region.astype(np.int8))
    crop = box[0] if box and box[0] is not None else tuple(slice(0, 0) for _ in masked.shape)
    maxima = np.zeros(masked.shape, bool)
    if masked[crop].size:
        maxima[crop] = morphology.h_maxima(masked[crop], params.detect.prominence_sigma).astype(bool)
    labels, n = ndi.label(maxima)
    if not n:
        return np.zeros((0, image.data.ndim), int), masked
    index = np.arange(1, n + 1)
    peaks = np.array(ndi.maximum_position(masked, labels, index), dtype=int).reshape(n, -1)
    threshold = _local_threshold(peaks, trace, model, params)
    if image.is_3d:
        # on a stack's flank, the threshold depends on whether the light is one-sided in depth
        flank = _stack_flank_threshold(peaks, image, trace, model, params, score)
        threshold = np.where(np.isnan(flank), threshold, flank)
    peaks = peaks[masked[tuple(peaks.T)] >= threshold]
    peaks = _enforce_separation(peaks, masked, image, params.detect.min_separation_um)
    if len(peaks):
        # peaks whose nearest centreline point is a dendrite end (a traced end, a shaft leaving
        # the field, fading in depth) are least certain there: kept only when well above threshold
        nearest = model.nearest[tuple(peaks.T)]
        points = trace.centreline["point"].to_numpy()
        last = trace.centreline.groupby("dendrite_id")["point"].transform("max").to_numpy()
        inner = (points[nearest] > 0) & (points[nearest] < last[nearest])
        factor = params.detect.end_threshold_factor
        strong = masked[tuple(peaks.T)] >= factor * _local_threshold(peaks, trace, model, params)
        peaks = peaks[inner | strong]
    if len(peaks):
        peaks = peaks[
            _clear_of_other_dendrites(peaks, image, trace, model, params.detect.crossing_clearance_um)
        ]
    if len(peaks):
        # elongated residual peaks are ridges along a shaft (its flank, a second shaft), not heads
        isotropy = lateral_isotropy(
            residual, peaks, image, params.model.smooth_sigma_um, params.model.smooth_sigma_z_um
        )
        peaks = peaks[isotropy >= params.detect.min_isotropy]
    return peaks, masked


def head_width_px(residual: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Gaussian sigma (pixels, per axis) of the typical head in ``residual``: the median over ``peaks``.

    Per peak and axis, from the values one and two voxels to either side:
    ``log f(-1) + log f(+1) - log f(-2) - log f(+2) = 3 / sigma^2`` for a Gaussian, whatever
    its sub-voxel centre. The peak voxel itself is not used: it was selected as a maximum,
    so its noise is biased upwards and a width through it comes out too narrow at low SNR.
    Peaks where a value is not positive are left out. The median, not each peak's own
    width: a blend of two heads stacked in depth widens its own estimate.
    """
    values = []
    for axis in range(residual.ndim):
        per_offset = []
        for offset in (-2, -1, 1, 2):
            at = peaks.copy()
            at[:, axis] += offset
            inside = (at[:, axis] >= 0) & (at[:, axis] < residual.shape[axis])
            v = np.full(len(peaks), np.nan)
            v[inside] = residual[tuple(at[inside].T)]
            per_offset.append(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            fm2, fm1, fp1, fp2 = (np.log(np.where(v > 0, v, np.nan)) for v in per_offset)
            values.append(np.sqrt(3.0 / (fm1 + fp1 - fm2 - fp2)))
    widths = np.column_stack(values) if len(peaks) else np.zeros((0, residual.ndim))
    widths = np.where(np.isfinite(widths), widths, np.nan)
    if not np.isfinite(widths).any(axis=0).all():
        return np.full(residual.ndim, np.nan)
    return np.nanmedian(widths, axis=0)


def _gaussian(grids: list[np.ndarray], centre: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Unit-height Gaussian (``sigma_px`` per axis) at ``centre`` on coordinate ``grids``."""
    return np.exp(-0.5 * sum(((g - c) / w) ** 2 for g, c, w in zip(grids, centre, sigma_px, strict=True)))


def _head_height(residual: np.ndarray, pos: np.ndarray, sigma_px: np.ndarray) -> tuple[float, np.ndarray]:
    """Height of a Gaussian head at ``pos`` matching ``residual`` at its nearest voxel, and that voxel."""
    voxel = np.clip(np.round(pos).astype(int), 0, np.asarray(residual.shape) - 1)
    return residual[tuple(voxel)] / _gaussian(list(voxel), pos, sigma_px), voxel


def subtract_heads(residual: np.ndarray, positions: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """``residual`` minus a Gaussian head (``sigma_px`` per axis) at each sub-voxel position.

    Each head's amplitude is the residual at its nearest voxel divided by the Gaussian's
    value there, so a head's own light is removed and a neighbour blended into it remains.
    """
    out = residual.copy()
    shape = np.asarray(residual.shape)
    half = np.ceil(3 * np.asarray(sigma_px)).astype(int)
    for pos in positions:
        height, centre = _head_height(residual, pos, sigma_px)
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, shape)
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        out[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] -= height * _gaussian(
            grids, pos, sigma_px
        )
    return out


def _neighbour_heads(
    residual: np.ndarray, positions: np.ndarray, sigma_px: np.ndarray, grids: list[np.ndarray]
) -> np.ndarray:
    """Sum of the Gaussian heads at ``positions`` on ``grids``, each as high as ``residual`` at its voxel."""
    total = np.zeros(grids[0].shape)
    for pos in positions:
        total += _head_height(residual, pos, sigma_px)[0] * _gaussian(grids, pos, sigma_px)
    return total


def _overlapping_groups(peaks: np.ndarray, half_px: np.ndarray) -> list[np.ndarray]:
    """Indices of peaks whose fitting boxes (``half_px`` each way) overlap, linked transitively."""
    tree = cKDTree(peaks / (2 * half_px))
    pairs = tree.query_pairs(1.0, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(peaks),) * 2)
    _, labels = connected_components(graph, directed=False)
    return [np.flatnonzero(labels == g) for g in np.unique(labels)]


def fit_head_depths(
    residual: np.ndarray,
    peaks: np.ndarray,
    positions: np.ndarray,
    sigma_px: np.ndarray,
    half_px: tuple[int, int, int] = (2, 3, 3),
    max_shift_px: float = 1.5,
) -> np.ndarray:
    """``positions`` with the depth of each head from a least-squares Gaussian fit (stacks only).

    In a box of ``half_px`` voxels each way around each peak, Gaussians of fixed width
    ``sigma_px`` (the typical head's, :func:`head_width_px`) plus one constant are fitted
    (:func:`scipy.optimize.least_squares`; heights, centres and constant free) to the
    residual. Heads whose boxes overlap are fitted together, over the union of their boxes,
    so blended neighbours share the light between them; other heads within reach are first
    subtracted as in :func:`subtract_heads` (at their given positions). The fitted depth
    replaces the given one; y and x are kept (the three-pixel parabola is already accurate
    laterally, where pixels are 5 times finer than planes). A head whose fit fails, has a
    non-positive height or moves more than ``max_shift_px`` on any axis keeps its position.

    Parameters
    ----------
    residual : ndarray
        ``(Z, Y, X)`` smoothed image minus the shaft model.
    peaks : ndarray of int
        ``(n, 3)`` peak voxels, the centres of the fitting boxes.
    positions : ndarray
        ``(n, 3)`` sub-voxel positions (start of the fit, and the heads subtracted).
    sigma_px : ndarray
        Gaussian sigma per axis, voxels.
    half_px : tuple of int
        Half size of the fitting box per axis, voxels.
    max_shift_px : float
        Largest accepted move from the given position on any axis, voxels.

    Returns
    -------
    ndarray
        ``(n, 3)`` positions, z refitted.
    """
    positions = np.asarray(positions, float)
    out = positions.copy()
    if len(peaks) == 0:
        return out
    shape = np.asarray(residual.shape)
    half = np.asarray(half_px)
    reach = half + 3 * np.asarray(sigma_px)
    for group in _overlapping_groups(peaks, half):
        lo = np.maximum(peaks[group].min(axis=0) - half, 0)
        hi = np.minimum(peaks[group].max(axis=0) + half + 1, shape)
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        others = np.all((positions > lo - reach) & (positions < hi - 1 + reach), axis=1)
        others[group] = False
        crop = residual[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].astype(float)
        crop = crop - _neighbour_heads(residual, positions[others], sigma_px, grids)

        def misfit(p, grids=grids, crop=crop, n=len(group)):
            heads = sum(p[4 * j] * _gaussian(grids, p[4 * j + 1 : 4 * j + 4], sigma_px) for j in range(n))
            return (heads + p[-1] - crop).ravel()

        heights = np.maximum(residual[tuple(peaks[group].T)], 1e-3)
        start = np.r_[np.column_stack([heights, positions[group]]).ravel(), 0.0]
        fit = least_squares(misfit, start, x_scale="jac")
        if not fit.success:
            continue
        params = fit.x[:-1].reshape(-1, 4)
        ok = (params[:, 0] > 0) & np.all(np.abs(params[:, 1:] - positions[group]) <= max_shift_px, axis=1)
        out[group[ok], 0] = params[ok, 1]
    return out


def _deblend(
    peaks: np.ndarray,
    positions: np.ndarray,
    masked: np.ndarray,
    residual: np.ndarray,
    region: np.ndarray,
    image: PreparedImage,
    trace: DendriteTrace,
    model: ShaftModel,
    params: SpineParams,
    sigma_px: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heads blended into accepted ones: ``(peaks, positions, snr)`` of the new peaks only.

    The accepted heads are subtracted from the residual (:func:`subtract_heads`, Gaussians of
    the typical head's width ``sigma_px``, NaN when unknown) and the remainder is searched again
    with every test of the first search; the new heads are subtracted in turn, for
    ``deblend_rounds`` rounds. A new peak must keep ``deblend_min_own_fraction`` of its
    original score (else it is a shoulder or the neck of the subtracted head) and lie at
    least ``min_separation_um`` from every accepted peak. Needs three accepted peaks (for
    the head's width); with fewer, nothing is deblended.
    """
    detect = params.detect
    spacing = np.asarray(image.spacing_um)
    found = [np.zeros((0, residual.ndim), int), np.zeros((0, residual.ndim)), np.zeros(0)]
    if not np.all(np.isfinite(sigma_px)):
        return tuple(found)
    remainder, accepted, new_positions = residual, peaks, positions
    for _ in range(detect.deblend_rounds):
        remainder = subtract_heads(remainder, new_positions, sigma_px)
        extra, masked2 = _accepted_peaks(
            remainder / model.noise_sigma, remainder, region, image, trace, model, params
        )
        if len(extra):
            at = tuple(extra.T)
            dist = cKDTree(accepted * spacing).query(extra * spacing)[0]
            own = masked2[at] >= detect.deblend_min_own_fraction * masked[at]
            extra = extra[(dist >= detect.min_separation_um) & own]
        if not len(extra):
            break
        new_positions = _refine(extra, remainder)
        accepted = np.concatenate([accepted, extra])
        for i, values in enumerate((extra, new_positions, masked2[tuple(extra.T)])):
            found[i] = np.concatenate([found[i], values])
    return tuple(found)


def find_candidates(
    image: PreparedImage, trace: DendriteTrace, model: ShaftModel, params: SpineParams
) -> pd.DataFrame:
    """Residual peaks above threshold near the shafts: ``y, x, z, snr`` (pixels).

    In stacks (``deblend_rounds`` > 0) heads blended into a brighter neighbour, with no
    peak of their own, are then found by subtracting the accepted heads (:func:`_deblend`).
    """
    region = _search_region(model, params)
    residual = np.nan_to_num(model.smooth - model.model_smooth, nan=0.0)
    peaks, masked = _accepted_peaks(model.score, residual, region, image, trace, model, params)
    snr = masked[tuple(peaks.T)] if len(peaks) else np.zeros(0)
    # sub-voxel position on the unmasked residual (the mask's cliff at the core, and the noise
    # model's rise towards the bright shaft, would push a score-based one outward)
    positions = _refine(peaks, residual)
    # the typical head's width, from the first search's peaks (deblended ones may be blends)
    stack_heads = image.is_3d and len(peaks) >= 3
    sigma_px = head_width_px(residual, peaks) if stack_heads else np.full(residual.ndim, np.nan)
    if image.is_3d and params.detect.deblend_rounds > 0:
        extra, extra_positions, extra_snr = _deblend(
            peaks, positions, masked, residual, region, image, trace, model, params, sigma_px
        )
        positions = np.concatenate([positions, extra_positions])
        snr = np.concatenate([snr, extra_snr])
        peaks = np.concatenate([peaks, extra])
    if image.is_3d and params.detect.fit_head_depth and np.all(np.isfinite(sigma_px)):
        positions = fit_head_depths(residual, peaks, positions, sigma_px)
        # the fit moves heads up to 1.5 planes in depth: a peak found above or below a
        # crossing can land next to the other shaft, whose light it then is
        voxels = np.clip(np.round(positions).astype(int), 0, np.asarray(residual.shape) - 1)
        clear = _clear_of_other_dendrites(voxels, image, trace, model, params.detect.crossing_clearance_um)
        positions, snr = positions[clear], snr[clear]
    order = np.argsort(-snr)
    positions, snr = positions[order], snr[order]
    if image.is_3d:
        return pd.DataFrame(
            {"y": positions[:, 1], "x": positions[:, 2], "z": positions[:, 0], "snr": snr}, dtype=float
        )
    return pd.DataFrame({"y": positions[:, 0], "x": positions[:, 1], "z": np.nan, "snr": snr}, dtype=float)


def detect_spines(
    image: np.ndarray | Recording,
    pixel_size_um: float | tuple[float, float] | None = None,
    z_step_um: float | None = None,
    sensitivity: float | None = None,
    params: SpineParams = SpineParams(),
    channel: int = 0,
    trace: DendriteTrace | None = None,
) -> SpineResult:
    """Trace dendrites, detect their spines and measure them.

    Parameters
    ----------
    image : ndarray or Recording
        ``(Y, X)`` image, ``(Z, Y, X)`` stack, or a Recording (its mean image per plane).
    pixel_size_um : float or (float, float), optional
        Lateral pixel size; required unless the Recording carries it.
    z_step_um : float, optional
        Plane spacing; required for stacks.
    sensitivity : float, optional
        Overrides ``params.detect.sensitivity`` (default 1): higher finds dimmer
        spines with more false positives.
    params : SpineParams
    channel : int
        Channel of a Recording.
    trace : DendriteTrace, optional
        The tracing of this very image already at hand (``SpineResult.trace`` of an earlier
        run, :func:`~imagingkit.spines.dendrite.trace_dendrites`), reused instead of tracing
        again; None traces with ``params.trace``.

    Returns
    -------
    SpineResult
        ``spines`` and ``dendrites`` tables, the ``trace`` for :func:`measure_spines`
        and a ``message`` when nothing was found (a :class:`NoSpinesWarning` is also issued).
    """
    if sensitivity is not None:
        params = dataclasses.replace(
            params, detect=dataclasses.replace(params.detect, sensitivity=sensitivity)
        )
    prepared = prepare_image(image, pixel_size_um, z_step_um, channel=channel)
    trace = trace if trace is not None else trace_dendrites(prepared, params.trace)
    if trace.n_dendrites == 0:
        return analyse_positions(prepared, trace, pd.DataFrame(), params)
    model = build_shaft_model(prepared, trace, params.model)
    candidates = find_candidates(prepared, trace, model, params)
    candidates.insert(0, "spine_id", np.arange(len(candidates), dtype="int64"))
    return analyse_positions(prepared, trace, candidates, params, model=model)
