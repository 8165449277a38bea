"""suite2p output folders (0.14 and 1.x layouts) written here, read without suite2p."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import FileFormatError, MissingFileError
from imagingkit.io import load_suite2p_results, open_recording

LY, LX, N_FRAMES, N_ROIS = 12, 16, 9, 3


def _results(plane, rng):
    stat = np.array(
        [
            {"ypix": np.array([k, k + 1]), "xpix": np.array([2, 3]), "lam": np.ones(2), "med": [k, 2]}
            for k in range(N_ROIS)
        ],
        dtype=object,
    )
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    for name in ("F", "Fneu", "spks"):
        np.save(plane / f"{name}.npy", rng.random((N_ROIS, N_FRAMES)).astype(np.float32))
    np.save(plane / "iscell.npy", np.array([[1, 0.9], [0, 0.2], [1, 0.7]]))


def _movie(rng, n_frames=N_FRAMES):
    return rng.integers(-500, 3000, size=(n_frames, LY, LX)).astype(np.int16)


def write_suite2p_014(root, n_planes=1, fs=30.0, stale_reg_file=True, seed=0):
    """suite2p 0.14 layout: suite2p/planeN/ops.npy + data.bin + results."""
    rng = np.random.default_rng(seed)
    movies = []
    for z in range(n_planes):
        plane = root / "suite2p" / f"plane{z}"
        plane.mkdir(parents=True)
        movie = _movie(rng)
        movie.tofile(plane / "data.bin")
        reg_file = "/old/machine/suite2p/plane0/data.bin" if stale_reg_file else str(plane / "data.bin")
        ops = {
            "Ly": LY,
            "Lx": LX,
            "nframes": N_FRAMES,
            "fs": fs,
            "nplanes": n_planes,
            "nchannels": 1,
            "reg_file": reg_file,
            "meanImg": movie.mean(0),
        }
        np.save(plane / "ops.npy", ops, allow_pickle=True)
        _results(plane, rng)
        movies.append(movie)
    return np.stack(movies, axis=1)


def write_suite2p_1x(root, fs=15.0, nchannels=2, seed=1):
    """suite2p 1.x layout: db.npy (recording), settings.npy (fs top-level), reg/detect outputs."""
    rng = np.random.default_rng(seed)
    save = root / "suite2p"
    plane = save / "plane0"
    plane.mkdir(parents=True)
    settings = {"fs": fs, "tau": 1.0, "diameter": [12, 12], "registration": {"nonrigid": True}}
    np.save(save / "settings.npy", settings, allow_pickle=True)
    np.save(plane / "settings.npy", settings, allow_pickle=True)
    np.save(save / "db.npy", {"data_path": ["/raw"], "nplanes": 1, "nchannels": nchannels}, allow_pickle=True)
    db = {
        "Ly": LY,
        "Lx": LX,
        "nframes": N_FRAMES,
        "nplanes": 1,
        "nchannels": nchannels,
        "reg_file": str(plane / "data.bin"),
        "reg_file_chan2": str(plane / "data_chan2.bin"),
        "save_path": str(plane),
    }
    np.save(plane / "db.npy", db, allow_pickle=True)
    np.save(
        plane / "reg_outputs.npy", {"yoff": np.zeros(N_FRAMES), "xoff": np.zeros(N_FRAMES)}, allow_pickle=True
    )
    np.save(plane / "detect_outputs.npy", {"Vcorr": np.zeros((LY, LX))}, allow_pickle=True)
    green, red = _movie(rng), _movie(rng)
    green.tofile(plane / "data.bin")
    red.tofile(plane / "data_chan2.bin")
    _results(plane, rng)
    return np.stack([green, red], axis=1)


def test_014_single_plane_with_stale_reg_file(tmp_path):
    movie = write_suite2p_014(tmp_path)
    rec = open_recording(tmp_path)  # parent of suite2p/
    assert rec.format == "suite2p" and rec.metadata["layout"] == "0.14"
    assert rec.shape == (N_FRAMES, 1, 1, LY, LX) and rec.dtype == np.int16
    assert rec.frame_rate_hz == 30.0 and rec.volume_rate_hz == 30.0
    np.testing.assert_array_equal(rec.load()[:, :, 0], movie)
    assert open_recording(tmp_path / "suite2p" / "plane0").shape == rec.shape


def test_014_multi_plane(tmp_path):
    movie = write_suite2p_014(tmp_path, n_planes=3, fs=10.0)
    rec = open_recording(tmp_path / "suite2p")
    assert rec.shape == (N_FRAMES, 3, 1, LY, LX)
    assert rec.volume_rate_hz == 10.0 and rec.frame_rate_hz == 30.0
    np.testing.assert_array_equal(rec.data[2:6][:, :, 0], movie[2:6])
    assert open_recording(tmp_path / "suite2p", plane=2).n_planes == 1
    np.testing.assert_array_equal(open_recording(tmp_path, plane=2).load()[:, 0, 0], movie[:, 2])


def test_1x_layout_two_channels(tmp_path):
    movie = write_suite2p_1x(tmp_path)
    rec = open_recording(tmp_path / "suite2p" / "plane0")
    assert rec.metadata["layout"] == "1.x"
    assert rec.shape == (N_FRAMES, 1, 2, LY, LX)
    assert rec.frame_rate_hz == 15.0
    np.testing.assert_array_equal(rec.load()[:, 0], movie)


@pytest.mark.parametrize("writer", [write_suite2p_014, write_suite2p_1x])
def test_load_results_both_layouts(tmp_path, writer):
    writer(tmp_path)
    res = load_suite2p_results(tmp_path)
    assert res["F"].shape == (N_ROIS, N_FRAMES) and res["spks"].shape == (N_ROIS, N_FRAMES)
    assert res["iscell"][:, 0].tolist() == [1, 0, 1]
    assert res["stat"][2]["ypix"].tolist() == [2, 3]
    assert res["fs"] in (30.0, 15.0)


def test_missing_files_are_named(tmp_path):
    write_suite2p_014(tmp_path)
    plane = tmp_path / "suite2p" / "plane0"
    (plane / "Fneu.npy").unlink()
    with pytest.raises(MissingFileError, match=r"plane0/Fneu.npy: suite2p output file not found"):
        load_suite2p_results(plane)
    (plane / "data.bin").unlink()
    with pytest.raises(MissingFileError, match=r"registered binary not found .*data.bin"):
        open_recording(plane)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileFormatError, match="empty: folder is neither a suite2p output nor a folder of TIFF"
    ):
        open_recording(tmp_path / "empty")


def test_binary_size_disagrees_with_ops(tmp_path):
    write_suite2p_014(tmp_path)
    plane = tmp_path / "suite2p" / "plane0"
    data = (plane / "data.bin").read_bytes()
    (plane / "data.bin").write_bytes(data[: LY * LX * 2 * 5])
    with pytest.raises(FileFormatError, match=r"data.bin: holds 5 frames .* nframes=9"):
        open_recording(plane)
