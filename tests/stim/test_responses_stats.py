"""Trial responses and per-ROI statistics against simulated ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import DataError, ParameterError
from imagingkit.stim.events import assign_frames, select_in_recording
from imagingkit.stim.responses import WindowParams, trial_responses
from imagingkit.stim.stats import StatsParams, dose_response, response_statistics
from imagingkit.stim.timing import roi_sample_times
from tests.stim.simdata import simulate_trials

# stated operating point of the accuracy claim: SNR 3 (response peak / per-frame noise SD), 40 trials
SNR, N_TRIALS = 3.0, 40


def _analyse(sim, test="wilcoxon", subframe=True, **window):
    times = roi_sample_times(
        sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s if subframe else None
    )
    trials = trial_responses(sim.dff, times, sim.events, WindowParams(**window))
    # simulate_trials: one calcium transient per 45 ms burst (not one per pulse)
    stats = StatsParams(test=test, latency_transients="per_event")
    return trials, response_statistics(trials, stats, traces=sim.dff, sample_times_s=times)


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = np.sum((pred != 0) & (truth != 0))
    fp = np.sum((pred != 0) & (truth == 0))
    fn = np.sum((pred == 0) & (truth != 0))
    return 2 * tp / (2 * tp + fp + fn), fp / max(np.sum(truth == 0), 1)


@pytest.fixture(scope="module")
def sim():
    return simulate_trials(n_rois=300, n_trials=N_TRIALS, snr=SNR, seed=11)


@pytest.mark.parametrize("test", ["wilcoxon", "sign_flip", "shuffle"])
def test_responder_detection_f1_and_false_positive_rate(sim, test):
    _, table = _analyse(sim, test)
    f1, fpr = _scores(table["direction"].to_numpy(), sim.truth.responsive)
    assert f1 >= 0.95
    assert fpr <= 0.05
    hits = (table["direction"] != 0).to_numpy() & (sim.truth.responsive != 0)
    assert np.all(table["direction"].to_numpy()[hits] == sim.truth.responsive[hits])  # excited vs inhibited


def test_amplitude_and_latency_against_truth(sim):
    _, table = _analyse(sim)
    resp = sim.truth.responsive != 0
    # mean response-window dF/F relative to the peak: positive for excited, negative for inhibited
    assert np.all(np.sign(table["amplitude"].to_numpy()[resp]) == sim.truth.responsive[resp])
    error = table["latency_s"].to_numpy()[resp] - sim.truth.latency_s[resp]
    assert np.nanmedian(np.abs(error)) < 0.015  # well under half a frame (16.7 ms at 30 Hz)
    assert np.isfinite(table["time_to_peak_s"].to_numpy()[resp]).all()


def test_subframe_timing_removes_row_dependent_latency_bias(sim):
    resp = sim.truth.responsive != 0
    bottom = resp & (sim.truth.roi_y > 96)
    top = resp & (sim.truth.roi_y < 32)
    err = {}
    for subframe in (True, False):
        _, table = _analyse(sim, subframe=subframe)
        e = table["latency_s"].to_numpy() - sim.truth.latency_s
        err[subframe] = np.nanmean(e[bottom]) - np.nanmean(e[top])
    frame = 1 / sim.frame_rate_hz
    assert abs(err[True]) < 0.1 * frame
    # frame-start timing labels a bottom ROI's samples with a time earlier than they were taken,
    # so its responses look earlier than a top ROI's by about the row difference x line period
    assert err[False] < -0.5 * frame * (96 - 32) / 128


def test_sham_permutation_test():
    sim = simulate_trials(n_rois=120, n_trials=60, snr=3.0, sham_fraction=0.3, seed=5)
    _, table = _analyse(sim, "sham")
    f1, fpr = _scores(table["direction"].to_numpy(), sim.truth.responsive)
    assert f1 >= 0.9 and fpr <= 0.05


def test_trial_dff_relative_to_baseline_and_nan_masking():
    time = np.arange(600) / 30.0
    trace = np.full((1, 600), 100.0, dtype=np.float32)
    events = pd.DataFrame({"onset_s": [5.0, 12.0], "duration_s": 0.0, "condition": "stim"})
    trace[0, (time >= 5.0) & (time < 6.0)] = 150.0
    trace[0, (time >= 12.0) & (time < 13.0)] = 120.0
    trace[0, np.argmin(np.abs(time - 12.5))] = np.nan  # one masked sample
    trials = trial_responses(trace, time, events, WindowParams(input_kind="raw", sample_period_s=1 / 30))
    resp = trials.dff[0, :, trials.response_index]  # (n_samples, n_trials)
    assert np.nanmax(resp[:, 0]) == pytest.approx(0.5)
    assert np.nanmax(resp[:, 1]) == pytest.approx(0.2)
    assert np.isnan(trials.dff[0, 1]).sum() >= 1  # the masked sample stays NaN
    assert np.isnan(trials.dff[0, 0]).sum() == 0


def test_overlapping_trials_error_and_drop(sim):
    events = sim.events.copy()
    events.loc[5, "onset_s"] = events.loc[4, "onset_s"] + 0.5
    times = sim.frame_times_s
    with pytest.raises(DataError, match="1 trial\\(s\\) overlap"):
        trial_responses(sim.dff, times, events.sort_values("onset_s"))
    trials = trial_responses(sim.dff, times, events, WindowParams(overlap="drop"))
    assert trials.n_dropped_overlap == 1 and trials.dff.shape[1] == len(events) - 1


def test_events_outside_recording_are_counted_and_kept_out(sim):
    events = pd.concat(
        [sim.events, pd.DataFrame({"onset_s": [-3.0, 0.2, sim.duration_s + 5], "condition": "stim"})],
        ignore_index=True,
    )
    selection = select_in_recording(events, sim.frame_times_s, window_s=(-1.0, 1.0))
    assert (selection.n_before, selection.n_after) == (2, 1)
    assert len(selection.events) == len(sim.events)
    assert "3 event(s) left out" in selection.message()
    with pytest.raises(DataError, match="same clock"):
        select_in_recording(events.assign(onset_s=events["onset_s"] + 1e4), sim.frame_times_s)
    framed = assign_frames(selection.events, sim.frame_times_s)
    expected = np.floor(selection.events["onset_s"].to_numpy() * sim.frame_rate_hz).astype(int)
    np.testing.assert_array_equal(framed["frame"], expected)


def test_all_trials_masked_is_a_clear_error(sim):
    masked = sim.dff.copy()
    times = sim.frame_times_s
    for onset in sim.events["onset_s"]:
        masked[:, (times >= onset - 0.05) & (times <= onset + 1.05)] = np.nan
    with pytest.raises(DataError, match="all 40 trials are entirely masked"):
        trial_responses(masked, times, sim.events)


def test_dose_response_by_power():
    sim = simulate_trials(n_rois=30, n_trials=40, snr=5.0, frac_excited=1.0, frac_inhibited=0.0, seed=2)
    events = sim.events.copy()
    # trials at the low power get half the response: rescale their calcium by simulating a second gain
    low = simulate_trials(n_rois=30, n_trials=40, snr=5.0, gain=0.4, truth=sim.truth, seed=2)
    odd = np.arange(len(events)) % 2 == 1
    events.loc[odd, "power_mw"] = 4.0
    times = roi_sample_times(sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s)
    dff = sim.dff.copy()
    for onset in events.loc[odd, "onset_s"]:
        window = (sim.frame_times_s >= onset - 1.0) & (sim.frame_times_s < onset + 2.5)
        dff[:, window] = low.dff[:, window]
    trials = trial_responses(dff, times, events)
    levels, trend = dose_response(trials, by="power_mw")
    mean = levels.pivot(index="roi_id", columns="level", values="mean")
    assert (mean[10.0] > mean[4.0]).mean() > 0.9
    assert (trend["spearman_rho"] > 0).mean() > 0.9


def test_sign_flip_matches_scipy_permutation_test():
    from scipy import stats as sps

    from imagingkit.stim.stats import _sign_flip

    rng = np.random.default_rng(0)
    delta = rng.normal(0, 1, (6, 12)) + np.array([0, 0.1, 0.3, 0.5, -0.4, 0.8])[:, None]
    n_perm = 19999
    ours = _sign_flip(delta, StatsParams(n_permutations=n_perm))
    # 12 trials: scipy enumerates all 4096 sign patterns, the exact p-value
    exact = sps.permutation_test(
        (delta,), np.sum, permutation_type="samples", vectorized=True, axis=1, n_resamples=np.inf
    ).pvalue
    monte_carlo_sd = 2 * np.sqrt(exact * (1 - exact) / n_perm) + 1 / n_perm
    assert np.all(np.abs(ours - exact) <= 4 * monte_carlo_sd)


def test_shuffled_event_times_test_is_calibrated_under_the_null():
    """Pure noise with slow drift: shuffle-test p-values are near uniform (slightly conservative)."""
    rng = np.random.default_rng(3)
    n_rois, n_frames, rate = 400, 9000, 30.0
    t = np.arange(n_frames) / rate
    drift = np.cumsum(rng.normal(0, 0.01, (n_rois, n_frames)), axis=1)  # autocorrelated, no response
    traces = (rng.normal(0, 0.1, (n_rois, n_frames)) + drift).astype(np.float32)
    events = pd.DataFrame({"onset_s": 3.0 + np.arange(90) * 3.3, "condition": "stim"})
    trials = trial_responses(traces, t, events)
    table = response_statistics(trials, StatsParams(test="shuffle"), traces=traces, sample_times_s=t)
    p = table["p_value"].to_numpy()
    assert 0.01 <= np.mean(p < 0.05) <= 0.06
    assert 0.4 <= np.median(p) <= 0.6
    assert table["responsive"].mean() <= 0.02
    with pytest.raises(ParameterError, match="shuffle"):
        response_statistics(trials, StatsParams(test="shuffle"))


def test_shuffle_statistic_matches_the_cut_trials():
    """The shuffle test's observed statistic is the trial delta of trial_responses (same windows)."""
    from imagingkit.stim.stats import _delta_at_every_onset, trial_deltas

    sim = simulate_trials(n_rois=20, n_trials=15, snr=3.0, seed=4)
    onsets = np.round(sim.events["onset_s"].to_numpy() * sim.frame_rate_hz) / sim.frame_rate_hz
    events = sim.events.assign(onset_s=onsets)  # on the frame grid: no interpolation difference
    window = WindowParams(sample_period_s=1 / sim.frame_rate_hz)
    trials = trial_responses(sim.dff, sim.frame_times_s, events, window)
    delta = _delta_at_every_onset(sim.dff, (30, sim.dff.shape[1] - 31), (-30, 0), (0, 31), window)
    frames = np.round(onsets * sim.frame_rate_hz).astype(int) - 30
    np.testing.assert_allclose(delta[frames].T, trial_deltas(trials), atol=2e-5)


