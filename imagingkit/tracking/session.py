"""Track spines across sessions end to end: register, detect if needed, link, classify, count.

:func:`track_spines` is the pure core (spine tables + point mappings in, tables out);
:func:`track_sessions` adds cross-session registration (:mod:`imagingkit.motion`) and spine
detection (:mod:`imagingkit.spines`) for sessions given as images.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, ParameterError, RegistrationError
from imagingkit.tracking.bootstrap import BootstrapParams, bootstrap_turnover
from imagingkit.tracking.fates import FateParams, build_tracks, classify_fates, view_checker
from imagingkit.tracking.likeness import measure_likeness, patch_radius_px, sample_patches
from imagingkit.tracking.link import (
    LinkParams,
    align_dendrites,
    as_point_mapper,
    check_overlap,
    collect_detections,
    link_detections,
)
from imagingkit.tracking.presence import decide_presence
from imagingkit.tracking.recheck import (
    RecheckParams,
    confirm_absences,
    detach_outliers,
    discover_spines,
    evidence_at,
    evidence_here,
    evidence_map,
    join_fragments,
    judge_absences,
    measure_evidence,
    missed_spines,
    peaks_only,
    place_map,
    refinding_pays,
    refound_fraction,
    split_jumps,
)
from imagingkit.tracking.turnover import cohort_survival, compute_turnover, dendrite_lengths


@dataclasses.dataclass(frozen=True)
class TrackingParams:
    """Parameters of :func:`track_spines` / :func:`track_sessions`.

    Attributes
    ----------
    pixel_size_um : float, optional
        Lateral pixel size, µm. Required (from here or from the images' metadata).
    z_step_um : float
        Plane spacing of z-stacks, µm.
    reference_index : int
        Session whose frame the coordinates are reported in (registration target).
        Statistics always use session 0 as baseline.
    link, fates, bootstrap : LinkParams, FateParams, BootstrapParams
        Gap closing must bridge the absences the loss rule calls gaps:
        ``link.max_gap_sessions >= fates.loss_min_sessions - 1``.
    recheck : RecheckParams
        Checking absences on the session images (when images are given), see
        :mod:`imagingkit.tracking.recheck`.
    """

    pixel_size_um: float | None = None
    z_step_um: float = 1.0
    reference_index: int = 0
    link: LinkParams = LinkParams()
    fates: FateParams = FateParams()
    bootstrap: BootstrapParams = BootstrapParams()
    recheck: RecheckParams = RecheckParams()

    def __post_init__(self) -> None:
        if self.link.max_gap_sessions < self.fates.loss_min_sessions - 1:
            raise ParameterError(
                f"link.max_gap_sessions={self.link.max_gap_sessions} cannot bridge the gaps of "
                f"loss_min_sessions={self.fates.loss_min_sessions}; need >= {self.fates.loss_min_sessions - 1}"
            )
        if self.pixel_size_um is not None and not self.pixel_size_um > 0:
            raise ParameterError(f"pixel_size_um must be > 0 µm, got {self.pixel_size_um}")


@dataclasses.dataclass(frozen=True)
class TrackingResult:
    """Output of :func:`track_spines`.

    Attributes
    ----------
    tracks : DataFrame
        One row per track per session (``track_id, session, spine_id, y, x, z, present, fate``
        first; coordinates in the reference session's pixels), see :mod:`.fates`; with the
        image check also ``evidence``, ``refound``, ``discovered`` and ``absence_confirmed``
        (:mod:`.recheck`).
    turnover : DataFrame
        Pooled statistics per session, see :mod:`.turnover`.
    turnover_by_dendrite : DataFrame
        The same per reference dendrite.
    turnover_ci : DataFrame
        Bootstrap intervals across dendrites (or ``bootstrap.group_col``), long format.
    cohorts : DataFrame
        Survival of new spines by cohort.
    detections : DataFrame
        Every input spine with its registered position, reference dendrite and ``track_id``.
    match_fraction : Series
        Per session, fraction of spines near a reference-session spine (registration check).
    times_h : ndarray
    params : TrackingParams
    refound_fraction : float
        Of the absences the image check judged after the first linking, the fraction it re-found
        (:func:`.recheck.refound_fraction`): near 0 for a complete input, a tenth or more where the
        tables miss spines. NaN without the image check.
    """

    tracks: pd.DataFrame
    turnover: pd.DataFrame
    turnover_by_dendrite: pd.DataFrame
    turnover_ci: pd.DataFrame
    cohorts: pd.DataFrame
    detections: pd.DataFrame
    match_fraction: pd.Series
    times_h: np.ndarray
    params: TrackingParams
    refound_fraction: float = np.nan


TRACK_COLUMNS = ("track_id", "session", "spine_id", "y", "x", "z", "present", "fate")


def validate_times(times_h: Sequence[float] | None, n_sessions: int) -> np.ndarray:
    """Session times (hours) as an array; default 0, 1, 2... Checks count and strict increase."""
    if n_sessions < 2:
        raise DataError(f"spine tracking needs at least 2 sessions, got {n_sessions}")
    if times_h is None:
        return np.arange(n_sessions, dtype=float)
    times = np.asarray(times_h, dtype=float).ravel()
    if len(times) != n_sessions:
        raise ParameterError(f"times_h has {len(times)} values for {n_sessions} sessions")
    if not np.all(np.isfinite(times)):
        raise ParameterError(f"times_h must be finite numbers of hours, got {times.tolist()}")
    if np.any(np.diff(times) <= 0):
        raise ParameterError(f"times_h must be strictly increasing (session order), got {times.tolist()}")
    return times


def _ordered_tracks(tracks: pd.DataFrame) -> pd.DataFrame:
    rest = [c for c in tracks.columns if c not in TRACK_COLUMNS]
    return tracks[list(TRACK_COLUMNS) + rest]


def summarize(
    tracks: pd.DataFrame,
    times_h: Sequence[float],
    bootstrap: BootstrapParams = BootstrapParams(),
    dendrite_length_um: Mapping[int, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """All statistics of a (possibly reviewed) track table.

    Returns
    -------
    dict
        ``turnover``, ``turnover_by_dendrite``, ``turnover_ci``, ``cohorts`` tables.
    """
    lengths = dendrite_lengths(tracks, dendrite_length_um).to_dict()
    return {
        "turnover": compute_turnover(tracks, times_h, lengths),
        "turnover_by_dendrite": compute_turnover(tracks, times_h, lengths, group_col="dendrite_id"),
        "turnover_ci": bootstrap_turnover(tracks, bootstrap, lengths),
        "cohorts": cohort_survival(tracks, times_h),
    }


def track_spines(
    tables: Sequence[pd.DataFrame],
    times_h: Sequence[float] | None = None,
    params: TrackingParams = TrackingParams(),
    transforms: Sequence[Any] | None = None,
    image_shapes: Sequence[Sequence[int]] | None = None,
    dendrite_length_um: Mapping[int, float] | None = None,
    images: Sequence[np.ndarray] | None = None,
    traces: Sequence[Any] | None = None,
    spine_params: Any = None,
    detector_tables: Sequence[pd.DataFrame | None] | None = None,
) -> TrackingResult:
    """Link spine tables across sessions, classify fates and compute turnover statistics.

    Parameters
    ----------
    tables : sequence of DataFrame
        One spine table per session (``spine_id, y, x`` required; ``z, dendrite_id, arc_um,
        intensity_ratio`` used when present), pixels in that session's frame.
    times_h : sequence of float, optional
        Session times, hours, strictly increasing; default 0, 1, 2...
    params : TrackingParams
        ``pixel_size_um`` is required.
    transforms : sequence, optional
        Per session, the mapping between session and reference pixels: a
        ``SessionTransform`` (``map_points(points, to="reference"|"session")``), or a pair
        ``(to_reference, to_session)`` of callables; None: tables already registered.
    image_shapes : sequence of tuple, optional
        Per session image shape; enables the ``out_of_view`` state (positions outside the
        image or within ``fates.edge_margin_um`` of its border).
    dendrite_length_um : mapping, optional
        Reference dendrite id -> length (µm) for densities.
    images : sequence of ndarray, optional
        Per session image (the one the table was detected on). With ``params.recheck.enabled``
        every absence of a track is checked on the image (:mod:`.recheck`): missed spines
        are re-found, absences confirmed. Needs ``image_shapes`` (or takes them from here).
    traces : sequence, optional
        Per session dendrite trace of that image (``SpineResult.trace``, or None to trace again).
    spine_params : imagingkit.spines.SpineParams, optional
        Detection parameters (their thresholds scale the evidence of the image check).
    detector_tables : sequence of DataFrame or None, optional
        Per session, the spine detector's table of that image when already at hand (None:
        detected here when needed). Spines that no input table holds are discovered among them
        where the tables are incomplete (:mod:`.recheck`, step 3).

    Returns
    -------
    TrackingResult

    Raises
    ------
    DataError
        Fewer than 2 sessions, a table with missing columns.
    ParameterError
        Bad times or parameters.
    RegistrationError
        A session's spines do not overlap the reference's after registration.
    """
    n_sessions = len(tables)
    times = validate_times(times_h, n_sessions)
    if params.pixel_size_um is None:
        raise ParameterError(
            "pixel_size_um is needed to link spines in micrometres (TrackingParams.pixel_size_um)"
        )
    if not 0 <= params.reference_index < n_sessions:
        raise ParameterError(
            f"reference_index {params.reference_index} out of range for {n_sessions} sessions"
        )
    to_reference, to_session = _split_transforms(transforms, n_sessions)
    if images is not None:
        if len(images) != n_sessions:
            raise ParameterError(f"{len(images)} images for {n_sessions} sessions")
        image_shapes = image_shapes if image_shapes is not None else [np.shape(img) for img in images]
    stacks = image_shapes is not None and all(len(shape) == 3 for shape in image_shapes)
    det = collect_detections(tables, to_reference, params.pixel_size_um, params.z_step_um, map_z=stacks)
    det["z_um"] = det["z_um"].fillna(0.0)
    match = check_overlap(det, params.reference_index, params.link)
    det = align_dendrites(det, params.reference_index, params.link.max_link_um)
    in_view, fraction = None, np.nan
    if image_shapes is not None:
        if len(image_shapes) != n_sessions:
            raise ParameterError(f"{len(image_shapes)} image shapes for {n_sessions} sessions")
        margin_px = params.fates.edge_margin_um / params.pixel_size_um
        in_view = view_checker(to_session, image_shapes, margin_px)
    linked = link_detections(det, n_sessions, params.link)
    tracks = classify_fates(build_tracks(linked, n_sessions, times, in_view), params.fates)
    if images is not None and params.recheck.enabled:
        traces = list(traces) if traces is not None else [None] * n_sessions  # filled where traced
        evidence = _evidence_on_images(images, traces, to_session, params, spine_params)

        # the detector's spines, reference frame (discovery, presence model), computed once
        @functools.cache
        def candidates() -> list[np.ndarray]:
            found = _detector_tables(images, params, spine_params, detector_tables, traces)
            return _candidates_in_reference(found, to_reference, stacks)

        if stacks and not params.recheck.discover_in_stacks:
            candidates = None

        z_step = params.z_step_um if stacks else None
        linked, tracks, fraction = _check_on_images(
            det, linked, tracks, evidence, n_sessions, times, in_view, params, candidates, z_step
        )
    tracks = _ordered_tracks(tracks)
    stats = summarize(tracks, times, params.bootstrap, dendrite_length_um)
    return TrackingResult(
        tracks=tracks,
        detections=linked,
        match_fraction=match,
        times_h=times,
        params=params,
        refound_fraction=fraction,
        **stats,
    )


def _check_on_images(
    det, linked, tracks, evidence, n_sessions, times, in_view, params, candidates, z_step_um
):
    """Steps 1-7 of :mod:`imagingkit.tracking.recheck`: re-find missed spines, discover spines no
    table holds, relink, split, join, confirm.

    ``det`` are the detections before linking, ``linked`` and ``tracks`` the first linking,
    ``candidates()`` the detector's spines per session (reference frame, computed only when
    discovery or the presence model runs; None: neither uses them), ``z_step_um`` the plane
    spacing of stacks (None: 2D).
    Returns the final ``(linked, tracks)`` and the re-found fraction of the first check. Where
    the tables miss spines (refinding pays), in 2D, every row gets the patch likeness readings
    (:mod:`.likeness`), and where ``recheck.presence_model`` is on the presence model gives the
    final verdict on every absence (:mod:`.presence`).
    """
    pixel = params.pixel_size_um
    light, peak, place, patches = evidence
    first = measure_evidence(detach_outliers(tracks, pixel, params.recheck.detach_um), light, peak, place)
    judged = judge_absences(first, pixel, params.recheck, z_step_um)
    refind = refinding_pays(judged, params.recheck)
    fraction = refound_fraction(judged)
    missed = missed_spines(judged, pixel, params.recheck, z_step_um) if refind else judged.iloc[:0]
    discover = (
        candidates is not None
        and refind
        and params.recheck.discover_min_evidence > 0
        and fraction >= params.recheck.discover_min_refound_fraction
    )
    found = discover_spines(candidates(), first, peak, pixel, params.recheck) if discover else None
    found = _discovered_detections(found, det, pixel, params.z_step_um, in_view)
    refound = np.zeros(len(tracks), bool)
    discovered = np.zeros(len(tracks), bool)
    if len(missed) or len(found):
        both = pd.concat(
            [
                det.assign(refound=False, discovered=False),
                _refound_detections(missed, det, pixel, params.z_step_um).assign(discovered=False),
                found.assign(refound=False, discovered=True),
            ],
            ignore_index=True,
        )
        both = link_detections(both, n_sessions, params.link)
        is_refound, is_discovered = both["refound"].to_numpy(bool), both["discovered"].to_numpy(bool)
        both = both.drop(columns=["refound", "discovered"])
        linked = both[~is_refound & ~is_discovered].reset_index(drop=True)
        tracks = build_tracks(both[~is_refound], n_sessions, times, in_view)
        discovered = _hits(tracks, both[is_discovered])
        tracks["spine_id"] = tracks["spine_id"].mask(discovered)
        refound = _hits(tracks, both[is_refound])
    tracks = tracks.assign(
        present=tracks["present"].to_numpy(bool) | refound, refound=refound, discovered=discovered
    )
    tracks = split_jumps(tracks, peak, pixel, params.recheck, params.fates)
    tracks = measure_evidence(tracks, light, peak, place)
    tracks = join_fragments(tracks, pixel, params.recheck, params.fates, z_step_um)
    tracks = confirm_absences(
        measure_evidence(tracks, light, peak, place), pixel, params.recheck, params.fates, refind, z_step_um
    )
    if refind and z_step_um is None:
        tracks = measure_likeness(tracks, patches)
    if refind and params.recheck.presence_model and z_step_um is None:
        tracks = decide_presence(
            tracks,
            pixel,
            fraction,
            params.fates,
            candidates=candidates() if candidates is not None else None,
            search_um=params.recheck.search_um,
        )
    return _relabel_detections(linked, tracks), tracks, fraction


def _hits(tracks: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Per track-table row: does ``rows`` (linked detections) hold its (track, session)?"""
    hits = rows[["track_id", "session"]].assign(hit=True)
    merged = tracks[["track_id", "session"]].merge(hits, on=["track_id", "session"], how="left")
    return merged["hit"].fillna(False).to_numpy(bool)


