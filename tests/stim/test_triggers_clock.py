"""Triggers -> events, trigger-file readers, frame clock and sub-frame timing."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import DataError, FileFormatError, ParameterError
from imagingkit.stim.clock import align_events, fit_clock, frame_times_from_clock
from imagingkit.stim.sources import label_sham_trials
from imagingkit.stim.timing import roi_sample_times
from imagingkit.stim.triggers import PulseParams, detect_pulses, events_from_triggers, read_trigger_file
from tests.stim.simdata import simulate_trials, simulate_triggers

RATE = 10_000.0


@pytest.fixture(scope="module")
def sim():
    return simulate_trials(n_rois=20, n_trials=12, sham_fraction=0.25, seed=3)


def test_onsets_from_raw_triggers_within_one_line_period(sim):
    daq = simulate_triggers(sim, rate_hz=RATE)
    events = events_from_triggers(daq[:, 1], RATE, PulseParams(max_gap_s=0.05), power_mw_per_unit=10.0 / 5.0)
    truth = sim.events[sim.events["condition"] == "stim"]
    assert len(events) == len(truth)
    error = np.abs(events["onset_s"].to_numpy() - truth["onset_s"].to_numpy())
    assert error.max() < sim.line_period_s
    assert (events["n_pulses"] == 10).all()
    np.testing.assert_allclose(events["frequency_hz"], 200.0, rtol=0.02)
    np.testing.assert_allclose(events["power_mw"], 10.0, rtol=0.02)
    np.testing.assert_allclose(events["duration_s"], 9 / 200 + 0.004, atol=2 / RATE)


def test_sham_trials_from_trial_channel(sim):
    daq = simulate_triggers(sim, rate_hz=RATE)
    stim = events_from_triggers(daq[:, 1], RATE, PulseParams(max_gap_s=0.05))
    trials = events_from_triggers(daq[:, 2], RATE, PulseParams(max_gap_s=0.05))
    labelled = label_sham_trials(trials, stim)
    assert len(labelled) == len(sim.events)
    assert (labelled["condition"].to_numpy() == sim.events["condition"].to_numpy()).all()
    assert (labelled.loc[labelled["condition"] == "sham", "power_mw"] == 0).all()


def test_hysteresis_and_debounce_reject_chatter_and_glitches():
    rate = 1000.0
    trace = np.zeros(3000, dtype=np.float32)
    trace[500:600] = 1.0
    trace[1500:1600] = 1.0
    trace[2500:2502] = 1.0  # a 2 ms glitch
    trace[598:603] = [0.45, 0.55, 0.45, 0.55, 0.45]  # chatter around the threshold on the falling edge
    trace[1549] = 0.0  # a one-sample dropout inside the second pulse
    plain = detect_pulses(trace, rate, PulseParams(threshold=0.5, hysteresis=0.0))
    assert len(plain) > 3  # without hysteresis/debounce the chatter, dropout and glitch all count
    pulses = detect_pulses(
        trace, rate, PulseParams(threshold=0.5, hysteresis=0.2, min_high_s=0.005, min_low_s=0.005)
    )
    assert len(pulses) == 2
    np.testing.assert_allclose(pulses["onset_s"], [0.4995, 1.4995], atol=1e-3)


def test_trigger_channel_without_pulses():
    with pytest.raises(DataError, match="no pulses"):
        events_from_triggers(np.full(1000, 0.3, dtype=np.float32), 1000.0)
    with pytest.raises(DataError, match="no pulses"):
        detect_pulses(np.zeros(1000), 1000.0, PulseParams(threshold=2.5))


def test_trigger_file_readers_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.random((500, 2)) > 0.5).astype(np.float32)
    np.save(tmp_path / "t.npy", data)
    with pytest.raises(ParameterError, match="rate"):
        read_trigger_file(tmp_path / "t.npy")
    npy = read_trigger_file(tmp_path / "t.npy", rate_hz=2000.0, channel_names=("frame", "stim"))
    np.testing.assert_array_equal(npy.channel("stim"), data[:, 1])
    np.savez(tmp_path / "t.npz", frame=data[:, 0], stim=data[:, 1], rate_hz=2000.0)
    npz = read_trigger_file(tmp_path / "t.npz")
    assert npz.rate_hz == 2000.0 and npz.channels == ("frame", "stim")
    pd.DataFrame({"time_s": 5.0 + np.arange(500) / 2000.0, "frame": data[:, 0], "stim": data[:, 1]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    csv = read_trigger_file(tmp_path / "t.csv")
    assert csv.rate_hz == pytest.approx(2000.0) and csv.t0_s == 5.0
    np.testing.assert_array_equal(csv.channel("frame"), data[:, 0])
    with h5py.File(tmp_path / "t.h5", "w") as f:
        g = f.create_group("daq")
        g.attrs["rate_hz"] = 2000.0
        g["frame"] = data[:, 0]
        g["stim"] = data[:, 1]
    h5 = read_trigger_file(tmp_path / "t.h5", group="daq")
    assert h5.rate_hz == 2000.0 and set(h5.channels) == {"frame", "stim"}
    np.testing.assert_array_equal(h5.channel("stim"), data[:, 1])
    with pytest.raises(ParameterError, match="no trigger channel 'laser'"):
        h5.channel("laser")
    (tmp_path / "t.bin").write_bytes(b"x")
    with pytest.raises(FileFormatError, match="unknown trigger file type"):
        read_trigger_file(tmp_path / "t.bin")


def test_frame_clock_fit_recovers_drift_and_offset(sim):
    daq = simulate_triggers(sim, rate_hz=RATE)
    # the DAQ runs 80 ppm fast and started 0.25 s before the microscope
    trigger_rate = RATE * (1 + 80e-6)
    clock_times = frame_times_from_clock(
        daq[:, 0], trigger_rate, n_frames_expected=len(sim.frame_times_s), t0_s=-0.25
    )
    fit = fit_clock(clock_times, sim.frame_times_s)
    assert fit.drift_ppm == pytest.approx(80, abs=2)
    assert fit.offset_s == pytest.approx(0.25, abs=1e-3)
    assert fit.residual_max_s < 1.0 / RATE
    events = events_from_triggers(daq[:, 1], trigger_rate, PulseParams(max_gap_s=0.05), t0_s=-0.25)
    aligned = align_events(events, fit)
    truth = sim.events.loc[sim.events["condition"] == "stim", "onset_s"].to_numpy()
    assert np.abs(aligned["onset_s"].to_numpy() - truth).max() < sim.line_period_s


def test_frame_clock_count_mismatch_is_reported_not_truncated(sim):
    daq = simulate_triggers(sim, rate_hz=RATE)
    n = len(sim.frame_times_s)
    with pytest.raises(
        DataError, match=rf"{n} frame-clock pulses but the recording has {n + 7} frames \(mismatch -7"
    ):
        frame_times_from_clock(daq[:, 0], RATE, n_frames_expected=n + 7)


def test_roi_sample_times_subframe_and_planes():
    frame_times = np.array([[0.0, 0.01], [0.1, 0.11]])
    t = roi_sample_times(frame_times, [0, 99], line_period_s=1e-4, roi_plane=[0, 1])
    np.testing.assert_allclose(t, [[0.0, 0.1], [0.01 + 99e-4, 0.11 + 99e-4]])
    uni = roi_sample_times(frame_times[:, :1], [10], line_period_s=1e-4, roi_x_px=[0], n_pixels_x=100)
    np.testing.assert_allclose(uni[0, 0], 10.005e-4)
    flat = roi_sample_times(frame_times, [0, 99], line_period_s=None)
    np.testing.assert_allclose(flat, [[0.0, 0.1], [0.0, 0.1]])
    with pytest.raises(ParameterError, match="plane"):
        roi_sample_times(frame_times, [0], line_period_s=1e-4, roi_plane=[2])
