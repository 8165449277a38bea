"""Scanbox loader: tiny .sbx files written next to copies of real .mat headers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from imagingkit.errors import FileFormatError, MissingFileError
from imagingkit.io import open_recording
from imagingkit.io.scanbox import open_sbx

CASES = {  # name: (frames in the file, key of the expected first-row values)
    "2d_sbx": (10, "first_row_first10"),
    "2d_sbx_bidi": (10, "first_row_first10"),
    "3d_sbx_1": (8, "first_row_first10_plane0"),
}


@pytest.fixture()
def sbx_folder(realdata, tmp_path):
    """Copies of the real headers with .sbx files whose first row holds CaImAn's expected values."""
    ref = realdata / "caiman_reference"
    expected = json.loads((ref / "scanbox_expected_values.json").read_text())
    rng = np.random.default_rng(1)
    for name, (n_frames, key) in CASES.items():
        shutil.copy(ref / f"{name}.mat", tmp_path / f"{name}.mat")
        movie = rng.integers(0, 5000, size=(n_frames, 512, 796), dtype=np.uint16)
        movie[0, 0, :10] = expected[name][key]
        (np.uint16(65535) - movie).astype("<u2").tofile(tmp_path / f"{name}.sbx")  # Scanbox stores inverted
        np.save(tmp_path / f"{name}_truth.npy", movie)
    return tmp_path, expected


def test_unidirectional_2d(sbx_folder):
    folder, expected = sbx_folder
    rec = open_recording(folder / "2d_sbx.sbx")
    assert rec.format == "scanbox"
    assert (rec.n_frames, *rec.frame_shape) == tuple(expected["2d_sbx"]["shape_TYX"])
    assert rec.frame_rate_hz == pytest.approx(expected["2d_sbx"]["frame_rate_hz"])  # 15.625
    assert rec.bidirectional is False
    assert rec.data[0][0, 0, 0, :10].tolist() == expected["2d_sbx"]["first_row_first10"]
    np.testing.assert_array_equal(rec.load()[:, 0, 0], np.load(folder / "2d_sbx_truth.npy"))
    assert rec.trigger_times_s == {}


def test_bidirectional_2d(sbx_folder):
    folder, expected = sbx_folder
    rec = open_recording(folder / "2d_sbx_bidi.mat")  # the header opens its .sbx too
    assert rec.frame_rate_hz == pytest.approx(expected["2d_sbx_bidi"]["frame_rate_hz"])  # 31.25
    assert rec.bidirectional is True
    assert rec.line_period_s == pytest.approx(1 / 16000)
    assert rec.data[0][0, 0, 0, :10].tolist() == expected["2d_sbx_bidi"]["first_row_first10"]


def test_optotune_volume_and_ttl_events(sbx_folder):
    folder, expected = sbx_folder
    rec = open_recording(folder / "3d_sbx_1.sbx")
    t, y, x, z = expected["3d_sbx_1"]["shape_TYXZ"]
    assert rec.shape == (t, z, 1, y, x)
    assert rec.volume_rate_hz == pytest.approx(expected["3d_sbx_1"]["frame_rate_hz_per_volume"])  # 3.90625
    assert rec.frame_rate_hz == pytest.approx(15.625)
    assert rec.data[0][0, 0, 0, :10].tolist() == expected["3d_sbx_1"]["first_row_first10_plane0"]
    truth = np.load(folder / "3d_sbx_1_truth.npy")
    np.testing.assert_array_equal(rec.load()[:, :, 0], truth.reshape(2, 4, 512, 796))  # frames cycle planes
    np.testing.assert_allclose(rec.frame_times_s[1], 4 / 15.625 + np.arange(4) / 15.625)
    # events frame=[3 5], line=[480 185]: (frame * 512 + line) / 8000 Hz
    np.testing.assert_allclose(rec.trigger_times_s["ttl"], [(3 * 512 + 480) / 8000, (5 * 512 + 185) / 8000])
    np.testing.assert_allclose(rec.trigger_times_s["event_id_2"], [(5 * 512 + 185) / 8000])


def test_sbx_without_mat(tmp_path):
    (tmp_path / "lonely.sbx").write_bytes(b"\0" * 64)
    with pytest.raises(MissingFileError, match=r"lonely.mat: Scanbox info file not found"):
        open_recording(tmp_path / "lonely.sbx")


def test_size_not_whole_frames(sbx_folder):
    folder, _ = sbx_folder
    with open(folder / "2d_sbx.sbx", "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(FileFormatError, match=r"2d_sbx.sbx: size \d+ bytes is not a whole number of frames"):
        open_sbx(folder / "2d_sbx.sbx")


def test_frames_not_divisible_by_planes(sbx_folder):
    folder, _ = sbx_folder
    data = (folder / "3d_sbx_1.sbx").read_bytes()
    (folder / "3d_sbx_1.sbx").write_bytes(data[: 7 * 512 * 796 * 2])  # 7 frames, 4 planes
    with pytest.raises(
        FileFormatError, match=r"3d_sbx_1.sbx: 7 frames do not divide into volumes of 4 planes"
    ):
        open_sbx(folder / "3d_sbx_1.sbx")