def _detector_tables(
    images: Sequence[np.ndarray],
    params: TrackingParams,
    spine_params: Any,
    given: Sequence | None = None,
    traces: Sequence[Any] | None = None,
) -> list:
    """The spine detector's table of every session image: ``given[i]``, else :func:`_detect`
    (reusing ``traces[i]``, the image's tracing, where at hand)."""
    given = list(given) if given is not None else [None] * len(images)
    traces = list(traces) if traces is not None else [None] * len(images)
    if len(given) != len(images):
        raise ParameterError(f"{len(given)} detector tables for {len(images)} sessions")
    return [
        table if table is not None else _detect(np.asarray(image), params, spine_params, i, trace).spines
        for i, (image, table, trace) in enumerate(zip(images, given, traces, strict=True))
    ]


def _candidates_in_reference(tables: Sequence[pd.DataFrame], to_reference, stacks: bool) -> list[np.ndarray]:
    """Spine positions of per-session detector tables as ``(n, 3)`` reference-frame ``y, x, z``."""
    out = []
    for table, transform in zip(tables, to_reference, strict=True):
        points = table[["y", "x", "z"]].to_numpy(float) if len(table) else np.zeros((0, 3))
        mapper = as_point_mapper(transform)
        if len(points):
            mapped = mapper(points if stacks else points[:, :2])
            points = np.column_stack([mapped[:, :2], mapped[:, 2] if stacks else points[:, 2]])
        out.append(points)
    return out


