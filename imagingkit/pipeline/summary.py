"""Across-session summaries of one animal: responses per session, their change, and behaviour.

Files written into ``ANIMAL/summary/``:

ROIs are those classified as cells (``is_cell`` in ``rois.csv``) unless ``cells_only = false``.

* ``responses_across_sessions.csv``: one row per session: ``time_h, session, n_rois,
  n_responsive, fraction_responsive, fraction_responsive_low, fraction_responsive_high,
  mean_amplitude, mean_amplitude_low, mean_amplitude_high`` (``mean_amplitude``: mean
  |amplitude| (dF/F) of the responsive ROIs; intervals: percentile bootstrap over ROIs).
* ``roi_matches.csv``: ``session, roi_id, cell_id``: ROIs matched across sessions by registering
  the sessions' mean images (:func:`imagingkit.motion.sessions.register_sessions`) and pairing
  centroids (Hungarian assignment within ``match_distance_px``).
* ``changes_across_sessions.csv``: :func:`imagingkit.stim.sessions.session_changes` over the
  matched ROIs (consecutive pairs, paired bootstrap intervals).
* ``behaviour_correlation.csv`` when a behaviour table is given:
  :func:`imagingkit.stim.sessions.correlate_with_behaviour` of the per-session measures.
* ``summary.json``: counts and notes (e.g. why changes could not be computed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from scipy import optimize, stats

from imagingkit.errors import DataError, FileFormatError, ImagingKitError

ACROSS_COLUMNS = (
    "time_h",
    "session",
    "n_rois",
    "n_responsive",
    "fraction_responsive",
    "fraction_responsive_low",
    "fraction_responsive_high",
    "mean_amplitude",
    "mean_amplitude_low",
    "mean_amplitude_high",
)


def _interval(
    values: np.ndarray, confidence_level: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaN with fewer than 2 values or no spread)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        value = float(values.mean()) if len(values) else np.nan
        return (value, value) if len(values) >= 2 else (np.nan, np.nan)
    result = stats.bootstrap(
        (values,), np.mean, confidence_level=confidence_level, n_resamples=n_resamples,
        method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def responses_across_sessions(
    responses: dict[str, pd.DataFrame], times_h: dict[str, float], confidence_level: float = 0.95,
    n_resamples: int = 2000, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Per session: fraction of responsive ROIs and mean |amplitude| of responders, with intervals.

    Parameters
    ----------
    responses : dict of str to DataFrame
        Session id -> its ``responses.csv`` (``amplitude``, ``responsive``).
    times_h : dict of str to float
        Session id -> time relative to the first practice session (hours).
    """
    rows = []
    for session, table in responses.items():
        responsive = table["responsive"].astype(bool).to_numpy()
        amplitude = np.abs(table.loc[responsive, "amplitude"].to_numpy(float))
        f_low, f_high = _interval(responsive.astype(float), confidence_level, n_resamples, seed)
        a_low, a_high = _interval(amplitude, confidence_level, n_resamples, seed)
        rows.append(
            {
                "time_h": times_h[session],
                "session": session,
                "n_rois": len(table),
                "n_responsive": int(responsive.sum()),
                "fraction_responsive": float(responsive.mean()) if len(table) else np.nan,
                "fraction_responsive_low": f_low,
                "fraction_responsive_high": f_high,
                "mean_amplitude": float(amplitude.mean()) if len(amplitude) else np.nan,
                "mean_amplitude_low": a_low,
                "mean_amplitude_high": a_high,
            }
        )
    return pd.DataFrame(rows, columns=list(ACROSS_COLUMNS)).sort_values("time_h", kind="stable")


def match_rois(
    mean_images: list[np.ndarray], centroids_yx: list[np.ndarray], max_distance_px: float
) -> list[np.ndarray]:
    """Cell identity of every ROI across sessions (session 0 is the reference).

    Each session's mean image is registered to session 0's, its ROI centroids are
    mapped into session 0's frame and paired with session 0's ROIs by minimum total
    distance (Hungarian), pairs farther than ``max_distance_px`` left unmatched.

    Returns
    -------
    list of ndarray
        Per session, (n_rois,) int cell ids: the index of the matched session-0 ROI, or a
        new id (>= number of session-0 ROIs) for an ROI matched to none.

    Raises
    ------
    RegistrationError
        The mean images do not show the same field.
    """
    from imagingkit.motion.sessions import register_sessions

    transforms = register_sessions(mean_images, reference_index=0)
    reference = np.asarray(centroids_yx[0], float).reshape(-1, 2)
    ids = [np.arange(len(reference))]
    next_id = len(reference)
    for transform, points in zip(transforms[1:], centroids_yx[1:], strict=True):
        points = np.asarray(points, float).reshape(-1, 2)
        cell = np.full(len(points), -1)
        if len(points) and len(reference):
            mapped = transform.map_points(points, to="reference")
            cost = np.linalg.norm(mapped[:, None, :] - reference[None, :, :], axis=2)
            rows, cols = optimize.linear_sum_assignment(np.where(cost <= max_distance_px, cost, 1e6))
            keep = cost[rows, cols] <= max_distance_px
            cell[rows[keep]] = cols[keep]
        unmatched = cell < 0
        cell[unmatched] = next_id + np.arange(unmatched.sum())
        next_id += int(unmatched.sum())
        ids.append(cell)
    return ids


