"""``imagingkit register`` and ``imagingkit register-sessions`` on real files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from imagingkit.cli import main
from tests.motion.conftest import fourier_shifted


@pytest.fixture()
def movie_tif(tmp_path, camera_image):
    rng = np.random.default_rng(2)
    truth = np.cumsum(rng.normal(0, 0.4, (30, 2)), axis=0)
    frames = fourier_shifted(camera_image, truth, photons=300).astype(np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames)
    return path, truth


def test_register_cli_writes_contract_files(tmp_path, movie_tif, capsys):
    path, truth = movie_tif
    out = tmp_path / "out"
    assert main(["register", str(path), "-o", str(out), "--nonrigid", "--block-size-px", "64"]) == 0
    assert "registered 30 frames" in capsys.readouterr().out
    for name in ("registered.tif", "shifts.csv", "block_shifts.npz", "reference.tif", "metrics.json"):
        assert (out / name).exists(), name
    shifts = pd.read_csv(out / "shifts.csv")
    assert list(shifts.columns[:6]) == ["frame", "plane", "dy", "dx", "corr", "bad"]
    err = shifts[["dy", "dx"]].to_numpy() - truth
    assert np.sqrt(np.mean((err - np.median(err, axis=0)) ** 2)) < 0.1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nonrigid"] is True and metrics["n_frames"] == 30


def test_register_cli_bad_channel_one_line(tmp_path, movie_tif, capsys):
    path, _ = movie_tif
    code = main(["register", str(path), "-o", str(tmp_path / "o"), "--channel", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "channel 3 does not exist" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_register_cli_single_frame(tmp_path, camera_image, capsys):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, camera_image.astype(np.uint16))
    assert main(["register", str(path), "-o", str(tmp_path / "o")]) == 1
    assert "at least 2 frames" in capsys.readouterr().err


def test_register_sessions_cli(tmp_path):
    from imagingkit.synth import simulate_dendrite_sessions

    sim = simulate_dendrite_sessions(
        n_sessions=2, times_h=(0, 24), shape=(128, 128), seed=4, rotation_deg=4.0
    )
    paths = []
    for i, image in enumerate(sim.images):
        paths.append(tmp_path / f"s{i}.tif")
        tifffile.imwrite(paths[-1], image)
    out = tmp_path / "sessions"
    assert main(["register-sessions", *map(str, paths), "-o", str(out)]) == 0
    summary = json.loads((out / "sessions.json").read_text())
    assert len(summary) == 2 and summary[1]["correlation"] > 0.5
    assert abs(summary[1]["rotation_deg"] - sim.transforms[1].rotation_deg) < 1.0
    assert tifffile.imread(out / "session_1.tif").shape == (128, 128)
    assert (out / "transform_1.npz").exists()
    assert main(["register-sessions", str(paths[0]), str(tmp_path / "missing.tif"), "-o", str(out)]) == 1
