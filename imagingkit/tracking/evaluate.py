"""Accuracy of tracking against ground truth: linked pairs, gain/loss events, truth track tables.

Used by the tests and ``benchmarks/bench_tracking.py`` with truth from
:func:`imagingkit.synth.simulate_dendrite_sessions` or :mod:`imagingkit.tracking.testing`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imagingkit.tracking.fates import FateParams, classify_fates


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


def truth_tracks(truth: pd.DataFrame, observable_col: str | None = "in_fov") -> pd.DataFrame:
    """A classified track table from a truth table (``spine_id, session, present``...).

    Track ids are the true spine ids; ``state`` is ``present``/``absent`` from the truth and
    ``out_of_view`` where ``observable_col`` is False, so statistics computed on it are the
    true statistics under the same definitions.
    """
    t = truth.rename(columns={"spine_id": "track_id"}).copy()
    t["in_view"] = t[observable_col].astype(bool) if observable_col and observable_col in t else True
    t["present"] = t["present"].astype(bool) & t["in_view"]
    t["reviewed"] = False
    if "intensity_ratio" not in t:
        t["intensity_ratio"] = np.nan
    t["intensity_ratio"] = np.where(t["present"], t["intensity_ratio"], np.nan)
    if "y" not in t:
        t["y"], t["x"] = t["y_ref"], t["x_ref"]
    t["z"] = 0.0
    t["spine_id"] = t["track_id"]
    return classify_fates(t, FateParams(loss_min_sessions=1))


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


def event_scores(
    tracks: pd.DataFrame, detections: pd.DataFrame, true_id: np.ndarray, truth_tracks_: pd.DataFrame
) -> dict:
    """F1 of gain and loss events between consecutive sessions.

    Each predicted track is given the true identity most of its detections have; its events
    are transitions of ``counted`` between observable sessions. True events come from
    ``truth_tracks_`` (see :func:`truth_tracks`). An event matches if identity, session and
    kind agree.
    """
    det_truth = pd.DataFrame({"track_id": detections["track_id"].to_numpy(), "truth": np.asarray(true_id)})
    det_truth = det_truth[det_truth["truth"] >= 0]
    identity = det_truth.groupby("track_id")["truth"].agg(lambda v: v.mode().iloc[0])

    def table(frame: pd.DataFrame) -> pd.DataFrame:
        values = np.where(frame["state"] == "out_of_view", np.nan, frame["counted"].astype(float))
        return frame.assign(v=values).pivot(index="track_id", columns="session", values="v")

    pred = table(tracks)
    pred = pred[pred.index.isin(identity.index)]
    pred.index = identity.loc[pred.index].to_numpy()
    pred_events, true_events = _events(pred), _events(table(truth_tracks_))
    out = {}
    for kind in ("gain", "loss"):
        p = {e for e in pred_events if e[2] == kind}
        t = {e for e in true_events if e[2] == kind}
        tp = len(p & t)
        precision = tp / len(p) if p else np.nan
        recall = tp / len(t) if t else np.nan
        out[f"{kind}_precision"], out[f"{kind}_recall"] = precision, recall
        out[f"{kind}_f1"] = 2 * tp / (len(p) + len(t)) if (p or t) else np.nan
        out[f"n_true_{kind}"] = len(t)
    return out
