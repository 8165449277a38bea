"""The event list: every gain and loss the statistics count, those no image confirmed first."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import DataError
from imagingkit.tracking import EVENT_COLUMNS, FateParams, classify_fates, compute_turnover, list_events
from imagingkit.tracking.review import mark_event
from tests.tracking.tables import track_table

K1 = FateParams(loss_min_sessions=1)


def _with_image_check(tracks, confirmed=(), found=()):
    """The image-check columns, set at the given (track_id, session) rows."""
    keys = list(zip(tracks["track_id"], tracks["session"], strict=True))
    out = tracks.assign(
        absence_confirmed=[k in confirmed for k in keys],
        refound=[k in found for k in keys],
        discovered=False,
    )
    out.loc[out["refound"], "present"] = True
    return classify_fates(out, K1)


def test_events_are_the_gains_and_losses_the_statistics_count():
    tracks = classify_fates(track_table(["1100", "0011", "1o01", "1111", "0110"]), K1)
    events = list_events(tracks)
    assert list(events.columns) == list(EVENT_COLUMNS)
    turnover = compute_turnover(tracks)
    for kind, column in (("gain", "n_gained"), ("loss", "n_lost")):
        per_session = events[events["kind"] == kind].groupby("session").size()
        assert per_session.reindex(range(1, 4), fill_value=0).tolist() == turnover[column].iloc[1:].tolist()
    keys = set(zip(events["track_id"], events["session"], events["kind"], strict=True))
    # track 2 is out of view in session 1: no event next to it, its gain at 3 counts
    assert keys == {(0, 2, "loss"), (1, 2, "gain"), (2, 3, "gain"), (4, 1, "gain"), (4, 3, "loss")}
    assert events["to_check"].all()  # no image check: every verdict rests on the tables alone
    row = events[(events["track_id"] == 1) & (events["kind"] == "gain")].iloc[0]
    assert (row["y"], row["x"], row["time_h"]) == (20.0, 30.0, 2.0)


def test_events_the_image_confirmed_or_a_reviewer_set_need_no_check():
    tracks = _with_image_check(
        track_table(["1100", "0011", "1110", "0111"]),
        confirmed={(0, 2), (0, 3), (1, 1)},  # the loss of track 0, the gain of track 1
        found={(3, 1)},  # track 3's presence in session 1 came from the image, its absence before is open
    )
    events = list_events(tracks).set_index(["track_id", "kind"])
    assert not events.loc[(0, "loss"), "to_check"] and events.loc[(0, "loss"), "absence_confirmed"]
    assert not events.loc[(1, "gain"), "to_check"]
    assert events.loc[(2, "loss"), "to_check"] and not events.loc[(2, "loss"), "presence_found"]
    assert events.loc[(3, "gain"), "to_check"] and events.loc[(3, "gain"), "presence_found"]
    # to check first, those found on the image before the others
    order = list(list_events(tracks)[["track_id", "to_check"]].itertuples(index=False, name=None))
    assert order[:2] == [(3, True), (2, True)] and not any(flag for _, flag in order[2:])
    reviewed = list_events(mark_event(tracks, 2, 3, real=True, params=K1)).set_index(["track_id", "kind"])
    assert reviewed.loc[(2, "loss"), "reviewed"] and not reviewed.loc[(2, "loss"), "to_check"]


def test_a_table_without_fates_is_refused():
    with pytest.raises(DataError, match="counted"):
        list_events(track_table(["1100"]))
    tracks = classify_fates(track_table(["1100"]), K1)
    with pytest.raises(DataError, match="two rows"):
        list_events(tracks.iloc[np.r_[0, 0, 1, 2, 3]])
