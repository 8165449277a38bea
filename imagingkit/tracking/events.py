"""The gains and losses a track table counts, each with what its verdict rests on: what to review first.

:func:`list_events` lists every gain and loss that :mod:`imagingkit.tracking.turnover` counts
(a track counted in session s and not in s-1, or the reverse, observable in both), one row per
event, in the reference frame:

- ``track_id``, ``session`` (the later session of the pair), ``kind`` (``gain`` or ``loss``),
  ``time_h`` where the table has it, and the track's ``y, x, z`` in that session;
- ``absence_confirmed``: the image showed the spine's place empty on the absent side (the image
  check of :mod:`imagingkit.tracking.recheck`: no light where the spine had shown at twice the
  detector's threshold);
- ``presence_found``: the spine's presence on the present side comes from the image, not from
  an input table (re-found at the track's place or discovered);
- ``reviewed``: a reviewer set the presence on either side;
- ``to_check``: neither reviewed nor confirmed by the image. The verdict then rests on the
  tables, or on the presence model's weighing of them (:mod:`imagingkit.tracking.presence`,
  ``p_present``): a spine too dim for the image to judge, a crowded place, a place the
  dendrite model does not cover, or no image check at all.

Rows are sorted for review: events to check first, those whose presence came from the image
before the others (a peak at a lost spine's place, a false discovery), then by session and
track. On simulated series (``benchmarks/bench_tracking.py``, evaluation seeds 220-299, warp
1 px, noise 1) with 10 % of the spines missing from the tables, a third of the events (726 of
2,165) are to check and they hold 87 of the 95 wrong ones: a reviewer rejecting those brings
gain / loss F1 from 0.947 / 0.959 to 0.969 / 0.977 at a third of the work. From the detector's
spines: 30 % to check, holding 395 of 476 wrong events (F1 0.785 / 0.809 -> 0.867 / 0.885).
Events the tracker missed (a loss hidden by a wrongly re-found spine, a spine no input table
holds) are not listed: the re-found and discovered rows of the track table point to the first
kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imagingkit.errors import DataError

EVENT_COLUMNS = (
    "track_id",
    "session",
    "kind",
    "time_h",
    "y",
    "x",
    "z",
    "absence_confirmed",
    "presence_found",
    "reviewed",
    "to_check",
)
_NEEDED = ("track_id", "session", "counted", "state", "y", "x")


def bool_column(tracks: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean column of a track table, all False where the table has none (e.g. no image check)."""
    if column not in tracks:
        return np.zeros(len(tracks), bool)
    return tracks[column].fillna(False).to_numpy(bool)


def found_on_image(tracks: pd.DataFrame) -> np.ndarray:
    """Per row of a track table: present from the image, in no input table (re-found or discovered)."""
    return bool_column(tracks, "refound") | bool_column(tracks, "discovered")


def list_events(tracks: pd.DataFrame) -> pd.DataFrame:
    """Every gain and loss of a classified track table, with what its verdict rests on (module docstring).

    Parameters
    ----------
    tracks : DataFrame
        A track table with ``counted`` and ``state``
        (:func:`~imagingkit.tracking.fates.classify_fates`), e.g. ``TrackingResult.tracks`` or a
        read-back ``tracks.csv``.

    Returns
    -------
    DataFrame
        One row per event, columns :data:`EVENT_COLUMNS`, sorted for review.

    Raises
    ------
    DataError
        A column is missing, or a track has two rows for one session.
    """
    missing = [c for c in _NEEDED if c not in tracks.columns]
    if missing:
        raise DataError(f"track table: missing column(s) {', '.join(missing)}; run classify_fates first")
    if tracks.duplicated(["track_id", "session"]).any():
        raise DataError("track table: a track has two rows for one session")
    table = tracks.reset_index(drop=True)
    rows = table.assign(
        _counted=table["counted"].fillna(False).to_numpy(bool),
        _seen=table["state"].to_numpy() != "out_of_view",
        _confirmed=bool_column(table, "absence_confirmed"),
        _found=found_on_image(table),
        _reviewed=bool_column(table, "reviewed"),
    )
    earlier = rows.assign(session=rows["session"] + 1)  # session s-1, keyed by s
    pairs = rows.merge(earlier, on=["track_id", "session"], suffixes=("", "_before"))
    pairs = pairs[pairs["_seen"] & pairs["_seen_before"] & (pairs["_counted"] != pairs["_counted_before"])]
    gain = pairs["_counted"].to_numpy(bool)
    events = pd.DataFrame(
        {
            "track_id": pairs["track_id"].to_numpy(),
            "session": pairs["session"].to_numpy(int),
            "kind": np.where(gain, "gain", "loss"),
            "time_h": pairs["time_h"].to_numpy(float) if "time_h" in pairs else np.nan,
            "y": pairs["y"].to_numpy(float),
            "x": pairs["x"].to_numpy(float),
            "z": pairs["z"].to_numpy(float) if "z" in pairs else np.nan,
            # the absent side is s-1 for a gain, s for a loss; the present side the other
            "absence_confirmed": np.where(gain, pairs["_confirmed_before"], pairs["_confirmed"]),
            "presence_found": np.where(gain, pairs["_found"], pairs["_found_before"]),
            "reviewed": (pairs["_reviewed"] | pairs["_reviewed_before"]).to_numpy(bool),
        }
    )
    events["to_check"] = ~events["reviewed"] & ~events["absence_confirmed"]
    events = events.sort_values(
        ["to_check", "presence_found", "session", "track_id"], ascending=[False, False, True, True]
    )
    return events.reset_index(drop=True)[list(EVENT_COLUMNS)]