def _discovered_detections(
    found: pd.DataFrame | None, det: pd.DataFrame, pixel_size_um: float, z_step_um: float, in_view
) -> pd.DataFrame:
    """Discovered spines as rows of a detections table (``det_index`` -1; ``spine_id`` -1).

    A discovered spine lies on the dendrite of the nearest input detection of its session: it
    takes its (reference) dendrite, and an arc length projected between the two nearest
    detections on that dendrite. Spines out of view (``in_view``) are left out.
    """
    if found is None or len(found) == 0:
        return det.iloc[:0].copy()
    rows = []
    for session, spines in found.groupby("session"):
        points = spines[["y", "x", "z"]].to_numpy(float)
        if in_view is not None:
            points = points[np.asarray(in_view(int(session), points), bool)]
        here = det[det["session"] == session]
        if len(points) == 0 or len(here) == 0:
            continue
        for point in points:
            rows.append({"session": int(session), **_place_on_dendrite(point, here)})
    if not rows:
        return det.iloc[:0].copy()
    out = pd.DataFrame(rows)
    out["det_index"], out["spine_id"], out["intensity_ratio"] = -1, -1, np.nan
    out["y_um"], out["x_um"] = out["y"] * pixel_size_um, out["x"] * pixel_size_um
    out["z_um"] = np.nan_to_num(out["z"].to_numpy(float) * z_step_um, nan=0.0)
    return out[[c for c in det.columns if c in out.columns]]


