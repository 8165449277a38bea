"""Accuracy of tracking against ground truth: linked pairs, gain/loss events, statistics.

Used by the tests and ``benchmarks/bench_tracking.py`` with truth from
:func:`imagingkit.synth.simulate_dendrite_sessions` or :mod:`imagingkit.tracking.testing`.

Fair comparison: the truth track table (:func:`truth_tracks`) applies the tracker's own
observability rule (a spine whose true position in a session lies outside the image or within
the edge margin is ``out_of_view`` there, present or not) and, for the "oracle" reference,
its own loss rule (K) to the true presence as the detector saw it. Two references:

- ``presence="present"``: the biological truth (what the spine did);
- ``presence="detected"``: the true identities of the detections, classified with the same
  loss rule as the tracker; the difference to it isolates linking errors from detection
  errors (a spine missed in the last session *is* a loss for any tracker given those
  detections).

Between the two, the events of the spines that the input holds at least once (prefix
``seen_``): the biological truth of every spine the tracker was given, so a spine missing
from every input table (a detection error no tracker working from those tables can undo)
does not count, while a spine missed in some sessions must still be tracked through them.

Prefix ``visible_``: the events of the spines above the visibility limit in every session they
are present in (:func:`imagingkit.spines.evaluate.visible_spines`: no sub-resolution head, base in
view), the events a human scorer could see on the images; the spine detection benchmark scores
the same set.

Prefix ``site_``: identity by place (:func:`same_site_identity`). The simulator draws a new
spine's place uniformly along its dendrite, so now and then one forms where another was lost in
the same session: the place holds a spine in every session, and a scorer (who by convention
calls a spine found at the same place in the next session the same spine) sees neither the loss
nor the gain. This reference counts such a pair as one spine.

Review (:mod:`imagingkit.tracking.events`): ``n_check_{kind}`` predicted events marked
``to_check``, ``n_wrong_check_{kind}`` the wrong ones among them, and ``{kind}_f1_reviewed`` the
F1 once a reviewer has rejected those wrong events (events the tracker missed stay missed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from imagingkit.spines.evaluate import visible_spines
from imagingkit.tracking.events import list_events
from imagingkit.tracking.fates import FateParams, classify_fates
from imagingkit.tracking.turnover import compute_turnover


def link_scores(detections: pd.DataFrame, true_id: np.ndarray) -> dict[str, float]:
    """Pair-level linking accuracy.

    A true pair is two consecutive detections (in session order) of the same true spine; it is
    correctly linked if both carry the same ``track_id``. A predicted pair is two consecutive
    detections of one track; it is correct if both are the same true spine.

    Parameters
    ----------
    detections : DataFrame
        ``session, track_id`` per detection (e.g. ``TrackingResult.detections``).
    true_id : ndarray
        True spine identity per detection row (-1 for false detections).

    Returns
    -------
    dict
        ``pair_recall`` (fraction of true pairs correctly linked), ``pair_precision``,
        ``n_true_pairs``, ``n_pred_pairs``.
    """
    frame = pd.DataFrame(
        {
            "session": detections["session"].to_numpy(),
            "track": detections["track_id"].to_numpy(),
            "truth": np.asarray(true_id),
        }
    )
    t = frame[frame["truth"] >= 0].sort_values(["truth", "session"])
    same_true = t["truth"].to_numpy()[1:] == t["truth"].to_numpy()[:-1]
    same_track = t["track"].to_numpy()[1:] == t["track"].to_numpy()[:-1]
    p = frame.sort_values(["track", "session"])
    pred_pair = p["track"].to_numpy()[1:] == p["track"].to_numpy()[:-1]
    pred_ok = (
        pred_pair
        & (p["truth"].to_numpy()[1:] == p["truth"].to_numpy()[:-1])
        & (p["truth"].to_numpy()[1:] >= 0)
    )
    n_true, n_pred = int(same_true.sum()), int(pred_pair.sum())
    return {
        "pair_recall": float((same_true & same_track).sum() / n_true) if n_true else np.nan,
        "pair_precision": float(pred_ok.sum() / n_pred) if n_pred else np.nan,
        "n_true_pairs": n_true,
        "n_pred_pairs": n_pred,
    }


def observable(
    truth: pd.DataFrame, image_shapes: Sequence[Sequence[int]] | None, margin_px: float
) -> np.ndarray:
    """Per truth row: is the spine's true session position inside the image by ``margin_px``?

    Same rule as :func:`imagingkit.tracking.fates.view_checker` (y, x in ``[margin, size - 1 -
    margin]``; z, where given, within the stack). Without shapes, the truth's ``in_fov``.
    """
    if image_shapes is None:
        return truth["in_fov"].to_numpy(bool) if "in_fov" in truth else np.ones(len(truth), bool)
    shapes = np.array([tuple(s)[-2:] for s in image_shapes], float)
    session = truth["session"].to_numpy(int)
    y, x = truth["y"].to_numpy(float), truth["x"].to_numpy(float)
    height, width = shapes[session, 0], shapes[session, 1]
    ok = (y >= margin_px) & (y <= height - 1 - margin_px) & (x >= margin_px) & (x <= width - 1 - margin_px)
    if "z" in truth and len(image_shapes[0]) == 3:
        z = truth["z"].to_numpy(float)
        depth = np.array([s[0] for s in image_shapes], float)[session]
        ok &= np.isnan(z) | ((z >= 0) & (z <= depth - 1))
    return ok


def truth_tracks(
    truth: pd.DataFrame,
    in_view: np.ndarray | None = None,
    presence: str = "present",
    loss_min_sessions: int = 1,
) -> pd.DataFrame:
    """A classified track table from a truth table (``spine_id, session, present``...).

    Parameters
    ----------
    truth : DataFrame
        One row per true spine per session.
    in_view : ndarray of bool, optional
        Observability per row (:func:`observable`); default the truth's ``in_fov``.
    presence : {"present", "detected"}
        Column giving presence: the biological truth, or the detections (oracle linking).
    loss_min_sessions : int
        K of the loss rule applied to that presence (1 for biological truth, whose spines
        never come back; the tracker's K for the oracle).

    Returns
    -------
    DataFrame
        Track ids are the true spine ids; statistics computed on it are the true statistics
        under the tracker's definitions.
    """
    t = truth.rename(columns={"spine_id": "track_id"}).copy()
    if in_view is None:
        in_view = t["in_fov"].to_numpy(bool) if "in_fov" in t else np.ones(len(t), bool)
    t["in_view"] = np.asarray(in_view, bool)
    t["present"] = t[presence].astype(bool)
    t["reviewed"] = False
    if "intensity_ratio" not in t:
        t["intensity_ratio"] = np.nan
    t["intensity_ratio"] = np.where(t["present"], t["intensity_ratio"], np.nan)
    t["y"], t["x"] = t["y_ref"], t["x_ref"]
    t["z"] = 0.0
    t["spine_id"] = t["track_id"]
    return classify_fates(t, FateParams(loss_min_sessions=loss_min_sessions))


def _events(counted: pd.DataFrame) -> set[tuple]:
    """(identity, session, kind) for every gain and loss in a (track x session) bool table with NaN = unknown."""
    values = counted.to_numpy(float)
    before, after = values[:, :-1], values[:, 1:]
    known = ~np.isnan(before) & ~np.isnan(after)
    gain = known & (before == 0) & (after == 1)
    loss = known & (before == 1) & (after == 0)
    ids = counted.index.to_numpy()
    out = set()
    for kind, mask in (("gain", gain), ("loss", loss)):
        rows, cols = np.nonzero(mask)
        out |= {(ids[r], int(c) + 1, kind) for r, c in zip(rows, cols, strict=False)}
    return out


def _events_to_check(tracks: pd.DataFrame, identity: pd.Series) -> set[tuple]:
    """(identity, session, kind) of the events :func:`~imagingkit.tracking.events.list_events` marks ``to_check``."""
    events = list_events(tracks)
    events = events[events["to_check"] & events["track_id"].isin(identity.index)]
    ids = identity.loc[events["track_id"]].to_numpy()
    return set(zip(ids, events["session"].to_numpy(int), events["kind"], strict=True))


def track_identity(
    detections: pd.DataFrame,
    true_id: np.ndarray,
    tracks: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
    tolerance_px: float | None = None,
) -> pd.Series:
    """True identity of every predicted track: the one most of its detections have.

    Tracks made only of false detections get unique negative identities (-1, -2, ...), so
    their gains and losses count as false events. With ``tracks``, a track that holds no input
    detection (spines the tracker found on the images, e.g. ``discovered``) is identified by
    position (:func:`position_identity`): the true spine present in that session nearest to
    its position (reference frame) within ``tolerance_px``, one-to-one per session; a track
    matching none gets a fresh negative identity (a false discovery, whose events are false).
    """
    frame = pd.DataFrame({"track_id": detections["track_id"].to_numpy(), "truth": np.asarray(true_id)})
    real = frame[frame["truth"] >= 0].groupby("track_id")["truth"].agg(lambda v: v.mode().iloc[0])
    tracks_ids = np.unique(frame["track_id"].to_numpy())
    if tracks is not None:
        by_place = position_identity(tracks, tracks_ids, truth, tolerance_px)
        real = pd.concat([real, by_place[by_place >= 0]])
        tracks_ids = np.union1d(tracks_ids, by_place.index.to_numpy())
    false = tracks_ids[~np.isin(tracks_ids, real.index.to_numpy())]
    fake = pd.Series(-1 - np.arange(len(false)), index=false)
    return pd.concat([real, fake]).sort_index()


def position_identity(
    tracks: pd.DataFrame, with_detection: np.ndarray, truth: pd.DataFrame | None, tolerance_px: float | None
) -> pd.Series:
    """True identity of the tracks holding no input detection, by position; -1 where none matches.

    Every present row of such a track (not in ``with_detection``) is matched to the true spines
    present in its session (``truth`` rows with ``present``, positions ``y_ref, x_ref``) one-to-one
    within ``tolerance_px`` (:func:`match_to_truth`); a track takes the identity most of its rows
    match. Without ``truth`` or ``tolerance_px`` every such track is unmatched (-1).
    """
    rows = tracks[~tracks["track_id"].isin(with_detection) & tracks["present"].astype(bool)]
    if len(rows) == 0:
        return pd.Series(dtype=int)
    if truth is None or tolerance_px is None:
        matched = np.full(len(rows), -1)
    else:
        true_ref = truth.rename(columns={"y": "y_session", "x": "x_session", "y_ref": "y", "x_ref": "x"})
        matched = match_to_truth(rows[["session", "y", "x"]], true_ref, tolerance_px)
    votes = pd.DataFrame({"track_id": rows["track_id"].to_numpy(), "truth": matched})
    return votes.groupby("track_id")["truth"].agg(
        lambda v: v[v >= 0].mode().iloc[0] if (v >= 0).any() else -1
    )


def event_scores(
    tracks: pd.DataFrame,
    detections: pd.DataFrame,
    true_id: np.ndarray,
    truth_tracks_: pd.DataFrame,
    truth: pd.DataFrame | None = None,
    tolerance_px: float | None = None,
) -> dict:
    """Precision, recall and F1 of gain and loss events between consecutive sessions.

    Each predicted track is given its true identity (:func:`track_identity`; tracks without an
    input detection by position in ``truth`` within ``tolerance_px``); its events are
    transitions of ``counted`` between sessions observable in the track table. True events
    come from ``truth_tracks_`` (see :func:`truth_tracks`); tracks identified as a true spine
    that ``truth_tracks_`` leaves out (the ``seen_`` reference) are left out too. An event
    matches if identity, session and kind agree. Per kind: ``{kind}_precision, {kind}_recall,
    {kind}_f1`` and the counts ``n_true_{kind}, n_pred_{kind}, n_matched_{kind}`` (the counts of
    several series add up to their pooled scores); ``event_f1`` over both kinds. Review counts
    ``n_check_{kind}``, ``n_wrong_check_{kind}`` and ``{kind}_f1_reviewed`` (module docstring).
    """
    identity = track_identity(detections, true_id, tracks, truth, tolerance_px)
    reference_ids = truth_tracks_["track_id"].unique()
    identity = identity[(identity < 0) | identity.isin(reference_ids)]

    def table(frame: pd.DataFrame) -> pd.DataFrame:
        values = np.where(frame["state"] == "out_of_view", np.nan, frame["counted"].astype(float))
        return frame.assign(v=values).pivot(index="track_id", columns="session", values="v")

    pred = table(tracks)
    pred = pred[pred.index.isin(identity.index)]
    pred.index = identity.loc[pred.index].to_numpy()
    pred_events, true_events = _events(pred), _events(table(truth_tracks_))
    to_check = _events_to_check(tracks, identity)
    out = {}
    for kind in ("gain", "loss"):
        p = {e for e in pred_events if e[2] == kind}
        t = {e for e in true_events if e[2] == kind}
        tp = len(p & t)
        wrong_checked = len((p - t) & to_check)
        left = len(p) - wrong_checked + len(t)  # the wrong events to check rejected by a reviewer
        out[f"{kind}_precision"] = tp / len(p) if p else np.nan
        out[f"{kind}_recall"] = tp / len(t) if t else np.nan
        out[f"{kind}_f1"] = 2 * tp / (len(p) + len(t)) if (p or t) else np.nan
        out[f"{kind}_f1_reviewed"] = 2 * tp / left if left else np.nan
        out[f"n_true_{kind}"] = len(t)
        out[f"n_pred_{kind}"] = len(p)
        out[f"n_matched_{kind}"] = tp
        out[f"n_check_{kind}"] = len(p & to_check)
        out[f"n_wrong_check_{kind}"] = wrong_checked
    both = len(pred_events & true_events)
    total = len(pred_events) + len(true_events)
    out["event_f1"] = 2 * both / total if total else np.nan
    return out


#: Statistics compared with the truth, and the factor turning their unit into percentage points.
STATISTICS_PP = {
    "turnover_ratio": 100.0,
    "survival_baseline": 100.0,
    "formation_rate": 1.0,
    "elimination_rate": 1.0,
}


def statistic_errors(turnover: pd.DataFrame, truth_turnover: pd.DataFrame) -> dict[str, float]:
    """Largest absolute difference over sessions, in percentage points, per statistic."""
    out = {}
    for column, scale in STATISTICS_PP.items():
        diff = np.abs(turnover[column].to_numpy(float) - truth_turnover[column].to_numpy(float)) * scale
        out[f"{column}_max_err_pp"] = float(np.nanmax(diff)) if np.isfinite(diff).any() else np.nan
    return out


def score_tracking(
    result,
    truth: pd.DataFrame,
    true_id: np.ndarray,
    image_shapes: Sequence[Sequence[int]] | None,
    margin_px: float,
    tolerance_px: float | None = None,
) -> dict:
    """Every accuracy figure of a :class:`~imagingkit.tracking.session.TrackingResult`.

    Parameters
    ----------
    result : TrackingResult
    truth : DataFrame
        One row per true spine per session with ``spine_id, session, present, y, x`` (session
        pixels), ``y_ref, x_ref``, and ``detected`` for the oracle reference.
    true_id : ndarray
        True spine id per row of ``result.detections`` (-1: false detection).
    image_shapes : sequence of tuple, optional
        Per session image shape (observability rule); None uses ``in_fov``.
    margin_px : float
        Edge margin, pixels (the tracker's ``fates.edge_margin_um / pixel_size_um``).
    tolerance_px : float, optional
        Match tolerance (reference-frame pixels) identifying tracks that hold no input detection
        (spines found on the images) with the true spine present nearest to them
        (:func:`track_identity`); None: such tracks are false.

    Returns
    -------
    dict
        Pair scores, event scores and statistic errors against the biological truth; where
        ``detected`` exists, event scores on the spines the input holds at least once (prefix
        ``seen_``) and event and statistic scores against the oracle (prefix ``oracle_``); where
        the truth has the synth's ``intensity_ratio, head_radius_um, base_in_fov``, event scores
        on the spines visible in every session they are present in (prefix ``visible_``); with
        ``tolerance_px``, event scores with spines replaced at their place in the next session
        merged into one site (prefix ``site_``, :func:`same_site_identity`).
    """
    view = observable(truth, image_shapes, margin_px)
    times = result.times_h
    k = result.params.fates.loss_min_sessions
    bio = truth_tracks(truth, view, "present", 1)
    out = {**link_scores(result.detections, true_id)}
    out.update(event_scores(result.tracks, result.detections, true_id, bio, truth, tolerance_px))
    out.update(statistic_errors(result.turnover, compute_turnover(bio, times)))
    if "detected" in truth:
        seen = truth.groupby("spine_id")["detected"].transform("any").to_numpy(bool)
        seen_truth = truth_tracks(truth[seen], view[seen], "present", 1)
        scores = event_scores(result.tracks, result.detections, true_id, seen_truth, truth, tolerance_px)
        out.update({f"seen_{key}": value for key, value in scores.items()})
        oracle = truth_tracks(truth, view, "detected", k)
        scores = event_scores(result.tracks, result.detections, true_id, oracle, truth, tolerance_px)
        scores.update(statistic_errors(result.turnover, compute_turnover(oracle, times)))
        out.update({f"oracle_{key}": value for key, value in scores.items()})
    if tolerance_px is not None and {"y_ref", "x_ref"} <= set(truth.columns):
        merged, site_id = site_truth(truth, true_id, tolerance_px)
        site_view = observable(merged, image_shapes, margin_px)
        site_bio = truth_tracks(merged, site_view, "present", 1)
        scores = event_scores(result.tracks, result.detections, site_id, site_bio, merged, tolerance_px)
        out.update({f"site_{key}": value for key, value in scores.items()})
    if {"intensity_ratio", "head_radius_um", "base_in_fov"} <= set(truth.columns):
        shown = visible_throughout(truth)
        visible_truth = truth_tracks(truth[shown], view[shown], "present", 1)
        scores = event_scores(result.tracks, result.detections, true_id, visible_truth, truth, tolerance_px)
        out.update({f"visible_{key}": value for key, value in scores.items()})
    return out


def same_site_identity(truth: pd.DataFrame, tolerance_px: float) -> pd.Series:
    """Site identity of every true spine: a spine replacing another at its place is that site.

    A spine that first appears in the session right after another spine's last presence, within
    ``tolerance_px`` of its reference position (``y_ref, x_ref``, mean over sessions), takes that
    spine's site: the place holds a spine in every session, so no image shows the loss and the
    gain, and spine-turnover studies score a spine found at the same place along the dendrite in
    the next session as the same spine. Pairs are matched one-to-one per session boundary by
    :func:`scipy.optimize.linear_sum_assignment`; chains (A, then B, then C) share one site.

    Returns
    -------
    Series
        Site id (the first spine's ``spine_id``) indexed by ``spine_id``.
    """
    presence = truth.pivot_table(index="spine_id", columns="session", values="present", aggfunc="any")
    present = presence.fillna(False).to_numpy(bool)
    ids = presence.index.to_numpy()
    position = truth.groupby("spine_id")[["y_ref", "x_ref"]].mean().loc[ids].to_numpy(float)
    ever = present.any(axis=1)
    first = np.where(ever, present.argmax(axis=1), -1)
    last = np.where(ever, present.shape[1] - 1 - present[:, ::-1].argmax(axis=1), -1)
    site = pd.Series(ids, index=ids)
    for session in range(1, present.shape[1]):
        ended = np.flatnonzero(ever & (last == session - 1))
        started = np.flatnonzero(ever & (first == session))
        if len(ended) == 0 or len(started) == 0:
            continue
        distance = np.linalg.norm(position[ended, None] - position[None, started], axis=2)
        r, c = linear_sum_assignment(np.where(distance <= tolerance_px, distance, 1e6))
        ok = distance[r, c] <= tolerance_px
        site.iloc[started[c[ok]]] = site.iloc[ended[r[ok]]].to_numpy()
    return site


def site_truth(
    truth: pd.DataFrame, true_id: np.ndarray, tolerance_px: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Truth and detection identities with spines of one site merged (:func:`same_site_identity`).

    A site's row in a session is its present spine's row (where none is present, either spine's:
    their places lie within the tolerance); ``true_id`` (-1 for false detections) is mapped to
    site ids.
    """
    site = same_site_identity(truth, tolerance_px)
    merged = truth.assign(spine_id=site.loc[truth["spine_id"]].to_numpy())
    merged = merged.sort_values("present", ascending=False, kind="stable")
    merged = merged.drop_duplicates(["spine_id", "session"]).sort_values(["spine_id", "session"])
    true_id = np.asarray(true_id)
    mapped = np.where(true_id >= 0, site.reindex(true_id).fillna(-1).to_numpy(int), -1)
    return merged.reset_index(drop=True), mapped


def visible_throughout(truth: pd.DataFrame) -> np.ndarray:
    """Per truth row: is its spine visible (:func:`~imagingkit.spines.evaluate.visible_spines`) in
    every session it is present in (and present in at least one)?"""
    present = truth["present"].to_numpy(bool)
    ok = pd.Series(visible_spines(truth) | ~present).groupby(truth["spine_id"].to_numpy()).transform("all")
    ever = pd.Series(present).groupby(truth["spine_id"].to_numpy()).transform("any")
    return (ok & ever).to_numpy(bool)


def match_to_truth(
    detections: pd.DataFrame, truth: pd.DataFrame, tolerance_px: float, columns: Sequence[str] = ("y", "x")
) -> np.ndarray:
    """True spine id of each detection: one-to-one matching per session within a tolerance.

    Detections (in their session's pixels, ``session`` plus ``columns``) are matched to the true
    spines present in that session (``truth`` rows with ``present``, same columns) by
    :func:`scipy.optimize.linear_sum_assignment` on distances up to ``tolerance_px``.

    Returns
    -------
    ndarray of int
        ``spine_id`` of the matched true spine per detection row, -1 where unmatched.
    """
    columns = list(columns)
    out = np.full(len(detections), -1, dtype=int)
    sessions = detections["session"].to_numpy(int)
    for session in np.unique(sessions):
        rows = np.flatnonzero(sessions == session)
        true = truth[(truth["session"] == session) & truth["present"]]
        if len(true) == 0:
            continue
        pred_xy = detections.iloc[rows][columns].to_numpy(float)
        true_xy = true[columns].to_numpy(float)
        pairs = (
            cKDTree(pred_xy)
            .sparse_distance_matrix(cKDTree(true_xy), tolerance_px, output_type="coo_matrix")
            .tocsr()
        )
        if pairs.nnz == 0:
            continue
        dense = np.full(pairs.shape, 1e6)
        coo = pairs.tocoo()
        dense[coo.row, coo.col] = coo.data
        r, c = linear_sum_assignment(dense)
        ok = dense[r, c] <= tolerance_px
        out[rows[r[ok]]] = true["spine_id"].to_numpy(int)[c[ok]]
    return out
