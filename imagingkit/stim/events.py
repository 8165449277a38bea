"""The events table: one row per stimulation event, on the imaging clock.

Every event source in :mod:`imagingkit.stim` returns this table so that later
steps never care where the events came from. Columns (the contract)::

    event_id      int     0..n-1 in onset order
    trial         int     trial index (a train of pulses is one trial)
    onset_s       float   start of the first light pulse (s, imaging clock)
    duration_s    float   from the first pulse onset to the last pulse offset (s)
    n_pulses      int     pulses in the train (1 for a single pulse)
    frequency_hz  float   pulse rate within the train (NaN for one pulse)
    power_mw      float   light power (mW), NaN when unknown
    site          str     stimulation site / target ("" when unknown)
    condition     str     "stim", "sham" (light off / shutter closed) or a user label

The CLI adds ``frame``: the index of the frame during which the event started.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from imagingkit.errors import DataError

EVENT_COLUMNS = (
    "event_id",
    "trial",
    "onset_s",
    "duration_s",
    "n_pulses",
    "frequency_hz",
    "power_mw",
    "site",
    "condition",
)
SHAM = "sham"
STIM = "stim"

_DEFAULTS = {
    "duration_s": 0.0,
    "n_pulses": 1,
    "frequency_hz": np.nan,
    "power_mw": np.nan,
    "site": "",
    "condition": STIM,
}


def make_events(onset_s, *, source: str = "events", renumber: bool = True, **columns) -> pd.DataFrame:
    """Build a validated events table from onsets and optional columns.

    Parameters
    ----------
    onset_s : array_like
        (n,) event onsets in seconds.
    source : str
        Name of where the events came from, used in error messages.
    renumber : bool
        Re-assign ``event_id`` (and ``trial`` when absent) in onset order.
    **columns
        Any other column of :data:`EVENT_COLUMNS` as a scalar or (n,) array.

    Returns
    -------
    DataFrame
        Columns :data:`EVENT_COLUMNS`, sorted by onset.
    """
    table = pd.DataFrame({"onset_s": np.asarray(onset_s, dtype=float).ravel()})
    for key, value in columns.items():
        table[key] = value
    return validate_events(table, source=source, renumber=renumber)


def validate_events(table: pd.DataFrame, *, source: str = "events", renumber: bool = False) -> pd.DataFrame:
    """Check and normalise an events table; return a new sorted table.

    Missing optional columns are filled with defaults (duration 0, one pulse,
    unknown frequency/power, empty site, condition ``"stim"``). Extra columns
    are kept after the contract columns.

    Raises
    ------
    DataError
        No ``onset_s`` column, non-finite onsets, negative durations or pulse counts.
    """
    if "onset_s" not in table.columns:
        raise DataError(f"{source}: events table has no 'onset_s' column (columns: {list(table.columns)})")
    out = table.copy()
    onset = pd.to_numeric(out["onset_s"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(onset)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(f"{source}: onset_s must be finite numbers; rows {rows} are not")
    out["onset_s"] = onset
    for key, default in _DEFAULTS.items():
        if key not in out.columns:
            out[key] = default
    out["duration_s"] = pd.to_numeric(out["duration_s"], errors="coerce").fillna(0.0).astype(float)
    if (out["duration_s"] < 0).any():
        raise DataError(f"{source}: duration_s must be >= 0")
    out["n_pulses"] = pd.to_numeric(out["n_pulses"], errors="coerce").fillna(1).astype(int)
    if (out["n_pulses"] < 0).any():
        raise DataError(f"{source}: n_pulses must be >= 0")
    for key in ("frequency_hz", "power_mw"):
        out[key] = pd.to_numeric(out[key], errors="coerce").astype(float)
    out["site"] = out["site"].fillna("").astype(str)
    out["condition"] = out["condition"].fillna(STIM).astype(str)
    out = out.sort_values("onset_s", kind="stable").reset_index(drop=True)
    for key in ("event_id", "trial"):
        values = pd.to_numeric(out[key], errors="coerce") if key in out.columns else None
        if (
            values is None
            or values.isna().any()
            or (key == "event_id" and (renumber or values.duplicated().any()))
        ):
            out[key] = np.arange(len(out))
        else:
            out[key] = values
    out["event_id"] = out["event_id"].astype(int)
    out["trial"] = out["trial"].astype(int)
    extra = [c for c in out.columns if c not in EVENT_COLUMNS]
    return out[list(EVENT_COLUMNS) + extra]


@dataclasses.dataclass(frozen=True)
class EventSelection:
    """Events inside the recording and a count of those left out.

    Attributes
    ----------
    events : DataFrame
        Events whose whole analysis window lies inside the recording.
    n_before, n_after : int
        Events left out because their window starts before the first frame or
        ends after the last one.
    recording_span_s : tuple of float
        (first frame start, end of the last frame) in seconds.
    """

    events: pd.DataFrame
    n_before: int
    n_after: int
    recording_span_s: tuple[float, float]

    @property
    def n_dropped(self) -> int:
        return self.n_before + self.n_after

    def message(self) -> str:
        """One line for a report; empty when nothing was left out."""
        if not self.n_dropped:
            return ""
        t0, t1 = self.recording_span_s
        return (
            f"{self.n_dropped} event(s) left out because their window falls outside the recording "
            f"[{t0:.3f}, {t1:.3f}] s: {self.n_before} before its start, {self.n_after} after its end"
        )


def select_in_recording(
    events: pd.DataFrame,
    frame_times_s: np.ndarray,
    *,
    window_s: tuple[float, float] = (0.0, 0.0),
    source: str = "events",
) -> EventSelection:
    """Keep the events whose window ``onset + window_s`` lies inside the recording.

    Parameters
    ----------
    events : DataFrame
        Events table.
    frame_times_s : ndarray
        (T,) or (T, Z) frame start times on the same clock as the events.
    window_s : (float, float)
        Analysis window relative to onset, e.g. (baseline start, response end).
    source : str
        Name used in error messages.

    Raises
    ------
    DataError
        No event at all lies inside the recording.
    """
    times = np.asarray(frame_times_s, dtype=float)
    times = times.reshape(len(times), -1)
    start = float(times[0].min())
    period = float(np.median(np.diff(times[:, 0]))) if len(times) > 1 else 0.0
    end = float(times[-1].max() + period)
    onset = events["onset_s"].to_numpy(dtype=float)
    before = onset + window_s[0] < start
    after = onset + window_s[1] > end
    keep = ~(before | after)
    selection = EventSelection(
        events=events.loc[keep].reset_index(drop=True),
        n_before=int(before.sum()),
        n_after=int((after & ~before).sum()),
        recording_span_s=(start, end),
    )
    if len(events) and not keep.any():
        raise DataError(
            f"{source}: none of the {len(events)} events (onsets {onset.min():.3f}..{onset.max():.3f} s) "
            f"has its window {window_s} s inside the recording [{start:.3f}, {end:.3f}] s; "
            "are events and frames on the same clock?"
        )
    return selection


def assign_frames(events: pd.DataFrame, frame_times_s: np.ndarray) -> pd.DataFrame:
    """Return a copy with ``frame``: the frame during which each event started.

    ``frame`` is the last frame whose start time is <= onset (-1 before the
    first frame). For volumes the first plane's start times are used.
    """
    times = np.asarray(frame_times_s, dtype=float)
    times = times.reshape(len(times), -1)[:, 0]
    out = events.copy()
    out["frame"] = np.searchsorted(times, out["onset_s"].to_numpy(dtype=float), side="right") - 1
    return out


def check_overlap(
    events: pd.DataFrame, window_s: tuple[float, float], *, source: str = "events"
) -> np.ndarray:
    """Return a (n,) bool array: True where an event's window overlaps the previous one's.

    Windows are ``onset + window_s``; events are assumed sorted by onset.
    """
    onset = events["onset_s"].to_numpy(dtype=float)
    overlap = np.zeros(len(onset), dtype=bool)
    if len(onset) > 1:
        overlap[1:] = onset[1:] + window_s[0] < onset[:-1] + window_s[1]
    return overlap
