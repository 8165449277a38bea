"""Dendrite tracing: shaft segmentation, skeleton graph (skan) and arc-length centrelines.

Tracing runs on the 2D image (for a z-stack: its maximum projection, so dendrites are
assumed to run mostly laterally); the centreline of a stack is then lifted to 3D along a
depth path that follows its own shaft (dynamic programming over the axial profiles with
a cost per plane moved and a largest slope), so where another dendrite crosses above or
below, overlapping it in the projection, the centreline does not jump to the brighter
one. Crossings at different depths are also handled in the projection's graph, using
the plane of each projected pixel's maximum: branches are joined at a junction only when
their shafts lie at one depth; a short junction-to-junction branch whose ends lie at
different depths (the stretch where two dendrites crossing at a shallow angle overlap)
is dropped; chain ends that point at each other across such a gap at one depth are
joined by a straight line; and where another dendrite is near in the projection the
lifted centreline is recentred in the planes of its own depth. Steps: denoise (Gaussian
or non-local means), ridge enhancement (Sato, Meijering or Frangi at the expected shaft
radius), hysteresis threshold on a combined ridge +
intensity score in units of robust noise sigma, removal of small objects,
skeletonisation, pruning of short terminal branches (spines and spine-like spurs) with
:class:`skan.Skeleton`, removal of dim loop branches (skeleton loops closed by spine
heads run through thin necks), joining of branches through junctions by direction
(measured 1-4 um away from the junction, where the skeleton no longer bends into it), so
a dendrite that crosses another stays one dendrite and a side branch becomes its own
dendrite. Each chain is recentred on the shaft, its hooked ends are trimmed and then
extended straight along the shaft while it stays bright (up to the image border), so
spines near a dendrite's end keep a centreline beside them. Where a shaft leaves the
field of view, recentring pulls the points towards its centre beyond the border: the
chain is cut there (not clipped onto the border, where it would run beside the shaft and
its unmodelled flank would score as spines). Dim chains hugging a longer
one are loops through spines; bright ones are a second dendrite running alongside and
are kept.

Arc-length convention: along each dendrite, arc 0 is at the end from which the dendrite
runs towards +x (or towards +y when it runs more vertically than horizontally).
Dendrite ids are numbered by decreasing length.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import skan
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage import filters, morphology, restoration

from imagingkit.errors import ParameterError
from imagingkit.spines.image import PreparedImage

CENTRELINE_COLUMNS = ("dendrite_id", "point", "y", "x", "z", "arc_um")
DENDRITE_TRACE_COLUMNS = ("dendrite_id", "length_um", "shaft_radius_um")
RECENTRE_REACH = 1.5  # recentring looks this many shaft radii to each side
RECENTRE_ITERATIONS = 2


@dataclasses.dataclass(frozen=True)
class TraceParams:
    """Parameters of dendrite tracing.

    Attributes
    ----------
    shaft_radius_um : float
        Expected dendritic shaft radius; sets the ridge-filter scales.
    denoise : {"gaussian", "nl_means"}
        Denoising before ridge enhancement (non-local means is slower).
    ridge_filter : {"sato", "meijering", "frangi"}
        scikit-image ridge filter.
    low_sigma, high_sigma : float
        Hysteresis thresholds of the shaft score, in robust noise sigmas: a
        pixel is shaft when its score exceeds ``low_sigma`` and it connects to
        pixels above ``high_sigma``.
    min_length_um : float
        Dendrites (and isolated objects) shorter than this are dropped.
    prune_length_um : float
        Terminal skeleton branches shorter than this are pruned (they are spines).
    merge_angle_deg : float
        Two branches meeting at a junction continue each other when their
        directions deviate from a straight line by less than this.
    smooth_px : float
        Gaussian smoothing (pixels) of the centreline coordinates before arc lengths.
    junction_um : float
        Branch ends closer than this meet at one junction; junction-to-junction
        branches shorter than this (crossings) are bridged.
    end_trim_um : float
        Length cut off each skeleton end, where skeletons hook (before extending).
    end_extend_um : float
        Largest straight extension of a dendrite end along its shaft (see ``_extend_ends``),
        so spines near a dendrite's end or the image border keep a centreline next to them.
    dim_path_fraction : float
        Skeleton branches whose dimmest stretch is below this fraction of the brightness
        of the branches they meet are dropped (loops through spine necks).
    dim_path_max_um : float
        Only branches shorter than this can be dropped as dim.
    lift_max_slope : float
        Stacks: steepest depth change of a dendrite followed when lifting its centreline
        to 3D, in micrometres of z per micrometre along it.
    lift_jump_cost : float
        Stacks: cost of moving the lifted centreline by a quarter plane, in units of the
        shaft's peak intensity at one centreline point; it keeps the centreline on its own
        shaft where another dendrite crosses above or below it.
    gap_join_um : float
        Stacks: two chain ends at most this far apart that point at each other are one
        dendrite interrupted where another crosses above or below it (see ``_join_gaps``);
        0 disables.
    depth_recentre_um : float
        Stacks: centreline points closer than this (laterally) to another dendrite are
        recentred in the planes of their own depth after lifting (see ``_recentre``);
        0 disables.
    gap_join_angle_deg : float
        Largest angle between each end's direction and the straight line to the other end.
    gap_join_depth_um : float
        Largest depth difference of the two shafts next to the gap.
    """

    shaft_radius_um: float = 0.5
    denoise: str = "gaussian"
    ridge_filter: str = "sato"
    low_sigma: float = 4.0
    high_sigma: float = 10.0
    min_length_um: float = 5.0
    prune_length_um: float = 3.0
    merge_angle_deg: float = 50.0
    smooth_px: float = 2.0
    junction_um: float = 1.5
    end_trim_um: float = 2.0
    end_extend_um: float = 8.0
    dim_path_fraction: float = 0.45
    dim_path_max_um: float = 15.0
    lift_max_slope: float = 0.6
    lift_jump_cost: float = 1.0
    gap_join_um: float = 8.0
    depth_recentre_um: float = 3.0
    gap_join_angle_deg: float = 30.0
    gap_join_depth_um: float = 1.5

    def __post_init__(self):
        if self.denoise not in ("gaussian", "nl_means"):
            raise ParameterError(
                f"TraceParams.denoise must be 'gaussian' or 'nl_means', got {self.denoise!r}"
            )
        if self.ridge_filter not in ("sato", "meijering", "frangi"):
            raise ParameterError(
                f"TraceParams.ridge_filter must be 'sato', 'meijering' or 'frangi', got {self.ridge_filter!r}"
            )
        if self.shaft_radius_um <= 0:
            raise ParameterError(f"TraceParams.shaft_radius_um must be positive, got {self.shaft_radius_um}")
        if not self.lift_max_slope > 0 or not self.lift_jump_cost >= 0:
            raise ParameterError(
                "TraceParams.lift_max_slope must be positive and lift_jump_cost >= 0, got "
                f"{self.lift_max_slope} and {self.lift_jump_cost}"
            )
        if not (self.gap_join_um >= 0 and self.depth_recentre_um >= 0 and self.gap_join_depth_um >= 0):
            raise ParameterError(
                "TraceParams.gap_join_um, depth_recentre_um and gap_join_depth_um must be >= 0, got "
                f"{self.gap_join_um}, {self.depth_recentre_um} and {self.gap_join_depth_um}"
            )
        if not 0 < self.gap_join_angle_deg <= 90:
            raise ParameterError(
                f"TraceParams.gap_join_angle_deg must be in (0, 90], got {self.gap_join_angle_deg}"
            )


@dataclasses.dataclass(frozen=True)
class DendriteTrace:
    """Traced dendrites of one image.

    Attributes
    ----------
    centreline : DataFrame
        One row per centreline point, ordered along each dendrite: ``dendrite_id,
        point, y, x, z, arc_um`` (pixel coordinates, sub-pixel; ``z`` NaN in 2D).
    dendrites : DataFrame
        ``dendrite_id, length_um, shaft_radius_um`` (radius filled in by the shaft model).
    shaft_mask : ndarray of bool
        (Y, X) segmented shaft (with attached spine heads) in the 2D/projected image.
    spacing_um : tuple of float
        Voxel spacing of the traced image, array order.
    shape : tuple of int
        Shape of the traced image.
    """

    centreline: pd.DataFrame
    dendrites: pd.DataFrame
    shaft_mask: np.ndarray
    spacing_um: tuple[float, ...]
    shape: tuple[int, ...]

    @property
    def n_dendrites(self) -> int:
        return len(self.dendrites)


def robust_noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation from the MAD of neighbouring-pixel differences along x."""
    diff = np.diff(image.astype(np.float32, copy=False), axis=-1).ravel()
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0))


