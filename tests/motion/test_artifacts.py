"""Stimulation-light artifact lines: frames stay aligned and marked ``artifact``; only corrupt frames are bad."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imagingkit.motion import RigidParams, register_movie
from imagingkit.motion.artifacts import (
    blend_artifact_lines,
    clean_line_weights,
    detect_artifact_lines,
    line_baseline,
    line_means,
    registered_row_mask,
)
from imagingkit.motion.quality import flag_bad_frames


def test_artifact_frames_aligned_not_bad(opto_sim, tmp_path):
    truth = opto_sim.truth
    lines_true = truth.artifact_mask  # (T, Y)
    has_lines = lines_true.any(axis=1)
    corrupt = truth.bad_frames
    assert has_lines.sum() >= 40 and corrupt.sum() >= 3
    res = register_movie(opto_sim.recording, tmp_path / "reg", RigidParams(), write_movie=False)
    shifts = pd.read_csv(tmp_path / "reg" / "shifts.csv")
    bad, artifact = shifts["bad"].to_numpy(), shifts["artifact"].to_numpy()
    # every truly corrupt frame is bad; frames with a few artifact lines are not
    assert (bad & corrupt).sum() / corrupt.sum() >= 0.95
    assert (bad & has_lines & ~corrupt).sum() <= 0.05 * (has_lines & ~corrupt).sum()
    assert (bad & ~corrupt).sum() <= 0.02 * (~corrupt).sum()
    # the artifact column finds the frames with light artifact lines, and no others
    assert (artifact & has_lines).sum() / has_lines.sum() >= 0.95
    assert (artifact & ~has_lines & ~corrupt).sum() <= 2
    # artifact frames are aligned as accurately as clean ones
    est = shifts[["dy", "dx"]].to_numpy()
    err = est - truth.shifts_yx
    clean = ~corrupt & ~has_lines & ~truth.jump_frames
    err -= np.median(err[clean], axis=0)
    rms_clean = np.sqrt(np.mean(np.sum(err[clean] ** 2, axis=1)))
    rms_art = np.sqrt(np.mean(np.sum(err[artifact & ~bad] ** 2, axis=1)))
    assert rms_art <= max(1.5 * rms_clean, 0.2), (rms_art, rms_clean)
    # the detected lines are written and match the truth
    saved = np.load(tmp_path / "reg" / "artifact_lines.npz")
    mask = np.zeros_like(lines_true)
    mask[saved["frame"]] = saved["lines"]
    assert (mask & lines_true).sum() / lines_true.sum() >= 0.9
    assert res.metrics["per_plane"]["0"]["n_artifact_frames"] == int(artifact.sum())


def test_without_line_detection_artifact_frames_are_lost(opto_sim):
    res = register_movie(opto_sim.recording, None, RigidParams(artifact_line_z=None))
    has_lines = opto_sim.truth.artifact_mask.any(axis=1) & ~opto_sim.truth.bad_frames
    # the old behaviour this room replaced: whole frames thrown away for a few bright lines
    assert res.shifts["bad"].to_numpy()[has_lines].mean() > 0.5
    assert not res.shifts["artifact"].any()


def test_detect_blend_and_row_mask():
    rng = np.random.default_rng(0)
    frames = rng.normal(100, 5, (50, 32, 40)).astype(np.float32)
    frames[7, 10:14] += 500
    frames[20] += 300  # a whole-frame flash is not a line artifact
    base = line_baseline(frames)
    mask = detect_artifact_lines(line_means(frames), base, z_threshold=8.0, dilate_lines=1)
    assert np.flatnonzero(mask.any(axis=1)).tolist() == [7]
    assert np.flatnonzero(mask[7]).tolist() == list(range(9, 15))
    weights = clean_line_weights(mask)
    assert np.all(weights[7, 9:15] == 0) and weights[7, 0] == 1 and np.all(weights[0] == 1)
    blended = blend_artifact_lines(frames, mask)
    assert np.array_equal(blended[0], frames[0])
    assert abs(float(blended[7, 9:15].mean()) - 100.0) < 2.0
    # registered row r samples raw row r + dy
    np.testing.assert_array_equal(np.flatnonzero(registered_row_mask(mask[7], 2.0)), np.arange(7, 13))


def test_mostly_artifact_frame_is_bad():
    n = 50
    corr = np.full(n, 0.9)
    zeros = np.zeros(n)
    fraction = np.zeros(n)
    fraction[[3, 4]] = [0.2, 0.8]
    bad, reason = flag_bad_frames(
        corr, zeros, zeros, np.full(n, 100.0), np.ones(n, bool), 10, artifact_fraction=fraction
    )
    assert np.flatnonzero(bad).tolist() == [4] and reason[4] == "artifact"
