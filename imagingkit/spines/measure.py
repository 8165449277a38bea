"""Per-spine measurements, and re-measuring an edited spine table without re-detecting.

Definitions (all from the original image, not the smoothed one, unless said):

- ``distance_um``: distance from the head centre to the nearest point of the shaft
  *centreline* (3D distance for stacks); ``arc_um``/``dendrite_id`` are that point's.
- ``side``: +1 / -1 for the sign of the cross product (x, y order) of the dendrite's
  direction of increasing arc and the offset to the spine; 0 when the spine lies over
  or under the shaft (lateral offset below the shaft radius, 3D).
- ``intensity_ratio``: the standard spine-volume proxy (spine brightness normalised to
  the dendrite's, as in Holtmaat et al. 2005/2009): the integrated intensity of the head
  above the shaft model (shaft blur and background removed) within a disk of radius
  ``head_disk_um`` (axial half-extent ``head_depth_um`` in 3D), divided by the integrated
  shaft intensity above background within the same disk centred on the nearest
  centreline point. 1.0 means the head holds as much fluorophore as that piece of shaft.
- ``peak_ratio``: (smoothed head peak - background) / (smoothed shaft centre -
  background): a brightness ratio that, unlike ``intensity_ratio``, ignores head size.
- ``head_radius_um``: from the full width at half maximum of the smoothed residual
  across the head (along the dendrite, so the neck does not widen it), with the
  matched-filter and PSF blur removed (a slice through a projected ball of radius R has
  sigma R / 2); an estimate, coarse below the resolution.
- ``neck_length_um``: ``distance_um - shaft_radius_um - head_radius_um``, floored at 0,
  with the shaft radius the apparent half width at half maximum of the dendrite.
- ``snr``: the largest residual score within ``peak_search_um``; ``confidence`` maps it
  to 0..1 as ``1 - 2 ** (-snr / threshold)`` (0.5 at the local detection threshold, see
  :meth:`DetectParams.local_threshold`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from imagingkit.io.recording import Recording
from imagingkit.spines.dendrite import DendriteTrace, trace_dendrites
from imagingkit.spines.image import PreparedImage, prepare_image
from imagingkit.spines.model import ShaftModel, build_shaft_model
from imagingkit.spines.params import SpineParams
from imagingkit.spines.table import (
    SPINE_COLUMNS,
    SpineResult,
    dendrite_table,
    empty_dendrite_table,
    empty_spine_table,
    validate_spine_positions,
)


class NoSpinesWarning(UserWarning):
    """The image yielded no dendrite or no spine."""


def _region_offsets(image: PreparedImage, radius_um: float, depth_um: float) -> np.ndarray:
    """Integer offsets (n, ndim) of a disk (2D) or a cylinder-like ellipsoid (3D)."""
    py, px = image.pixel_size_um
    ry, rx = int(np.ceil(radius_um / py)), int(np.ceil(radius_um / px))
    oy, ox = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disk = (oy * py) ** 2 + (ox * px) ** 2 <= radius_um**2
    offsets = np.column_stack([oy[disk], ox[disk]])
    if not image.is_3d:
        return offsets
    rz = int(np.floor(depth_um / image.spacing_um[0]))
    return np.vstack([np.column_stack([np.full(len(offsets), dz), offsets]) for dz in range(-rz, rz + 1)])


def _sum_at(values: np.ndarray, centre: np.ndarray, offsets: np.ndarray, minus: float) -> float:
    """Sum of ``values - minus`` over ``centre + offsets`` inside the image, NaN counted as 0."""
    idx = np.round(centre).astype(int) + offsets
    inside = np.all((idx >= 0) & (idx < np.asarray(values.shape)), axis=1)
    taken = values[tuple(idx[inside].T)] - minus
    return float(np.nansum(taken))


def _head_radius_um(
    residual2d: np.ndarray,
    centre_yx: np.ndarray,
    across_yx: np.ndarray,
    image: PreparedImage,
    params: SpineParams,
) -> float:
    """Head radius from the width of the smoothed residual across the spine (see module docstring).

    The profile runs through the head's peak along ``across_yx`` (the dendrite's direction,
    perpendicular to the neck), so neck and shaft do not widen it. Its full width at half
    maximum gives an apparent sigma; the matched-filter and PSF sigmas are removed and a
    central slice through a projected ball of radius R has sigma R / 2.
    """
    py, px = image.pixel_size_um
    step_um = 0.05
    norm = np.hypot(across_yx[0] * py, across_yx[1] * px)
    if norm == 0:
        return np.nan
    direction = np.asarray(across_yx, float) / norm  # pixels per micrometre along the line
    reach = int(np.ceil(1.6 / min(py, px))) + 2
    y0, x0 = (max(int(round(c)) - reach, 0) for c in centre_yx)
    plane = np.nan_to_num(residual2d[y0 : y0 + 2 * reach + 1, x0 : x0 + 2 * reach + 1], nan=0.0)
    centre_yx = np.asarray(centre_yx, float) - (y0, x0)
    search = params.measure.peak_search_um
    offsets = np.arange(-search, search + step_um / 2, step_um)
    grid = np.array([[dy, dx] for dy in offsets for dx in offsets]) / np.array([py, px])
    values = ndi.map_coordinates(plane, (centre_yx + grid).T, order=1, mode="nearest")
    peak_yx = centre_yx + grid[int(np.argmax(values))]
    peak = float(values.max())
    if peak <= 0:
        return np.nan
    t = np.arange(-1.2, 1.2 + step_um / 2, step_um)
    line = ndi.map_coordinates(plane, (peak_yx[None, :] + t[:, None] * direction).T, order=1, mode="nearest")
    centre = len(t) // 2
    above = line >= 0.5 * peak
    left = centre
    while left > 0 and above[left - 1]:
        left -= 1
    right = centre
    while right < len(t) - 1 and above[right + 1]:
        right += 1
    fwhm_um = (right - left + 1) * step_um
    sigma2 = (fwhm_um / 2.355) ** 2 - params.model.smooth_sigma_um**2 - params.measure.psf_sigma_um**2
    return float(2.0 * np.sqrt(max(sigma2, 0.0)))


def measure_positions(
    image: PreparedImage,
    trace: DendriteTrace,
    model: ShaftModel,
    positions: pd.DataFrame,
    params: SpineParams = SpineParams(),
) -> pd.DataFrame:
    """Measure spines at given positions (``spine_id, y, x, z``) on a traced, modelled image.

    Returns
    -------
    DataFrame
        Columns :data:`SPINE_COLUMNS`, one row per position, same order.
    """
    if len(positions) == 0 or trace.n_dendrites == 0:
        return empty_spine_table()
    cl = trace.centreline
    spacing = np.asarray(image.spacing_um, float)
    spacing2d = spacing[-2:]
    pts_yx = cl[["y", "x"]].to_numpy()
    zc = cl["z"].to_numpy()
    dend_of = cl["dendrite_id"].to_numpy().astype(int)
    yx = positions[["y", "x"]].to_numpy(float)
    lateral, idx = cKDTree(pts_yx * spacing2d).query(yx * spacing2d)
    if image.is_3d:
        z = positions["z"].to_numpy(float)
        axial = (z - zc[idx]) * spacing[0]
        centres = np.column_stack([z, yx])
        centre_line = np.column_stack([zc[idx], pts_yx[idx]])
    else:
        z = np.full(len(yx), np.nan)
        axial = np.zeros(len(yx))
        centres, centre_line = yx, pts_yx[idx]
    distance = np.hypot(lateral, axial)
    # direction of increasing arc at the nearest point, within the same dendrite
    prev_i = np.where((idx > 0) & (dend_of[np.maximum(idx - 1, 0)] == dend_of[idx]), idx - 1, idx)
    next_i = np.where(
        (idx < len(cl) - 1) & (dend_of[np.minimum(idx + 1, len(cl) - 1)] == dend_of[idx]), idx + 1, idx
    )
    tangent = (pts_yx[next_i] - pts_yx[prev_i]) * spacing2d
    offset = (yx - pts_yx[idx]) * spacing2d
    cross = tangent[:, 1] * offset[:, 0] - tangent[:, 0] * offset[:, 1]
    radius_by_dendrite = model.shaft_radius_um
    shaft_r = np.array([radius_by_dendrite.get(int(d), np.nan) for d in dend_of[idx]])
    side = np.where(lateral < np.nan_to_num(shaft_r, nan=0.0), 0, np.sign(cross)).astype(int)
    offsets = _region_offsets(image, params.measure.head_disk_um, params.measure.head_depth_um)
    score = model.score
    residual_s = model.smooth - model.model_smooth
    search = params.measure.peak_search_um
    py, px = image.pixel_size_um
    sy, sx = int(np.ceil(search / py)), int(np.ceil(search / px))
    ratio, peak_ratio, head_r, snr = [], [], [], []
    for k in range(len(yx)):
        bg = model.background[idx[k]]
        head_region = np.round(centres[k]).astype(int) + offsets
        inside = np.all((head_region >= 0) & (head_region < np.asarray(image.data.shape)), axis=1)
        hr = head_region[inside]
        model_vals = model.model_raw[tuple(hr.T)]
        model_vals = np.where(np.isnan(model_vals), bg, model_vals)
        head_sum = float(np.sum(image.data[tuple(hr.T)] - model_vals))
        shaft_sum = _sum_at(model.model_raw, centre_line[k], offsets, bg)
        ratio.append(head_sum / shaft_sum if shaft_sum > 0 else np.nan)
        c = np.clip(np.round(centres[k]).astype(int), 0, np.asarray(image.data.shape) - 1)
        sl = tuple(slice(max(v - s, 0), v + s + 1) for v, s in zip(c[-2:], (sy, sx), strict=True))
        plane = score[c[0]] if image.is_3d else score
        res_plane = residual_s[c[0]] if image.is_3d else residual_s
        local = plane[sl]
        smooth_plane = model.smooth[c[0]] if image.is_3d else model.smooth
        shaft_at = tuple(np.clip(np.round(centre_line[k]).astype(int), 0, np.asarray(image.data.shape) - 1))
        shaft_peak = float(model.model_smooth[shaft_at]) - bg
        head_peak = float(np.max(smooth_plane[sl])) - bg
        peak_ratio.append(head_peak / shaft_peak if shaft_peak > 0 else np.nan)
        snr.append(float(np.nanmax(local)) if np.isfinite(local).any() else np.nan)
        head_r.append(_head_radius_um(res_plane, yx[k], tangent[k] / spacing2d, image, params))
    head_r = np.array(head_r)
    neck = np.maximum(distance - np.nan_to_num(shaft_r, nan=0.0) - np.nan_to_num(head_r, nan=0.0), 0.0)
    snr = np.array(snr)
    # the detection threshold where each spine lies (higher on the shaft's flank; ellipsoidal in 3D)
    at = tuple(np.clip(np.round(centres).astype(int), 0, np.asarray(image.data.shape) - 1).T)
    radius0 = np.nan_to_num(shaft_r, nan=0.0)
    flank = np.where(np.isfinite(model.rho[at]), model.rho[at] * radius0, distance)
    threshold = params.detect.local_threshold(flank, radius0)
    confidence = np.clip(1.0 - np.power(2.0, -np.maximum(np.nan_to_num(snr, nan=0.0), 0.0) / threshold), 0, 1)
    out = pd.DataFrame(
        {
            "spine_id": positions["spine_id"].to_numpy().astype("int64"),
            "y": yx[:, 0],
            "x": yx[:, 1],
            "z": z,
            "y_um": yx[:, 0] * spacing2d[0],
            "x_um": yx[:, 1] * spacing2d[1],
            "z_um": z * spacing[0] if image.is_3d else np.nan,
            "dendrite_id": dend_of[idx].astype("int64"),
            "arc_um": cl["arc_um"].to_numpy()[idx],
            "distance_um": distance,
            "side": side,
            "intensity_ratio": np.array(ratio),
            "peak_ratio": np.array(peak_ratio),
            "neck_length_um": neck,
            "head_radius_um": head_r,
            "snr": snr,
            "confidence": confidence,
        }
    )
    return out[list(SPINE_COLUMNS)]


def analyse_positions(
    prepared: PreparedImage,
    trace: DendriteTrace,
    positions: pd.DataFrame,
    params: SpineParams,
    model: ShaftModel | None = None,
) -> SpineResult:
    """Model the shafts and measure the given positions; empty tables with a message when impossible."""
    if trace.n_dendrites == 0:
        message = "no dendrite found in the image (blank, noise only, or too dim): no spines"
        warnings.warn(message, NoSpinesWarning, stacklevel=3)
        return SpineResult(empty_spine_table(), empty_dendrite_table(), trace, message)
    if model is None:
        model = build_shaft_model(prepared, trace, params.model)
    dendrites = trace.dendrites.copy()
    dendrites["shaft_radius_um"] = dendrites["dendrite_id"].map(model.shaft_radius_um)
    spines = measure_positions(prepared, trace, model, positions, params)
    message = None
    if len(spines) == 0:
        message = f"{trace.n_dendrites} dendrite(s) traced but no spine found"
        warnings.warn(message, NoSpinesWarning, stacklevel=3)
    return SpineResult(spines, dendrite_table(dendrites, spines), trace, message)


def measure_spines(
    image: np.ndarray | Recording,
    spines_table: pd.DataFrame,
    pixel_size_um: float | tuple[float, float] | None = None,
    z_step_um: float | None = None,
    dendrites: DendriteTrace | SpineResult | None = None,
    params: SpineParams = SpineParams(),
) -> SpineResult:
    """Re-measure an edited spine table (rows added, removed or moved) without re-detecting.

    Parameters
    ----------
    image : ndarray or Recording
        The image the table belongs to (see :func:`prepare_image`).
    spines_table : DataFrame
        Needs ``y, x`` (and ``z`` for stacks) in pixels; ``spine_id`` is kept,
        rows without one get new ids. All other columns are recomputed.
    pixel_size_um, z_step_um : float, optional
        As for :func:`detect_spines`.
    dendrites : DendriteTrace or SpineResult, optional
        The trace from detection (``result.trace``); traced again when omitted.
    params : SpineParams

    Returns
    -------
    SpineResult
    """
    prepared = prepare_image(image, pixel_size_um, z_step_um)
    positions = validate_spine_positions(spines_table, prepared.data.ndim, prepared.data.shape)
    trace = dendrites.trace if isinstance(dendrites, SpineResult) else dendrites
    if trace is None:
        trace = trace_dendrites(prepared, params.trace)
    return analyse_positions(prepared, trace, positions, params)


def add_spine(table: pd.DataFrame, y: float, x: float, z: float = np.nan) -> pd.DataFrame:
    """Return a copy of ``table`` with a spine added at (y, x[, z]) (re-measure afterwards)."""
    new_id = int(table["spine_id"].max()) + 1 if len(table) else 0
    row = pd.DataFrame({"spine_id": [new_id], "y": [float(y)], "x": [float(x)], "z": [float(z)]})
    return pd.concat([table, row], ignore_index=True) if len(table) else row


def remove_spine(table: pd.DataFrame, spine_id: int) -> pd.DataFrame:
    """Return a copy of ``table`` without the spine ``spine_id``."""
    return table[table["spine_id"] != spine_id].reset_index(drop=True)


def move_spine(
    table: pd.DataFrame, spine_id: int, y: float, x: float, z: float | None = None
) -> pd.DataFrame:
    """Return a copy of ``table`` with spine ``spine_id`` moved to (y, x[, z])."""
    out = table.copy()
    sel = out["spine_id"] == spine_id
    out.loc[sel, "y"] = float(y)
    out.loc[sel, "x"] = float(x)
    if z is not None:
        out.loc[sel, "z"] = float(z)
    return out