def _place_on_dendrite(point: np.ndarray, here: pd.DataFrame) -> dict:
    """Dendrite and arc length of a point from the nearest detections of its session (see above)."""
    yx = here[["y", "x"]].to_numpy(float)
    nearest = int(np.argmin(np.linalg.norm(yx - point[:2], axis=1)))
    ref_dendrite = here["ref_dendrite_id"].to_numpy()[nearest]
    same = here[here["ref_dendrite_id"].to_numpy() == ref_dendrite]
    same_yx = same[["y", "x"]].to_numpy(float)
    order = np.argsort(np.linalg.norm(same_yx - point[:2], axis=1))[:2]
    arcs = same["arc_ref_um"].to_numpy(float)[order]
    arc = arcs[0]
    if len(order) == 2:
        a, b = same_yx[order[0]], same_yx[order[1]]
        span = float(np.dot(b - a, b - a))
        if span > 0:
            arc = arcs[0] + float(np.dot(point[:2] - a, b - a)) / span * (arcs[1] - arcs[0])
    return {
        "y": point[0],
        "x": point[1],
        "z": point[2],
        "dendrite_id": int(here["dendrite_id"].to_numpy()[nearest]),
        "arc_um": arc,
        "ref_dendrite_id": int(ref_dendrite),
        "arc_ref_um": arc,
    }