def _robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 MAD), computed on a subsample for speed."""
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // 200_000)]
    med = np.median(sample)
    mad = 1.4826 * np.median(np.abs(sample - med))
    return (values - med) / max(mad, 1e-12)


def denoise_image(image: np.ndarray, sigma_px: float, method: str = "gaussian") -> np.ndarray:
    """Gaussian or non-local-means denoising of a 2D image."""
    if method == "nl_means":
        noise = robust_noise_sigma(image)
        return restoration.denoise_nl_means(image, h=0.8 * noise, sigma=noise, patch_size=5, patch_distance=6)
    return ndi.gaussian_filter(image, sigma_px)


def segment_shaft(image2d: np.ndarray, pixel_size_um: float, params: TraceParams) -> np.ndarray:
    """Boolean (Y, X) mask of dendritic shafts (spine heads attached to them may be included)."""
    radius_px = params.shaft_radius_um / pixel_size_um
    smooth = denoise_image(image2d, max(0.7, 0.4 * radius_px), params.denoise)
    sigmas = radius_px * np.array([0.7, 1.0, 1.4])
    ridge_fn = {"sato": filters.sato, "meijering": filters.meijering, "frangi": filters.frangi}[
        params.ridge_filter
    ]
    ridge = ridge_fn(smooth, sigmas=np.maximum(sigmas, 0.8), black_ridges=False)
    # The shaft score is the smaller of the ridge and intensity scores (both in robust sigmas),
    # so a pixel must be both tube-like and bright.
    score = np.minimum(_robust_z(ridge), _robust_z(smooth))
    mask = filters.apply_hysteresis_threshold(score, params.low_sigma, params.high_sigma)
    min_area_px = params.min_length_um * 2.0 * params.shaft_radius_um / pixel_size_um**2
    mask = morphology.remove_small_objects(mask, max_size=int(min_area_px))
    mask = morphology.remove_small_holes(mask, max_size=int(4 * radius_px**2 + 4))
    return mask


def _summarize(skel: skan.Skeleton) -> pd.DataFrame:
    """``skan.summarize`` without its pandas deprecation noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        return skan.summarize(skel, separator="_")


