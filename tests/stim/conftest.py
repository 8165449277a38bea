"""Shared simulated recordings for the stim tests (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.stim.simdata import synth_traces

#: the synth experiment of the accuracy claims: 100 s at 30 Hz, 40 somata on 96x96 px (default synth
#: SNR: soma_photons 3), 5-pulse 20 Hz light trains every 2.5 +/- 0.3 s, 20 % sham trials -> 31 stim trials
SYNTH = dict(n_frames=3000, shape_yx=(96, 96), n_cells=40, frame_rate_hz=30.0, seed=4)


def make_synth(seed: int = SYNTH["seed"]):
    from imagingkit.synth import StimProtocol, simulate_functional

    return simulate_functional(
        **{**SYNTH, "seed": seed},
        stim=StimProtocol(
            n_pulses=5, frequency_hz=20.0, inter_trial_interval_s=2.5, iti_jitter_s=0.3, sham_fraction=0.2
        ),
    )


@pytest.fixture(scope="session")
def synth_stim():
    """The synth recording and raw ROI fluorescence (true footprints' weighted means of its movie)."""
    sim = make_synth()
    fp = sim.truth.footprints.reshape(sim.truth.n_rois, -1)
    fp = fp / fp.sum(axis=1, keepdims=True)
    movie = sim.movie[:, 0, 0].reshape(sim.movie.shape[0], -1).astype(np.float32)
    traces = (fp @ movie.T).astype(np.float32)  # (n_rois, T) raw fluorescence
    return sim, traces


@pytest.fixture(scope="session")
def synth_extracted(synth_stim):
    """F, Fneu (imagingkit.neurons.extract_traces with the true footprints), F - 0.7 Fneu and demixed."""
    return synth_traces(synth_stim[0])
