"""States and fates on hand-made track tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.tracking.fates import FateParams, classify_fates


def make_tracks(patterns, in_view=None):
    rows = []
    for t, pattern in enumerate(patterns):
        for s, ch in enumerate(pattern):
            rows.append(
                {
                    "track_id": t,
                    "session": s,
                    "present": ch == "1",
                    "in_view": ch != "o",
                    "reviewed": False,
                    "y": 1.0,
                    "x": 1.0,
                    "z": 0.0,
                    "spine_id": s if ch == "1" else pd.NA,
                    "dendrite_id": 0,
                    "arc_um": float(t),
                    "intensity_ratio": 1.0 if ch == "1" else np.nan,
                    "time_h": float(s),
                }
            )
    return pd.DataFrame(rows)


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
    out = classify_fates(make_tracks([pattern]), FateParams(loss_min_sessions=k))
    code = {"present": "P", "gap": "G", "absent": "A", "out_of_view": "O"}
    assert "".join(code[s] for s in out["state"]) == states
    assert set(out["fate"]) == {fate}
    assert list(out["counted"]) == [c in "PG" for c in states]


def test_reviewed_absence_is_never_a_gap():
    tracks = make_tracks(["1011"])
    tracks.loc[1, "reviewed"] = True
    out = classify_fates(tracks, FateParams(loss_min_sessions=2))
    assert out.loc[1, "state"] == "absent"
    assert out["fate_reason"].iloc[0] == "reappeared"


def test_a_spine_seen_only_at_the_image_edge_is_uncertain_not_rejected():
    tracks = make_tracks(["0100"])
    tracks.loc[tracks["session"] == 1, "in_view"] = False  # detected, but within the edge margin
    out = classify_fates(tracks)
    assert out["fate"].unique().tolist() == ["uncertain"]
    assert out["fate_reason"].unique().tolist() == ["out_of_view"]
    rejected = classify_fates(make_tracks(["0000"]))
    assert rejected["fate"].unique().tolist() == ["rejected"]
