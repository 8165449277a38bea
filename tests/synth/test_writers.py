"""Files written in each format load back through open_recording with the right metadata."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from imagingkit import open_recording
from imagingkit.cli import main
from imagingkit.synth import StimProtocol, simulate_dendrite_sessions, simulate_functional
from imagingkit.synth.writers import (
    write_dendrite_sessions,
    write_functional,
    write_sbx,
    write_scanimage_tiff_series,
    write_tiff,
)

STIM = StimProtocol(first_onset_s=0.5, inter_trial_interval_s=1.5, iti_jitter_s=0.2, sham_fraction=0.0)


@pytest.fixture(scope="module")
def sim():
    return simulate_functional(
        n_frames=60,
        shape_yx=(48, 64),
        n_cells=6,
        n_planes=2,
        n_channels=2,
        seed=4,
        stim=STIM,
        pixel_size_um=0.8,
        z_step_um=25.0,
    )


def test_scanimage_series_round_trip(sim, tmp_path):
    pulses = sim.truth.pulses.start_s.to_numpy()
    files = write_scanimage_tiff_series(
        sim.recording, tmp_path, "run", frames_per_file=25, zoom=3.0, aux_triggers_s={"auxTrigger0": pulses}
    )
    assert [f.name for f in files] == ["run_00001.tif", "run_00002.tif", "run_00003.tif"]
    with tifffile.TiffFile(files[0]) as tif:
        assert tif.is_scanimage and tif.is_bigtiff
        meta = tifffile.read_scanimage_metadata(tif.filehandle)
        assert meta[0]["SI.hRoiManager.scanFrameRate"] == 30.0
        assert meta[0]["SI.hStackManager.numSlices"] == 2
        assert "imagingRoiGroup" in meta[1]["RoiGroups"]
        assert len(tif.pages) == 25 * 2 * 2
        assert "frameTimestamps_sec" in tif.pages[0].description
    rec = open_recording(files[1])  # any file of the series opens the whole series
    assert rec.format == "scanimage" and rec.shape == sim.movie.shape
    np.testing.assert_array_equal(rec.load(), sim.movie)
    assert rec.frame_rate_hz == pytest.approx(30.0) and rec.volume_rate_hz == pytest.approx(15.0)
    assert rec.pixel_size_um == pytest.approx((0.8, 0.8))
    assert rec.line_period_s == pytest.approx(sim.truth.line_period_s)
    assert rec.bidirectional is True and rec.z_step_um == pytest.approx(25.0)
    assert rec.timestamps_from_file
    np.testing.assert_allclose(rec.frame_times_s, sim.truth.frame_times_s, atol=1e-6)
    np.testing.assert_allclose(rec.trigger_times_s["auxTrigger0"], pulses, atol=1e-6)
    assert rec.metadata.get("zoom") == pytest.approx(3.0)


def test_plain_tiff_round_trip(sim, tmp_path):
    one = simulate_functional(n_frames=30, shape_yx=(32, 40), n_cells=3, seed=1, pixel_size_um=0.5)
    path = write_tiff(one.recording, tmp_path / "movie.tif")
    rec = open_recording(path)
    np.testing.assert_array_equal(rec.load(), one.movie)
    assert rec.frame_rate_hz == pytest.approx(30.0)
    assert rec.pixel_size_um == pytest.approx((0.5, 0.5))
    multi = open_recording(write_tiff(sim.movie, tmp_path / "m.tif", frame_rate_hz=15.0, z_step_um=25.0))
    assert multi.shape == sim.movie.shape and multi.z_step_um == pytest.approx(25.0)


def test_sbx_round_trip(sim, tmp_path):
    onsets = sim.truth.events.onset_s.to_numpy()
    sbx = write_sbx(sim.recording, tmp_path / "scan", event_times_s=onsets)
    raw = np.fromfile(sbx, dtype="<u2")
    assert raw[0] == 65535 - sim.movie[0, 0, 0, 0, 0]  # stored inverted, channels interleaved fastest
    assert raw[1] == 65535 - sim.movie[0, 0, 1, 0, 0]
    rec = open_recording(sbx)
    assert rec.format == "scanbox" and rec.shape == sim.movie.shape
    np.testing.assert_array_equal(rec.load(), sim.movie)
    assert rec.frame_rate_hz == pytest.approx(30.0) and rec.bidirectional is True
    np.testing.assert_allclose(rec.trigger_times_s["ttl"], onsets, atol=2 * rec.line_period_s)


def test_write_functional_streams_same_pixels_and_truth(tmp_path):
    kw = dict(n_frames=80, shape_yx=(40, 40), n_cells=5, seed=9, stim=STIM)
    files, truth = write_functional(
        tmp_path, name="exp", format="scanimage", chunk_frames=7, frames_per_file=30, **kw
    )
    ref = simulate_functional(**kw)
    np.testing.assert_array_equal(open_recording(files[0]).load(), ref.movie)
    stored = np.load(tmp_path / "exp_truth.npz")
    np.testing.assert_allclose(stored["calcium"], ref.truth.calcium)
    np.testing.assert_array_equal(stored["labels"][0], ref.truth.labels)
    events = pd.read_csv(tmp_path / "exp_events.csv")
    assert list(events.columns[:9]) == [
        "event_id",
        "trial",
        "onset_s",
        "duration_s",
        "n_pulses",
        "frequency_hz",
        "power_mw",
        "site",
        "condition",
    ]
    trig = np.load(tmp_path / "exp_triggers.npz")
    assert trig["triggers"].shape[1] == 3 and float(trig["rate_hz"]) == 10_000.0
    assert list(trig["channels"]) == ["frame_clock", "stim", "trial"]
    files_sbx, _ = write_functional(tmp_path / "sbx", name="exp", format="sbx", **kw)
    np.testing.assert_array_equal(open_recording(files_sbx[0]).load(), ref.movie)


def test_dendrite_sessions_written_with_pixel_size(tmp_path):
    d = simulate_dendrite_sessions(n_sessions=3, shape=(64, 64), seed=2, pixel_size_um=0.25)
    out = write_dendrite_sessions(d, tmp_path)
    rec = open_recording(out["images"][1])
    assert rec.pixel_size_um == pytest.approx((0.25, 0.25))
    np.testing.assert_array_equal(rec.load()[0, 0, 0], d.images[1])
    truth = pd.read_csv(out["truth"])
    assert len(truth) == len(d.truth) and set(truth.session) == {0, 1, 2}


def test_cli_is_deterministic(tmp_path, capsys):
    args = [
        "simulate",
        "functional",
        "--n-frames",
        "40",
        "--shape",
        "32",
        "32",
        "--n-cells",
        "4",
        "--stim",
        "--seed",
        "5",
        "--iti-s",
        "1.0",
        "--iti-jitter-s",
        "0.1",
        "--n-pulses",
        "2",
    ]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert out["n_rois"] == 4
    a = tifffile.imread(tmp_path / "a" / "sim_00001.tif")
    b = tifffile.imread(tmp_path / "b" / "sim_00001.tif")
    np.testing.assert_array_equal(a, b)
    assert (
        main(["simulate", "dendrites", "-o", str(tmp_path / "d"), "--n-sessions", "2", "--shape", "48", "48"])
        == 0
    )
    assert (tmp_path / "d" / "spines_truth.csv").exists()
    assert main(["simulate", "functional", "-o", str(tmp_path / "e"), "--n-frames", "0"]) == 1
