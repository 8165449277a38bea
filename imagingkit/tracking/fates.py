"""The track table (one row per spine track per session), per-session states and per-track fates.

States of a track in a session (column ``state``):

- ``present``: the spine was detected (or a reviewer marked it present);
- ``gap``: not detected, but present before and after, and the absence lasts fewer than
  ``loss_min_sessions`` consecutive sessions: a missed detection, counted as present (unless
  the absence was confirmed on the image, see :mod:`imagingkit.tracking.recheck`). Where the
  absences were checked on the images (an ``absence_confirmed`` column), an absence between
  two presences that the image confirmed in none of its sessions is a gap whatever its length:
  the track is back at its place, and no image showed the place empty (a spine missed in two
  sessions running; where an image does show it empty, the track is split there instead);
- ``absent``: not detected, not a gap: counted as absent (a loss if it was present before);
- ``out_of_view``: its registered position (the detection, or the track's mean position where
  not detected) falls outside the session's image or within ``edge_margin_um`` of its border:
  not observable, left out of the statistics, *detected or not* (a spine at the edge can be
  cut off or drift in and out, so its presence there says nothing about gain or loss). A
  reviewer's decision (``reviewed``) overrides this.

Loss rule: an absence counts as a loss only if it lasts at least ``loss_min_sessions`` (K)
consecutive sessions (and, with the image check, the image confirmed it when the spine comes
back), or lasts until the last session (it cannot be contradicted later).
Default K = 2: with 5-10 % missed detections per session, K = 1 would count every missed spine
as one loss plus one gain; gap closing in :mod:`imagingkit.tracking.link` uses K - 1 sessions.

Fates per track (column ``fate``), from the counted presence (present or gap):

- ``stable``: present in the first and the last session, in one uninterrupted run;
- ``eliminated``: present in the first session, absent from some session to the end;
- ``formed``: absent in the first session, present from some session to the end;
- ``transient``: absent in the first session, formed, then lost before the last;
- ``uncertain``: any ``gap`` (missed in fewer than K sessions between two presences), any
  ``out_of_view`` session, or a spine that reappears after a counted loss (``fate_reason``
  says which);
- ``rejected``: no presence left (a reviewer marked every session absent); a spine seen only
  out of view is ``uncertain``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imagingkit.errors import ParameterError
from imagingkit.tracking.link import as_point_mapper

FATES = ("stable", "formed", "eliminated", "transient", "uncertain", "rejected")
STATES = ("present", "gap", "absent", "out_of_view")
InView = Callable[[int, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class FateParams:
    """Parameters of the fate rules.

    Attributes
    ----------
    loss_min_sessions : int
        K: an absence between two presences is a loss only if it lasts >= K sessions (with
        the image check, only if the image confirmed it, see the module docstring).
    edge_margin_um : float
        A spine not detected within this distance of the image border (or outside the image)
        is ``out_of_view`` in that session.
    """

    loss_min_sessions: int = 2
    edge_margin_um: float = 1.0

    def __post_init__(self) -> None:
        if self.loss_min_sessions < 1:
            raise ParameterError(f"loss_min_sessions must be >= 1, got {self.loss_min_sessions}")
        if self.edge_margin_um < 0:
            raise ParameterError(f"edge_margin_um must be >= 0 µm, got {self.edge_margin_um}")


def view_checker(
    to_session: Sequence[Any], image_shapes: Sequence[Sequence[int]], margin_px: float
) -> InView:
    """Build ``in_view(session, points_ref) -> bool array`` from transforms and image shapes.

    Parameters
    ----------
    to_session : sequence
        Per session, what maps reference (y, x) pixels to that session's pixels (callable, an
        object with ``map_points(points, to="session")``, or None for identity).
    image_shapes : sequence of tuple
        Per session, the image shape (Y, X) or (Z, Y, X); for stacks, points given as
        (y, x, z) are mapped with z and must lie within the planes.
    margin_px : float
        Border width, pixels, inside which a position does not count as in view.
    """
    mappers = [as_point_mapper(t, to="session") for t in to_session]

    def in_view(session: int, points: np.ndarray) -> np.ndarray:
        shape = tuple(image_shapes[session])
        height, width = shape[-2:]
        points = np.asarray(points, float)
        stack = len(shape) == 3 and points.shape[1] >= 3
        mapped = mappers[session](points[:, :3] if stack else points[:, :2])
        ok = (
            (mapped[:, 0] >= margin_px)
            & (mapped[:, 0] <= height - 1 - margin_px)
            & (mapped[:, 1] >= margin_px)
            & (mapped[:, 1] <= width - 1 - margin_px)
        )
        if stack:  # z-stacks: the spine must lie within the stack (no margin in z)
            ok &= (mapped[:, 2] >= -0.5) & (mapped[:, 2] <= shape[0] - 0.5)
        return ok

    return in_view


def build_tracks(
    linked: pd.DataFrame,
    n_sessions: int,
    times_h: Sequence[float] | None = None,
    in_view: InView | None = None,
) -> pd.DataFrame:
    """Expand linked detections into one row per track per session.

    Parameters
    ----------
    linked : DataFrame
        Output of :func:`imagingkit.tracking.link.link_detections`.
    n_sessions : int
    times_h : sequence of float, optional
        Session times, hours.
    in_view : callable, optional
        ``in_view(session, points_ref_yxz)``; if None every position is in view.

    Returns
    -------
    DataFrame
        ``track_id, session, time_h, spine_id, y, x, z, present, in_view, reviewed,
        dendrite_id, arc_um, intensity_ratio`` sorted by track then session. Coordinates are
        reference-frame pixels: the detection where present, the track's mean position where
        not. ``spine_id`` is the session's spine id (missing where absent); ``dendrite_id``
        and ``arc_um`` are the track's reference dendrite and mean arc length there.
        Run :func:`classify_fates` to add ``state, counted, fate, fate_reason``.
    """
    ref_dendrite = "ref_dendrite_id" if "ref_dendrite_id" in linked.columns else "dendrite_id"
    arc = "arc_ref_um" if "arc_ref_um" in linked.columns else "arc_um"
    per_track = linked.groupby("track_id").agg(
        y=("y", "mean"), x=("x", "mean"), z=("z", "mean"), arc_um=(arc, "mean")
    )
    votes = linked.groupby(["track_id", ref_dendrite]).size().reset_index(name="n")
    votes = votes.sort_values(["track_id", "n", ref_dendrite], ascending=[True, False, True])
    per_track["dendrite_id"] = (
        votes.drop_duplicates("track_id").set_index("track_id")[ref_dendrite].astype(int)
    )
    track_ids = per_track.index.to_numpy()
    grid = pd.MultiIndex.from_product([track_ids, np.arange(n_sessions)], names=["track_id", "session"])
    tracks = pd.DataFrame(index=grid).reset_index()
    det = linked.set_index(["track_id", "session"])
    joined = tracks.join(det[["spine_id", "y", "x", "z", "intensity_ratio"]], on=["track_id", "session"])
    present = joined["y"].notna().to_numpy()
    mean_pos = per_track.loc[tracks["track_id"], ["y", "x", "z"]].to_numpy()
    for i, column in enumerate(("y", "x", "z")):
        tracks[column] = np.where(present, joined[column].to_numpy(float), mean_pos[:, i])
    tracks["spine_id"] = joined["spine_id"].astype("Int64") if len(joined) else pd.Series(dtype="Int64")
    tracks["present"] = present
    tracks["time_h"] = np.nan if times_h is None else np.asarray(times_h, float)[tracks["session"].to_numpy()]
    if in_view is None:
        tracks["in_view"] = True
    else:
        visible = np.ones(len(tracks), bool)
        for session in range(n_sessions):
            rows = np.flatnonzero(tracks["session"].to_numpy() == session)
            if len(rows):
                visible[rows] = in_view(session, tracks.loc[rows, ["y", "x", "z"]].to_numpy(float))
        tracks["in_view"] = visible
    tracks["reviewed"] = False
    tracks["dendrite_id"] = per_track.loc[tracks["track_id"], "dendrite_id"].to_numpy(int)
    tracks["arc_um"] = per_track.loc[tracks["track_id"], "arc_um"].to_numpy(float)
    tracks["intensity_ratio"] = joined["intensity_ratio"].to_numpy(float)
    columns = ["track_id", "session", "time_h", "spine_id", "y", "x", "z", "present", "in_view", "reviewed"]
    return tracks[columns + ["dendrite_id", "arc_um", "intensity_ratio"]]


def _track_states(
    present: np.ndarray,
    in_view: np.ndarray,
    reviewed: np.ndarray,
    k: int,
    confirmed: np.ndarray | None = None,
) -> list[str]:
    """States of one track; ``confirmed`` (absences checked on the images): unconfirmed runs are gaps."""
    states = [
        ("present" if p else "absent") if (v or r) else "out_of_view"
        for p, v, r in zip(present, in_view, reviewed, strict=False)
    ]
    where = np.flatnonzero([st == "present" for st in states])
    for a, b in zip(where[:-1], where[1:], strict=False):  # interior absence runs between two presences
        run = range(a + 1, b)
        unconfirmed = confirmed is not None and not confirmed[a + 1 : b].any()
        if 0 < len(run) < k or unconfirmed:
            for s in run:
                if states[s] == "absent" and not reviewed[s]:
                    states[s] = "gap"
    return states


def _track_fate(states: list[str]) -> tuple[str, str]:
    counted = np.array([s in ("present", "gap") for s in states])
    if "out_of_view" in states:  # seen only where it cannot be judged (the image edge) is not rejected
        return "uncertain", "out_of_view"
    if not counted.any():
        return "rejected", "no_presence"
    if "gap" in states:
        return "uncertain", "missed_in_session"
    runs = int(np.sum(np.diff(np.concatenate([[0], counted.astype(int)])) == 1))
    if runs > 1:
        return "uncertain", "reappeared"
    first, last = counted[0], counted[-1]
    if first and last:
        return "stable", ""
    if first:
        return "eliminated", ""
    if last:
        return "formed", ""
    return "transient", ""


def classify_fates(tracks: pd.DataFrame, params: FateParams = FateParams()) -> pd.DataFrame:
    """Add ``state``, ``counted``, ``fate`` and ``fate_reason`` to a track table.

    Uses only ``track_id, session, present, in_view, reviewed`` (and ``absence_confirmed`` where
    present: an absence confirmed on the image, see :mod:`.recheck`, is never a ``gap``, and an
    absence between two presences confirmed in none of its sessions always is), so it can be
    re-run after review edits. ``counted`` is True where the state is ``present`` or ``gap`` (the presence
    the statistics use). Definitions are in the module docstring.

    Returns
    -------
    DataFrame
        A new table sorted by ``track_id, session``.
    """
    out = tracks.drop(columns=[c for c in ("state", "counted", "fate", "fate_reason") if c in tracks]).copy()
    out = out.sort_values(["track_id", "session"], kind="stable").reset_index(drop=True)
    states = np.empty(len(out), dtype=object)
    fates = np.empty(len(out), dtype=object)
    reasons = np.empty(len(out), dtype=object)
    present = out["present"].to_numpy(bool)
    in_view = out["in_view"].to_numpy(bool)
    reviewed = out["reviewed"].to_numpy(bool)
    confirmed = None
    if "absence_confirmed" in out:  # an absence confirmed on the image is never a gap
        confirmed = out["absence_confirmed"].to_numpy(bool) & in_view & ~present
        reviewed = reviewed | confirmed
    bounds = np.flatnonzero(np.diff(out["track_id"].to_numpy(), prepend=np.nan, append=np.nan) != 0)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=False):
        s = _track_states(
            present[start:stop],
            in_view[start:stop],
            reviewed[start:stop],
            params.loss_min_sessions,
            None if confirmed is None else confirmed[start:stop],
        )
        states[start:stop] = s
        fates[start:stop], reasons[start:stop] = _track_fate(s)
    out["state"] = states.astype(str) if len(out) else pd.Series(dtype=str)
    out["counted"] = np.isin(out["state"].to_numpy(), ["present", "gap"])
    out["fate"] = fates.astype(str) if len(out) else pd.Series(dtype=str)
    out["fate_reason"] = reasons.astype(str) if len(out) else pd.Series(dtype=str)
    return out