def _refound_detections(missed: pd.DataFrame, det: pd.DataFrame, pixel_size_um: float, z_step_um: float):
    """Re-found spines as rows of a detections table (reference frame; ``det_index`` -1)."""
    z = missed["z"].to_numpy(float)
    rows = pd.DataFrame(
        {
            "session": missed["session"].to_numpy(int),
            "det_index": -1,
            "spine_id": -1,
            "y": missed["y"].to_numpy(float),
            "x": missed["x"].to_numpy(float),
            "z": z,
            "y_um": missed["y"].to_numpy(float) * pixel_size_um,
            "x_um": missed["x"].to_numpy(float) * pixel_size_um,
            "z_um": np.nan_to_num(z * z_step_um, nan=0.0),
            "dendrite_id": missed["dendrite_id"].to_numpy(int),
            "arc_um": missed["arc_um"].to_numpy(float),
            "intensity_ratio": np.nan,
            "ref_dendrite_id": missed["dendrite_id"].to_numpy(int),
            "arc_ref_um": missed["arc_um"].to_numpy(float),
            "refound": True,
        }
    )
    return rows[[c for c in det.columns if c in rows.columns] + ["refound"]]


def _relabel_detections(linked: pd.DataFrame, tracks: pd.DataFrame) -> pd.DataFrame:
    """Give every detection the track id its (session, spine_id) row has in the track table."""
    rows = tracks[tracks["spine_id"].notna()]
    key = pd.MultiIndex.from_arrays([rows["session"].to_numpy(int), rows["spine_id"].to_numpy(int)])
    track_of = pd.Series(rows["track_id"].to_numpy(), index=key)
    at = pd.MultiIndex.from_arrays([linked["session"].to_numpy(int), linked["spine_id"].to_numpy(int)])
    new = track_of.reindex(at).to_numpy()
    return linked.assign(track_id=np.where(pd.isna(new), linked["track_id"].to_numpy(), new).astype(int))


