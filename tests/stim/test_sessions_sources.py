"""Across sessions, synchrony, behaviour, and the non-trigger event sources."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import DataError, FileFormatError
from imagingkit.stim.responses import WindowParams, trial_responses
from imagingkit.stim.sessions import (
    correlate_with_behaviour,
    cross_correlation,
    pairwise_correlation,
    population_synchrony,
    session_changes,
)
from imagingkit.stim.sources import (
    events_from_scanimage_aux,
    events_from_times,
    read_event_table,
    read_nwb_optogenetics,
    read_scanbox_events,
    read_scanimage_photostim_log,
)
from imagingkit.stim.stats import response_statistics
from imagingkit.stim.timing import roi_sample_times
from imagingkit.stim.triggers import PulseParams
from tests.stim.simdata import simulate_trials


def _session(gain, truth=None, seed=0):
    sim = simulate_trials(n_rois=150, n_trials=40, snr=3.0, gain=gain, truth=truth, seed=seed)
    times = roi_sample_times(sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s)
    table = response_statistics(trial_responses(sim.dff, times, sim.events, WindowParams()))
    return sim, table


def test_learning_related_amplitude_change_recovered_within_ci():
    gains = [1.0, 1.5]
    first, t0 = _session(gains[0], seed=1)
    _, t1 = _session(gains[1], truth=first.truth, seed=2)
    per_cell = pd.concat(
        [t.assign(cell_id=t["roi_id"], session=s) for s, t in enumerate((t0, t1))], ignore_index=True
    )
    change = session_changes(per_cell, n_resamples=999).iloc[0]
    true_ratio = gains[1] / gains[0]
    assert change["amplitude_ratio_low"] <= true_ratio <= change["amplitude_ratio_high"]
    assert change["amplitude_ratio_low"] > 1.0  # the increase is resolved
    # the fraction responsive matches the truth in both sessions (responders already detected at gain 1)
    true_fraction = np.mean(first.truth.responsive != 0)
    assert (
        abs(change["fraction_from"] - true_fraction) < 0.05
        and abs(change["fraction_to"] - true_fraction) < 0.05
    )
    assert change["fraction_change_low"] <= change["fraction_change"] <= change["fraction_change_high"]
    with pytest.raises(DataError, match="at least two sessions"):
        session_changes(per_cell[per_cell["session"] == 0])


def test_synchrony_peak_lag_and_pairwise_correlation():
    rng = np.random.default_rng(0)
    rate = 30.0
    drive = np.convolve(rng.normal(size=3000), np.ones(5) / 5, mode="same")
    boutons = drive[None, :] + 0.5 * rng.normal(size=(8, 3000))
    somata = np.roll(drive, 4)[None, :] + 0.5 * rng.normal(size=(12, 3000))  # somata follow by 4 frames
    sync = population_synchrony(boutons, somata, frame_rate_hz=rate, max_lag_s=0.5)
    assert sync["peak_lag_s"] == pytest.approx(4 / rate)
    assert sync["peak_r"] > 0.5
    r = pairwise_correlation(boutons, somata)
    assert r.shape == (8, 12) and abs(sync["mean_pairwise_r"] - r.mean()) < 1e-12
    lags, xc, lag, peak = cross_correlation(somata[0], boutons[0], frame_rate_hz=rate)
    assert lag == pytest.approx(-4 / rate)


def test_correlation_with_behaviour():
    measures = pd.DataFrame({"session": range(6), "fraction_responsive": [0.2, 0.25, 0.3, 0.33, 0.4, 0.45]})
    behaviour = pd.DataFrame({"session": range(6), "success_rate": [0.1, 0.2, 0.35, 0.4, 0.6, 0.7]})
    out = correlate_with_behaviour(measures, behaviour)
    row = out.iloc[0]
    assert row["measure"] == "fraction_responsive" and row["behaviour"] == "success_rate"
    assert row["r"] == pytest.approx(1.0) and row["n"] == 6


def test_event_table_aliases_and_errors(tmp_path):
    (tmp_path / "e.tsv").write_text("start_time\tstop_time\tpower\n2.0\t2.2\t5\n1.0\t1.2\t10\n")
    events = read_event_table(tmp_path / "e.tsv")
    np.testing.assert_allclose(events["onset_s"], [1.0, 2.0])
    np.testing.assert_allclose(events["duration_s"], [0.2, 0.2])
    np.testing.assert_allclose(events["power_mw"], [10, 5])
    assert list(events["event_id"]) == [0, 1]
    (tmp_path / "bad.csv").write_text("when,power\n1,2\n")
    with pytest.raises(FileFormatError, match="needs an onset column"):
        read_event_table(tmp_path / "bad.csv")


def test_scanimage_aux_triggers_and_photostim_log(tmp_path):
    aux = {"auxTrigger0": np.r_[1.0 + np.arange(5) / 20, 4.0 + np.arange(5) / 20]}
    events = events_from_scanimage_aux(aux, max_gap_s=0.2)
    np.testing.assert_allclose(events["onset_s"], [1.0, 4.0])
    assert list(events["n_pulses"]) == [5, 5]
    np.testing.assert_allclose(events["frequency_hz"], 20.0)
    with pytest.raises(DataError, match="auxTrigger1"):
        events_from_scanimage_aux(aux, channel="auxTrigger1")
    rate = 2000.0
    log = np.zeros((4000, 3), dtype="<f4")
    log[:, :2] = 0.3  # galvo positions
    log[1000:1010, 2] = 40.0  # beam power (%)
    log[3000:3010, 2] = 40.0
    log.tofile(tmp_path / "ps.stim")
    ps = read_scanimage_photostim_log(tmp_path / "ps.stim", rate)
    np.testing.assert_allclose(ps["onset_s"], [0.5, 1.5], atol=1 / rate)
    (tmp_path / "bad.stim").write_bytes(b"\0" * 8)
    with pytest.raises(FileFormatError, match="whole number"):
        read_scanimage_photostim_log(tmp_path / "bad.stim", rate)
    assert len(events_from_times([0.5, 0.6, 3.0], max_gap_s=0.2)) == 2


def test_scanbox_ttl_records_real_header(realdata):
    mat = realdata / "caiman_reference" / "3d_sbx_1.mat"
    events = read_scanbox_events(mat)
    # frames [3, 5] lines [480, 185]; unidirectional 8 kHz resonant: 125 us per line, 512 lines per frame
    line = 1 / 8000
    np.testing.assert_allclose(events["onset_s"], [3 * 512 * line + 480 * line, 5 * 512 * line + 185 * line])
    assert list(events["ttl_id"]) == [1, 2]
    with pytest.raises(DataError, match="no TTL event records"):
        read_scanbox_events(realdata / "caiman_reference" / "2d_sbx.mat")


def test_nwb_optogenetic_series(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    from datetime import datetime

    from pynwb.ogen import OptogeneticSeries, OptogeneticStimulusSite

    nwbfile = pynwb.NWBFile("opto", "s1", datetime(2024, 1, 1, tzinfo=UTC))
    device = nwbfile.create_device("laser")
    site = OptogeneticStimulusSite(
        name="VL_thalamus", device=device, description="ChR2", excitation_lambda=473.0, location="VL"
    )
    nwbfile.add_ogen_site(site)
    rate = 1000.0
    power_w = np.zeros(5000)
    for onset in (1.0, 3.0):
        for k in range(3):
            start = int((onset + k * 0.05) * rate)
            power_w[start : start + 5] = 0.008
    nwbfile.add_acquisition(
        OptogeneticSeries(name="opto", data=power_w, site=site, rate=rate, starting_time=0.5)
    )
    with pynwb.NWBHDF5IO(str(tmp_path / "o.nwb"), "w") as io:
        io.write(nwbfile)
    events = read_nwb_optogenetics(tmp_path / "o.nwb", params=PulseParams(max_gap_s=0.1))
    np.testing.assert_allclose(events["onset_s"], [1.5, 3.5], atol=1e-3)
    np.testing.assert_allclose(events["power_mw"], 8.0, rtol=1e-3)
    assert list(events["n_pulses"]) == [3, 3] and set(events["site"]) == {"VL_thalamus"}
