"""Report and NWB export of the end-to-end run: pages and figures with data, NWB that reads back and passes nwbinspector."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from tests.pipeline.conftest import run_cli

pytestmark = pytest.mark.slow


def test_report_page_and_figures_show_data(e2e_run):
    _, run_dir, truths = e2e_run
    index = run_dir / "report" / "index.html"
    page = index.read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    for t in truths:
        assert f"Session {t.animal}/{t.session}" in page
        session_page = (index.parent / f"{t.animal}_{t.session}.html").read_text()
        for kind in ("motion", "rois", "heatmap", "responders"):
            assert f"{t.animal}_{t.session}_{kind}.png" in images
            assert f"{t.animal}_{t.session}_{kind}.png" in session_page
    for name in ("turnover.png", "response_change.png", "m01_fates.png", "m02_fates.png"):
        assert name in images
    for name in images:
        pixels = mpimg.imread(index.parent / name)[..., :3]
        assert pixels.shape[0] > 150 and pixels.shape[1] > 150
        assert pixels.std() > 0.05, f"{name} looks blank"
        assert (pixels < 0.95).mean() > 0.02, f"{name} has almost nothing drawn"


def test_nwb_export_reads_back_and_passes_inspector(e2e_run, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwbinspector = pytest.importorskip("nwbinspector")
    _, run_dir, _ = e2e_run
    out = tmp_path / "m01_s1.nwb"
    assert run_cli("export-nwb", run_dir, "--session", "m01/s1", "-o", out) == 0
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(out)))
    critical = [m for m in messages if m.importance.name in ("CRITICAL", "ERROR", "PYNWB_VALIDATION")]
    assert not critical, [f"{m.check_function_name}: {m.message}" for m in critical]

    rois = pd.read_csv(run_dir / "m01" / "s1" / "neurons" / "rois.csv")
    with np.load(run_dir / "m01" / "s1" / "neurons" / "traces.npz") as traces:
        dff, spikes = traces["dff"], traces["spikes"]
    events = pd.read_csv(run_dir / "m01" / "s1" / "stim" / "events.csv")
    spines = pd.read_csv(run_dir / "m01" / "s1" / "spines" / "spines.csv")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "m01" and nwb.subject.age == "P90D"
        series = nwb.acquisition["TwoPhotonSeries"]
        assert series.format == "external" and len(series.data) == 0  # linked, not copied
        linked = (out.parent / series.external_file[0]).resolve()
        assert linked == (run_dir / "m01" / "s1" / "register" / "registered.tif").resolve()
        ophys = nwb.processing["ophys"]
        segmentation = ophys["ImageSegmentation"]["PlaneSegmentation"]
        assert len(segmentation) == len(rois)
        np.testing.assert_array_equal(segmentation["roi_id"][:], rois["roi_id"])
        np.testing.assert_allclose(ophys["DfOverF"]["DfOverF"].data[:], dff.T, equal_nan=True)
        np.testing.assert_allclose(ophys["Fluorescence"]["Spikes"].data[:], spikes.T, equal_nan=True)
        stim = nwb.intervals["optogenetic_stimulation"].to_dataframe()
        assert len(stim) == len(events)
        np.testing.assert_allclose(stim["start_time"], events["onset_s"])
        assert list(stim["condition"]) == list(events["condition"])
        light = nwb.stimulus["OptogeneticSeries"]
        assert np.nanmax(light.data[:]) == pytest.approx(events["power_mw"].max() / 1000)
        assert len(ophys["spines"]) == len(spines)
        tracks = ophys["spine_tracks"].to_dataframe()
        assert set(tracks["session"]) == {0, 1, 2}


def test_export_all_sessions_one_file_each(e2e_run, tmp_path):
    pytest.importorskip("pynwb")
    _, run_dir, truths = e2e_run
    assert run_cli("export-nwb", run_dir, "-o", tmp_path / "run.nwb") == 0
    written = sorted(p.name for p in Path(tmp_path).glob("*.nwb"))
    assert written == sorted(f"run_{t.animal}_{t.session}.nwb" for t in truths)
