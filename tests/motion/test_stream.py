"""register_movie: files on disk, conventions, planes and channels, bad input, interrupted runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from imagingkit.errors import DataError, ParameterError
from imagingkit.io import from_array
from imagingkit.motion import NonRigidParams, RigidParams, register_movie
from imagingkit.motion import engine as engine_module
from tests.motion.conftest import fourier_shifted


@pytest.fixture()
def small_movie(camera_image):
    rng = np.random.default_rng(5)
    truth = np.cumsum(rng.normal(0, 0.5, (40, 2)), axis=0)
    frames = fourier_shifted(camera_image, truth, photons=200).astype(np.uint16)
    return frames, truth


def test_outputs_written_and_consistent(tmp_path, small_movie):
    frames, truth = small_movie
    rec = from_array(frames, frame_rate_hz=30.0)
    out = tmp_path / "reg"
    res = register_movie(rec, out, NonRigidParams(block_size_px=64, chunk_frames=16))
    names = {p.name for p in out.iterdir()}
    assert {"registered.tif", "shifts.csv", "reference.tif", "metrics.json", "block_shifts.npz"} <= names
    shifts = pd.read_csv(out / "shifts.csv")
    assert list(shifts.columns[:6]) == ["frame", "plane", "dy", "dx", "corr", "bad"]
    assert len(shifts) == 40
    est = shifts[["dy", "dx"]].to_numpy()
    err = est - truth - np.median(est - truth, axis=0)
    assert np.sqrt(np.mean(err**2)) < 0.1
    with tifffile.TiffFile(out / "registered.tif") as tif:
        assert tif.is_bigtiff
        reg = tif.series[0].asarray()
    assert reg.shape == (40, 1, 1, 128, 128) and reg.dtype == np.uint16
    # registered frames agree with each other much better than the raw ones
    inner = (slice(None), slice(12, -12), slice(12, -12))
    assert (
        reg[:, 0, 0][inner].astype(float).std(axis=0).mean()
        < frames[inner].astype(float).std(axis=0).mean() / 2
    )
    blocks = np.load(out / "block_shifts.npz")
    assert blocks["dy"].shape == (40, 1, 3, 3)
    np.testing.assert_allclose(res.reference[0], tifffile.imread(out / "reference.tif").reshape(128, 128))


def test_channels_share_shifts_and_planes_are_separate(small_movie):
    frames, truth = small_movie
    # channel 1 carries the structure, channel 0 is a noisy copy at a tenth of the light
    rng = np.random.default_rng(1)
    ch0 = rng.poisson(frames / 10.0).astype(np.float32)
    movie = np.stack([ch0, frames.astype(np.float32)], axis=1)  # T C Y X
    volume = np.stack([movie, movie[:, :, :, ::-1]], axis=1)  # T Z C Y X, plane 1 mirrored in x
    rec = from_array(volume, dims="TZCYX", frame_rate_hz=30.0)
    res = register_movie(rec, None, RigidParams(), channel=1)
    plane0 = res.shifts[res.shifts.plane == 0]
    plane1 = res.shifts[res.shifts.plane == 1]
    dy0, dx0 = plane0.dy.to_numpy(), plane0.dx.to_numpy()
    dy1, dx1 = plane1.dy.to_numpy(), plane1.dx.to_numpy()
    np.testing.assert_allclose(dy0, dy1, atol=0.05)
    np.testing.assert_allclose(dx0, -dx1 + np.median(dx0 + dx1), atol=0.05)  # mirrored: x motion reversed
    err = np.c_[dy0, dx0] - truth
    assert np.sqrt(np.mean((err - np.median(err, axis=0)) ** 2)) < 0.15
    assert res.reference.shape == (2, 128, 128)


def test_shift_only_run_writes_nothing(tmp_path, small_movie):
    rec = from_array(small_movie[0], frame_rate_hz=30.0)
    res = register_movie(rec, None)
    assert res.out_dir is None and len(res.shifts) == 40
    assert list(tmp_path.iterdir()) == []


def test_progress_is_reported_per_chunk(small_movie):
    frames, _ = small_movie
    calls = []
    register_movie(
        from_array(frames, frame_rate_hz=30.0),
        params=RigidParams(chunk_frames=16),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(16, 40), (32, 40), (40, 40)]  # 40 frames in chunks of 16


def test_too_few_frames(tmp_path, camera_image):
    rec = from_array(camera_image[None].astype(np.float32))
    with pytest.raises(DataError, match="at least 2 frames"):
        register_movie(rec, tmp_path / "o")


def test_all_zero_and_nan_movies(tmp_path):
    with pytest.raises(DataError, match="all-zero or NaN"):
        register_movie(from_array(np.zeros((10, 64, 64), np.uint16)), tmp_path / "o")
    with pytest.raises(DataError, match="all-zero or NaN"):
        register_movie(from_array(np.full((10, 64, 64), np.nan, np.float32)), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_single_nan_and_zero_frames_are_flagged(small_movie):
    frames = small_movie[0].astype(np.float32)
    frames[5] = np.nan
    frames[9] = 0
    res = register_movie(from_array(frames), None)
    bad = res.shifts.set_index("frame")
    assert bad.loc[5, "bad"] and bad.loc[9, "bad"]
    assert bad.loc[5, "bad_reason"] == "invalid"
    assert bad["bad"].sum() == 2
    assert np.isfinite(res.shifts[["dy", "dx"]].to_numpy()).all()


def test_missing_channel_and_plane(small_movie):
    rec = from_array(small_movie[0])
    with pytest.raises(ParameterError, match="channel 1 does not exist"):
        register_movie(rec, None, channel=1)
    with pytest.raises(ParameterError, match="plane 3 does not exist"):
        register_movie(rec, None, planes=[3])
    with pytest.raises(ParameterError, match="engine"):
        register_movie(rec, None, engine="magic")


def test_interrupted_run_leaves_no_result(tmp_path, small_movie, monkeypatch):
    rec = from_array(small_movie[0])
    out = tmp_path / "reg"
    calls = {"n": 0}
    original = engine_module.BuiltinPlaneEngine.register

    def failing(self, frames, channel, align=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, frames, channel, align)

    monkeypatch.setattr(engine_module.BuiltinPlaneEngine, "register", failing)
    with pytest.raises(KeyboardInterrupt):
        register_movie(rec, out, RigidParams(chunk_frames=10, n_workers=1))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either
    # an earlier complete result survives a failed re-run untouched
    monkeypatch.setattr(engine_module.BuiltinPlaneEngine, "register", original)
    register_movie(rec, out, RigidParams(chunk_frames=10))
    before = (out / "shifts.csv").read_text()
    calls["n"] = 0
    monkeypatch.setattr(engine_module.BuiltinPlaneEngine, "register", failing)
    with pytest.raises(KeyboardInterrupt):
        register_movie(rec, out, RigidParams(chunk_frames=10, n_workers=1))
    assert (out / "shifts.csv").read_text() == before
