"""Link spines across sessions: a global assignment (LAP) with distance gating and gap closing.

Spine positions of every session are first mapped into the reference session's frame (the
cross-session registration), converted to micrometres, and each session's dendrites are matched
to the reference session's dendrites (nearest registered dendrite), with arc lengths re-expressed
along the reference dendrite. Linking is then solved by :class:`laptrack.LapTrack`
(Jaqaman et al. 2008): frame-to-frame linear assignment, then a second assignment that closes
gaps of up to ``max_gap_sessions`` missed sessions. Splitting and merging are off: one spine,
one track.

Linking cost between spines a and b (µm²)::

    cost = |p_a - p_b|² + (arc_weight * (arc_a - arc_b))²    if both map to the same dendrite
    cost = inf                                                  otherwise

where p are registered positions (y, x[, z]) in µm and arc the arc length along the reference
dendrite in µm. Links with ``cost > max_link_um²`` are forbidden (the gate).

Gap-closing links are gated more tightly (:func:`gap_gate_um`): at most ``gap_gate_scale``
times the median frame-to-frame link distance (the measured scatter of one spine between
sessions). A spine lost in session s and a new spine formed close by in s + 1 look exactly
like one spine missed once; the tight gate keeps only joins within that scatter.
Residual warp left by registration is removed by a local residual correction that is kept
only when it lowers the link cost (:func:`local_residuals`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from laptrack import LapTrack
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from imagingkit.errors import ParameterError, RegistrationError
from imagingkit.tracking.tables import standardize_spine_table

#: Offset (µm) put between dendrites in the feature space, so no link crosses dendrites.
_DENDRITE_SEPARATION_UM = 1.0e4
#: Offset of a dendrite that matches no reference dendrite: ids above it are session-local.
UNMATCHED_DENDRITE_BASE = 1_000_000


@dataclasses.dataclass(frozen=True)
class LinkParams:
    """Parameters of cross-session linking.

    Attributes
    ----------
    max_link_um : float
        Gate: largest linking cost, as a distance in µm (registered position plus weighted
        arc-length difference). Set it above the residual registration error plus localisation
        error, below the typical distance between neighbouring spines.
    arc_weight : float
        Weight (dimensionless) of the arc-length difference in the cost. 0 uses positions only.
        The arc term is used only when every spine has a finite ``arc_um``.
    max_gap_sessions : int
        Gap closing: a spine missed in up to this many consecutive sessions keeps its track.
        0 turns gap closing off.
    max_gap_link_um : float, optional
        Gate of gap-closing links, µm; None uses ``max_link_um``. Smaller values avoid joining
        a lost spine to a new spine formed close by two sessions later.
    refine_passes : int
        Local residual correction: after linking, each session's positions are shifted by the
        median residual (position minus the track's mean position in the other sessions) of
        its ``refine_neighbours`` nearest linked spines, then all sessions are linked again;
        repeated this many times. Removes smooth tissue warp that the registration left. The
        corrected linking is kept only if it links at least as many spines at a smaller
        median link distance than linking without correction. 0 turns it off.
    refine_neighbours : int
        Number of nearest linked spines whose residuals are pooled for one correction.
    coarse_link_um : float, optional
        Gate (µm) of the first linking pass when ``refine_passes > 0``: wider than
        ``max_link_um`` so that spines displaced by warp are linked, then corrected and
        relinked with the tight gate. None uses ``max_link_um``.
    gap_gate_scale : float, optional
        Adaptive gap gate: gap-closing links must also be shorter than this many times the
        median distance of the frame-to-frame links (the measured scatter of one spine's
        position between sessions), see :func:`gap_gate_um`. None: fixed ``max_gap_link_um``.
    dendrite_gating : bool
        Forbid links between spines whose dendrites map to different reference dendrites.
    min_match_fraction : float
        Overlap check (:func:`check_overlap`): a session is registered if a chain of sessions
        links it to the reference, each pair sharing at least this fraction of either's spines
        within ``max_link_um``; otherwise it is reported as not registered (different field of
        view) with :class:`~imagingkit.errors.RegistrationError`.
    """

    max_link_um: float = 1.5
    arc_weight: float = 1.0
    max_gap_sessions: int = 1
    max_gap_link_um: float | None = 0.8
    refine_passes: int = 2
    refine_neighbours: int = 8
    coarse_link_um: float | None = 2.5
    gap_gate_scale: float | None = 1.5
    dendrite_gating: bool = True
    min_match_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.max_link_um > 0:
            raise ParameterError(f"max_link_um must be > 0 µm, got {self.max_link_um}")
        if self.arc_weight < 0:
            raise ParameterError(f"arc_weight must be >= 0, got {self.arc_weight}")
        if self.max_gap_sessions < 0:
            raise ParameterError(f"max_gap_sessions must be >= 0, got {self.max_gap_sessions}")
        if not 0 <= self.min_match_fraction <= 1:
            raise ParameterError(f"min_match_fraction must be in [0, 1], got {self.min_match_fraction}")


PointMapper = Callable[[np.ndarray], np.ndarray]


def as_point_mapper(transform: Any, to: str = "reference") -> PointMapper:
    """Turn a registration result into a function mapping (N, 2) (y, x) pixel arrays.

    ``transform`` is ``None`` (identity), a callable, or an object with
    ``map_points(points_yx, to=...)`` such as the ``SessionTransform`` of
    :func:`imagingkit.motion.register_sessions`.
    """
    if transform is None:
        return lambda p: np.asarray(p, float)
    if hasattr(transform, "map_points"):
        return lambda p: np.asarray(transform.map_points(np.asarray(p, float), to=to), float)
    if callable(transform):
        return lambda p: np.asarray(transform(np.asarray(p, float)), float)
    raise ParameterError(
        f"a session transform must be None, callable or have map_points(), got {transform!r}"
    )


def collect_detections(
    tables: Sequence[pd.DataFrame],
    to_reference: Sequence[Any] | None,
    pixel_size_um: float,
    z_step_um: float = 1.0,
    map_z: bool = False,
) -> pd.DataFrame:
    """Stack the sessions' spine tables with positions in the reference frame.

    Parameters
    ----------
    tables : sequence of DataFrame
        One spine table per session (see :func:`standardize_spine_table`), pixels in that
        session's frame.
    to_reference : sequence, optional
        Per session, what maps session (y, x) pixels to reference pixels (see
        :func:`as_point_mapper`); ``None`` means the tables are already registered.
    pixel_size_um : float
        Pixel size in the plane, µm.
    z_step_um : float
        Plane spacing, µm (``z`` is a plane index).
    map_z : bool
        z-stacks: map (y, x, z) through the transforms (which then take (N, 3) points);
        otherwise z is kept as given.

    Returns
    -------
    DataFrame
        ``session, det_index, spine_id, y, x, z`` (reference-frame pixels), ``y_um, x_um, z_um``,
        ``dendrite_id, arc_um, intensity_ratio``.
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ParameterError(f"pixel_size_um must be a positive number of µm, got {pixel_size_um}")
    if to_reference is not None and len(to_reference) != len(tables):
        raise ParameterError(f"{len(tables)} spine tables but {len(to_reference)} transforms")
    parts = []
    for session, table in enumerate(tables):
        table = standardize_spine_table(table, name=f"spine table of session {session}")
        mapper = as_point_mapper(None if to_reference is None else to_reference[session])
        yx = table[["y", "x", "z"] if map_z else ["y", "x"]].to_numpy(float)
        yx_ref = mapper(yx) if len(yx) else yx.copy()
        if yx_ref.shape != yx.shape or not np.all(np.isfinite(yx_ref)):
            raise RegistrationError(
                f"session {session}: the transform did not map spine positions to finite points"
            )
        z_ref = yx_ref[:, 2] if map_z else table["z"].to_numpy(float)
        parts.append(
            pd.DataFrame(
                {
                    "session": session,
                    "det_index": np.arange(len(table)),
                    "spine_id": table["spine_id"].to_numpy(),
                    "y": yx_ref[:, 0],
                    "x": yx_ref[:, 1],
                    "z": z_ref,
                    "y_um": yx_ref[:, 0] * pixel_size_um,
                    "x_um": yx_ref[:, 1] * pixel_size_um,
                    "z_um": z_ref * z_step_um,
                    "dendrite_id": table["dendrite_id"].to_numpy(int),
                    "arc_um": table["arc_um"].to_numpy(float),
                    "intensity_ratio": table["intensity_ratio"].to_numpy(float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _positions_um(det: pd.DataFrame) -> np.ndarray:
    return det[["y_um", "x_um", "z_um"]].to_numpy(float)


def _match_fraction(points_um: np.ndarray, tree: cKDTree, gate_um: float) -> float:
    """Fraction of ``points_um`` with a point of ``tree`` within ``gate_um``."""
    return float(np.mean(tree.query(points_um, k=1)[0] <= gate_um))


def check_overlap(detections: pd.DataFrame, reference_session: int, params: LinkParams) -> pd.Series:
    """Fraction of each session's spines with a reference-session spine within the gate.

    A session counts as registered when a chain of sessions links it to the reference, each
    pair in the chain with at least ``params.min_match_fraction`` of one session's spines
    within ``params.max_link_um`` of the other's (reference frame). A chain, not the reference
    alone: spines form and vanish, so a session days after the reference shares fewer spines
    with it than one hours after it (in a small simulated stack with 10 % missed detections,
    47 % of the 48-h session's spines lay near a reference spine, against 75-92 % between
    consecutive sessions), while a session of another field of view, or a wrongly registered
    one, matches no session of the field. Either direction is enough (a session may hold fewer
    spines than the other), so every session the reference alone accepted is accepted. Sessions
    with fewer than 10 spines are not checked.

    Returns
    -------
    Series
        ``match_fraction`` per session: the fraction of its spines within the gate of a
        reference-session spine (NaN without spines).

    Raises
    ------
    RegistrationError
        A session (with at least 10 spines, like the reference) is linked to the reference
        by no such chain: its field of view does not match, or registration failed.
    """
    points = {int(s): _positions_um(d) for s, d in detections.groupby("session") if len(d)}
    trees = {s: cKDTree(p) for s, p in points.items()}
    fractions = pd.Series(
        {
            int(s): _match_fraction(points[s], trees[reference_session], params.max_link_um)
            if s in points and reference_session in trees
            else np.nan
            for s in detections["session"].unique()
        },
        name="match_fraction",
        dtype=float,
    ).sort_index()
    checked = sorted(s for s, p in points.items() if len(p) >= 10)
    if reference_session not in checked:
        return fractions
    pair = {
        (a, b): max(
            _match_fraction(points[a], trees[b], params.max_link_um),
            _match_fraction(points[b], trees[a], params.max_link_um),
        )
        for i, a in enumerate(checked)
        for b in checked[i + 1 :]
    }
    linked, frontier = {reference_session}, [reference_session]
    while frontier:
        a = frontier.pop()
        for b in checked:
            if b not in linked and pair[min(a, b), max(a, b)] >= params.min_match_fraction:
                linked.add(b)
                frontier.append(b)
    for session in checked:
        if session not in linked:
            best = max(linked, key=lambda other: pair[min(session, other), max(session, other)])
            raise RegistrationError(
                f"session {session}: no session registered to the reference shares {params.min_match_fraction:.0%} "
                f"of the spines with it within {params.max_link_um} µm after registration (best: session {best}, "
                f"{pair[min(session, best), max(session, best)]:.0%}); different field of view or failed registration"
            )
    return fractions


def align_dendrites(
    detections: pd.DataFrame,
    reference_session: int,
    max_dist_um: float,
    n_local: int = 5,
    min_share: float = 0.2,
) -> pd.DataFrame:
    """Map each session's dendrites to the reference session's and re-express arc lengths.

    Tracings differ between sessions: a dendrite traced in one piece in one session can be two
    pieces in another, or joined to a crossing dendrite. The mapping is therefore local. Every
    spine of session s with a reference-session spine within ``max_dist_um`` (registered) forms
    a pair. The reference dendrites a session dendrite follows are those of at least
    ``min_share`` of its pairs (and 3): a tracing joined to a crossing dendrite follows two.
    Each spine takes the reference dendrite of most of its ``n_local`` nearest pairs along the
    tracing (arc length); this cuts a session dendrite into pieces, one per reference dendrite. On each piece arc lengths are mapped as
    ``arc_ref = sign * arc + offset`` (``sign`` from the correlation of the piece's pairs,
    ``offset`` the median of their differences), so tracings that start at a different end or
    point, split or merge still compare. A session dendrite with no pair gets a new id above
    :data:`UNMATCHED_DENDRITE_BASE` and keeps its arc lengths.

    Returns
    -------
    DataFrame
        A copy with ``ref_dendrite_id`` and ``arc_ref_um`` added.
    """
    out = detections.copy()
    ref_dendrite_out = out["dendrite_id"].to_numpy(int).copy()
    arc_out = out["arc_um"].to_numpy(float).copy()
    ref = detections[detections["session"] == reference_session]
    if len(ref) == 0:
        out["ref_dendrite_id"], out["arc_ref_um"] = ref_dendrite_out, arc_out
        return out
    ref_dend = ref["dendrite_id"].to_numpy(int)
    ref_arc = ref["arc_um"].to_numpy(float)
    positions = _positions_um(detections)
    dist_all, idx_all = cKDTree(_positions_um(ref)).query(positions, k=1)
    arcs = detections["arc_um"].to_numpy(float)
    for (session, dendrite), rows in detections.groupby(["session", "dendrite_id"]).indices.items():
        if session == reference_session:
            continue
        near = (dist_all[rows] <= max_dist_um) & np.isfinite(arcs[rows]) & np.isfinite(ref_arc[idx_all[rows]])
        if not near.any():
            ref_dendrite_out[rows] = UNMATCHED_DENDRITE_BASE + 1000 * int(session) + int(dendrite)
            continue
        pairs = rows[near]
        target, a, b = ref_dend[idx_all[pairs]], arcs[pairs], ref_arc[idx_all[pairs]]
        values, counts = np.unique(target, return_counts=True)
        # a reference dendrite this tracing follows: enough pairs, not a few next to a crossing
        kept = values[counts >= max(3, min_share * len(pairs))]
        kept = kept if len(kept) else values[[np.argmax(counts)]]
        use = np.isin(target, kept)
        target, a, b = target[use], a[use], b[use]
        sign = {t: _arc_sign(a[target == t], b[target == t]) for t in kept}
        offset = {t: float(np.median(b[target == t] - sign[t] * a[target == t])) for t in kept}
        # each spine takes the reference dendrite of most of its nearest pairs along the tracing
        k = min(n_local, len(a))
        _, local = cKDTree(a[:, None]).query(arcs[rows][:, None], k=k)
        local = np.asarray(local).reshape(len(rows), -1)
        for i, row in enumerate(rows):
            votes, n = np.unique(target[local[i]], return_counts=True)
            t = int(votes[np.argmax(n)])
            ref_dendrite_out[row] = t
            arc_out[row] = sign[t] * arcs[row] + offset[t]
    out["ref_dendrite_id"], out["arc_ref_um"] = ref_dendrite_out, arc_out
    return out


def _arc_sign(a: np.ndarray, b: np.ndarray) -> float:
    """+1 if two arc-length scales of matched spines increase together, -1 if opposite."""
    if len(a) >= 3 and np.std(a) > 0 and np.std(b) > 0:
        return 1.0 if np.corrcoef(a, b)[0, 1] >= 0 else -1.0
    return 1.0


def _features(det: pd.DataFrame, params: LinkParams, use_arc: bool) -> np.ndarray:
    columns = [det["y_um"], det["x_um"], det["z_um"]]
    if use_arc:
        columns.append(params.arc_weight * det["arc_ref_um"])
    if params.dendrite_gating:
        codes = pd.factorize(det["ref_dendrite_id"])[0] if len(det) else np.zeros(0)
        columns.append(pd.Series(codes * _DENDRITE_SEPARATION_UM, index=det.index))
    return (
        np.column_stack([np.asarray(c, float) for c in columns]) if len(det) else np.zeros((0, len(columns)))
    )


def link_detections(
    detections: pd.DataFrame, n_sessions: int, params: LinkParams = LinkParams()
) -> pd.DataFrame:
    """Assign a ``track_id`` to every detection by global assignment with gap closing.

    Parameters
    ----------
    detections : DataFrame
        From :func:`collect_detections` then :func:`align_dendrites` (``session, y_um, x_um,
        z_um, ref_dendrite_id, arc_ref_um``).
    n_sessions : int
        Number of sessions (sessions without spines are allowed).
    params : LinkParams

    Returns
    -------
    DataFrame
        A copy with an int ``track_id`` (0..n_tracks-1, ordered by first session then
        position); each track has at most one detection per session.
    """
    det = detections.copy()
    if "ref_dendrite_id" not in det.columns:
        det["ref_dendrite_id"] = det["dendrite_id"]
        det["arc_ref_um"] = det["arc_um"]
    use_arc = params.arc_weight > 0 and bool(np.all(np.isfinite(det["arc_ref_um"].to_numpy(float))))
    features = _features(det, params, use_arc)
    sessions = det["session"].to_numpy(int)
    track_of_row = _link_once(features, sessions, n_sessions, params)
    if params.refine_passes > 0 and len(det):
        track_of_row = _refine(features, sessions, n_sessions, params, track_of_row)
    det["track_id"] = track_of_row
    if len(det) == 0:
        return det
    # renumber: by first session, then y, then x (deterministic, readable)
    first = det.groupby("track_id").agg(first=("session", "min"), y=("y", "mean"), x=("x", "mean"))
    order = first.sort_values(["first", "y", "x"]).index.to_numpy()
    renumber = pd.Series(np.arange(len(order)), index=order)
    det["track_id"] = renumber.loc[det["track_id"].to_numpy()].to_numpy()
    if det.duplicated(["track_id", "session"]).any():  # cannot happen without splitting/merging
        raise RuntimeError("laptrack returned a track with two spines in one session")
    return det


def _link_cost(labels: np.ndarray, features: np.ndarray, sessions: np.ndarray) -> tuple[int, float]:
    """(number of frame-to-frame links, their median distance µm): how well a linking fits."""
    distances = link_distances(labels, features, sessions)
    return len(distances), float(np.median(distances)) if len(distances) else np.inf


def _refine(
    features: np.ndarray, sessions: np.ndarray, n_sessions: int, params: LinkParams, plain: np.ndarray
) -> np.ndarray:
    """Warp correction: link with the coarse gate, subtract local residuals, relink; keep if better.

    The corrected linking replaces the plain one (``plain``, linked without correction) only
    if it makes at least as many frame-to-frame links with a smaller median link distance
    (measured on the corrected positions): without residual warp the correction only adds
    the noise of the local medians and is left out.
    """
    coarse = params
    if params.coarse_link_um is not None:
        coarse = dataclasses.replace(params, max_link_um=params.coarse_link_um, max_gap_link_um=None)
    labels = _link_once(features, sessions, n_sessions, coarse)
    corrected = features
    for _ in range(params.refine_passes):
        shift = local_residuals(features[:, :3], labels, sessions, params.refine_neighbours)
        corrected = features.copy()
        corrected[:, :3] -= shift
        labels = _link_once(corrected, sessions, n_sessions, params)
    n_plain, cost_plain = _link_cost(plain, features, sessions)
    n_refined, cost_refined = _link_cost(labels, corrected, sessions)
    return labels if (n_refined >= n_plain and cost_refined < cost_plain) else plain


def _link_once(features: np.ndarray, sessions: np.ndarray, n_sessions: int, params: LinkParams) -> np.ndarray:
    labels = _link_frames(_tracker(params), features, sessions, n_sessions)
    if params.max_gap_sessions > 0 and len(labels):
        labels = close_gaps(
            labels,
            features,
            sessions,
            params.max_gap_sessions,
            gap_gate_um(labels, features, sessions, params),
        )
    return labels


def link_distances(labels: np.ndarray, features: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Feature-space distance (µm) of every link between consecutive sessions of one track."""
    order = np.lexsort((sessions, labels))
    same = (labels[order][1:] == labels[order][:-1]) & (np.diff(sessions[order]) == 1)
    a, b = order[:-1][same], order[1:][same]
    return np.linalg.norm(features[a] - features[b], axis=1)


def gap_gate_um(labels: np.ndarray, features: np.ndarray, sessions: np.ndarray, params: LinkParams) -> float:
    """Gate of gap-closing links: ``min(max_gap_link_um, gap_gate_scale * median link distance)``.

    The median distance of the frame-to-frame links measures how far one spine's detections
    scatter between sessions (localisation plus residual registration error); a gap link
    farther than that scatter allows is more likely a lost spine and a new one formed close by.
    """
    gate = params.max_link_um if params.max_gap_link_um is None else params.max_gap_link_um
    if params.gap_gate_scale is None:
        return float(gate)
    distances = link_distances(labels, features, sessions)
    if len(distances) < 20:
        return float(gate)
    return float(min(gate, params.gap_gate_scale * np.median(distances)))


def local_residuals(positions_um: np.ndarray, labels: np.ndarray, sessions: np.ndarray, k: int) -> np.ndarray:
    """Smooth per-session residual displacement of linked spines, evaluated at every spine.

    The residual of a linked spine in session s is its position minus the mean position of
    its track in the other sessions. For every spine of session s, the correction is the
    median residual of the ``k`` nearest linked spines of session s (a local, outlier-robust
    estimate of the warp left by registration). Spines of sessions with fewer than ``k``
    linked spines get no correction.

    Returns
    -------
    ndarray, shape (N, 3)
        Displacement (µm) to subtract from each spine's position.
    """
    shift = np.zeros_like(positions_um)
    frame = pd.DataFrame(positions_um, columns=["p0", "p1", "p2"])
    frame["label"], frame["session"] = labels, sessions
    sums = frame.groupby("label")[["p0", "p1", "p2"]].transform("sum").to_numpy()
    counts = frame.groupby("label")["p0"].transform("size").to_numpy()[:, None]
    linked = counts[:, 0] > 1
    residual = np.zeros_like(positions_um)
    residual[linked] = positions_um[linked] - (sums[linked] - positions_um[linked]) / (counts[linked] - 1)
    for session in np.unique(sessions):
        rows = np.flatnonzero(sessions == session)
        source = rows[linked[rows]]
        if len(source) < k:
            continue
        _, idx = cKDTree(positions_um[source]).query(positions_um[rows], k=k)
        shift[rows] = np.median(residual[source][idx], axis=1)
    return shift


def _tracker(params: LinkParams) -> LapTrack:
    cutoff = float(params.max_link_um) ** 2
    return LapTrack(
        metric="sqeuclidean",
        cutoff=cutoff,
        gap_closing_cutoff=False,  # done by close_gaps (laptrack's candidate search is O(n) pandas per segment)
        splitting_cutoff=False,
        merging_cutoff=False,
        # costs of ending / starting a track: any gated link is preferred to none
        track_start_cost=cutoff,
        track_end_cost=cutoff,
    )


def _link_frames(
    tracker: LapTrack, features: np.ndarray, sessions: np.ndarray, n_sessions: int
) -> np.ndarray:
    """Segment labels (0..n-1) from frame-to-frame linking by laptrack."""
    rows_by_session = [np.flatnonzero(sessions == s) for s in range(n_sessions)]
    coords = [features[rows] for rows in rows_by_session]
    labels = np.full(len(features), -1)
    if len(features) == 0:
        return labels
    tree = tracker.predict(coords)
    for label, nodes in enumerate(nx.weakly_connected_components(tree)):
        for frame, index in nodes:
            labels[rows_by_session[frame][index]] = label
    return labels


def close_gaps(
    labels: np.ndarray, features: np.ndarray, sessions: np.ndarray, max_gap_sessions: int, gate_um: float
) -> np.ndarray:
    """Join track segments across up to ``max_gap_sessions`` missed sessions by linear assignment.

    The second step of Jaqaman et al. (2008): candidates are (segment end, segment start)
    pairs whose sessions differ by 2 .. ``max_gap_sessions + 1`` and whose feature distance
    is <= ``gate_um``; cost is the squared distance. The assignment is solved exactly with
    :func:`scipy.optimize.linear_sum_assignment` on each connected block of candidates,
    maximising the number of joins, then minimising total cost.

    Returns
    -------
    ndarray
        New labels: joined segments share the label of their earliest segment.
    """
    seg = pd.DataFrame({"label": labels, "session": sessions, "row": np.arange(len(labels))})
    seg = seg.sort_values(["label", "session"])
    first = seg.groupby("label").first()
    last = seg.groupby("label").last()
    tree_end = cKDTree(features[last["row"].to_numpy()])
    tree_start = cKDTree(features[first["row"].to_numpy()])
    pairs = tree_end.sparse_distance_matrix(tree_start, gate_um, output_type="ndarray")
    if len(pairs) == 0:
        return labels
    i, j, dist = pairs["i"], pairs["j"], pairs["v"]
    diff = first["session"].to_numpy()[j] - last["session"].to_numpy()[i]
    ok = (diff >= 2) & (diff <= max_gap_sessions + 1)
    i, j, cost = i[ok], j[ok], dist[ok] ** 2
    if len(i) == 0:
        return labels
    n_end, n_start = len(last), len(first)
    graph = coo_matrix((np.ones(len(i)), (i, n_end + j)), shape=(n_end + n_start, n_end + n_start))
    _, component = connected_components(graph, directed=False)
    forbidden = 1.0 + len(i) * (gate_um**2 + 1.0)  # above any sum of real costs: joins come first
    parent = np.arange(n_end)  # segment index -> segment index it continues from
    for comp in np.unique(component[i]):
        sel = component[i] == comp
        rows, row_idx = np.unique(i[sel], return_inverse=True)
        cols, col_idx = np.unique(j[sel], return_inverse=True)
        matrix = np.full((len(rows), len(cols)), forbidden)
        matrix[row_idx, col_idx] = cost[sel]
        r, c = linear_sum_assignment(matrix)
        real = matrix[r, c] < forbidden
        parent[cols[c[real]]] = rows[r[real]]  # start segment cols[c] continues end segment rows[r]
    # follow chains back to their root segment (segments are indexed in label order)
    seg_labels = last.index.to_numpy()
    root = np.arange(n_end)
    for _ in range(max(1, n_end)):
        nxt = parent[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    mapping = dict(zip(seg_labels, seg_labels[root], strict=False))
    return np.array([mapping[v] for v in labels])
