"""Turnover statistics against hand-computed values and against simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.tracking import (
    BootstrapParams,
    FateParams,
    LinkParams,
    bootstrap_turnover,
    classify_fates,
    compute_turnover,
)
from imagingkit.tracking.evaluate import truth_tracks
from imagingkit.tracking.session import TrackingParams, track_spines
from imagingkit.tracking.testing import simulate_point_series
from tests.tracking.tables import track_table

# 5 tracks, 3 sessions:      s0 s1 s2
PATTERNS = [
    "111",  # stable
    "110",  # lost at s2
    "100",  # lost at s1
    "011",  # formed at s1
    "001",
]  # formed at s2


def test_hand_computed_turnover():
    tracks = classify_fates(track_table(PATTERNS), FateParams(loss_min_sessions=1))
    table = compute_turnover(tracks, dendrite_length_um={0: 10.0})
    assert table["n_spines"].tolist() == [3, 3, 3]
    assert table["n_gained"].tolist()[1:] == [1, 1]
    assert table["n_lost"].tolist()[1:] == [1, 1]
    # s1: 1 gained, 1 lost, 3 spines at s0 -> 33.3 %, TOR = 2 / (2 * 3)
    assert table.loc[1, "formation_rate"] == pytest.approx(100 / 3)
    assert table.loc[1, "elimination_rate"] == pytest.approx(100 / 3)
    assert table.loc[1, "turnover_ratio"] == pytest.approx(1 / 3)
    # survival of the 3 baseline spines: 2/3 at s1, 1/3 at s2
    assert table["survival_baseline"].tolist() == pytest.approx([1, 2 / 3, 1 / 3])
    # vs baseline at s2: new = tracks 3, 4 (2 of 3), lost = tracks 1, 2 (2 of 3)
    assert table.loc[2, "formation_vs_baseline"] == pytest.approx(200 / 3)
    assert table.loc[2, "elimination_vs_baseline"] == pytest.approx(200 / 3)
    assert table["density_per_um"].tolist() == pytest.approx([0.3, 0.3, 0.3])
    assert np.isnan(table.loc[0, "turnover_ratio"])


def test_out_of_view_is_left_out_and_bootstrap_brackets_estimate():
    tracks = track_table(PATTERNS + ["1o1"])
    tracks.loc[tracks["track_id"] >= 3, "dendrite_id"] = 1
    tracks = classify_fates(tracks, FateParams(loss_min_sessions=1))
    table = compute_turnover(tracks)
    assert table["n_spines"].tolist() == [4, 3, 4]  # the out-of-view track is not counted at s1
    assert table.loc[1, "n_lost"] == 1
    ci = bootstrap_turnover(tracks, BootstrapParams(n_boot=500, seed=1))
    row = ci[(ci["statistic"] == "survival_baseline") & (ci["session"] == 1)].iloc[0]
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert row["n_groups"] == 2
    one_group = bootstrap_turnover(classify_fates(track_table(PATTERNS)), BootstrapParams(n_boot=50))
    assert one_group["ci_low"].isna().all()


def test_statistics_match_simulated_truth_from_true_positions():
    # true positions, no missed detections: K = 1 and no gap closing is the right setting
    ps = simulate_point_series(n_spines=240, n_dendrites=6, seed=7, warp_px=2.0, p_loss=0.1, p_gain=0.1)
    params = TrackingParams(
        pixel_size_um=ps.pixel_size_um,
        bootstrap=BootstrapParams(n_boot=200),
        link=LinkParams(max_gap_sessions=0),
        fates=FateParams(loss_min_sessions=1, edge_margin_um=0.0),
    )
    transforms = list(zip(ps.to_reference, ps.to_session, strict=False))
    result = track_spines(ps.tables, ps.times_h, params, transforms, [ps.shape] * len(ps.tables))
    truth = compute_turnover(truth_tracks(ps.truth), ps.times_h)
    for column in ("formation_rate", "elimination_rate"):
        assert np.nanmax(np.abs(result.turnover[column] - truth[column])) <= 2.0
    assert np.nanmax(np.abs(result.turnover["survival_baseline"] - truth["survival_baseline"])) <= 0.02
    assert np.nanmax(np.abs(result.turnover["turnover_ratio"] - truth["turnover_ratio"])) <= 0.02