def test_departure_latency_on_a_pulse_train():
    """10 %-of-peak is late on a 5-pulse train whose peak builds up; the departure method is not."""
    from imagingkit.stim.stats import response_timing
    from imagingkit.synth.indicators import get_indicator

    ind = get_indicator("GCaMP6f")
    time = np.arange(-1.0, 1.0, 0.001)
    latency = np.array([0.01, 0.03, 0.06])
    lag = time[None, :] - latency[:, None]
    train = sum(np.where(lag - k / 20 > 0, ind.kernel(np.maximum(lag - k / 20, 0)), 0) for k in range(5))
    noise = np.random.default_rng(0).normal(0, 0.002, train.shape)
    x = train / train.max(axis=1, keepdims=True) * 0.5 + noise
    kw = dict(baseline_s=(-1.0, 0.0))
    frac, _, _ = response_timing(x, time, (0.0, 1.0), np.ones(3), 0.1, method="fraction", **kw)
    dep, _, _ = response_timing(x, time, (0.0, 1.0), np.ones(3), 0.1, method="departure", **kw)
    assert np.all(frac - latency > 0.015)
    assert np.all(np.abs(dep - latency) < 0.005)


def test_analysis_refuses_a_recording_of_another_length(sim):
    from imagingkit.io import from_array
    from imagingkit.stim.analysis import analyse_responses

    rois = pd.DataFrame({"roi_id": np.arange(len(sim.dff)), "y": sim.truth.roi_y, "x": sim.truth.roi_x})
    movie = from_array(np.zeros((len(sim.frame_times_s) - 3, 8, 8), np.uint16), frame_rate_hz=30.0)
    with pytest.raises(
        DataError, match=f"{len(sim.frame_times_s) - 3} frames but traces has {len(sim.frame_times_s)}"
    ):
        analyse_responses(sim.dff, sim.frame_times_s, rois, sim.events, recording=movie)
    result = analyse_responses(sim.dff, sim.frame_times_s, rois, sim.events, line_period_s=sim.line_period_s)
    assert result.report["sub_frame_timing"] and result.roi_mask is None
    np.testing.assert_allclose(result.sample_times_s, sim.sample_times_s)
