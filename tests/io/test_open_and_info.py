"""``open_recording`` dispatch and overrides, and the ``imagingkit info`` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from imagingkit.cli import main
from imagingkit.errors import ParameterError
from imagingkit.io import open_recording

SI38 = "scanimage38_jefferis/Blank-IPA_1s_16r_032.tif"
REQUIRED_KEYS = {
    "format",
    "dims",
    "shape",
    "dtype",
    "n_frames",
    "n_planes",
    "n_channels",
    "frame_rate_hz",
    "volume_rate_hz",
    "pixel_size_um",
    "line_period_s",
    "bidirectional",
    "n_files",
}


def _info_json(capsys, *args) -> dict:
    assert main(["info", "--json", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_json_scanimage38(realdata, capsys):
    out = _info_json(capsys, realdata / SI38)
    assert REQUIRED_KEYS <= set(out)
    assert out["format"] == "scanimage" and out["dims"] == "TZCYX"
    assert out["shape"] == [30, 1, 1, 64, 64] and out["dtype"] == "uint16"
    assert out["frame_rate_hz"] == pytest.approx(8.138, abs=1e-3)
    assert out["line_period_s"] == pytest.approx(0.00192)
    assert out["bidirectional"] is True and out["pixel_size_um"] is None and out["n_files"] == 1


def test_info_json_sima_files(realdata, capsys):
    out = _info_json(capsys, realdata / "sima_example/example.h5", "--axes", "yxt")
    assert out["shape"] == [20, 1, 1, 128, 256] and out["frame_rate_hz"] is None
    out = _info_json(capsys, realdata / "sima_example/example-volume.h5")
    assert out["shape"] == [10, 3, 2, 64, 64] and out["pixel_size_um"] == pytest.approx(
        [0.2926, 0.2939], abs=1e-4
    )
    out = _info_json(capsys, realdata / "sima_example/example-tiffs")
    assert out["shape"] == [3, 1, 1, 173, 173] and out["n_files"] == 3 and len(out["warnings"]) == 3


def test_info_overrides(realdata, capsys):
    out = _info_json(
        capsys, realdata / "sima_example/example.tif", "--frame-rate-hz", "30", "--pixel-size-um", "0.5"
    )
    assert (
        out["frame_rate_hz"] == 30.0 and out["volume_rate_hz"] == 30.0 and out["pixel_size_um"] == [0.5, 0.5]
    )


def test_info_human_summary(realdata, capsys):
    assert main(["info", str(realdata / SI38)]) == 0
    text = capsys.readouterr().out
    assert "scanimage" in text and "8.13802 Hz" in text and "1.92 ms" in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.tif", None, "missing.tif: no such file"),
        ("empty.tif", b"", "empty.tif: empty file"),
        ("bad.tif", b"II*\0garbage" * 5, "bad.tif: "),
        ("lonely.sbx", b"\0" * 10, "lonely.mat: Scanbox info file not found"),
        ("notes.txt", b"hello", "unknown recording format '.txt'"),
    ],
)
def test_info_errors_are_one_line(tmp_path, capsys, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    assert main(["info", str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_info_subprocess(realdata):
    proc = subprocess.run(
        [sys.executable, "-m", "imagingkit", "info", "--json", str(realdata / SI38)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_frames"] == 30


def test_frame_rate_override_rederives_times(tmp_path):
    tifffile.imwrite(
        tmp_path / "m.tif",
        np.zeros((5, 8, 8), np.uint16),
        imagej=True,
        metadata={"axes": "TYX", "finterval": 0.5},
    )
    rec = open_recording(tmp_path / "m.tif")
    np.testing.assert_allclose(rec.time_s, np.arange(5) * 0.5)
    faster = open_recording(tmp_path / "m.tif", frame_rate_hz=10.0)
    np.testing.assert_allclose(faster.time_s, np.arange(5) / 10.0)
    with pytest.raises(ParameterError, match="do not apply to a tiff"):
        open_recording(tmp_path / "m.tif", dataset="x")
    with pytest.raises(ParameterError, match="unknown recording field"):
        open_recording(tmp_path / "m.tif", frame_rate=3)
