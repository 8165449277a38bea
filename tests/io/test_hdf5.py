"""HDF5 loader on the real SIMA files and on files written here."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from imagingkit.errors import FileFormatError, ParameterError
from imagingkit.io import open_recording


def test_sima_example_h5_yxt_matches_its_tiff(realdata):
    rec = open_recording(realdata / "sima_example/example.h5", axes="yxt")
    assert rec.format == "hdf5" and rec.shape == (20, 1, 1, 128, 256)
    assert rec.metadata["dataset"] == "imaging"
    np.testing.assert_array_equal(rec.load()[:, 0, 0], tifffile.imread(realdata / "sima_example/example.tif"))


def test_sima_example_volume_tzyxc(realdata):
    path = realdata / "sima_example/example-volume.h5"
    rec = open_recording(path, axes="tzyxc")
    assert rec.shape == (10, 3, 2, 64, 64) and rec.dtype == np.uint8
    assert rec.z_step_um == pytest.approx(1.0)
    assert rec.pixel_size_um == pytest.approx((0.293, 0.294), abs=1e-3)
    with h5py.File(path) as f:
        raw = f["imaging"][:]
    np.testing.assert_array_equal(rec.data[3:5], np.moveaxis(raw[3:5], 4, 2))
    assert open_recording(path).shape == rec.shape  # DIMENSION_LABELS t, z, y, x, c read from the file


def test_dataset_choice_and_errors(tmp_path):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["mov"] = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
        f["other"] = np.zeros((3, 3))
    rec = open_recording(path)
    assert rec.metadata["dataset"] == "mov" and rec.shape == (4, 1, 1, 5, 6)
    assert open_recording(path, dataset="other").shape == (1, 1, 1, 3, 3)
    with pytest.raises(FileFormatError, match="no dataset 'missing'"):
        open_recording(path, dataset="missing")
    with pytest.raises(ParameterError, match="axes='TYXZ' does not fit"):
        open_recording(path, axes="tyxz")
    with h5py.File(tmp_path / "amb.h5", "w") as f:
        f["a"] = np.zeros((2, 3, 3))
        f["b"] = np.zeros((2, 3, 3))
    with pytest.raises(FileFormatError, match="pass dataset="):
        open_recording(tmp_path / "amb.h5")


def test_not_hdf5(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5" * 20)
    with pytest.raises(FileFormatError, match="bad.h5: not a readable HDF5"):
        open_recording(tmp_path / "bad.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty.h5: empty file"):
        open_recording(tmp_path / "empty.h5")