def _evidence_on_images(images: Sequence[np.ndarray], traces: list, to_session, params, spine_params=None):
    """Three ``evidence(session, points_ref)`` callables measuring reference points on each session's
    image: any light near them (:func:`~.recheck.evidence_map`), peaks only
    (:func:`~.recheck.peaks_only`) and the light at the points themselves (:func:`~.recheck.place_map`);
    then ``patches(session, points_ref)``, the evidence-map and image patches around them
    (:mod:`.likeness`; 2D images only).

    Each session's maps are computed once and kept (up to five float32 images per session).
    ``traces`` holds each image's dendrite tracing or None; an image traced here has its tracing
    stored there (in place), so that the spine detector does not trace it again.
    """
    from imagingkit.spines import SpineParams, prepare_image
    from imagingkit.spines.dendrite import trace_dendrites

    mappers = [as_point_mapper(t, to="session") for t in to_session]
    maps: dict[tuple[int, str], np.ndarray] = {}
    spacings: dict[int, tuple] = {}

    def light_map(session: int) -> np.ndarray:
        if (session, "light") not in maps:
            image = np.asarray(images[session])
            stack = image.ndim == 3
            z_step = params.z_step_um if stack else None
            if traces[session] is None:
                prepared = prepare_image(image.astype(np.float32), params.pixel_size_um, z_step)
                traces[session] = trace_dendrites(prepared, (spine_params or SpineParams()).trace)
            maps[session, "light"], spacings[session] = evidence_map(
                image,
                params.pixel_size_um,
                z_step,
                traces[session],
                spine_params,
                None if stack else params.recheck.end_margin_um,  # stacks: the detector's rule
            )
        return maps[session, "light"]

    derived = {"peak": peaks_only, "place": place_map}

    def measure(session: int, points: np.ndarray, kind: str) -> np.ndarray:
        light = light_map(session)
        if kind != "light" and (session, kind) not in maps:
            maps[session, kind] = derived[kind](light)
        mapped = mappers[session](points[:, :3] if light.ndim == 3 else points[:, :2])
        if kind == "place":
            return evidence_here(maps[session, kind], mapped)
        return evidence_at(maps[session, kind], spacings[session], mapped, params.recheck.search_um)

    radius_px = patch_radius_px(params.pixel_size_um)

    def patches(session: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if (session, "scaled") not in maps:
            image = np.asarray(images[session], np.float32)
            median = float(np.median(image))
            maps[session, "scaled"] = image / median if median > 0 else image
            maps[session, "judged"] = np.nan_to_num(light_map(session))
        mapped = mappers[session](points[:, :2])
        return tuple(sample_patches(maps[session, kind], mapped, radius_px) for kind in ("judged", "scaled"))

    measures = tuple(
        (lambda session, points, kind=kind: measure(session, points, kind))
        for kind in ("light", "peak", "place")
    )
    return (*measures, patches)


def _split_transforms(transforms: Sequence[Any] | None, n_sessions: int) -> tuple[list, list]:
    if transforms is None:
        return [None] * n_sessions, [None] * n_sessions
    if len(transforms) != n_sessions:
        raise ParameterError(f"{len(transforms)} transforms for {n_sessions} sessions")
    to_reference, to_session = [], []
    for t in transforms:
        if isinstance(t, tuple) and len(t) == 2:
            to_reference.append(t[0])
            to_session.append(t[1])
        else:
            to_reference.append(t)
            to_session.append(t)
    return to_reference, to_session


def _register(images: Sequence[np.ndarray], reference_index: int) -> list:
    """Cross-session registration of the session images (z-stacks: in-plane plus a z shift)."""
    from imagingkit.motion.sessions import register_sessions

    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise RegistrationError(
            f"sessions have different image sizes {sorted(shapes)}; expected one field of view"
        )
    return list(register_sessions(list(images), reference_index))


def _detect(image: np.ndarray, params: TrackingParams, spine_params: Any, session: int, trace: Any = None):
    """Spine detection in one session image (:func:`imagingkit.spines.detect_spines`; ``trace``:
    the image's tracing, reused when given)."""
    import warnings

    from imagingkit.spines import NoSpinesWarning, SpineParams, detect_spines

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSpinesWarning)  # an empty session is reported by the tracker
        result = detect_spines(
            image,
            pixel_size_um=params.pixel_size_um,
            z_step_um=params.z_step_um if image.ndim == 3 else None,
            params=spine_params or SpineParams(),
            trace=trace,
        )
    if len(result.spines) == 0:
        warnings.warn(f"session {session}: no spines detected ({result.message})", stacklevel=3)
    return result


