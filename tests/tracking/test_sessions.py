"""track_sessions end to end on simulated dendrite images: registration, detection, linking vs truth."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import RegistrationError
from imagingkit.synth import simulate_dendrite_sessions
from imagingkit.tracking import BootstrapParams, TrackingParams, track_sessions
from imagingkit.tracking.evaluate import link_scores, match_to_truth, score_tracking
from imagingkit.tracking.testing import synth_truth_tables, synth_truth_with_detection

PIXEL_UM = 0.2
PARAMS = TrackingParams(pixel_size_um=PIXEL_UM, bootstrap=BootstrapParams(n_boot=50))


@pytest.fixture(scope="module")
def sim():
    # drift, rotation, smooth warp and brightness change between sessions (synth defaults)
    return simulate_dendrite_sessions(n_sessions=3, times_h=(0, 1, 24), shape=(192, 192), seed=3)


@pytest.fixture(scope="module")
def from_truth(sim):
    tables = synth_truth_tables(sim)
    return tables, track_sessions(list(zip(sim.images, tables, strict=True)), sim.times_h, PARAMS)


def test_true_positions_with_registration_in_the_loop_match_truth(sim, from_truth):
    tables, result = from_truth
    truth = synth_truth_with_detection(sim, [t["spine_id"].to_numpy() for t in tables])
    margin_px = PARAMS.fates.edge_margin_um / PIXEL_UM
    scores = score_tracking(
        result, truth, result.detections["spine_id"].to_numpy(), [im.shape for im in sim.images], margin_px
    )
    assert scores["n_true_pairs"] > 50
    assert scores["pair_recall"] >= 0.97 and scores["pair_precision"] >= 0.97
    assert scores["event_f1"] >= 0.95
    assert scores["survival_baseline_max_err_pp"] <= 2.0
    assert scores["turnover_ratio_max_err_pp"] <= 2.0


def test_coordinates_are_in_the_reference_frame(sim, from_truth):
    _, result = from_truth
    det = result.detections
    truth = sim.truth.set_index(["spine_id", "session"])
    ref = truth.loc[list(zip(det["spine_id"], det["session"], strict=True)), ["y_ref", "x_ref"]].to_numpy()
    error_um = np.hypot(*(det[["y", "x"]].to_numpy() - ref).T) * PIXEL_UM
    assert np.median(error_um) < 0.3  # registration residual, not the 6 px drift
    assert det.loc[det["session"] == 0, ["y", "x"]].notna().all().all()
    assert list(result.tracks.columns[:8]) == [
        "track_id",
        "session",
        "spine_id",
        "y",
        "x",
        "z",
        "present",
        "fate",
    ]


def test_detected_spines_are_linked_across_sessions(sim):
    # detect_spines in every session (two sessions: detection dominates the run time)
    result = track_sessions(sim.images[:2], sim.times_h[:2], PARAMS)
    assert result.detections["session"].nunique() == 2
    det = result.detections
    true_id = np.full(len(det), -1)
    for session in range(2):
        rows = np.flatnonzero(det["session"].to_numpy() == session)
        # the tracker mapped detections to the reference frame; compare there with the truth's
        ref = sim.truth.assign(y=sim.truth["y_ref"], x=sim.truth["x_ref"])
        true_id[rows] = match_to_truth(det.iloc[rows], ref, tolerance_px=0.6 / PIXEL_UM)
    matched = true_id >= 0
    assert matched.mean() > 0.6  # most detections are real spines
    scores = link_scores(det[matched], true_id[matched])
    assert scores["pair_recall"] >= 0.95 and scores["pair_precision"] >= 0.95


def test_another_field_of_view_is_refused(sim):
    other = simulate_dendrite_sessions(n_sessions=1, times_h=(0,), shape=(192, 192), seed=13)
    tables = synth_truth_tables(sim)
    other_table = synth_truth_tables(other)[0]
    with pytest.raises(RegistrationError, match="session 1"):
        track_sessions([(sim.images[0], tables[0]), (other.images[0], other_table)], (0, 1), PARAMS)


def test_seen_scores_leave_out_spines_missing_from_every_input(sim):
    """A spine dropped from every input table is a detection error: the ``seen_`` events leave it out."""
    tables = synth_truth_tables(sim)
    formed = sim.truth[(sim.truth["session"] == 1) & sim.truth["present"] & sim.truth["is_new"]]
    inside = formed[["y", "x"]].to_numpy()
    formed = formed[((inside > 10) & (inside < 182)).all(axis=1)]  # well inside the 192 px field
    assert len(formed) >= 1
    dropped = set(formed["spine_id"])
    tables = [t[~t["spine_id"].isin(dropped)].reset_index(drop=True) for t in tables]
    result = track_sessions(list(zip(sim.images, tables, strict=True)), sim.times_h, PARAMS)
    truth = synth_truth_with_detection(sim, [t["spine_id"].to_numpy() for t in tables])
    shapes = [im.shape for im in sim.images]
    scores = score_tracking(result, truth, result.detections["spine_id"].to_numpy(), shapes, 1.0 / PIXEL_UM)
    assert scores["seen_n_true_gain"] == scores["n_true_gain"] - len(dropped)
    assert scores["seen_gain_recall"] > scores["gain_recall"]
    assert scores["seen_gain_f1"] >= 0.95
