"""The suite2p engine returns the same RoiSet as the built-in one (needs the suite2p extra)."""

import numpy as np
import pytest

from imagingkit.neurons import DetectionParams, RoiSet, detect_rois
from imagingkit.neurons.evaluate import match_rois
from tests.neurons.fixtures import small_movie


@pytest.mark.suite2p
def test_suite2p_engine_finds_cells_and_returns_roiset():
    movie, fp, _, _ = small_movie(n_frames=1500, noise_sd=5.0)
    rois = detect_rois(movie, DetectionParams(diameter_px=10, frame_rate_hz=30.0), engine="suite2p")
    assert isinstance(rois, RoiSet) and rois.engine == "suite2p"
    assert rois.n_rois >= 1
    assert ((rois.cell_prob >= 0) & (rois.cell_prob <= 1)).all()
    match = match_rois(rois, fp > 0)
    assert match.precision == 1.0
    assert np.isfinite(rois.trace_skew).all()


@pytest.mark.suite2p
def test_suite2p_engine_blank_movie_is_empty():
    blank = np.full((300, 48, 48), 100, np.uint16)
    rois = detect_rois(blank, DetectionParams(frame_rate_hz=30.0), engine="suite2p")
    assert rois.n_rois == 0