def read_behaviour(paths_by_session: dict[str, Path]) -> pd.DataFrame:
    """One row of numeric behaviour per session.

    A table with a ``session`` column gives the rows of those sessions; a table without
    one (e.g. the session's trials) gives its numeric column means for the session that
    names it.
    """
    rows: list[pd.DataFrame] = []
    for session, path in paths_by_session.items():
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path}: not a readable behaviour CSV ({exc})") from exc
        if "session" in table.columns:
            table = table.assign(session=table["session"].astype(str))
            rows.append(table[table["session"] == session])
        else:
            numeric = table.select_dtypes("number")
            if numeric.empty:
                raise FileFormatError(f"{path}: behaviour table has no numeric column")
            rows.append(numeric.mean().to_frame().T.assign(session=session))
    if not rows:
        return pd.DataFrame(columns=["session"])
    behaviour = pd.concat(rows, ignore_index=True).drop_duplicates("session")
    return behaviour[["session"] + [c for c in behaviour.select_dtypes("number").columns if c != "session"]]


def write_summary(
    sessions: list, session_dirs: list[Path], table: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Write every summary file of one animal into ``out`` (see module docstring)."""
    from imagingkit.stim.sessions import correlate_with_behaviour, session_changes

    ids = [s.id for s in sessions]
    responses = {
        s.id: _responses(d, table["cells_only"]) for s, d in zip(sessions, session_dirs, strict=True)
    }
    across = responses_across_sessions(
        responses,
        {s.id: s.time_h for s in sessions},
        table["confidence_level"],
        table["n_resamples"],
        table["seed"],
    )
    across.to_csv(out / "responses_across_sessions.csv", index=False)
    notes: dict[str, Any] = {"sessions": ids}
    if len(sessions) >= 2:
        try:
            per_cell = _matched_cells(session_dirs, ids, responses, table["match_distance_px"])
            per_cell[["session", "roi_id", "cell_id"]].to_csv(out / "roi_matches.csv", index=False)
            changes = session_changes(
                per_cell, sessions=ids, confidence_level=table["confidence_level"],
                n_resamples=table["n_resamples"], seed=table["seed"],
            )  # fmt: skip
            changes.to_csv(out / "changes_across_sessions.csv", index=False)
        except (ImagingKitError, DataError) as exc:
            notes["changes"] = f"not computed: {exc}"
    behaviour_paths = {s.id: s.behaviour for s in sessions if s.behaviour is not None}
    if behaviour_paths:
        behaviour = read_behaviour(behaviour_paths)
        measures = across[["session", "time_h", "fraction_responsive", "mean_amplitude"]]
        correlate_with_behaviour(measures, behaviour, on="session", method=table["behaviour_method"]).to_csv(
            out / "behaviour_correlation.csv", index=False
        )
        notes["behaviour_sessions"] = behaviour["session"].tolist()
    (out / "summary.json").write_text(json.dumps(notes, indent=2))
    return {"n_sessions": len(sessions), **{k: v for k, v in notes.items() if k == "changes"}}


def _responses(sdir: Path, cells_only: bool) -> pd.DataFrame:
    """A session's ``responses.csv``, restricted to ROIs classified as cells when asked."""
    responses = pd.read_csv(sdir / "stim" / "responses.csv")
    if not cells_only:
        return responses
    rois = pd.read_csv(sdir / "neurons" / "rois.csv")
    cells = rois.loc[rois["is_cell"].astype(bool), "roi_id"]
    return responses[responses["roi_id"].isin(cells)].reset_index(drop=True)


def _matched_cells(
    session_dirs: list[Path], ids: list[str], responses: dict[str, pd.DataFrame], max_px: float
):
    images, centroids, tables = [], [], []
    for sdir, sid in zip(session_dirs, ids, strict=True):
        image = tifffile.imread(sdir / "register" / "mean_image.tif").astype(np.float32)
        images.append(image.reshape(-1, *image.shape[-2:])[0])
        rois = pd.read_csv(sdir / "neurons" / "rois.csv").set_index("roi_id").loc[responses[sid]["roi_id"]]
        centroids.append(rois[["y", "x"]].to_numpy(float))
        tables.append(responses[sid].assign(session=sid))
    cell_ids = match_rois(images, centroids, max_px)
    per_cell = pd.concat(
        [t.assign(cell_id=c) for t, c in zip(tables, cell_ids, strict=True)], ignore_index=True
    )
    per_cell["responsive"] = per_cell["responsive"].astype(bool)
    return per_cell
