"""Piecewise-rigid registration recovers a known smooth warp."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from imagingkit.motion import NonRigidParams, register_movie
from imagingkit.motion.nonrigid import make_block_grid, upsample_block_shifts, warp_frames


def test_block_grid_covers_frame():
    grid = make_block_grid((256, 200), 128)
    assert grid.shape == (3, 3)
    assert grid.y_starts[0] == 0 and grid.y_starts[-1] + 128 == 256
    assert grid.x_starts[-1] + 128 == 200
    assert make_block_grid((100, 100), 128).shape == (1, 1)


def test_warp_frames_matches_uniform_shift(camera_image):
    frames = camera_image[None].astype(np.float32)
    fy = np.full((1, *camera_image.shape), 1.5, np.float32)
    fx = np.full((1, *camera_image.shape), -2.25, np.float32)
    out = warp_frames(frames, fy, fx)
    expected = ndi.shift(camera_image, (-1.5, 2.25), order=1, mode="nearest")
    np.testing.assert_allclose(out[0, 4:-4, 4:-4], expected[4:-4, 4:-4], rtol=1e-4, atol=1e-3)


def test_piecewise_rigid_recovers_simulated_warp(warp_sim):
    truth = warp_sim.truth
    res = register_movie(warp_sim.recording, None, NonRigidParams())
    blocks = res.block_shifts
    assert blocks["dy"].shape == (200, 1, 3, 3)
    grid = make_block_grid((256, 256), 128)
    fy, fx = upsample_block_shifts(blocks["dy"][:, 0], blocks["dx"][:, 0], grid, (256, 256))
    yy, xx = np.mgrid[:256, :256].astype(float)
    errors, warp_sizes = [], []
    for t in range(0, 200, 4):
        # truth: frame pixel p shows the scene at p - shift - u(p); registration samples q + D(q),
        # so D(q) = shift + u(q + D(q)): evaluate u where the estimate samples.
        u = np.tensordot(truth.nonrigid_weights[t], truth.nonrigid_modes, 1)
        cy, cx = yy + fy[t], xx + fx[t]
        uy = ndi.map_coordinates(u[0], [cy, cx], order=1, mode="nearest")
        ux = ndi.map_coordinates(u[1], [cy, cx], order=1, mode="nearest")
        errors.append(np.stack([fy[t] - truth.shifts_yx[t, 0] - uy, fx[t] - truth.shifts_yx[t, 1] - ux]))
        warp_sizes.append(np.ptp(u[:, 16:-16, 16:-16], axis=(1, 2)))
    err = np.array(errors)[:, :, 16:-16, 16:-16]
    err -= np.median(err, axis=(0, 2, 3), keepdims=True)  # constant offset of the reference
    rms = np.sqrt(np.mean(err**2))
    assert np.max(warp_sizes) > 1.0  # the warp is real: more than a pixel across the field
    assert rms <= 0.3, rms
