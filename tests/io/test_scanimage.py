"""ScanImage 2016+ files written the way ScanImage writes them (no real ones are available)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingkit.errors import FileFormatError
from imagingkit.io import open_recording
from imagingkit.io import scanimage as si
from tests.io.si_writer import si_header, write_scanimage_series


def _interleaved(n_volumes, n_saved_planes, n_channels, shape=(32, 48)):
    """Pages whose first pixel encodes (volume, plane, channel) as v*100 + z*10 + c."""
    pages = np.zeros((n_volumes * n_saved_planes * n_channels, *shape), dtype=np.int16)
    for v in range(n_volumes):
        for z in range(n_saved_planes):
            for c in range(n_channels):
                pages[(v * n_saved_planes + z) * n_channels + c] = v * 100 + z * 10 + c
    return pages


def test_tifffile_sees_a_scanimage_file(tmp_path):
    files = write_scanimage_series(
        tmp_path, _interleaved(2, 1, 1), si_header(), frame_rate_hz=30.0, n_channels=1
    )
    with tifffile.TiffFile(files[0]) as tif:
        assert tif.is_scanimage
        header, rois = si.static_metadata(tif)
    assert header["SI.hRoiManager.scanFrameRate"] == 30.0
    assert rois["imagingRoiGroup"]["rois"]["scanfields"]["pixelResolutionXY"] == [48, 32]


def test_two_channels_deinterleaved_with_timestamps_and_triggers(tmp_path):
    header = si_header(channels=(1, 3), frame_rate_hz=30.0, bidirectional=False, line_period_s=1.2e-4)
    files = write_scanimage_series(
        tmp_path,
        _interleaved(10, 1, 2),
        header,
        frame_rate_hz=30.0,
        n_channels=2,
        aux={0: [0.05, 0.21], 2: [0.1001]},
        jitter_s=0.002,
    )
    rec = open_recording(files[0])
    assert rec.format == "scanimage"
    assert rec.shape == (10, 1, 2, 32, 48)
    block = rec.load()[:, 0, :, 0, 0]
    np.testing.assert_array_equal(block, np.arange(10)[:, None] * 100 + np.array([0, 1]))
    assert rec.metadata["channels_saved"] == [1, 3]
    assert rec.frame_rate_hz == 30.0 and rec.volume_rate_hz == 30.0
    assert rec.bidirectional is False and rec.line_period_s == pytest.approx(1.2e-4)
    assert rec.timestamps_from_file
    expected = np.arange(10) / 30.0 + 0.002 * ((np.arange(10) * 7919) % 13) / 13.0
    np.testing.assert_allclose(rec.time_s, expected, atol=1e-6)  # jittered: truly read, not derived
    np.testing.assert_allclose(rec.trigger_times_s["auxTrigger0"], [0.05, 0.21], atol=1e-6)
    np.testing.assert_allclose(rec.trigger_times_s["auxTrigger2"], [0.1001], atol=1e-6)
    np.testing.assert_allclose(rec.trigger_times_s["acqTrigger"], [0.0])
    assert "auxTrigger1" not in rec.trigger_times_s


def test_fast_z_volumes_drop_saved_flyback_frames(tmp_path):
    header = si_header(
        channels=(1, 2), frame_rate_hz=40.0, n_slices=3, fast_z=True, n_flyback=1, discard_flyback=False
    )
    files = write_scanimage_series(tmp_path, _interleaved(4, 4, 2), header, frame_rate_hz=40.0, n_channels=2)
    rec = open_recording(files[0])
    assert rec.shape == (4, 3, 2, 32, 48)
    first_pixels = rec.load()[..., 0, 0]
    v, z, c = np.meshgrid(np.arange(4), np.arange(3), np.arange(2), indexing="ij")
    np.testing.assert_array_equal(first_pixels, v * 100 + z * 10 + c)  # plane 3 (flyback) is gone
    assert rec.volume_rate_hz == pytest.approx(40.0 / 4)
    assert rec.metadata["n_flyback_dropped"] == 1
    np.testing.assert_allclose(rec.frame_times_s[1], [0.1, 0.125, 0.15])  # from the file, with flyback gap


def test_fast_z_flyback_discarded_by_scanimage(tmp_path):
    header = si_header(
        frame_rate_hz=40.0, n_slices=3, fast_z=True, n_flyback=2, discard_flyback=True, volume_rate_hz=8.0
    )
    files = write_scanimage_series(tmp_path, _interleaved(5, 3, 1), header, frame_rate_hz=40.0, n_channels=1)
    rec = open_recording(files[0])
    assert rec.shape == (5, 3, 1, 32, 48)
    assert rec.volume_rate_hz == pytest.approx(8.0)
    assert rec.z_step_um == pytest.approx(2.0)


def test_frames_not_divisible_by_planes_times_channels(tmp_path):
    header = si_header(channels=(1, 2), n_slices=3, fast_z=True)
    pages = _interleaved(3, 3, 2)[:-1]  # 17 pages, volumes of 6
    files = write_scanimage_series(tmp_path, pages, header, frame_rate_hz=30.0, n_channels=2)
    with pytest.raises(FileFormatError, match=r"17 pages do not divide into volumes of 6 pages"):
        open_recording(files[0])


def test_series_split_across_files(tmp_path):
    header = si_header(channels=(1, 2), frame_rate_hz=20.0)
    files = write_scanimage_series(
        tmp_path, _interleaved(9, 1, 2), header, frame_rate_hz=20.0, n_channels=2, pages_per_file=4
    )
    assert [f.name for f in files] == [f"file_00001_0000{k}.tif" for k in range(1, 6)]
    rec = open_recording(files[2])
    assert rec.shape == (9, 1, 2, 32, 48) and len(rec.source_files) == 5
    np.testing.assert_array_equal(rec.load()[:, 0, 0, 0, 0], np.arange(9) * 100)
    np.testing.assert_allclose(rec.time_s, np.arange(9) / 20.0, atol=1e-6)
    np.testing.assert_array_equal(rec.metadata["frame_numbers"][:, 0], np.arange(1, 10))


def test_separate_acquisitions_are_not_merged_silently(tmp_path):
    header = si_header(frame_rate_hz=20.0)
    a = write_scanimage_series(
        tmp_path / "a", _interleaved(3, 1, 1), header, frame_rate_hz=20.0, n_channels=1
    )
    (tmp_path / "b").mkdir()
    a[0].rename(tmp_path / "b" / "x_00001.tif")
    write_scanimage_series(tmp_path / "a", _interleaved(3, 1, 1), header, frame_rate_hz=20.0, n_channels=1)
    (tmp_path / "a" / "file_00001.tif").rename(tmp_path / "b" / "x_00002.tif")  # restarts at frame 1
    with pytest.raises(FileFormatError, match=r"x_00002.tif: starts at ScanImage frame 1 .* series=False"):
        open_recording(tmp_path / "b" / "x_00001.tif")
    assert open_recording(tmp_path / "b" / "x_00002.tif", series=False).n_frames == 3


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"fov_um": (320.0, 480.0)}, (10.0, 10.0)),  # imagingFovUm corners / (lines, pixels)
        ({}, (2.0 * 15 / 32, 4.0 * 15 / 48)),  # scanfield sizeXY (deg) x objectiveResolution / pixels
    ],
)
def test_pixel_size_rule(tmp_path, kwargs, expected):
    header = si_header(**kwargs)
    files = write_scanimage_series(tmp_path, _interleaved(2, 1, 1), header, frame_rate_hz=30.0, n_channels=1)
    assert open_recording(files[0]).pixel_size_um == pytest.approx(expected)


def test_user_overrides_win(tmp_path):
    files = write_scanimage_series(
        tmp_path, _interleaved(4, 1, 1), si_header(), frame_rate_hz=30.0, n_channels=1
    )
    rec = open_recording(files[0], frame_rate_hz=10.0, pixel_size_um=0.5)
    assert rec.frame_rate_hz == 10.0 and rec.pixel_size_um == (0.5, 0.5)
    np.testing.assert_allclose(rec.time_s, np.arange(4) / 10.0)
    assert rec.timestamps_from_file is False


def test_parse_frame_descriptions_handles_empty_fields():
    text = "frameNumbers = 7\nframeTimestamps_sec = 1.500000\nacqTriggerTimestamps_sec = \nauxTrigger0 = []"
    out = si.parse_frame_descriptions([text, ""])
    assert out["frame_numbers"].tolist() == [7, -1]
    assert out["timestamps_s"][0] == 1.5 and np.isnan(out["timestamps_s"][1])
    assert out["auxTrigger0"].size == 0


def test_reads_the_synth_scanimage_writer(tmp_path):
    """The simulator's writer puts the static header in the BigTIFF block tifffile reads."""
    writers = pytest.importorskip("imagingkit.synth.writers")
    movie = np.random.default_rng(3).integers(0, 1000, (10, 3, 2, 24, 32)).astype(np.int16)
    files = writers.write_scanimage_tiff_series(
        movie,
        tmp_path,
        frames_per_file=4,
        frame_rate_hz=30.0,
        pixel_size_um=(0.8, 0.5),
        z_step_um=3.0,
        aux_triggers_s={"auxTrigger1": [0.05, 0.25]},
    )
    with tifffile.TiffFile(files[0]) as tif:
        assert tif.scanimage_metadata["FrameData"]  # read from the binary block, not the Software tag
    rec = open_recording(files[1])
    assert rec.shape == movie.shape and len(rec.source_files) == 3
    np.testing.assert_array_equal(rec.load(), movie)
    assert rec.volume_rate_hz == pytest.approx(10.0) and rec.z_step_um == pytest.approx(3.0)
    assert rec.pixel_size_um == pytest.approx((0.8, 0.5))
    np.testing.assert_allclose(rec.trigger_times_s["auxTrigger1"], [0.05, 0.25], atol=1e-6)
