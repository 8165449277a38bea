"""TIFF loader: real files, files written with tifffile, numbered series and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingkit.errors import FileFormatError, MissingFileError, ParameterError
from imagingkit.io import open_recording
from imagingkit.io.tiff import open_tiff

SI38 = "scanimage38_jefferis/Blank-IPA_1s_16r_032.tif"


# -- real files -------------------------------------------------------------------
def test_scanimage38_real_values(realdata):
    rec = open_recording(realdata / SI38)
    assert rec.format == "scanimage"
    assert rec.shape == (30, 1, 1, 64, 64)
    assert rec.dtype == np.uint16
    assert rec.frame_rate_hz == pytest.approx(8.13802083333333)
    assert rec.volume_rate_hz == pytest.approx(8.13802083333333)
    assert rec.line_period_s == pytest.approx(1.92e-3)
    assert rec.bidirectional is True
    assert rec.metadata["channels_saved"] == [2]
    assert rec.metadata["zoom"] == pytest.approx(1.6)
    assert rec.metadata["header"]["state.acq.fillFraction"] == pytest.approx(0.8533, abs=1e-4)
    assert rec.metadata["header"]["state.configName"] == "ajdm_piezo"
    assert rec.metadata["header"]["state.acq.externallyTriggered"] == 1
    assert rec.metadata["trigger_time"] == "7/30/2014 21:10:00.731"
    assert rec.pixel_size_um is None  # ScanImage 3 has no µm calibration in the header
    np.testing.assert_allclose(rec.time_s[:3], np.arange(3) / 8.13802083333333)
    np.testing.assert_array_equal(rec.load()[:, 0, 0], tifffile.imread(realdata / SI38))


def test_scanimage38_fov_calibration_gives_pixel_size(realdata):
    rec = open_recording(realdata / SI38, fov_um_at_zoom1=512.0)
    assert rec.pixel_size_um == pytest.approx((512 / 1.6 / 64, 512 / 1.6 / 64))


def test_sima_imagej_tiff_matches_tifffile(realdata):
    rec = open_recording(realdata / "sima_example/example.tif")
    assert rec.format == "tiff" and rec.shape == (20, 1, 1, 128, 256)
    assert rec.frame_rate_hz is None and rec.frame_times_s is None
    np.testing.assert_array_equal(rec.load()[:, 0, 0], tifffile.imread(realdata / "sima_example/example.tif"))


def test_imagej_header_claiming_more_frames_uses_pages_that_exist(realdata):
    folder = realdata / "sima_example/example-tiffs"
    rec = open_recording(folder / "1.tif")  # any member opens the whole series 0, 1, 2
    assert rec.shape == (3, 1, 1, 173, 173)
    assert [p.name for p in rec.source_files] == ["0.tif", "1.tif", "2.tif"]
    assert any("claims 3500 images" in w for w in rec.metadata["warnings"])
    expected = np.stack([tifffile.imread(folder / f"{i}.tif") for i in range(3)])
    np.testing.assert_array_equal(rec.load()[:, 0, 0], expected)
    assert open_recording(folder).shape == rec.shape
    assert open_recording(folder / "1.tif", series=False).shape == (1, 1, 1, 173, 173)


def test_fissa_trials_are_not_merged(realdata):
    rec = open_recording(realdata / "fissa_expB/images/AVG_A02.tif")
    assert rec.shape == (29, 1, 1, 21, 14) and len(rec.source_files) == 1
    np.testing.assert_array_equal(
        rec.load()[:, 0, 0], tifffile.imread(realdata / "fissa_expB/images/AVG_A02.tif")
    )


# -- files written here -------------------------------------------------------------
def _movie(shape, dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(dtype)


def test_multipage_pages_written_one_by_one(tmp_path):
    movie = _movie((7, 20, 30))
    with tifffile.TiffWriter(tmp_path / "m.tif") as tw:
        for frame in movie:
            tw.write(frame, contiguous=False)
    rec = open_tiff(tmp_path / "m.tif")
    assert rec.shape == (7, 1, 1, 20, 30)
    np.testing.assert_array_equal(rec.data[2:5, 0, 0], movie[2:5])


def test_bigtiff_big_endian_float(tmp_path):
    movie = _movie((5, 16, 12), dtype=np.float32)
    tifffile.imwrite(tmp_path / "b.tif", movie, bigtiff=True, byteorder=">")
    rec = open_tiff(tmp_path / "b.tif")
    assert rec.dtype == np.float32 and rec.dtype.isnative
    np.testing.assert_array_equal(rec.load()[:, 0, 0], movie)


def test_compressed_pages_are_decoded(tmp_path):
    movie = _movie((4, 16, 16))
    tifffile.imwrite(tmp_path / "c.tif", movie, compression="zlib", photometric="minisblack")
    rec = open_tiff(tmp_path / "c.tif")
    np.testing.assert_array_equal(rec.load()[:, 0, 0], movie)


def test_imagej_hyperstack_axes_and_calibration(tmp_path):
    movie = _movie((5, 3, 2, 16, 24))  # TZCYX
    tifffile.imwrite(
        tmp_path / "h.tif",
        movie,
        imagej=True,
        resolution=(1 / 0.4, 1 / 0.5),  # pixels per µm in x, y
        metadata={"axes": "TZCYX", "finterval": 0.25, "spacing": 1.5, "unit": "um"},
    )
    rec = open_tiff(tmp_path / "h.tif")
    assert rec.shape == (5, 3, 2, 16, 24)
    np.testing.assert_array_equal(rec.load(), movie)
    assert rec.volume_rate_hz == pytest.approx(4.0)
    assert rec.z_step_um == pytest.approx(1.5)
    assert rec.pixel_size_um == pytest.approx((0.5, 0.4))
    np.testing.assert_allclose(rec.time_s, np.arange(5) * 0.25)


def test_imagej_channels_only_and_axes_override(tmp_path):
    stack = _movie((6, 16, 16))
    tifffile.imwrite(tmp_path / "z.tif", stack)
    assert open_tiff(tmp_path / "z.tif").shape == (6, 1, 1, 16, 16)
    assert open_tiff(tmp_path / "z.tif", axes="Z").shape == (1, 6, 1, 16, 16)
    with pytest.raises(ParameterError, match="axes"):
        open_tiff(tmp_path / "z.tif", axes="TZ")


def test_planar_rgb_compressed(tmp_path):
    image = _movie((3, 16, 16), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "planar.tif", image, photometric="rgb", planarconfig="separate", compression="zlib"
    )
    rec = open_tiff(tmp_path / "planar.tif")
    assert rec.shape == (1, 1, 3, 16, 16)
    np.testing.assert_array_equal(rec.load()[0, 0], image)


def test_rgb_samples_become_channels(tmp_path):
    movie = _movie((3, 10, 12, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", movie, photometric="rgb")
    rec = open_tiff(tmp_path / "rgb.tif")
    assert rec.shape == (3, 1, 3, 10, 12)
    np.testing.assert_array_equal(rec.load()[:, 0], np.moveaxis(movie, 3, 1))


def _write_series(folder, n_files, frames_per_file=3, shape=(8, 10), stem="run_"):
    folder.mkdir(exist_ok=True)
    movie = _movie((n_files * frames_per_file, *shape))
    for k in range(n_files):
        tifffile.imwrite(
            folder / f"{stem}{k + 1:05d}.tif",
            movie[k * frames_per_file : (k + 1) * frames_per_file],
            photometric="minisblack",
        )
    return movie


def test_numbered_series_opens_in_order_from_any_member(tmp_path):
    movie = _write_series(tmp_path / "s", 4)
    (tmp_path / "s" / "other.tif").write_bytes(b"")  # not part of the series
    rec = open_recording(tmp_path / "s" / "run_00003.tif")
    assert rec.n_frames == 12 and [p.name for p in rec.source_files][0] == "run_00001.tif"
    np.testing.assert_array_equal(rec.load()[:, 0, 0], movie)
    np.testing.assert_array_equal(open_recording(tmp_path / "s" / "run_*.tif").load()[:, 0, 0], movie)


def test_series_with_gap_names_the_missing_number(tmp_path):
    _write_series(tmp_path / "g", 5)
    (tmp_path / "g" / "run_00003.tif").unlink()
    with pytest.raises(FileFormatError, match=r"run_\*\.tif.*00003 is missing"):
        open_recording(tmp_path / "g" / "run_00001.tif")


def test_series_files_disagreeing_in_shape(tmp_path):
    _write_series(tmp_path / "d", 2)
    tifffile.imwrite(tmp_path / "d" / "run_00003.tif", _movie((3, 9, 10)), photometric="minisblack")
    with pytest.raises(FileFormatError, match=r"run_00003.tif.*\(9, 10\)"):
        open_recording(tmp_path / "d" / "run_00001.tif")


# -- bad inputs -------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="nope.tif"):
        open_recording(tmp_path / "nope.tif")


def test_empty_file(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"empty.tif: empty file"):
        open_recording(tmp_path / "empty.tif")


def test_not_a_tiff(tmp_path):
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(FileFormatError, match="junk.tif: not a readable TIFF"):
        open_recording(tmp_path / "junk.tif")


def test_pages_disagreeing_in_shape_name_file_and_page(tmp_path):
    with tifffile.TiffWriter(tmp_path / "p.tif") as tw:
        tw.write(_movie((16, 16)))
        tw.write(_movie((16, 16)))
        tw.write(_movie((12, 16)))
    with pytest.raises(FileFormatError, match=r"p.tif: pages disagree in shape.*page 2 is \(12, 16\)"):
        open_recording(tmp_path / "p.tif")


@pytest.mark.parametrize("keep_fraction", [0.5, 0.97])
def test_truncated_tiff(tmp_path, keep_fraction):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, _movie((6, 32, 32)))  # contiguous: header first, then all pixel data
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(FileFormatError, match="t.tif: truncated"):
        open_recording(path)


def test_truncated_page_by_page_tiff(tmp_path):
    path = tmp_path / "tp.tif"
    with tifffile.TiffWriter(path) as tw:
        for frame in _movie((6, 32, 32)):
            tw.write(frame, contiguous=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1500])  # cut into the last page
    with pytest.raises(FileFormatError, match="tp.tif"):
        open_recording(path).load()


# -- laziness ---------------------------------------------------------------------
def test_open_reads_no_pixels_and_one_frame_reads_one_page(tmp_path, monkeypatch):
    movie = _movie((200, 64, 64))
    with tifffile.TiffWriter(tmp_path / "lazy.tif") as tw:
        for frame in movie:
            tw.write(frame, contiguous=False)
    import imagingkit.io._rawio as rawio

    calls = []
    real = rawio.RawReader.read_into
    monkeypatch.setattr(
        rawio.RawReader,
        "read_into",
        lambda self, i, o, out: (calls.append(out.nbytes), real(self, i, o, out))[1],
    )
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda *a, **k: pytest.fail("pixels decoded on open"))
    rec = open_recording(tmp_path / "lazy.tif")
    assert calls == []
    np.testing.assert_array_equal(rec.data[123][0, 0], movie[123])
    assert calls == [64 * 64 * 2]


def test_recording_pickles_and_reads_after_unpickling(tmp_path):
    import pickle

    movie = _movie((6, 16, 16))
    tifffile.imwrite(tmp_path / "p.tif", movie, photometric="minisblack")
    rec = open_recording(tmp_path / "p.tif")
    rec.data[0]  # opens a descriptor
    again = pickle.loads(pickle.dumps(rec))
    np.testing.assert_array_equal(again.load()[:, 0, 0], movie)
