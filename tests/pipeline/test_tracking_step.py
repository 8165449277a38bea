"""The pipeline's tracking step works from the spine step's tables without detecting again."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_tracking_step_never_runs_the_detector_again(
    small_experiment, small_serial_run, tmp_path, monkeypatch
):
    # the spine tables are the detector's output (or a reviewer's edit of it): discovery of spines no
    # table holds must take its candidates from them, not detect again (and undo a reviewer's removal)
    from imagingkit.pipeline.config import load_config
    from imagingkit.pipeline.steps import tracking_step
    from imagingkit.tracking import session as session_module

    def no_detection(*args, **kwargs):
        raise AssertionError("the tracking step ran the spine detector again")

    monkeypatch.setattr(session_module, "_detect", no_detection)
    config, _ = small_experiment
    run_dir = tmp_path / "run"
    shutil.copytree(small_serial_run, run_dir)
    experiment = load_config(config)
    sessions = sorted(experiment.sessions, key=lambda s: s.time_h)
    spines = run_dir / "m01" / sessions[1].id / "spines" / "spines.csv"
    table = pd.read_csv(spines)
    table.iloc[: len(table) // 2].to_csv(spines, index=False)  # a heavily cut table: re-finding pays
    assert tracking_step(sessions, experiment.parameters["tracking"], run_dir, tmp_path / "m01")
    tracks = pd.read_csv(tmp_path / "m01" / "tracking" / "tracks.csv")
    assert set(tracks["session"]) == {0, 1}
