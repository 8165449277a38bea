"""ScanImage 2016+ files written the way ScanImage writes them (no real ones are available)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingkit.errors import FileFormatError, MetadataError, ParameterError
from imagingkit.io import open_recording
from imagingkit.io import scanimage as si
from tests.io.si_writer import si_header, write_mroi_series, write_scanimage_series


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


# two fields, 40 and 24 lines of 48 pixels, with round(0.0005 / 6.3e-05) = 8 fly-to lines between them
MROI_FIELDS = [("dendrite", (-3.0, 0.0), (2.0, 2.5), (48, 40)), ("soma", (4.0, 1.0), (1.6, 1.2), (40, 24))]
WHOLE_FOV_UM = (400.0, 400.0)  # imagingFovUm: the whole scannable field, not one field's size


def _mroi_pages(n_frames):
    """Pages laid out as ScanImage stores mROI frames: field 0, fly-to lines, field 1 (narrower)."""
    pages = np.full((n_frames, 72, 48), 30000, np.int16)  # fly-to lines and unused columns: garbage
    for t in range(n_frames):
        pages[t, :40, :48] = 100 + t
        pages[t, 48:72, :40] = 200 + t
    return pages


def test_multiroi_fields_open_one_at_a_time(tmp_path):
    files = write_mroi_series(tmp_path, _mroi_pages(5), MROI_FIELDS, fov_um=WHOLE_FOV_UM)
    whole = open_recording(files[0])
    assert [f["name"] for f in whole.metadata["scanfields"]] == ["dendrite", "soma"]
    assert [f["row_start"] for f in whole.metadata["scanfields"]] == [0, 48]
    assert "2 ScanImage multi-ROI fields" in whole.metadata["warnings"][-1]
    assert whole.frame_shape == (72, 48)
    for index, (rows, cols, value) in enumerate([(40, 48, 100), (24, 40, 200)]):
        rec = open_recording(files[0], field=index)
        assert rec.frame_shape == (rows, cols)
        data = np.asarray(rec.data[0:5, 0, 0])
        np.testing.assert_array_equal(
            data, np.broadcast_to((value + np.arange(5))[:, None, None], (5, rows, cols))
        )
        size_x, size_y = MROI_FIELDS[index][2]
        assert rec.pixel_size_um == pytest.approx((size_y * 15 / rows, size_x * 15 / cols))
        np.testing.assert_allclose(rec.time_s, np.arange(5) / 10.0)
    with pytest.raises(ParameterError, match=r"field=2: .*has 2 multi-ROI fields"):
        open_recording(files[0], field=2)
    from imagingkit.pipeline.config import SessionConfig
    from imagingkit.pipeline.steps import _open_functional

    session = SessionConfig(animal="m01", id="day0", time_h=0.0, functional=files[0], field=1)
    assert _open_functional(session).frame_shape == (24, 40)  # a pipeline session opens its field


def test_multiroi_layout_that_does_not_fit_the_pages_is_an_error(tmp_path):
    fields = [MROI_FIELDS[0], ("soma", (4.0, 1.0), (1.6, 1.2), (40, 30))]  # 40 + 8 + 30 = 78 lines != 72
    files = write_mroi_series(tmp_path, _mroi_pages(2), fields, fov_um=WHOLE_FOV_UM)
    with pytest.raises(
        MetadataError, match=r"file_00001.tif: 2 multi-ROI fields of \[40, 30\] lines .* 72 x 48"
    ):
        open_recording(files[0])


def test_field_of_an_ordinary_file(tmp_path):
    files = write_scanimage_series(
        tmp_path, _interleaved(2, 1, 1), si_header(), frame_rate_hz=30.0, n_channels=1
    )
    assert open_recording(files[0], field=0).frame_shape == (32, 48)
    assert "scanfields" in open_recording(files[0]).metadata
    with pytest.raises(ParameterError, match="no ScanImage multi-ROI file"):
        open_recording(files[0], field=1)


def test_info_lists_the_fields_and_register_takes_one(tmp_path, capsys):
    from imagingkit.cli import main

    pages = _mroi_pages(6)
    pages[:, 48:72, :40] = np.random.default_rng(0).integers(0, 3000, (24, 40))  # texture to align on
    files = write_mroi_series(tmp_path, pages, MROI_FIELDS, fov_um=WHOLE_FOV_UM)
    assert main(["info", str(files[0])]) == 0
    out, err = capsys.readouterr()
    assert "field 0         dendrite: 40 x 48 px from page row 0" in out
    assert "field 1         soma: 24 x 40 px from page row 48" in out and "field=0..1" in err
    assert main(["info", str(files[0]), "--field", "1", "--json"]) == 0
    assert '"shape": [6, 1, 1, 24, 40]' in capsys.readouterr().out
    assert (
        main(["register", str(files[0]), "--field", "1", "--bidi", "off", "-o", str(tmp_path / "reg")]) == 0
    )
    registered = tifffile.imread(tmp_path / "reg" / "registered.tif").reshape(-1, 24, 40).astype(float)
    assert registered.shape == (6, 24, 40)  # the soma field alone, no fly-to lines
    assert np.corrcoef(registered[0].ravel(), pages[0, 48:72, :40].ravel())[0, 1] > 0.8
