"""``imagingkit spines track``: outputs and bad input."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
import tifffile

from imagingkit.commands.track import add_track_parser
from imagingkit.errors import DataError, FileFormatError, ParameterError
from imagingkit.synth import simulate_dendrite_sessions
from imagingkit.tracking.testing import simulate_point_series, synth_truth_tables


def run(argv):
    parser = argparse.ArgumentParser()
    add_track_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Three simulated sessions as TIFF images with their true spine tables (IMAGE,SPINES_CSV)."""
    folder = tmp_path_factory.mktemp("sessions")
    sim = simulate_dendrite_sessions(n_sessions=3, times_h=(0, 1, 24), shape=(128, 128), seed=4)
    out = []
    for s, (image, table) in enumerate(zip(sim.images, synth_truth_tables(sim), strict=True)):
        tifffile.imwrite(folder / f"s{s}.tif", image)
        table.to_csv(folder / f"s{s}.csv", index=False)
        out.append(f"{folder / f's{s}.tif'},{folder / f's{s}.csv'}")
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
    assert turnover["time_h"].tolist() == [0.0, 1.0, 24.0]
    # true spine ids were given as spine_id: no track mixes spines, (almost) no spine is split
    present = tracks[tracks["present"]]
    assert present.groupby("track_id")["spine_id"].nunique().eq(1).all()
    assert present.groupby("spine_id")["track_id"].nunique().eq(1).mean() >= 0.95
    # absences were checked on the images: the columns say what the image showed
    assert {"evidence", "refound", "absence_confirmed"} <= set(tracks.columns)
    assert tracks.loc[tracks["present"] & tracks["spine_id"].notna(), "evidence"].median() > 1.0
    # every gain and loss the statistics count is listed once, those no image confirmed first
    events = pd.read_csv(out / "spine_events.csv")
    for kind, column in (("gain", "n_gained"), ("loss", "n_lost")):
        per_session = events[events["kind"] == kind].groupby("session").size().reindex([1, 2], fill_value=0)
        assert per_session.tolist() == turnover[column].iloc[1:].astype(int).tolist()
    assert events["to_check"].tolist() == sorted(events["to_check"], reverse=True)


def test_cli_without_the_image_check(sessions, tmp_path):
    out = tmp_path / "plain"
    argv = [
        "track",
        *sessions,
        "--pixel-size-um",
        "0.2",
        "--n-boot",
        "20",
        "--no-image-check",
        "-o",
        str(out),
    ]
    assert run(argv) == 0
    assert "refound" not in pd.read_csv(out / "tracks.csv").columns


def test_cli_through_the_spines_command(sessions, tmp_path, capsys):
    from imagingkit.cli import main

    bad = [
        "spines",
        "track",
        *sessions[:2],
        "--times-h",
        "1,1",
        "--pixel-size-um",
        "0.2",
        "-o",
        str(tmp_path / "x"),
    ]
    assert main(bad) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line, no traceback
    assert not (tmp_path / "x").exists()

    code = main(
        [
            "spines",
            "track",
            *sessions[:2],
            "--times-h",
            "0,1",
            "--pixel-size-um",
            "0.2",
            "--n-boot",
            "20",
            "-o",
            str(tmp_path / "via_cli"),
        ]
    )
    assert code == 0
    assert (tmp_path / "via_cli" / "tracks.csv").is_file()


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
    assert {
        "tracks.csv",
        "turnover.csv",
        "turnover_ci.csv",
        "cohort_survival.csv",
        "spine_events.csv",
        "tracking.png",
    } <= names
    tracks = pd.read_csv(tmp_path / "out" / "tracks.csv")
    assert tracks.groupby("track_id").size().eq(4).all()  # one row per track per session
