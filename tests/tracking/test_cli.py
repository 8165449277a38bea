"""``imagingkit spines track``: outputs and bad input."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import tifffile

from imagingkit.commands.track import add_track_parser
from imagingkit.errors import DataError, FileFormatError, ParameterError
from imagingkit.tracking.testing import simulate_point_series


def run(argv):
    parser = argparse.ArgumentParser()
    add_track_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def sessions(tmp_path):
    ps = simulate_point_series(
        n_sessions=3, n_spines=60, shape=(128, 128), n_dendrites=2, drift_px=0, rotation_deg=0
    )
    out = []
    for s, table in enumerate(ps.tables):
        image = tmp_path / f"s{s}.tif"
        tifffile.imwrite(image, np.zeros((128, 128), np.uint16))
        csv = tmp_path / f"s{s}.csv"
        table.to_csv(csv, index=False)
        out.append(f"{image},{csv}")
    return out


def test_bad_inputs(sessions, tmp_path):
    with pytest.raises(DataError, match="at least 2 sessions"):
        run(["track", sessions[0], "-o", str(tmp_path / "o")])
    with pytest.raises(ParameterError, match="strictly increasing"):
        run(["track", *sessions, "--times-h", "0,5,2", "--pixel-size-um", "0.2", "-o", str(tmp_path / "o")])
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"spine_id": [0], "y": [1.0]}).to_csv(bad, index=False)
    image = sessions[0].split(",")[0]
    with pytest.raises(FileFormatError, match="missing column.*x"):
        run(["track", f"{image},{bad}", sessions[1], "--pixel-size-um", "0.2", "-o", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_cli_writes_tables_and_figure(sessions, tmp_path):
    pytest.importorskip("imagingkit.motion", reason="motion room").__dict__.get(
        "register_sessions"
    ) or pytest.skip("imagingkit.motion.register_sessions not available yet")
    out = tmp_path / "out"
    assert (
        run(
            [
                "track",
                *sessions,
                "--times-h",
                "0,1,24",
                "--pixel-size-um",
                "0.2",
                "--n-boot",
                "50",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    tracks = pd.read_csv(out / "tracks.csv")
    assert list(tracks.columns[:8]) == ["track_id", "session", "spine_id", "y", "x", "z", "present", "fate"]
    turnover = pd.read_csv(out / "turnover.csv")
    assert list(turnover.columns[:10]) == [
        "session",
        "time_h",
        "n_spines",
        "n_gained",
        "n_lost",
        "formation_rate",
        "elimination_rate",
        "turnover_ratio",
        "survival_baseline",
        "density_per_um",
    ]
    assert (out / "tracking.png").stat().st_size > 1000


def test_outputs_are_written_from_a_tracking_result(tmp_path):
    from imagingkit.tracking import BootstrapParams, TrackingParams, track_spines
    from imagingkit.tracking.files import write_tracking_outputs

    ps = simulate_point_series(n_sessions=4, n_spines=80, seed=2)
    params = TrackingParams(pixel_size_um=ps.pixel_size_um, bootstrap=BootstrapParams(n_boot=50))
    result = track_spines(
        ps.tables, ps.times_h, params, list(zip(ps.to_reference, ps.to_session, strict=False)), [ps.shape] * 4
    )
    write_tracking_outputs(result, tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"tracks.csv", "turnover.csv", "turnover_ci.csv", "cohort_survival.csv", "tracking.png"} <= names
    tracks = pd.read_csv(tmp_path / "out" / "tracks.csv")
    assert tracks.groupby("track_id").size().eq(4).all()  # one row per track per session
