"""The whole pipeline through the CLI on 2 animals x 3 sessions, against the simulation's truth.

Simulation (``tests/pipeline/simexp.py``): 25 somata in 128 x 128 px, 40 % excited by
stimulation, response amplitude x 1.3 per session (``learning_gain``), ~12 trials per
session; 2 dendrites in 256 x 256 px with spine turnover. Tolerances, stated up front:

* ROIs: >= 55 % of the simulated cells found within 5 px (one-to-one).
* Responders: on the found cells, >= 85 % agree with the truth (responsive or not);
  per animal, the fraction responsive of ROIs classified as cells, pooled over the sessions,
  within 0.12 of the simulated 0.40.
* Learning: the mean amplitude ratio of consecutive sessions (matched cells) within 0.15 of
  the simulated 1.3, and the first pair's change interval above 0.
* Spines: >= 65 % as many detected as simulated (present, in view) per session; tracked
  survival of baseline spines at the last session within 0.15 of the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from tests.pipeline.simexp import GAIN_PER_SESSION

pytestmark = pytest.mark.slow

MATCH_PX = 5.0


def _match(found_yx: np.ndarray, truth_yx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distance = np.linalg.norm(found_yx[:, None, :] - truth_yx[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(np.where(distance <= MATCH_PX, distance, 1e6))
    keep = distance[rows, cols] <= MATCH_PX
    return rows[keep], cols[keep]


def test_run_succeeds_with_every_unit(e2e_run):
    code, run_dir, truths = e2e_run
    assert code == 0
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary["unit"]) == {f"{t.animal}/{t.session}" for t in truths} | {"m01", "m02"}
    assert (summary["status"] == "ok").all()
    config = (run_dir / "config.json").read_text()
    assert '"threshold_sigma"' in config and '"neuropil_coefficient"' in config  # every default recorded


def test_rois_and_responders_match_truth(e2e_run):
    _, run_dir, truths = e2e_run
    for t in truths:
        sdir = run_dir / t.animal / t.session
        rois = pd.read_csv(sdir / "neurons" / "rois.csv")
        responses = pd.read_csv(sdir / "stim" / "responses.csv").set_index("roi_id")
        found, cells = _match(rois[["y", "x"]].to_numpy(float), t.centroids_yx)
        assert len(found) >= 0.55 * t.n_cells, (
            f"{t.animal}/{t.session}: {len(found)} of {t.n_cells} cells found"
        )
        detected = responses.loc[rois["roi_id"].to_numpy()[found], "responsive"].to_numpy(bool)
        agreement = np.mean(detected == (t.responsive[cells] != 0))
        assert agreement >= 0.85, f"{t.animal}/{t.session}: responder agreement {agreement:.2f}"


def test_fraction_responsive_across_sessions(e2e_run):
    _, run_dir, truths = e2e_run
    for animal in ("m01", "m02"):
        across = pd.read_csv(run_dir / animal / "summary" / "responses_across_sessions.csv")
        assert list(across["session"]) == ["s0", "s1", "s2"]
        assert list(across["time_h"]) == [0.0, 24.0, 48.0]
        assert (across["fraction_responsive_low"] <= across["fraction_responsive"]).all()
        assert (across["fraction_responsive"] <= across["fraction_responsive_high"]).all()
        truth = np.mean([np.mean(t.responsive != 0) for t in truths if t.animal == animal])
        pooled = across["n_responsive"].sum() / across["n_rois"].sum()
        assert abs(pooled - truth) <= 0.12, (
            f"{animal}: pooled fraction responsive {pooled:.2f} vs {truth:.2f}"
        )


def test_response_growth_matches_learning_gain(e2e_run):
    _, run_dir, truths = e2e_run
    learning = {(t.animal, t.session): t.learning_factor for t in truths}
    assert learning[("m01", "s1")] == pytest.approx(GAIN_PER_SESSION)
    ratios = []
    for animal in ("m01", "m02"):
        changes = pd.read_csv(run_dir / animal / "summary" / "changes_across_sessions.csv")
        assert list(zip(changes["session_from"], changes["session_to"], strict=True)) == [
            ("s0", "s1"),
            ("s1", "s2"),
        ]
        assert (changes["n_cells"] >= 8).all(), "too few ROIs matched across sessions"
        assert changes["amplitude_change_low"].iloc[0] > 0
        ratios.extend(changes["amplitude_ratio"])
    assert abs(np.mean(ratios) - GAIN_PER_SESSION) <= 0.15, f"amplitude ratios {np.round(ratios, 2)}"


def test_spines_and_turnover_match_truth(e2e_run):
    _, run_dir, truths = e2e_run
    for animal in ("m01", "m02"):
        sessions = [t for t in truths if t.animal == animal]
        for t in sessions:
            visible = t.spines[t.spines["present"] & t.spines["in_fov"]]
            detected = pd.read_csv(run_dir / animal / t.session / "spines" / "spines.csv")
            assert len(detected) >= 0.65 * len(visible), (
                f"{animal}/{t.session}: {len(detected)} of {len(visible)}"
            )
        first, last = sessions[0].spines, sessions[-1].spines
        baseline = set(first.loc[first["present"] & first["in_fov"], "spine_id"])
        survived = set(last.loc[last["present"], "spine_id"]) & baseline
        truth_survival = len(survived) / len(baseline)
        turnover = pd.read_csv(run_dir / animal / "tracking" / "turnover.csv")
        assert list(turnover["time_h"]) == [0.0, 24.0, 48.0]
        tracked = turnover["survival_baseline"].iloc[-1]
        assert abs(tracked - truth_survival) <= 0.15, (
            f"{animal}: survival {tracked:.2f} vs truth {truth_survival:.2f}"
        )
        tracks = pd.read_csv(run_dir / animal / "tracking" / "tracks.csv")
        assert {"track_id", "session", "present", "fate"} <= set(tracks.columns)
