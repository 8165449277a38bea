"""Shaft model: the expected image of the traced shafts, so spines stand out in the residual.

Every pixel (voxel) within ``max_distance_um + background_margin_um`` of a traced
centreline is assigned to its laterally nearest centreline point; in a stack, where the
dendrite nearest in 3D lies at a clearly different depth (``assign_min_depth_gap_um``),
to that dendrite's laterally nearest point instead, so where dendrites at different
depths cross in the projection each shaft's voxels follow its own profile. The model
value of a pixel is the median over the pixels that share its dendrite, arc-length bin
and distance bin (lateral distance, and in 3D also the signed axial offset from the
shaft centre), so it follows the shaft's brightness along the dendrite and its blurred cross-section;
spines, being sparse, hardly move the median; where they crowd, the profile is held
non-increasing outward from the shaft on each side (a blurred shaft falls off
monotonically), so a ring of heads cannot lift the model and hide itself. In stacks
the axial offset is binned in half planes (the shaft's axial flank is steep and the
centreline's z is sub-plane). The pixel noise is modelled as
``sigma^2 = a + b * model`` (shot noise grows with brightness), fitted on the
groups' robust residual spreads (so it also absorbs model error at steep shaft edges);
the residual divided by it is a score in robust noise sigmas.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from imagingkit.errors import ParameterError
from imagingkit.spines.dendrite import DendriteTrace
from imagingkit.spines.image import PreparedImage


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """Parameters of the shaft model.

    Attributes
    ----------
    max_distance_um : float
        Spines are looked for up to this distance from the shaft centreline.
    background_margin_um : float
        Extra band beyond ``max_distance_um`` used to measure the local background.
    arc_bin_um : float
        Length of dendrite over which the shaft profile is taken as constant.
    smooth_sigma_um : float
        Lateral Gaussian (matched filter) applied before scoring. 0.15 um (less than a
        small head's apparent size) keeps heads about 0.6 um apart separate; on the
        benchmark's tuning images it found more crowded spines than 0.2 um in 2D and 3D.
    smooth_sigma_z_um : float
        Axial Gaussian of the matched filter in z-stacks (at least half a plane): about
        the axial PSF's sigma (a two-photon axial FWHM of 1.5-2 um is a sigma of 0.6-0.8 um).
    axial_bin_planes : float
        Width of the axial-offset bins of the shaft profile in stacks, in planes (half
        planes: finer bins hold too few voxels for a robust median, whole planes mix
        voxels 0.5 and 1.5 um from the centre).
    outlier_sigma : float
        Pixels scoring above this in a first pass (spines) are left out of the medians
        of the second pass.
    assign_axial_weight : float
        In stacks, the dendrite nearest a voxel in 3D is found with axial offsets
        (micrometres) multiplied by this weight (dimensionless): a shaft's light spreads
        about two to three times further axially than laterally, so with 0.5 a voxel 1 um
        above one centreline counts as 0.5 um from it. See ``assign_min_depth_gap_um``.
    assign_min_depth_gap_um : float
        A stack voxel is modelled by the laterally nearest dendrite (as in 2D) unless the
        dendrite nearest in 3D is at least this much deeper or shallower there (the axial
        PSF's FWHM, 1.5-2 um): then by that one. So where shafts at different depths cross
        in the projection each keeps its own voxels (else one shaft's light is a residual
        of the other's profile), while branch points and neighbours at one depth keep the
        lateral assignment (assigning by 3D distance there lost spines next to branch
        points on the benchmark's stacks). ``inf`` disables it (the earlier behaviour). On
        the benchmark's stacks (noise 1; such crossings are rare there) 1.5 vs ``inf``,
        visible spines found / false positives: tuning seeds 10-29 +3/+4, validation
        seeds 30-49 +6/+0, seeds 50-69 -2/+5: no measurable change in F1.
    end_margin_um : float
        A pixel nearest to a traced dendrite end and ahead of it (within 75 degrees of the
        dendrite's direction there) is not modelled when it lies more than this beyond the
        end along that direction: the shaft may go on untraced there, and its light would
        score as a spine. Nearer the end, the end's profile models it, so a spine beside a
        dendrite's last micrometres (or near the image border, where the tracing stops short)
        can be scored. 0 (the detector's default): every pixel ahead is left out. For
        detection a margin did not pay: at 2.0 against 0 on the spine benchmark (noise 1)
        visible spines found / false positives were tuning seeds 10-29 +3/+1, validation
        seeds 30-49 +8/+0, but on the 20 evaluation images +5/+9 (visible F1 0.945 ->
        0.943), and in stacks (seeds 10-19) +0/+2. The tracker's image check, which only
        looks where a spine was detected in another session, uses 2.0
        (:class:`imagingkit.tracking.recheck.RecheckParams`).
    """

    max_distance_um: float = 3.5
    background_margin_um: float = 1.5
    arc_bin_um: float = 3.0
    smooth_sigma_um: float = 0.15
    smooth_sigma_z_um: float = 0.5
    axial_bin_planes: float = 0.5
    outlier_sigma: float = 2.5
    assign_axial_weight: float = 0.5
    assign_min_depth_gap_um: float = 1.5
    end_margin_um: float = 0.0

    def __post_init__(self):
        if not self.assign_axial_weight >= 0 or not self.assign_min_depth_gap_um >= 0:
            raise ParameterError(
                f"assign_axial_weight and assign_min_depth_gap_um must be >= 0, got "
                f"{self.assign_axial_weight} and {self.assign_min_depth_gap_um}"
            )
        if not self.end_margin_um >= 0:
            raise ParameterError(f"end_margin_um must be >= 0 um, got {self.end_margin_um}")


@dataclasses.dataclass(frozen=True)
class ShaftModel:
    """Images describing the shaft around the traced centrelines.

    All images have the shape of the analysed image; outside the band they are NaN
    (float) or -1 (``nearest``).

    Attributes
    ----------
    smooth : ndarray
        The matched-filtered image.
    nearest : ndarray of int
        Row of the trace's centreline nearest to each pixel (laterally), -1 outside the band.
    distance_um : ndarray
        Distance from the centreline in micrometres (3D distance for stacks).
    model_raw, model_smooth : ndarray
        Expected raw and smoothed intensity of shaft plus background.
    background : ndarray
        Local background per centreline point (raw intensity).
    shaft_peak : ndarray
        Local shaft peak above background per centreline point (raw intensity).
    noise_sigma : ndarray
        Noise standard deviation of the smoothed image per pixel.
    core : ndarray of bool
        Shaft core: within the apparent shaft radius laterally (and its half extent axially).
    shaft_radius_um : dict
        Apparent shaft radius (half width at half maximum) per dendrite id.
    rho : ndarray
        Distance from the centreline in units of the apparent shaft size: lateral
        distance / radius in 2D, the ellipsoidal ``sqrt((lateral / radius)^2 +
        (axial / half_depth)^2)`` in 3D (1 on the core's border).
    """

    smooth: np.ndarray
    nearest: np.ndarray
    distance_um: np.ndarray
    model_raw: np.ndarray
    model_smooth: np.ndarray
    background: np.ndarray
    shaft_peak: np.ndarray
    noise_sigma: np.ndarray
    core: np.ndarray
    shaft_radius_um: dict
    rho: np.ndarray | None = None

    @property
    def score(self) -> np.ndarray:
        """Residual of the smoothed image in noise sigmas (NaN outside the band)."""
        return (self.smooth - self.model_smooth) / self.noise_sigma


def smooth_image(image: PreparedImage, sigma_um: float, sigma_z_um: float = 0.0) -> np.ndarray:
    """Gaussian matched filter: ``sigma_um`` laterally, ``sigma_z_um`` (at least half a plane) axially."""
    sigma = [sigma_um / s for s in image.pixel_size_um]
    if image.is_3d:
        sigma = [max(0.5, sigma_z_um / image.spacing_um[0])] + sigma
    return ndi.gaussian_filter(image.data, sigma)


def _band_pairs(trace: DendriteTrace, shape2d, spacing2d: np.ndarray, band_um: float, end_margin_um: float):
    """Pixels of the 2D band and, per pixel, every dendrite within ``band_um`` of it.

    Returns ``(by, bx)`` of the band pixels and, per (pixel, dendrite) pair, ``pixel``
    (index into ``by``), the dendrite's laterally nearest centreline point ``idx``, the
    lateral distance, the side of the centreline (sign of tangent x offset, so each side
    has its own profile) and ``ahead``: the point is a dendrite end and the pixel lies
    beyond it, within 75 degrees of the outward direction and more than ``end_margin_um``
    along it (such pixels are not modelled by that dendrite).
    """
    cl = trace.centreline
    pts = cl[["y", "x"]].to_numpy()
    seeds = np.ones(shape2d, bool)
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, shape2d[0] - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, shape2d[1] - 1)
    seeds[iy, ix] = False
    near = ndi.distance_transform_edt(seeds, sampling=spacing2d) <= band_um + spacing2d.max()
    by, bx = np.nonzero(near)
    coords_um = np.column_stack([by, bx]) * spacing2d
    dend = cl["dendrite_id"].to_numpy()
    pixel, idx, lateral = [], [], []
    for d in np.unique(dend):
        rows = np.flatnonzero(dend == d)
        dist, k = cKDTree(pts[rows] * spacing2d).query(coords_um, distance_upper_bound=band_um * (1 + 1e-9))
        ok = np.isfinite(dist)
        pixel.append(np.flatnonzero(ok))
        idx.append(rows[k[ok]])
        lateral.append(dist[ok])
    pixel, idx, lateral = np.concatenate(pixel), np.concatenate(idx).astype(np.int64), np.concatenate(lateral)
    point = cl["point"].to_numpy()
    last = cl.groupby("dendrite_id")["point"].transform("max").to_numpy()
    is_end = (point == 0) | (point == last)
    step = np.where(point == 0, 3, -3)
    inner = np.clip(np.arange(len(cl)) + step, 0, len(cl) - 1)
    outward = (pts - pts[inner]) * spacing2d
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
    offset = coords_um[pixel] - pts[idx] * spacing2d
    along = np.einsum("ij,ij->i", offset, outward[idx])
    ahead = is_end[idx] & (along > np.maximum(0.25 * np.linalg.norm(offset, axis=1), end_margin_um))
    nxt = np.minimum(np.arange(len(cl)) + 1, len(cl) - 1)
    prv = np.maximum(np.arange(len(cl)) - 1, 0)
    nxt = np.where(dend[nxt] == dend, nxt, np.arange(len(cl)))
    prv = np.where(dend[prv] == dend, prv, np.arange(len(cl)))
    tangent = (pts[nxt] - pts[prv]) * spacing2d
    side = np.sign(tangent[idx, 1] * offset[:, 0] - tangent[idx, 0] * offset[:, 1]).astype(np.int64)
    return by, bx, pixel, idx, lateral, side, ahead


def _nearest_pair(voxel: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Index of the pair with the smallest ``distance`` for each distinct ``voxel`` (flat index)."""
    order = np.lexsort((distance, voxel))
    first = np.r_[True, voxel[order][1:] != voxel[order][:-1]]
    return order[first]


def _medians(codes: np.ndarray, n_groups: int, raw: np.ndarray, smooth: np.ndarray, use: np.ndarray):
    """Per-group medians of ``raw`` and ``smooth`` over the pixels in ``use`` (all pixels where none is)."""
    full = pd.DataFrame({"g": codes, "r": raw, "s": smooth}).groupby("g").median()
    part = pd.DataFrame({"g": codes[use], "r": raw[use], "s": smooth[use]}).groupby("g").median()
    full.loc[part.index] = part
    full = full.reindex(range(n_groups))
    return full["r"].to_numpy(), full["s"].to_numpy()


def _monotone_outward(keys: np.ndarray, values: np.ndarray, inner_bins: int = 2) -> np.ndarray:
    """Make group values non-increasing away from the centreline (cumulative minimum outward).

    A shaft's blurred cross-section falls off monotonically on each side (and, in 3D,
    in each axial bin), so a rise of a group median further out is spine (or neighbour)
    light, not shaft: crowded spines would otherwise lift the model and hide each other.
    ``keys`` are the group keys of :func:`build_shaft_model` (section, lateral, axial bins).
    """
    lat = (keys // 512) % 512 - 256
    frame = pd.DataFrame({"g": keys // (512 * 512) * 512 + keys % 512, "a": np.abs(lat), "v": values})
    out = np.asarray(values, float).copy()
    for sign in (1, -1):
        part = frame[(np.sign(lat) == sign) | (lat == 0)].sort_values(["g", "a"])
        # the inner bins (the centreline may sit a pixel off the ridge) count as one plateau
        inner = part["a"].to_numpy() <= inner_bins
        plateau = part["v"].where(inner).groupby(part["g"]).transform("max")
        low = part["v"].where(~inner, plateau).groupby(part["g"]).cummin()
        rows = part.index[~inner]
        out[rows] = low.loc[rows].to_numpy()
    return out


def fit_noise_model(
    model_values: np.ndarray, residual: np.ndarray, codes: np.ndarray
) -> tuple[float, float, float]:
    """Residual variance as ``max(a + b * model, floor)``, fitted on the groups' robust spreads.

    Each group's spread (1.4826 x median absolute residual) is paired with its model
    value; groups are binned by model value and a line is fitted through the bins'
    median variances. The fit captures shot noise and model error at steep shaft edges.
    """
    frame = pd.DataFrame({"g": codes, "m": model_values, "absr": np.abs(residual)})
    per = frame.groupby("g").agg(m=("m", "median"), mad=("absr", "median"), n=("m", "size"))
    per = per[per.n >= 6]
    if len(per) < 3:
        var = (1.4826 * np.median(np.abs(residual))) ** 2
        return float(max(var, 1e-12)), 0.0, float(max(var, 1e-12))
    per["var"] = (1.4826 * per["mad"]) ** 2
    bins = pd.qcut(per["m"], q=min(12, len(per) // 3), duplicates="drop")
    binned = per.groupby(bins, observed=True).agg(m=("m", "median"), var=("var", "median"))
    floor = max(0.25 * float(binned["var"].min()), 1e-12)
    if len(binned) < 2:
        return 4 * floor, 0.0, floor
    b, a = np.polyfit(binned["m"], binned["var"], 1)
    return max(float(a), floor), max(float(b), 0.0), floor


def build_shaft_model(
    image: PreparedImage, trace: DendriteTrace, params: ModelParams = ModelParams()
) -> ShaftModel:
    """Model the shafts of ``trace`` in ``image``; see the module docstring.

    Parameters
    ----------
    image : PreparedImage
    trace : DendriteTrace
        Must have at least one dendrite.
    params : ModelParams

    Returns
    -------
    ShaftModel
    """
    data = image.data
    spacing2d = np.asarray(image.pixel_size_um, float)
    pixel_um = float(spacing2d.mean())
    band_um = params.max_distance_um + params.background_margin_um
    z_step = image.spacing_um[0] if image.is_3d else 1.0
    smooth = smooth_image(image, params.smooth_sigma_um, params.smooth_sigma_z_um)
    cl = trace.centreline
    by, bx, pixel, idx, lateral, side, ahead = _band_pairs(
        trace, data.shape[-2:], spacing2d, band_um, params.end_margin_um
    )
    if image.is_3d:
        # every plane of each (pixel, dendrite) pair; voxels too far axially are cut below
        n_planes = data.shape[0]
        pair, pz = np.repeat(np.arange(len(pixel)), n_planes), np.tile(np.arange(n_planes), len(pixel))
        axial = (pz - cl["z"].to_numpy()[idx][pair]) * z_step
        flat = np.ravel_multi_index((pz, by[pixel[pair]], bx[pixel[pair]]), data.shape)
        # a voxel belongs to the laterally nearest dendrite, unless the dendrite nearest in 3D
        # (axial offsets weighted) lies at a clearly different depth: where shafts at different
        # depths cross in the projection each keeps its own voxels, while at branch points and
        # along neighbours at one depth the assignment stays lateral
        nearest_3d = _nearest_pair(flat, np.hypot(lateral[pair], params.assign_axial_weight * axial))
        nearest_2d = _nearest_pair(flat, lateral[pair])
        zc = cl["z"].to_numpy()[idx[pair]]
        apart = np.abs(zc[nearest_3d] - zc[nearest_2d]) * z_step >= params.assign_min_depth_gap_um
        owner = np.where(apart, nearest_3d, nearest_2d)
    else:
        pair = np.arange(len(pixel))
        axial = np.zeros(len(pair))
        flat = np.ravel_multi_index((by[pixel], bx[pixel]), data.shape)
        owner = _nearest_pair(flat, lateral)
    # pixels beyond the end of their dendrite (nearest to an end point, ahead of it) are not
    # modelled, nor voxels more than the band's width above or below it
    owner = owner[~ahead[pair[owner]] & (np.abs(axial[owner]) <= band_um)]
    flat, vax, pair = flat[owner], axial[owner], pair[owner]
    vidx, vlat = idx[pair], lateral[pair]
    vdend = cl["dendrite_id"].to_numpy().astype(np.int64)[vidx]
    arc_bin = np.floor(cl["arc_um"].to_numpy()[vidx] / params.arc_bin_um).astype(np.int64)
    lat_bin = np.round(vlat / pixel_um).astype(np.int64) * side[pair]
    # sub-plane axial bins in stacks: the centreline's z is sub-plane and a shaft's axial flank is
    # steep, so whole-plane bins would mix voxels 0.5 and 1.5 um from the centre
    ax_bin = np.round(vax / (params.axial_bin_planes * z_step)).astype(np.int64)
    dist = np.hypot(vlat, vax)
    raw_v = data.ravel()[flat]
    smooth_v = smooth.ravel()[flat]
    section = vdend * 100_000 + arc_bin
    keys = (section * 512 + np.clip(lat_bin, -255, 255) + 256) * 512 + np.clip(ax_bin, -255, 255) + 256
    uniq, inverse = np.unique(keys, return_inverse=True)
    # pass 1: medians of all pixels; pass 2: without the positive outliers (spines) of pass 1
    med_raw, med_smooth = _medians(inverse, len(uniq), raw_v, smooth_v, np.ones(len(raw_v), bool))
    med_raw, med_smooth = _monotone_outward(uniq, med_raw), _monotone_outward(uniq, med_smooth)

    def noise(model_values, residual):
        a, b, floor = fit_noise_model(model_values, residual, inverse)
        return np.sqrt(np.maximum(a + b * model_values, floor))

    residual = smooth_v - med_smooth[inverse]
    first_score = residual / noise(med_smooth[inverse], residual)
    med_raw, med_smooth = _medians(inverse, len(uniq), raw_v, smooth_v, first_score < params.outlier_sigma)
    med_raw, med_smooth = _monotone_outward(uniq, med_raw), _monotone_outward(uniq, med_smooth)
    model_raw_v = med_raw[inverse]
    model_smooth_v = med_smooth[inverse]
    sigma_v = noise(model_smooth_v, smooth_v - model_smooth_v)
    # background per section: pixels beyond the spine search distance
    outer = dist > params.max_distance_um
    fallback = float(np.median(raw_v[outer])) if outer.any() else float(np.percentile(data, 20))
    sec_bg = pd.Series(raw_v[outer]).groupby(section[outer]).median()
    bg_v = pd.Series(section).map(sec_bg).fillna(fallback).to_numpy()
    # local shaft peak per section: the largest group median there
    group_section = uniq // (512 * 512)
    sec_peak = pd.Series(med_raw).groupby(group_section).max()
    peak_v = pd.Series(section).map(sec_peak).to_numpy() - bg_v
    # apparent shaft radius (lateral half width at half maximum) and axial half extent, per dendrite
    half = model_raw_v - bg_v > 0.5 * peak_v
    radius, depth = {}, {}
    for d in np.unique(vdend):
        sel = half & (vdend == d) & (np.abs(vax) <= 0.5 * z_step)
        radius[int(d)] = float(np.percentile(vlat[sel], 90)) + 0.5 * pixel_um if sel.any() else 2 * pixel_um
        sel_z = half & (vdend == d) & (vlat <= pixel_um)
        depth[int(d)] = (
            float(np.percentile(np.abs(vax[sel_z]), 90)) + 0.25 * z_step
            if image.is_3d and sel_z.any()
            else 0.0
        )
    r_v = pd.Series(vdend).map(radius).to_numpy()
    if image.is_3d:
        d_v = np.maximum(pd.Series(vdend).map(depth).to_numpy(), 0.5 * z_step)
        rho_v = np.sqrt((vlat / r_v) ** 2 + (vax / d_v) ** 2)
    else:
        rho_v = vlat / r_v
    core_v = rho_v < 1.0

    def full(values, fill=np.nan, dtype=np.float32):
        out = np.full(data.shape, fill, dtype=dtype)
        out.ravel()[flat] = values
        return out

    n_points = len(cl)
    background = pd.Series(bg_v).groupby(vidx).median().reindex(range(n_points)).to_numpy()
    shaft_peak = pd.Series(peak_v).groupby(vidx).median().reindex(range(n_points)).to_numpy()
    background = np.where(np.isfinite(background), background, fallback)
    shaft_peak = np.where(np.isfinite(shaft_peak), shaft_peak, np.nanmedian(shaft_peak))
    return ShaftModel(
        smooth=smooth,
        nearest=full(vidx, -1, np.int64),
        distance_um=full(dist),
        model_raw=full(model_raw_v),
        model_smooth=full(model_smooth_v),
        background=background,
        shaft_peak=shaft_peak,
        noise_sigma=full(sigma_v),
        core=full(core_v, False, bool),
        rho=full(rho_v),
        shaft_radius_um=radius,
    )
