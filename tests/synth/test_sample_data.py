"""The committed sample data loads with the right metadata and agrees with its truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imagingkit import open_recording

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture(scope="module")
def functional():
    folder = SAMPLE / "functional_opto"
    if not folder.is_dir():
        pytest.skip("sample data not generated (python sample_data/make_sample_data.py)")
    return folder


def test_functional_sample_metadata_and_truth(functional):
    rec = open_recording(functional / "opto_00001.tif")
    assert rec.format == "scanimage" and rec.shape == (600, 1, 1, 64, 64) and len(rec.source_files) == 2
    assert rec.frame_rate_hz == pytest.approx(10.0) and rec.pixel_size_um == pytest.approx((1.5, 1.5))
    truth = np.load(functional / "opto_truth.npz")
    np.testing.assert_allclose(rec.frame_times_s, truth["frame_times_s"], atol=1e-6)
    events = pd.read_csv(functional / "opto_events.csv")
    stim = events[events.condition == "stim"]
    # every stimulated train's first pulse is logged as an auxTrigger0 event in the frame headers
    logged = rec.trigger_times_s["auxTrigger0"]
    assert all(np.min(np.abs(logged - on)) < 1e-5 for on in stim.onset_s)
    # artifact lines in the truth are brighter than the same lines' median over frames where they are clean
    movie = rec.load()[:, 0, 0].astype(float)
    mask = truth["artifact_mask"]
    row_means = movie.mean(axis=2)
    clean_median = np.array([np.median(row_means[~mask[:, y], y]) for y in range(mask.shape[1])])
    t, y = np.nonzero(mask)
    assert len(t) > 0
    assert np.mean(row_means[t, y] > clean_median[y]) > 0.9
    trig = np.load(functional / "opto_triggers.npz")
    assert trig["triggers"].shape[0] == pytest.approx(600 / 10.0 * 10_000, abs=2)


def test_structural_sample(functional):
    folder = SAMPLE / "spine_sessions"
    truth = pd.read_csv(folder / "spines_truth.csv")
    sessions = pd.read_csv(folder / "sessions.csv")
    assert len(sessions) == 5 and list(sessions.time_h) == [0, 1, 6, 24, 48]
    for row in sessions.itertuples():
        rec = open_recording(folder / row.file)
        assert rec.shape[-2:] == (160, 160) and rec.pixel_size_um == pytest.approx((0.2, 0.2))
    assert truth.groupby("spine_id").size().eq(5).all()
    first = truth[truth.session == 0]
    np.testing.assert_array_equal(first.present.to_numpy(), (first.formed_session == 0).to_numpy())
    later = truth[truth.session > 0]
    assert not later[later.session < later.formed_session].present.any()  # nothing present before it forms
