"""Frame flags read back from shifts.csv: bad and light-artifact frames kept apart."""

from __future__ import annotations

import pandas as pd
import pytest

from imagingkit.errors import FileFormatError
from imagingkit.motion import read_frame_flags


def test_flags_per_plane_and_detection_union(tmp_path):
    path = tmp_path / "shifts.csv"
    pd.DataFrame(
        {
            "frame": [0, 1, 2, 0, 1, 2],
            "plane": [0, 0, 0, 1, 1, 1],
            "dy": 0.0,
            "dx": 0.0,
            "corr": 0.9,
            "bad": [False, True, False, True, False, False],
            "artifact": [False, False, True, False, False, True],
        }
    ).to_csv(path, index=False)
    flags = read_frame_flags(path, n_frames=3, plane=0)
    assert flags.bad.tolist() == [False, True, False]
    assert flags.artifact.tolist() == [False, False, True]
    assert flags.unusable_for_detection.tolist() == [False, True, True]
    assert read_frame_flags(path, n_frames=3, plane=1).bad.tolist() == [True, False, False]


def test_old_files_without_artifact_and_bad_files(tmp_path):
    path = tmp_path / "shifts.csv"
    pd.DataFrame({"frame": [0, 1], "dy": 0.0, "dx": 0.0, "corr": 1.0, "bad": [1, 0]}).to_csv(
        path, index=False
    )
    flags = read_frame_flags(path)
    assert flags.bad.tolist() == [True, False] and not flags.artifact.any()
    with pytest.raises(FileFormatError, match="frame numbers outside"):
        read_frame_flags(path, n_frames=1)
    pd.DataFrame({"frame": [0], "dy": [0.0]}).to_csv(path, index=False)
    with pytest.raises(FileFormatError, match="missing column 'bad'"):
        read_frame_flags(path)