def _prune(skel: skan.Skeleton, params: TraceParams) -> skan.Skeleton | None:
    """Drop short terminal branches (spines) and short isolated pieces, repeatedly."""
    for _ in range(10):
        summary = _summarize(skel)
        terminal = (summary["branch_type"] == 1) & (summary["branch_distance"] < params.prune_length_um)
        isolated = (summary["branch_type"] == 0) & (summary["branch_distance"] < params.min_length_um)
        drop = np.flatnonzero((terminal | isolated).to_numpy())
        if drop.size == 0:
            return skel
        if drop.size == len(summary):
            return None
        skel = skel.prune_paths(drop)
        if not skel.skeleton_image.any():
            return None
    return skel


def _end_direction(
    coords: np.ndarray, at_start: bool, spacing: np.ndarray, reach_um: float, skip_um: float = 0.0
) -> np.ndarray:
    """Unit vector pointing from a path end into the path, between ``skip_um`` and ``reach_um`` from it.

    Skipping the first micrometre ignores where a skeleton bends into a junction.
    """
    pts = coords if at_start else coords[::-1]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0) * spacing, axis=1))])
    near = min(int(np.searchsorted(arc, min(skip_um, 0.3 * arc[-1]))), len(pts) - 1)
    far = min(int(np.searchsorted(arc, reach_um)) + 1, len(pts) - 1)
    vec = (pts[far] - pts[near]) * spacing
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def _drop_junction_bridges(skel: skan.Skeleton, params: TraceParams) -> list[np.ndarray]:
    """Branch coordinates without the short junction-to-junction bridges that skeletons form at crossings."""
    summary = _summarize(skel)
    bridge = (summary["branch_type"] == 2) & (summary["branch_distance"] < params.junction_um)
    return [skel.path_coordinates(i).astype(float) for i in range(skel.n_paths) if not bridge.iloc[i]]


def _drop_dim_paths(
    paths: list[np.ndarray], smooth2d: np.ndarray, spacing: np.ndarray, params: TraceParams
) -> list[np.ndarray]:
    """Drop skeleton branches much dimmer than the branches they meet (paths through spine necks).

    Spine heads touching each other or the shaft close loops in the skeleton; the
    branches of such loops run through thin, dim necks, so their dimmest stretch (10th
    percentile above background) is far below the median of the shaft branches they
    join, and below their own median (they pass bright heads too). A branch shorter than
    ``dim_path_max_um`` that meets others at both ends (a loop; terminal branches are
    trimmed instead) is dropped when its 10th percentile is below
    ``dim_path_fraction`` of its own median or below half that fraction of the brightest
    neighbouring branch's median. (A crossing, twice as bright, is not a reference alone.)
    """
    if len(paths) < 2:
        return paths
    background = float(np.median(smooth2d))
    profiles = [ndi.map_coordinates(smooth2d, p.T, order=1, mode="nearest") - background for p in paths]
    low = np.array([np.percentile(v, 10) for v in profiles])
    mid = np.array([np.median(v) for v in profiles])
    ends = np.array([p[k] for p in paths for k in (0, -1)]) * spacing
    owner = np.repeat(np.arange(len(paths)), 2)
    brightest = np.zeros(len(paths))
    linked = np.zeros(len(ends), bool)
    for a, b in cKDTree(ends).query_pairs(max(2.01 * float(spacing.max()), params.junction_um)):
        i, j = owner[a], owner[b]
        if i != j:
            linked[[a, b]] = True
            brightest[i] = max(brightest[i], mid[j])
            brightest[j] = max(brightest[j], mid[i])
    inner = linked[0::2] & linked[1::2]  # loops: both ends meet other branches (terminal ones are trimmed)
    length = np.array([_arc_um(p, spacing)[-1] for p in paths])
    dim = (low < params.dim_path_fraction * mid) | (low < 0.5 * params.dim_path_fraction * brightest)
    keep = ~inner | (length > params.dim_path_max_um) | ~dim
    return [p for p, k in zip(paths, keep, strict=True) if k]


