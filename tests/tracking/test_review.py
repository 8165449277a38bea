"""Review edits on a track table and statistics recomputed from the corrected table."""

from __future__ import annotations

import pytest

from imagingkit.errors import DataError
from imagingkit.tracking import FateParams, classify_fates, compute_turnover
from imagingkit.tracking.review import mark_event, mark_presence, reject_track, relink, split_track
from tests.tracking.tables import track_table

K1 = FateParams(loss_min_sessions=1)


def fates(tracks):
    return tracks.drop_duplicates("track_id").set_index("track_id")["fate"].to_dict()


def test_relink_merges_a_lost_and_a_new_track():
    tracks = classify_fates(track_table(["1100", "0011"]), K1)
    assert compute_turnover(tracks)["n_lost"].tolist()[2] == 1
    fixed = relink(tracks, 0, 1, K1)
    assert fates(fixed) == {0: "stable"}
    table = compute_turnover(fixed)
    assert table["n_lost"].tolist()[1:] == [0, 0, 0] and table["n_gained"].tolist()[1:] == [0, 0, 0]
    assert len(tracks) == 8 and len(fixed) == 4  # input untouched
    with pytest.raises(DataError, match="both present"):
        relink(classify_fates(track_table(["1100", "0110"]), K1), 0, 1, K1)


def test_split_track_makes_loss_and_gain():
    tracks = classify_fates(track_table(["1111"]), K1)
    fixed = split_track(tracks, 0, 2, K1)
    assert fates(fixed) == {0: "eliminated", 1: "formed"}
    assert compute_turnover(fixed)["turnover_ratio"].iloc[2] == pytest.approx(2 / 2)
    with pytest.raises(DataError, match="session 9"):
        split_track(tracks, 0, 9, K1)


def test_mark_presence_and_events():
    tracks = classify_fates(track_table(["1011", "1100"]))  # K=2: track 0 has a gap
    assert fates(tracks)[0] == "uncertain"
    confirmed = mark_event(tracks, 0, 1, real=True)  # the loss at session 1 is real
    assert (
        confirmed.loc[(confirmed["track_id"] == 0) & (confirmed["session"] == 1), "state"].item() == "absent"
    )
    rejected_loss = mark_event(tracks, 1, 2, real=False)  # track 1 was only missed in 2, 3
    assert fates(rejected_loss)[1] == "stable"
    marked = mark_presence(tracks, 0, 1, True)
    assert fates(marked)[0] == "stable"
    with pytest.raises(DataError, match="no gain or loss"):
        mark_event(tracks, 1, 1, real=True)
    gone = reject_track(tracks, 1)
    assert fates(gone)[1] == "rejected"
    assert compute_turnover(gone)["n_spines"].tolist() == [1, 1, 1, 1]
