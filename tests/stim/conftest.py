"""Shared simulated recordings for the stim tests (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synth_stim():
    """A 100 s, 96x96, 40-cell recording with 20 Hz light trains, sham trials and light artifacts,
    plus ROI traces read from its movie through the true footprints."""
    from imagingkit.synth import StimProtocol, simulate_functional

    sim = simulate_functional(
        n_frames=3000,
        shape_yx=(96, 96),
        n_cells=40,
        frame_rate_hz=30.0,
        seed=4,
        stim=StimProtocol(
            n_pulses=5, frequency_hz=20.0, inter_trial_interval_s=2.5, iti_jitter_s=0.3, sham_fraction=0.2
        ),
    )
    fp = sim.truth.footprints.reshape(sim.truth.n_rois, -1)
    fp = fp / fp.sum(axis=1, keepdims=True)
    movie = sim.movie[:, 0, 0].reshape(sim.movie.shape[0], -1).astype(np.float32)
    traces = (fp @ movie.T).astype(np.float32)  # (n_rois, T) raw fluorescence
    return sim, traces
