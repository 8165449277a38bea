"""Linking accuracy on synthetic point series with known identities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import RegistrationError
from imagingkit.tracking.evaluate import link_scores
from imagingkit.tracking.link import (
    LinkParams,
    align_dendrites,
    check_overlap,
    collect_detections,
    link_detections,
)
from imagingkit.tracking.testing import simulate_point_series


def _link(ps, params=LinkParams()):
    det = collect_detections(ps.tables, ps.to_reference, ps.pixel_size_um)
    det = align_dendrites(det, 0, params.max_link_um)
    linked = link_detections(det, len(ps.tables), params)
    truth = ps.truth[ps.truth["det_index"] >= 0]
    lookup = pd.Series(
        truth["spine_id"].to_numpy(), index=pd.MultiIndex.from_arrays([truth["session"], truth["det_index"]])
    )
    true_id = lookup.loc[list(zip(linked["session"], linked["det_index"], strict=False))].to_numpy()
    return linked, true_id


@pytest.mark.parametrize("warp_px", [0.0, 3.0])
def test_linking_accuracy_with_drift_rotation_warp_and_misses(warp_px):
    ps = simulate_point_series(seed=3, p_miss=0.05, warp_px=warp_px, drift_px=10, rotation_deg=3)
    linked, true_id = _link(ps)
    scores = link_scores(linked, true_id)
    assert scores["pair_recall"] >= 0.98
    assert scores["pair_precision"] >= 0.97


def test_warp_correction_is_what_makes_warp_tractable():
    ps = simulate_point_series(seed=4, p_miss=0.0, warp_px=4.0)
    refined = link_scores(*_link(ps))
    plain = link_scores(*_link(ps, LinkParams(refine_passes=0)))
    assert refined["pair_recall"] > plain["pair_recall"] + 0.05


def test_gap_closing_bridges_a_single_missed_session():
    base = pd.DataFrame(
        {"spine_id": [0, 1], "y": [10.0, 40.0], "x": [10.0, 10.0], "dendrite_id": 0, "arc_um": [0.0, 6.0]}
    )
    tables = [base, base.iloc[[1]], base, base]
    det = collect_detections(tables, None, pixel_size_um=0.2)
    linked = link_detections(det, 4, LinkParams(refine_passes=0))
    assert linked["track_id"].nunique() == 2
    no_gap = link_detections(det, 4, LinkParams(refine_passes=0, max_gap_sessions=0))
    assert no_gap["track_id"].nunique() == 3  # the missed spine's track is cut in two


def test_dendrite_gating_and_flipped_arc_length():
    rng = np.random.default_rng(0)
    arcs = np.sort(rng.uniform(0, 50, 30))
    ref = pd.DataFrame(
        {"spine_id": range(30), "y": 50 + arcs * 5, "x": 50.0, "dendrite_id": 0, "arc_um": arcs}
    )
    # session 1: same spines, dendrite renamed 7 and traced from the other end (arc flipped)
    other = ref.assign(dendrite_id=7, arc_um=60.0 - arcs)
    det = collect_detections([ref, other], None, pixel_size_um=0.2)
    det = align_dendrites(det, 0, 1.5)
    assert set(det.loc[det["session"] == 1, "ref_dendrite_id"]) == {0}
    assert np.allclose(det.loc[det["session"] == 1, "arc_ref_um"].to_numpy(), arcs)
    linked = link_detections(det, 2)
    assert linked["track_id"].nunique() == 30
    # two spines 0.4 µm apart but on different dendrites are never linked
    a = pd.DataFrame({"spine_id": [0], "y": [100.0], "x": [100.0], "dendrite_id": [0], "arc_um": [1.0]})
    b = pd.DataFrame({"spine_id": [0], "y": [102.0], "x": [100.0], "dendrite_id": [1], "arc_um": [1.0]})
    det = collect_detections([a, b], None, pixel_size_um=0.2)
    assert link_detections(det, 2, LinkParams(refine_passes=0))["track_id"].nunique() == 2


def test_a_tracing_that_joins_two_reference_dendrites_is_mapped_piece_by_piece():
    # reference: two dendrites (a vertical and a horizontal one); the other session's tracing
    # runs through both as one dendrite 5, arc continuing from the first into the second
    rng = np.random.default_rng(1)
    arcs = np.sort(rng.uniform(0, 40, 20))
    vertical = pd.DataFrame({"y": 50 + arcs * 5, "x": 50.0, "dendrite_id": 0, "arc_um": arcs})
    horizontal = pd.DataFrame({"y": 300.0, "x": 100 + arcs * 5, "dendrite_id": 1, "arc_um": arcs})
    ref = pd.concat([vertical, horizontal], ignore_index=True).assign(spine_id=range(40))
    other = ref.assign(dendrite_id=5, arc_um=np.concatenate([arcs, 45.0 + arcs]))
    det = align_dendrites(collect_detections([ref, other], None, pixel_size_um=0.2), 0, 1.5)
    mapped = det[det["session"] == 1]
    assert mapped["ref_dendrite_id"].tolist() == [0] * 20 + [1] * 20
    assert np.allclose(mapped["arc_ref_um"].to_numpy(), np.concatenate([arcs, arcs]))
    assert link_detections(det, 2)["track_id"].nunique() == 40


def test_other_field_of_view_is_a_registration_error():
    ps = simulate_point_series(seed=5)
    other = simulate_point_series(seed=99, shape=(700, 700))  # another field: other dendrites
    tables = [ps.tables[0], other.tables[1]]
    det = collect_detections(tables, None, ps.pixel_size_um)
    with pytest.raises(RegistrationError, match="session 1"):
        check_overlap(det, 0, LinkParams())


def _grid_table(points_px: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": points_px[:, 0],
            "x": points_px[:, 1],
            "dendrite_id": 0,
            "arc_um": np.arange(len(points_px), dtype=float),
        }
    ).assign(spine_id=range(len(points_px)))


def test_a_session_sharing_few_spines_with_the_reference_is_checked_through_the_sessions_between():
    # 30 spines 4 um apart; each session 8 of the first spines vanish and 8 new ones form 2.8 um
    # from every old place: the third session shares 47 % of its spines with the reference, 73 %
    # with the session before it
    yy, xx = np.mgrid[0:6, 0:5]
    old = np.column_stack([yy.ravel(), xx.ravel()]).astype(float) * 20 + 50
    new = old + 10
    sessions = [old, np.vstack([old[8:], new[:8]]), np.vstack([old[16:], new[:16]])]
    det = collect_detections([_grid_table(p) for p in sessions], None, pixel_size_um=0.2)
    fractions = check_overlap(det, 0, LinkParams())
    assert fractions[2] < LinkParams().min_match_fraction  # the reference alone would refuse it
    # a session of another field (no spine within the gate of any other session's) still is an error
    other = old + np.array([7.0, -7.0])
    det = collect_detections([_grid_table(p) for p in [*sessions, other]], None, pixel_size_um=0.2)
    with pytest.raises(RegistrationError, match="session 3"):
        check_overlap(det, 0, LinkParams())
    # two sessions of that other field match each other, but nothing registered to the reference
    det = collect_detections([_grid_table(p) for p in [*sessions, other, other]], None, pixel_size_um=0.2)
    with pytest.raises(RegistrationError, match="session 3"):
        check_overlap(det, 0, LinkParams())
