"""Human review of a track table: relink, split, mark presence, confirm or reject gains and losses.

Every function takes a track table (from :func:`imagingkit.tracking.track_spines` or a
``tracks.csv``), returns a new corrected table with states and fates recomputed (the input is
never modified), and raises :class:`~imagingkit.errors.DataError` on an impossible edit. The
statistics are then recomputed from the corrected table with
:func:`imagingkit.tracking.compute_turnover`. The napari plugin calls these functions.

Presence set by a reviewer is flagged ``reviewed=True``: a reviewed absence is a real absence
(never turned into a ``gap``), a reviewed presence counts as present.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from imagingkit.errors import DataError
from imagingkit.tracking.fates import FateParams, classify_fates


def _check(tracks: pd.DataFrame, *track_ids: int) -> None:
    known = set(tracks["track_id"].unique().tolist())
    for track_id in track_ids:
        if track_id not in known:
            raise DataError(f"track table: no track with track_id {track_id}")


def _check_session(tracks: pd.DataFrame, session: int) -> None:
    n = int(tracks["session"].max()) + 1
    if not 0 <= session < n:
        raise DataError(f"track table: session {session} out of range 0..{n - 1}")


def clear_presence(tracks: pd.DataFrame, rows: pd.Series | np.ndarray) -> None:
    """Make ``rows`` of a track table absent, in place: no detection, no intensity."""
    tracks.loc[rows, "present"] = False
    tracks.loc[rows, "spine_id"] = pd.NA
    tracks.loc[rows, "intensity_ratio"] = np.nan


def fill_absent_positions(tracks: pd.DataFrame, track_ids: Iterable[int]) -> pd.DataFrame:
    """Give the absent rows of ``track_ids`` their track's mean detected position (in place, returned)."""
    for track_id in track_ids:
        rows = tracks["track_id"] == track_id
        here = rows & tracks["present"] & tracks["spine_id"].notna()
        if here.any():
            mean = tracks.loc[here, ["y", "x", "z"]].mean()
            absent = rows & tracks["spine_id"].isna()
            tracks.loc[absent, ["y", "x", "z"]] = mean.to_numpy()
    return tracks


def relink(
    tracks: pd.DataFrame, keep_id: int, merge_id: int, params: FateParams = FateParams()
) -> pd.DataFrame:
    """Merge track ``merge_id`` into track ``keep_id`` (they are the same spine).

    Raises
    ------
    DataError
        Either track is unknown, or both are present in the same session.
    """
    _check(tracks, keep_id, merge_id)
    if keep_id == merge_id:
        raise DataError(f"relink: cannot merge track {keep_id} with itself")
    out = tracks.copy()
    keep = out[out["track_id"] == keep_id].set_index("session")
    merge = out[out["track_id"] == merge_id].set_index("session")
    both = keep.index[keep["present"] & merge["present"].reindex(keep.index, fill_value=False)]
    if len(both):
        raise DataError(
            f"relink: tracks {keep_id} and {merge_id} are both present in session(s) "
            f"{', '.join(map(str, both))}; split one first"
        )
    take = merge.index[merge["present"]]
    columns = [c for c in out.columns if c not in ("track_id", "session", "dendrite_id", "arc_um")]
    keep_rows = out.index[(out["track_id"] == keep_id) & out["session"].isin(take)]
    merge_rows = out.index[(out["track_id"] == merge_id) & out["session"].isin(take)]
    order_keep = out.loc[keep_rows, "session"].argsort().to_numpy()
    order_merge = out.loc[merge_rows, "session"].argsort().to_numpy()
    out.loc[keep_rows[order_keep], columns] = out.loc[merge_rows[order_merge], columns].to_numpy()
    out = out[out["track_id"] != merge_id]
    return classify_fates(fill_absent_positions(out, [keep_id]), params)


def split_track(
    tracks: pd.DataFrame, track_id: int, session: int, params: FateParams = FateParams()
) -> pd.DataFrame:
    """Split a track before ``session``: sessions >= ``session`` become a new track.

    The new track gets ``max(track_id) + 1``. Both tracks keep one row per session: the
    original is absent from ``session`` on, the new one absent before it.
    """
    _check(tracks, track_id)
    _check_session(tracks, session)
    if session == 0:
        raise DataError("split_track: cannot split before session 0")
    out = tracks.copy()
    new_id = int(out["track_id"].max()) + 1
    new = out[out["track_id"] == track_id].copy()
    new["track_id"] = new_id
    late_old = (out["track_id"] == track_id) & (out["session"] >= session)
    early_new = new["session"] < session
    clear_presence(out, late_old)
    clear_presence(new, early_new)
    out = pd.concat([out, new], ignore_index=True)
    return classify_fates(fill_absent_positions(out, [track_id, new_id]), params)


def mark_presence(
    tracks: pd.DataFrame,
    track_id: int,
    sessions: int | Iterable[int],
    present: bool,
    params: FateParams = FateParams(),
) -> pd.DataFrame:
    """Set a track's presence in the given sessions as seen by a reviewer (``reviewed=True``).

    Marking a session present where no spine was detected keeps ``spine_id`` missing and the
    track's mean position; marking absent keeps the detection's row values but counts it absent.
    """
    _check(tracks, track_id)
    sessions = [sessions] if np.isscalar(sessions) else list(sessions)
    for session in sessions:
        _check_session(tracks, int(session))
    out = tracks.copy()
    rows = (out["track_id"] == track_id) & out["session"].isin(sessions)
    out.loc[rows, "present"] = bool(present)
    out.loc[rows, "reviewed"] = True
    return classify_fates(out, params)


def mark_event(
    tracks: pd.DataFrame, track_id: int, session: int, real: bool, params: FateParams = FateParams()
) -> pd.DataFrame:
    """Confirm or reject the gain or loss of a track at ``session`` (between session-1 and session).

    - ``real=True``: the change is confirmed; the absent sessions next to it are marked as
      reviewed absences (so a single-session ``gap`` becomes a real loss).
    - ``real=False`` on a loss: the spine was there, missed: the absence run starting at
      ``session`` is marked present.
    - ``real=False`` on a gain: the spine was there before, missed: the absence run ending at
      ``session - 1`` is marked present.

    Raises
    ------
    DataError
        The track has no gain or loss at that session.
    """
    _check(tracks, track_id)
    _check_session(tracks, session)
    track = classify_fates(tracks[tracks["track_id"] == track_id], params).set_index("session")
    if session == 0:
        raise DataError("mark_event: there is no change at session 0")
    present = track["present"].to_numpy(bool)
    before, after = bool(present[session - 1]), bool(present[session])
    if before == after:
        raise DataError(f"mark_event: track {track_id} has no gain or loss at session {session}")
    if after:  # a gain: absence run ending at session-1
        run = _run(present, session - 1, step=-1)
    else:  # a loss: absence run starting at session
        run = _run(present, session, step=+1)
    return mark_presence(tracks, track_id, run, present=not real, params=params)


def _run(present: np.ndarray, start: int, step: int) -> list[int]:
    run, s = [], start
    while 0 <= s < len(present) and not present[s]:
        run.append(s)
        s += step
    return run


def reject_track(tracks: pd.DataFrame, track_id: int, params: FateParams = FateParams()) -> pd.DataFrame:
    """Mark a track as not a spine (false detection): absent in every session, fate ``rejected``."""
    _check(tracks, track_id)
    sessions = tracks.loc[tracks["track_id"] == track_id, "session"].tolist()
    return mark_presence(tracks, track_id, sessions, present=False, params=params)