def _extend_ends(chain: np.ndarray, smooth2d: np.ndarray, spacing: np.ndarray, params: TraceParams):
    """Extend both ends straight on while the shaft stays bright, up to the image border.

    Skeleton ends stop short of a dendrite's real end and hook into spines; after the
    hooked part is trimmed, each end is continued along its direction (fitted over
    ``2 * end_trim_um``) in half-pixel steps while the smoothed image there stays above
    half the shaft's centreline brightness nearby, for at most ``end_extend_um``.
    """
    if params.end_extend_um <= 0 or len(chain) < 4:
        return chain
    arc = _arc_um(chain, spacing)
    background = float(np.median(smooth2d))
    shape = np.asarray(smooth2d.shape) - 1
    pieces = []
    for forward in (False, True):
        pts = chain[::-1] if forward else chain  # pts[0] is the end being extended
        a = arc[-1] - arc[::-1] if forward else arc
        inner = pts[min(int(np.searchsorted(a, 2 * params.end_trim_um + 1.0)), len(pts) - 1)]
        direction = (pts[0] - inner) / max(np.linalg.norm((pts[0] - inner) * spacing), 1e-9)
        near = pts[a <= 3.0]
        level = np.median(ndi.map_coordinates(smooth2d, near.T, order=1, mode="nearest")) - background
        step_um = 0.5 * float(spacing.min())
        n_steps = int(params.end_extend_um / step_um)
        added = []
        p = pts[0].astype(float)
        for _ in range(n_steps):
            p = p + direction * step_um
            if np.any(p < 0) or np.any(p > shape):
                break
            value = ndi.map_coordinates(smooth2d, p[:, None], order=1, mode="nearest")[0] - background
            if value < 0.5 * level:
                break
            added.append(p.copy())
        pieces.append(np.array(added[::-1]).reshape(-1, 2) if not forward else np.array(added).reshape(-1, 2))
    return np.concatenate([pieces[0], chain, pieces[1]])


