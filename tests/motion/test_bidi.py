"""Bidirectional scan phase: estimated and corrected."""

from __future__ import annotations

import numpy as np

from imagingkit.io import from_array
from imagingkit.motion import RigidParams, correct_bidi_phase, estimate_bidi_phase, register_movie
from imagingkit.motion.reference import frame_correlation


def _with_offset(frames: np.ndarray, offset: int) -> np.ndarray:
    out = frames.copy()
    out[..., 1::2, :] = np.roll(frames[..., 1::2, :], offset, axis=-1)
    return out


def test_estimate_and_correct(camera_image):
    for offset in (-3, 0, 2):
        img = _with_offset(camera_image, offset)
        assert estimate_bidi_phase(img) == offset
        fixed = correct_bidi_phase(img, offset)
        assert frame_correlation(fixed[None], camera_image, margin_px=4)[0] > 0.999


def test_register_movie_corrects_bidi(rigid_sim):
    movie = rigid_sim.movie[:60, 0, 0]
    shifted = _with_offset(movie, 2)
    rec = from_array(shifted, frame_rate_hz=30.0, bidirectional=True)
    res = register_movie(rec, None, RigidParams())
    assert res.metrics["per_plane"]["0"]["bidi_phase_px"] == 2
    off = register_movie(rec, None, RigidParams(bidi_correction=False))
    assert (
        off.metrics["per_plane"]["0"]["crispness_registered"]
        < res.metrics["per_plane"]["0"]["crispness_registered"]
    )
