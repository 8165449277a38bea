"""Model-based response latency (``latency_method="model"``) against simulated ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import DataError, ParameterError
from imagingkit.stim.analysis import analyse_responses
from imagingkit.stim.artifacts import ArtifactParams
from imagingkit.stim.latency import fit_model_latency
from imagingkit.stim.responses import WindowParams, trial_responses
from imagingkit.stim.stats import StatsParams, response_statistics
from imagingkit.stim.timing import roi_sample_times
from imagingkit.synth.indicators import get_indicator
from tests.stim.simdata import simulate_trials

METHODS = ("departure", "fraction", "model")


def _latency_error(sim, method, **params):
    """(n_rois,) latency error (s) and the table, on traces sampled at sub-frame times."""
    times = roi_sample_times(sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s)
    trials = trial_responses(sim.dff, times, sim.events, WindowParams())
    table = response_statistics(trials, StatsParams(latency_method=method, **params), sample_times_s=times)
    return table["latency_s"].to_numpy() - sim.truth.latency_s, table


@pytest.fixture(scope="module")
def bursts():
    """45 ms bursts of 10 pulses, a GCaMP6f transient per pulse, SNR 3, 40 trials."""
    return simulate_trials(
        n_rois=200, n_trials=40, snr=3.0, seed=3, frac_excited=0.5, frac_inhibited=0.1, per_pulse=True
    )


def test_model_latency_unbiased_where_threshold_methods_are_late(bursts):
    excited = bursts.truth.responsive > 0
    median = {m: np.nanmedian(_latency_error(bursts, m)[0][excited]) for m in METHODS}
    error, _ = _latency_error(bursts, "model")
    assert np.isfinite(error[excited]).mean() >= 0.95
    assert abs(median["model"]) < 0.003
    assert np.nanmedian(np.abs(error[excited])) < 0.005  # well under a tenth of the 33 ms frame
    # the same bound fails for the threshold definitions (they time the response late)
    assert median["departure"] > 0.003 and median["fraction"] > 0.003


def test_model_latency_does_not_follow_response_amplitude(bursts):
    """Two sessions, same cells and latencies, responses 4x larger in the second: no apparent speed-up."""
    excited = bursts.truth.responsive > 0
    shift = {}
    for method in ("departure", "model"):
        lat = []
        for gain in (0.5, 2.0):
            session = simulate_trials(
                n_rois=200, n_trials=40, snr=3.0, seed=9, gain=gain, truth=bursts.truth, per_pulse=True
            )
            lat.append(_latency_error(session, method)[0])
        shift[method] = np.nanmedian((lat[1] - lat[0])[excited])
    assert abs(shift["model"]) < 0.003
    assert abs(shift["departure"]) > 0.003  # the threshold method reports a spurious change


def test_synth_trains_masked_demixed(synth_stim, synth_extracted):
    """5-pulse 20 Hz trains, light-artifact mask (20 px neuropil margin), demixed F - 0.7 Fneu."""
    sim = synth_stim[0]
    truth = sim.truth
    rois = pd.DataFrame(
        {"roi_id": np.arange(truth.n_rois), "y": truth.centroids_yx[:, 0], "x": truth.centroids_yx[:, 1],
         "radius_px": synth_extracted.radius_px}
    )  # fmt: skip
    excited = truth.responsive > 0
    error = {}
    for method in ("departure", "model"):
        result = analyse_responses(
            synth_extracted.demixed, None, rois, truth.events, recording=sim.recording,
            window=WindowParams(input_kind="raw"), stats=StatsParams(latency_method=method),
            artifacts=ArtifactParams(margin_px=20),
        )  # fmt: skip
        assert result.report["artifact_samples_masked"] > 0
        error[method] = (result.table["latency_s"].to_numpy() - truth.latency_s)[excited]
    assert np.isfinite(error["model"]).mean() >= 0.9
    assert abs(np.nanmedian(error["model"])) < 0.010
    assert np.nanmedian(error["departure"]) > 0.020
    assert np.nanmedian(np.abs(error["model"])) < np.nanmedian(np.abs(error["departure"]))


def _train_trials(latency_s, n_pulses, frequency_hz=20.0, n_trials=30, seed=0):
    """Noiseless GCaMP6f responses (the synth's kernel) to trains, cut into trials at sub-frame times."""
    rng = np.random.default_rng(seed)
    kernel = get_indicator("GCaMP6f").kernel
    frame_s = 1 / 30
    onsets = 2.0 + 3.0 * np.arange(n_trials) + rng.uniform(-0.3, 0.3, n_trials)
    pulses = np.resize(np.asarray(n_pulses), n_trials)
    frame_times = np.arange(int((onsets[-1] + 3) / frame_s)) * frame_s
    times = frame_times[None, :] + rng.uniform(0, frame_s, len(latency_s))[:, None]  # ROI rows
    traces = np.zeros(times.shape)
    for onset, n in zip(onsets, pulses, strict=True):
        for k in range(n):
            traces += kernel(times - onset - k / frequency_hz - np.asarray(latency_s)[:, None])
    events = pd.DataFrame(
        {"onset_s": onsets, "n_pulses": pulses, "frequency_hz": np.where(pulses > 1, frequency_hz, np.nan),
         "condition": "stim"}
    )  # fmt: skip
    return trial_responses(traces, times, events, WindowParams()), events, times


def _fit(trials, events, **kw):
    sign = np.ones(trials.dff.shape[0])
    return fit_model_latency(trials.dff, trials.time_s, events, sign, rise_s=0.05, decay_s=0.55, **kw)


def test_fit_recovers_latency_of_mixed_trains():
    truth = np.linspace(0.01, 0.2, 12)
    trials, events, _ = _train_trials(truth, n_pulses=[1, 5])
    latency, amplitude, r2 = _fit(trials, events)
    assert np.max(np.abs(latency - truth)) < 0.003
    assert np.all(r2 > 0.99) and np.all(amplitude > 0)
    # fitting every trial as one transient (ignoring the 5-pulse trains) is biased
    wrong, _, _ = _fit(trials, events.assign(n_pulses=1))
    assert np.median(np.abs(wrong - truth)) > 0.005


def test_masked_samples_are_left_out_of_the_fit():
    truth = np.linspace(0.02, 0.1, 8)
    trials, events, _ = _train_trials(truth, n_pulses=5, seed=1)
    dff = trials.dff.copy()
    onset_samples = (trials.time_s >= 0) & (trials.time_s < 0.25)  # the light train: artifact mask
    dff[:, ::2][:, :, onset_samples] = np.nan  # masked in every other trial
    dff[:, :, (trials.time_s >= 0.03) & (trials.time_s < 0.1)] = np.nan  # and in all trials early on
    latency, _, _ = _fit(dataclasses.replace(trials, dff=dff), events)
    assert np.max(np.abs(latency - truth)) < 0.003
    # the same samples set to baseline instead of left out pull the latency late
    filled = np.nan_to_num(dff)
    late, _, _ = _fit(dataclasses.replace(trials, dff=filled), events)
    assert np.median(late - truth) > 0.005


def test_nan_rule_non_responders_poor_fits_and_range_end(bursts):
    _, table = _latency_error(bursts, "model")
    latency, r2 = table["latency_s"].to_numpy(), table["latency_fit_r2"].to_numpy()
    responsive = table["responsive"].to_numpy()
    assert np.all(np.isnan(latency[~responsive]))
    assert np.all(np.isfinite(latency) == (responsive & (r2 >= 0.5)))
    # a stricter fit-quality threshold (here the responders' median R^2) removes exactly the ROIs below it
    threshold = float(np.round(np.median(r2[responsive]), 4))
    _, strict = _latency_error(bursts, "model", latency_min_r2=threshold)
    keep = responsive & (r2 >= threshold)
    assert 0 < keep.sum() < (responsive & (r2 >= 0.5)).sum()
    assert np.array_equal(np.isfinite(strict["latency_s"].to_numpy()), keep)
    # true latencies beyond a short search range end at the range's end: NaN, not a clipped value
    _, short = _latency_error(bursts, "model", latency_range_s=(0.0, 0.05))
    late = responsive & (bursts.truth.latency_s > 0.07)
    early = responsive & (bursts.truth.latency_s < 0.04) & (r2 >= 0.5)
    assert late.sum() > 10 and early.sum() > 5
    assert np.all(np.isnan(short["latency_s"].to_numpy()[late]))
    assert np.isfinite(short["latency_s"].to_numpy()[early]).mean() > 0.8


@pytest.mark.parametrize(
    "params",
    [
        {"latency_method": "peak"},
        {"kernel_rise_s": 0.6},
        {"kernel_rise_s": 0.0},
        {"latency_range_s": (0.3, 0.0)},
        {"latency_step_ms": 0.0},
        {"latency_step_ms": 500.0},
        {"latency_min_r2": 1.0},
        {"latency_transients": "per_train"},
    ],
)
def test_bad_parameters(params):
    with pytest.raises(ParameterError):
        StatsParams(**params)


def test_train_without_frequency_is_a_data_error():
    trials, events, _ = _train_trials([0.05], n_pulses=5, n_trials=6)
    with pytest.raises(DataError, match="frequency_hz"):
        _fit(trials, events.assign(frequency_hz=np.nan))
