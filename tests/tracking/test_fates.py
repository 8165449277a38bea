"""States and fates on hand-made track tables."""

from __future__ import annotations

import pytest

from imagingkit.tracking.fates import FateParams, classify_fates
from tests.tracking.tables import track_table


@pytest.mark.parametrize(
    "pattern, k, fate, states",
    [
        ("1111", 2, "stable", "PPPP"),
        ("1100", 2, "eliminated", "PPAA"),
        ("0011", 2, "formed", "AAPP"),
        ("0110", 2, "transient", "APPA"),
        ("1011", 2, "uncertain", "PGPP"),  # single missed session: a gap, counted present
        ("1011", 1, "uncertain", "PAPP"),  # K=1: lost then reappeared
        ("1001", 2, "uncertain", "PAAP"),  # lost 2 sessions, back: reappeared
        ("1001", 3, "uncertain", "PGGP"),
        ("1110", 2, "eliminated", "PPPA"),  # a loss at the last session counts
        ("11o1", 2, "uncertain", "PPOP"),
    ],
)
def test_fate_rules(pattern, k, fate, states):
    out = classify_fates(track_table([pattern]), FateParams(loss_min_sessions=k))
    code = {"present": "P", "gap": "G", "absent": "A", "out_of_view": "O"}
    assert "".join(code[s] for s in out["state"]) == states
    assert set(out["fate"]) == {fate}
    assert list(out["counted"]) == [c in "PG" for c in states]


def test_reviewed_absence_is_never_a_gap():
    tracks = track_table(["1011"])
    tracks.loc[1, "reviewed"] = True
    out = classify_fates(tracks, FateParams(loss_min_sessions=2))
    assert out.loc[1, "state"] == "absent"
    assert out["fate_reason"].iloc[0] == "reappeared"


def test_a_spine_seen_only_at_the_image_edge_is_uncertain_not_rejected():
    tracks = track_table(["0100"])
    tracks.loc[tracks["session"] == 1, "in_view"] = False  # detected, but within the edge margin
    out = classify_fates(tracks)
    assert out["fate"].unique().tolist() == ["uncertain"]
    assert out["fate_reason"].unique().tolist() == ["out_of_view"]
    rejected = classify_fates(track_table(["0000"]))
    assert rejected["fate"].unique().tolist() == ["rejected"]