def track_sessions(
    sessions: Sequence[Any],
    times_h: Sequence[float] | None = None,
    params: TrackingParams = TrackingParams(),
    spine_params: Any = None,
) -> TrackingResult:
    """Register session images, detect spines where no table is given, then :func:`track_spines`.

    Every session is registered to ``params.reference_index`` by
    :func:`imagingkit.motion.sessions.register_sessions` (similarity transform plus a smooth
    non-rigid flow; stacks in-plane on their maximum projection plus a z shift); sessions
    without a table are passed to :func:`imagingkit.spines.detect_spines`; spine positions
    (y, x, and z for stacks) are mapped to the reference frame with the transforms, linked,
    classified and counted; every absence is then checked on the session's image
    (:mod:`imagingkit.tracking.recheck`: missed spines re-found, spines no table holds discovered
    among the detector's spines, absences confirmed). Dendrite lengths for densities come from
    the reference session's detection when it was detected here.

    Parameters
    ----------
    sessions : sequence
        Per session: an image ``(Y, X)`` / stack ``(Z, Y, X)`` array, or a pair
        ``(image, spine_table)`` (table in that session's pixels).
    times_h : sequence of float, optional
    params : TrackingParams
    spine_params : imagingkit.spines.SpineParams, optional
        Detection parameters for sessions without a table.

    Raises
    ------
    RegistrationError
        Registration failed or a session shows a different field of view.
    """
    times = validate_times(times_h, len(sessions))
    if params.pixel_size_um is None:
        raise ParameterError("pixel_size_um is needed (TrackingParams.pixel_size_um)")
    images, tables = [], []
    for item in sessions:
        image, table = item if isinstance(item, tuple) else (item, None)
        images.append(np.asarray(image))
        tables.append(table)
    transforms = _register(images, params.reference_index)
    lengths: dict[int, float] | None = None
    traces: list[Any] = [None] * len(images)
    detected: list[pd.DataFrame | None] = [None] * len(images)
    for i, table in enumerate(tables):
        if table is not None:
            continue
        result = _detect(images[i], params, spine_params, i)
        tables[i] = detected[i] = result.spines
        traces[i] = result.trace
        if i == params.reference_index and len(result.dendrites):
            lengths = dict(
                zip(result.dendrites["dendrite_id"].astype(int), result.dendrites["length_um"], strict=True)
            )
    shapes = [img.shape for img in images]
    return track_spines(
        tables, times, params, transforms, shapes, lengths, images, traces, spine_params, detected
    )
