"""Rigid sub-pixel registration: sign convention, accuracy against known and simulated shifts."""

from __future__ import annotations

import numpy as np
from skimage.registration import phase_cross_correlation

from imagingkit.motion import RigidParams, estimate_rigid_shifts, register_movie, shift_frames
from imagingkit.motion.reference import frame_correlation
from tests.motion.conftest import fourier_shifted


def test_known_subpixel_shifts_and_sign(camera_image):
    rng = np.random.default_rng(3)
    truth = rng.uniform(-5, 5, (40, 2))
    frames = fourier_shifted(camera_image, truth, photons=300)
    dy, dx, peak = estimate_rigid_shifts(frames, camera_image)
    err = np.c_[dy, dx] - truth
    assert np.sqrt(np.mean(err**2)) < 0.05
    assert np.all(peak > 0.05)
    # skimage returns the shift that registers the moving image: the opposite sign of ours
    sk, _, _ = phase_cross_correlation(camera_image, frames[0], upsample_factor=20)
    np.testing.assert_allclose(sk, -truth[0], atol=0.1)


def test_shift_frames_undoes_the_motion(camera_image):
    truth = np.array([[2.3, -1.7], [-3.5, 0.4]])
    frames = fourier_shifted(camera_image, truth, photons=1e5)
    for method in ("fourier", "bilinear"):
        reg = shift_frames(frames, truth[:, 0], truth[:, 1], method=method)
        corr = frame_correlation(reg, camera_image, margin_px=6)
        raw_corr = frame_correlation(frames, camera_image, margin_px=6)
        assert np.all(corr > 0.99), method
        assert np.all(corr > raw_corr)


def test_rigid_accuracy_on_simulated_movie(rigid_sim):
    truth = rigid_sim.truth
    res = register_movie(rigid_sim.recording, None, RigidParams())
    est = res.shifts[["dy", "dx"]].to_numpy()
    good = ~truth.bad_frames
    err = est[good] - truth.shifts_yx[good]
    err -= np.median(err, axis=0)  # the reference's own position is arbitrary
    rms = np.sqrt(np.mean(err**2))
    assert rms <= 0.1, rms
    metrics = res.metrics["per_plane"]["0"]
    assert metrics["crispness_registered"] > metrics["crispness_raw"]
    assert metrics["residual_motion_rms_px"] < 0.1