def _inside_pieces(chain: np.ndarray, shape2d: tuple[int, ...]) -> list[np.ndarray]:
    """The stretches of ``chain`` inside the image (the whole chain, clipped to it, if none is).

    Recentring moves the points of a shaft leaving the field of view towards its centre, which
    may lie beyond the border; clipped there, they would run along the border, beside the
    shaft's light, and its flank would score as spines. Cut off instead, the shaft beyond the
    chain's end is not modelled, so not searched; a dendrite leaving the field and coming back
    becomes two.
    """
    inside = np.all((chain >= 0) & (chain <= np.asarray(shape2d) - 1), axis=1)
    if not inside.any():
        return [np.clip(chain, 0, np.asarray(shape2d) - 1)]
    edges = np.flatnonzero(np.diff(np.r_[0, inside.astype(np.int8), 0]))
    return [chain[start:stop] for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def _trim_ends(chain: np.ndarray, spacing: np.ndarray, trim_um: float) -> np.ndarray:
    """Cut ``trim_um`` off both ends (skeleton ends hook towards corners of the shaft)."""
    arc = _arc_um(chain, spacing)
    if arc[-1] <= 4 * trim_um:
        return chain
    return chain[(arc >= trim_um) & (arc <= arc[-1] - trim_um)]


def _join_branches(
    paths: list[np.ndarray],
    spacing: np.ndarray,
    params: TraceParams,
    depth2d: np.ndarray | None = None,
    z_step_um: float = 1.0,
) -> dict:
    """Pair branch ends that meet at a junction and continue each other straight on.

    In stacks (``depth2d``: plane of each projected pixel's maximum) two branches whose
    shafts 1-4 um from the junction lie more than ``gap_join_depth_um`` apart in depth are
    two dendrites crossing at different depths and are not paired.

    Returns a dict ``(path, end) -> (path, end)`` (end 0 = first point, 1 = last point).
    """
    ends = [(i, e, p[0] if e == 0 else p[-1]) for i, p in enumerate(paths) for e in (0, 1)]
    if len(ends) < 2:
        return {}
    points = np.array([pt for *_, pt in ends])
    tree = cKDTree(points * spacing)
    # ends within 2 px of each other meet at the same junction
    adjacency: dict[int, set[int]] = {k: set() for k in range(len(ends))}
    for a, b in tree.query_pairs(max(2.01 * float(spacing.max()), params.junction_um)):
        if ends[a][0] != ends[b][0]:
            adjacency[a].add(b)
            adjacency[b].add(a)
    directions = [_end_direction(paths[i], e == 0, spacing, 4.0, 1.0) for i, e, _ in ends]
    depths = np.zeros(len(ends))
    if depth2d is not None:
        depths = np.array([_end_depth(paths[i], e == 0, depth2d, spacing) * z_step_um for i, e, _ in ends])
    limit = -np.cos(np.deg2rad(params.merge_angle_deg))
    candidates = []
    for a, neighbours in adjacency.items():
        for b in neighbours:
            if a < b:
                cos = float(np.dot(directions[a], directions[b]))
                if cos < limit and abs(depths[a] - depths[b]) <= params.gap_join_depth_um:
                    candidates.append((cos, a, b))
    joins: dict = {}
    for _, a, b in sorted(candidates):
        ka, kb = ends[a][:2], ends[b][:2]
        if ka in joins or kb in joins:
            continue
        joins[ka] = kb
        joins[kb] = ka
    return joins


def _chains(paths: list[np.ndarray], joins: dict) -> list[np.ndarray]:
    """Concatenate joined branches into dendrite chains of ordered coordinates."""
    used = np.zeros(len(paths), bool)
    chains = []
    starts = [(i, e) for i in range(len(paths)) for e in (0, 1) if (i, e) not in joins]
    starts += [(i, 0) for i in range(len(paths))]  # cycles have no free end
    for i, e in starts:
        if used[i]:
            continue
        pieces = []
        while not used[i]:
            used[i] = True
            p = paths[i] if e == 0 else paths[i][::-1]
            pieces.append(p if not pieces else p[1:])
            nxt = joins.get((i, 1 - e))
            if nxt is None:
                break
            i, e = nxt
        chains.append(np.concatenate(pieces))
    return chains


def _end_depth(chain: np.ndarray, at_start: bool, depth2d: np.ndarray, spacing: np.ndarray) -> float:
    """Median shaft depth (planes) 1-4 um from a chain end (the end itself may lie in a crossing)."""
    pts = chain if at_start else chain[::-1]
    arc = _arc_um(pts, spacing)
    near = pts[(arc >= min(1.0, 0.3 * arc[-1])) & (arc <= 4.0)]
    near = near if len(near) else pts[:1]
    iy, ix = (np.clip(np.round(near[:, k]).astype(int), 0, depth2d.shape[k] - 1) for k in (0, 1))
    return float(np.median(depth2d[iy, ix]))


def _drop_mixed_depth_bridges(
    paths: list[np.ndarray], depth2d: np.ndarray, spacing: np.ndarray, z_step_um: float, params: TraceParams
) -> list[np.ndarray]:
    """Drop short junction-to-junction branches whose two ends lie at different depths (stacks).

    Where two dendrites at different depths cross at a shallow angle, the skeleton of the
    projection runs one branch along the stretch where they overlap; its depth (the plane
    of each pixel's maximum) switches between the two, so joined by depth it would lead
    from one dendrite into the other. A branch shorter than ``gap_join_um`` meeting others
    at both ends whose end depths (1-4 um in) differ by more than ``gap_join_depth_um`` is
    dropped; :func:`_join_gaps` then joins each dendrite across the gap at its own depth.
    """
    if len(paths) < 3 or params.gap_join_um <= 0:
        return paths
    ends = np.array([p[k] for p in paths for k in (0, -1)]) * spacing
    owner = np.repeat(np.arange(len(paths)), 2)
    linked = np.zeros(len(ends), bool)
    for a, b in cKDTree(ends).query_pairs(max(2.01 * float(spacing.max()), params.junction_um)):
        if owner[a] != owner[b]:
            linked[[a, b]] = True
    keep = []
    for i, path in enumerate(paths):
        inner = linked[2 * i] and linked[2 * i + 1] and _arc_um(path, spacing)[-1] < params.gap_join_um
        step = abs(_end_depth(path, True, depth2d, spacing) - _end_depth(path, False, depth2d, spacing))
        keep.append(not (inner and step * z_step_um > params.gap_join_depth_um))
    return [p for p, k in zip(paths, keep, strict=True) if k]


def _join_gaps(
    chains: list[np.ndarray], depth2d: np.ndarray, spacing: np.ndarray, z_step_um: float, params: TraceParams
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Join chain ends that point at each other across a short gap at the same depth (stacks).

    Where a dendrite passes above or below another at a shallow angle, the skeleton of the
    projection shares one long junction-to-junction branch between both, so the deeper (or
    dimmer) dendrite ends on either side of the crossing. Two ends at most ``gap_join_um``
    apart, each pointing at the other within ``gap_join_angle_deg`` (directions measured
    1-4 um from the end), whose shafts 1-4 um from the ends lie at depths (``depth2d``, the
    plane of the maximum of each projected pixel) within ``gap_join_depth_um``, are joined
    by a straight line, closest pairs first and without closing loops.

    Returns
    -------
    chains : list of ndarray
        The joined chains.
    bridges : list of ndarray
        Per chain, the (y, x) points of the straight lines inserted (kept in place by recentring).
    """
    if params.gap_join_um <= 0 or len(chains) < 2:
        return chains, [np.zeros((0, 2)) for _ in chains]
    ends = [(i, e) for i, c in enumerate(chains) for e in (0, 1) if len(c) >= 3]
    # each end is cut back by end_trim_um (its last stretch may bend into the crossing)
    cut = {}
    for i, e in ends:
        arc = _arc_um(chains[i] if e == 0 else chains[i][::-1], spacing)
        cut[(i, e)] = int(np.searchsorted(arc, min(params.end_trim_um, 0.3 * arc[-1])))
    point = {k: (chains[k[0]][cut[k]] if k[1] == 0 else chains[k[0]][-1 - cut[k]]) for k in ends}
    inward = {k: _end_direction(chains[k[0]], k[1] == 0, spacing, 4.0, 1.0) for k in ends}
    depth = {k: _end_depth(chains[k[0]], k[1] == 0, depth2d, spacing) for k in ends}
    min_cos = np.cos(np.deg2rad(params.gap_join_angle_deg))
    candidates = []
    for a in range(len(ends)):
        for b in range(a + 1, len(ends)):
            ka, kb = ends[a], ends[b]
            if ka[0] == kb[0]:
                continue
            tips = (chains[kb[0]][-kb[1]] - chains[ka[0]][-ka[1]]) * spacing
            gap = (point[kb] - point[ka]) * spacing
            length = float(np.linalg.norm(gap))
            if np.linalg.norm(tips) > params.gap_join_um or length == 0:
                continue
            line = gap / length
            aligned = -inward[ka] @ line >= min_cos and inward[kb] @ line >= min_cos
            if aligned and abs(depth[ka] - depth[kb]) * z_step_um <= params.gap_join_depth_um:
                candidates.append((length, ka, kb))
    group = list(range(len(chains)))

    def root(i):
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    links: dict = {}
    for _, ka, kb in sorted(candidates):
        if ka in links or kb in links or root(ka[0]) == root(kb[0]):
            continue
        links[ka], links[kb] = kb, ka
        group[root(ka[0])] = root(kb[0])
    if not links:
        return chains, [np.zeros((0, 2)) for _ in chains]
    out, bridges = [], []
    used = np.zeros(len(chains), bool)
    for i in range(len(chains)):
        if used[i]:
            continue
        # from end 0 of chain i through its links to the group's free end, then walk back along it
        j, e = i, 0
        while (j, e) in links:
            j, e = links[(j, e)]
            e = 1 - e
        pieces, bridge = [], []
        while True:
            used[j] = True
            c = chains[j] if e == 0 else chains[j][::-1]
            if pieces:
                c = c[cut[(j, e)] :]
                start, stop = pieces[-1][-1], c[0]
                n = max(int(np.ceil(np.linalg.norm(stop - start))), 1)
                line = start + (stop - start) * (np.arange(1, n) / n)[:, None]
                pieces.append(line)
                bridge.append(line)
            pieces.append(c)
            nxt = links.get((j, 1 - e))
            if nxt is None:
                break
            pieces[-1] = pieces[-1][: len(pieces[-1]) - cut[(j, 1 - e)]]
            j, e = nxt
        out.append(np.concatenate(pieces))
        bridges.append(np.concatenate(bridge) if bridge else np.zeros((0, 2)))
    return out, bridges


def _orient(chain: np.ndarray) -> np.ndarray:
    """Apply the arc convention: run towards +x (or +y for steep dendrites)."""
    dy, dx = chain[-1, -2:] - chain[0, -2:]
    forward = dx > 0 if abs(dx) >= abs(dy) else dy > 0
    return chain if forward else chain[::-1]


def _arc_um(coords: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    steps = np.linalg.norm(np.diff(coords, axis=0) * spacing, axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _recentre(
    chain: np.ndarray,
    smooth: np.ndarray,
    radius_px: float,
    smooth_px: float,
    movable: np.ndarray | None = None,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Move centreline points to the intensity centroid across the shaft (the skeleton is pulled by spines).

    ``smooth`` is the smoothed 2D image, or with ``depth`` (planes, one per point) the
    smoothed stack, sampled across the shaft in the plane of each point's own depth: in a
    projection a second dendrite crossing above or below at a shallow angle merges with this
    one over micrometres and pulls the centreline between the two, while at the shaft's own
    depth the other is blurred away. Only points where ``movable`` is true move.
    """
    offsets = np.arange(-RECENTRE_REACH * radius_px, RECENTRE_REACH * radius_px + 0.25, 0.5)
    for _ in range(RECENTRE_ITERATIONS):
        tangent = np.gradient(chain, axis=0)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
        normal = np.column_stack([tangent[:, 1], -tangent[:, 0]])
        samples = chain[:, None, :] + offsets[None, :, None] * normal[:, None, :]
        coords = [samples[..., 0].ravel(), samples[..., 1].ravel()]
        if depth is not None:
            coords.insert(0, np.broadcast_to(depth[:, None], samples.shape[:2]).ravel())
        values = ndi.map_coordinates(smooth, np.stack(coords), order=1, mode="nearest")
        values = values.reshape(len(chain), len(offsets))
        lo, hi = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
        weights = np.clip(values - 0.5 * (lo + hi), 0, None)
        shift = (weights * offsets).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)
        if movable is not None:
            shift = np.where(movable, shift, 0.0)
        shift = ndi.gaussian_filter1d(shift, 2 * smooth_px, mode="nearest")
        chain = chain + shift[:, None] * normal
    return chain


def _away_from(chain: np.ndarray, fixed: np.ndarray) -> np.ndarray | None:
    """Points of ``chain`` more than a pixel from ``fixed`` (the straight lines of :func:`_join_gaps`, where
    another shaft crosses and would pull them); None when there is nothing fixed."""
    return cKDTree(fixed).query(chain)[0] > 1.0 if len(fixed) else None


def _drop_hugging_chains(rows: list, smooth2d: np.ndarray, spacing: np.ndarray, params: TraceParams) -> list:
    """Drop dim chains (longest first kept) lying mostly within ``prune_length_um`` of a longer one.

    Such chains are loops closed by spine heads or spines along the shaft, not dendrites;
    they run through dim necks. A chain as bright as a shaft all along (10th percentile
    above background at least ``dim_path_fraction`` of the nearby kept shaft's median) is a
    second dendrite running alongside the first and is kept.
    """
    background = float(np.median(smooth2d))

    def profile(chain):
        return ndi.map_coordinates(smooth2d, chain.T, order=1, mode="nearest") - background

    kept: list = []
    for chain, arc in rows:
        if kept:
            others = np.concatenate([c for c, _ in kept])
            dist, idx = cKDTree(others * spacing).query(chain * spacing)
            close = dist <= params.prune_length_um
            if np.mean(close) > 0.7:
                reference = np.median(profile(others[idx[close]]))
                if np.percentile(profile(chain), 10) < params.dim_path_fraction * reference:
                    continue
        kept.append((chain, arc))
    return kept


def _follow_depth(profiles: np.ndarray, step_um: np.ndarray, z_step_um: float, params: TraceParams):
    """Plane index per point of the depth path that keeps to one shaft (dynamic programming).

    ``profiles`` (Z, n) are the smoothed intensities along z at the centreline points.
    The path maximises the summed normalised intensity minus ``lift_jump_cost`` per
    quarter plane it moves, moving at most ``lift_max_slope`` micrometres in z per
    micrometre of dendrite (but at least a quarter plane per centreline step); so where
    another dendrite crosses above or below (both overlap in the projection) the path
    stays on its own shaft instead of jumping to the brighter one.
    """
    fine = 4  # states on quarter planes
    zq = np.arange((profiles.shape[0] - 1) * fine + 1) / fine
    k0 = np.floor(zq).astype(int)
    k1 = np.minimum(k0 + 1, profiles.shape[0] - 1)
    w = (zq - k0)[:, None]
    values = (1 - w) * profiles[k0] + w * profiles[k1]  # (S, n)
    values = values - np.median(profiles)
    values = values / max(float(np.median(values.max(axis=0))), 1e-12)
    n_states, n = values.shape
    reach = np.maximum(1, np.round(params.lift_max_slope * step_um / z_step_um * fine)).astype(int)
    total = values[:, 0].copy()
    back = np.zeros((n_states, n), np.int32)
    states = np.arange(n_states)
    for i in range(1, n):
        r = int(reach[i - 1])
        best = np.full(n_states, -np.inf)
        arg = states.copy()
        for move in range(-r, r + 1):
            src = states - move
            ok = (src >= 0) & (src < n_states)
            cand = np.full(n_states, -np.inf)
            cand[ok] = total[src[ok]] - params.lift_jump_cost * abs(move)
            better = cand > best
            best[better] = cand[better]
            arg[better] = src[better]
        total = best + values[:, i]
        back[:, i] = arg
    path = np.zeros(n, int)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[path[i], i]
    return zq[path]


def _smooth_stack(stack: np.ndarray, spacing_um: tuple[float, ...], radius_um: float) -> np.ndarray:
    """The stack smoothed for following shafts in depth (a shaft radius laterally, half a plane axially)."""
    z_step, py, px = spacing_um
    return ndi.gaussian_filter(stack, (max(0.5, 0.5 / z_step), radius_um / py, radius_um / px))


def _lift_to_3d(
    stack: np.ndarray,
    yx: np.ndarray,
    spacing_um: tuple[float, ...],
    radius_um: float,
    params: TraceParams,
    smooth: np.ndarray | None = None,
) -> np.ndarray:
    """z (planes, sub-plane) of the shaft centre at each centreline point of a stack.

    The shaft is followed in depth by :func:`_follow_depth`; each point then takes the
    local maximum of its axial profile nearest that path (parabolic sub-plane refinement).
    ``smooth`` is :func:`_smooth_stack` of ``stack`` when already computed.
    """
    z_step, py, px = spacing_um
    smooth = _smooth_stack(stack, spacing_um, radius_um) if smooth is None else smooth
    iy = np.clip(np.round(yx[:, 0]).astype(int), 0, stack.shape[1] - 1)
    ix = np.clip(np.round(yx[:, 1]).astype(int), 0, stack.shape[2] - 1)
    profiles = smooth[:, iy, ix]  # (Z, n)
    step_um = np.linalg.norm(np.diff(yx, axis=0) * np.array([py, px]), axis=1)
    guide = _follow_depth(profiles, step_um, z_step, params) if len(yx) > 1 else None
    if guide is None:
        k = np.argmax(profiles, axis=0)
    else:
        # climb from the guide to the nearest local maximum of each profile
        k = np.clip(np.round(guide).astype(int), 0, stack.shape[0] - 1)
        cols = np.arange(len(k))
        for _ in range(stack.shape[0]):
            up = np.minimum(k + 1, stack.shape[0] - 1)
            down = np.maximum(k - 1, 0)
            pu, pd, pk = profiles[up, cols], profiles[down, cols], profiles[k, cols]
            moved = np.where((pu > pk) & (pu >= pd), up, np.where(pd > pk, down, k))
            if np.array_equal(moved, k):
                break
            k = moved
    z = k.astype(float)
    inner = (k > 0) & (k < stack.shape[0] - 1)
    cols = np.flatnonzero(inner)
    left, mid, right = profiles[k[cols] - 1, cols], profiles[k[cols], cols], profiles[k[cols] + 1, cols]
    denom = left - 2 * mid + right
    safe = np.abs(denom) > 1e-12
    z[cols[safe]] += 0.5 * (left[safe] - right[safe]) / denom[safe]
    return z


def _projection(image: PreparedImage, params: TraceParams) -> tuple[np.ndarray, np.ndarray]:
    """Maximum projection of the 3D-smoothed stack (a plain maximum projection of noise is bright)
    and the plane of each maximum."""
    z_step, py, px = image.spacing_um
    radius = params.shaft_radius_um
    sigma = (max(0.5, 0.5 * radius / z_step), 0.5 * radius / py, 0.5 * radius / px)
    smooth = ndi.gaussian_filter(image.data, sigma)
    depth = smooth.argmax(axis=0)
    return np.take_along_axis(smooth, depth[None], axis=0)[0], depth


def trace_dendrites(image: PreparedImage, params: TraceParams = TraceParams()) -> DendriteTrace:
    """Trace the dendrites of an image or z-stack.

    Parameters
    ----------
    image : PreparedImage
        From :func:`imagingkit.spines.image.prepare_image`.
    params : TraceParams

    Returns
    -------
    DendriteTrace
        Possibly with no dendrites (blank or noise-only image).
    """
    data = image.data
    image2d, depth2d = _projection(image, params) if image.is_3d else (data, None)
    spacing2d = np.asarray(image.pixel_size_um, float)
    pixel_um = float(np.mean(spacing2d))
    mask = segment_shaft(image2d, pixel_um, params)
    radius_px = params.shaft_radius_um / pixel_um
    smooth2d = ndi.gaussian_filter(image2d, max(0.7, 0.5 * radius_px))
    centreline = pd.DataFrame({c: pd.Series(dtype=float) for c in CENTRELINE_COLUMNS})
    dendrites = pd.DataFrame({c: pd.Series(dtype=float) for c in DENDRITE_TRACE_COLUMNS})
    skeleton = morphology.skeletonize(mask)
    skel = skan.Skeleton(skeleton, spacing=tuple(spacing2d)) if skeleton.sum() > 2 else None
    skel = _prune(skel, params) if skel is not None else None
    if skel is not None:
        paths = _drop_dim_paths(_drop_junction_bridges(skel, params), smooth2d, spacing2d, params)
        z_step = image.spacing_um[0] if image.is_3d else 1.0
        if image.is_3d:
            paths = _drop_mixed_depth_bridges(paths, depth2d, spacing2d, z_step, params)
        chains = _chains(paths, _join_branches(paths, spacing2d, params, depth2d, z_step))
        bridges = [np.zeros((0, 2)) for _ in chains]
        if image.is_3d:
            chains, bridges = _join_gaps(chains, depth2d, spacing2d, z_step, params)
        rows = []
        for chain, bridge in zip(chains, bridges, strict=True):
            if len(chain) < 3:
                continue
            chain = ndi.gaussian_filter1d(chain, params.smooth_px, axis=0, mode="nearest")
            chain = _recentre(chain, smooth2d, radius_px, params.smooth_px, _away_from(chain, bridge))
            chain = _trim_ends(chain, spacing2d, params.end_trim_um)
            chain = _extend_ends(chain, smooth2d, spacing2d, params)
            chain = _recentre(chain, smooth2d, radius_px, params.smooth_px, _away_from(chain, bridge))
            for piece in _inside_pieces(chain, image2d.shape):
                piece = _orient(piece)
                arc = _arc_um(piece, spacing2d)
                if arc[-1] >= params.min_length_um:
                    rows.append((piece, arc))
        rows = _drop_hugging_chains(sorted(rows, key=lambda r: -r[1][-1]), smooth2d, spacing2d, params)
        frames = []
        smooth3d = _smooth_stack(data, image.spacing_um, params.shaft_radius_um) if image.is_3d else None
        for dendrite_id, (chain, arc) in enumerate(rows):
            z = np.full(len(chain), np.nan)
            if image.is_3d:
                lift = (image.spacing_um, params.shaft_radius_um, params, smooth3d)
                z = _lift_to_3d(data, chain, *lift)
                others = [c for k, (c, _) in enumerate(rows) if k != dendrite_id]
                if others and params.depth_recentre_um > 0:
                    # where another dendrite is near in the projection, recentre at this one's depth
                    gap = cKDTree(np.concatenate(others) * spacing2d).query(chain * spacing2d)[0]
                    near = gap < params.depth_recentre_um
                    if near.any():
                        chain = _recentre(chain, smooth3d, radius_px, params.smooth_px, near, depth=z)
                        chain = np.clip(chain, 0, np.asarray(image2d.shape) - 1)
                        z = _lift_to_3d(data, chain, *lift)
                z = ndi.gaussian_filter1d(z, 4 * params.smooth_px, mode="nearest")
                arc = _arc_um(np.column_stack([z, chain]), np.asarray(image.spacing_um))
            frames.append(
                pd.DataFrame(
                    {
                        "dendrite_id": dendrite_id,
                        "point": np.arange(len(chain)),
                        "y": chain[:, 0],
                        "x": chain[:, 1],
                        "z": z,
                        "arc_um": arc,
                    }
                )
            )
        if frames:
            centreline = pd.concat(frames, ignore_index=True)
            lengths = centreline.groupby("dendrite_id")["arc_um"].max()
            dendrites = pd.DataFrame(
                {
                    "dendrite_id": lengths.index.to_numpy(),
                    "length_um": lengths.to_numpy(),
                    "shaft_radius_um": np.nan,
                }
            )
    return DendriteTrace(
        centreline=centreline,
        dendrites=dendrites,
        shaft_mask=mask,
        spacing_um=image.spacing_um,
        shape=data.shape,
    )
