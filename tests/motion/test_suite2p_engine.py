"""The suite2p engine: same interface and conventions as the built-in one (needs the suite2p extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.motion import NonRigidParams, RigidParams, register_movie


@pytest.mark.suite2p
def test_suite2p_rigid_shifts_follow_our_convention(rigid_sim, tmp_path):
    truth = rigid_sim.truth
    res = register_movie(rigid_sim.recording, tmp_path / "s2p", RigidParams(), engine="suite2p")
    shifts = pd.read_csv(tmp_path / "s2p" / "shifts.csv")
    est = shifts[["dy", "dx"]].to_numpy()
    np.testing.assert_array_equal(est, np.round(est))  # suite2p's rigid offsets are whole pixels
    good = ~truth.bad_frames
    err = est[good] - truth.shifts_yx[good]
    err -= np.median(err, axis=0)
    assert np.sqrt(np.mean(err**2)) < 0.45  # whole-pixel rounding alone gives ~0.41 px RMS
    assert res.metrics["engine"] == "suite2p"
    builtin = register_movie(rigid_sim.recording, None, RigidParams())
    diff = est - builtin.shifts[["dy", "dx"]].to_numpy()
    diff -= np.median(diff, axis=0)
    assert np.sqrt(np.mean(diff[good] ** 2)) < 0.5


@pytest.mark.suite2p
def test_suite2p_nonrigid_writes_block_shifts(warp_sim, tmp_path):
    rec = warp_sim.recording
    res = register_movie(rec, tmp_path / "nr", NonRigidParams(), engine="suite2p")
    blocks = np.load(tmp_path / "nr" / "block_shifts.npz")
    assert blocks["dy"].shape == (rec.n_frames, 1, 3, 3)
    assert np.isfinite(blocks["dy"]).all()
    assert (tmp_path / "nr" / "registered.tif").exists()
    # same grid as the built-in engine (128 px blocks on 256 px): the block shift fields agree
    ours = register_movie(rec, None, NonRigidParams())
    diff = np.stack(
        [res.block_shifts["dy"] - ours.block_shifts["dy"], res.block_shifts["dx"] - ours.block_shifts["dx"]]
    )
    diff -= np.median(diff, axis=(1, 2, 3, 4), keepdims=True)
    assert np.sqrt(np.mean(diff**2)) < 0.5
