"""Executors give the same results; a killed run resumes; a bad session fails alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.pipeline.conftest import result_hashes, run_cli

pytestmark = pytest.mark.slow

KEY_FILES = (
    "m01/s0/register/registered.tif",
    "m01/s0/neurons/traces.npz",
    "m01/s0/stim/responses.csv",
    "m01/s1/spines/spines.csv",
    "m01/tracking/tracks.csv",
    "m01/summary/responses_across_sessions.csv",
)


def test_reference_run_has_every_output(small_serial_run):
    hashes = result_hashes(small_serial_run)
    for name in KEY_FILES:
        assert name in hashes, f"{name} missing from the run"
    steps = {name.rsplit("/", 1)[0] for name in hashes if name.endswith("step.json")}
    assert steps == {
        f"m01/{s}/{step}" for s in ("s0", "s1") for step in ("register", "neurons", "stim", "spines")
    } | {
        "m01/tracking",
        "m01/summary",
    }


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_executors_match_serial(executor, small_experiment, small_serial_run, tmp_path):
    config, _ = small_experiment
    run_dir = tmp_path / "run"
    code = run_cli(
        "run", config, "-o", run_dir, "--executor", executor, "--workers", 2, "--quiet", "--no-report"
    )
    assert code == 0
    expected = result_hashes(small_serial_run)
    got = result_hashes(run_dir)
    assert sorted(got) == sorted(expected)
    different = [name for name in expected if got[name] != expected[name]]
    assert not different, f"{executor} results differ from serial in {different}"


def test_resume_after_sigkill_gives_the_same_results(small_experiment, small_serial_run, tmp_path):
    config, _ = small_experiment
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "imagingkit", "run", str(config), "-o", str(run_dir)]
    argv += ["--executor", "serial", "--quiet", "--no-report"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_step = run_dir / "m01" / "s0" / "register" / "step.json"
    deadline = time.time() + 120
    while not first_step.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # while the neurons step of m01/s0 runs
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run_dir / "m01" / "s0" / "neurons").exists(), (
        "a killed step left a folder under its final name"
    )
    assert not (run_dir / "summary.csv").exists()

    assert run_cli("run", config, "-o", run_dir, "--executor", "serial", "--quiet", "--no-report") == 0
    summary = pd.read_csv(run_dir / "summary.csv").fillna("").set_index("unit")
    assert summary.loc["m01/s0", "steps_skipped"] == "register"
    assert summary.loc["m01/s0", "steps_run"] == "neurons,stim,spines"
    assert not list(run_dir.rglob("*.part")), "temporary .part entries left behind"
    assert result_hashes(run_dir) == result_hashes(small_serial_run)


def test_rerun_skips_everything_and_reruns_changed_parameters(small_experiment, small_serial_run, tmp_path):
    config, _ = small_experiment
    run_dir = tmp_path / "run"
    shutil.copytree(small_serial_run, run_dir)
    assert run_cli("run", config, "-o", run_dir, "--executor", "serial", "--quiet", "--no-report") == 0
    summary = pd.read_csv(run_dir / "summary.csv").fillna("").set_index("unit")
    assert (summary["steps_run"] == "").all()
    changed = config.parent / "changed.toml"
    changed.write_text(config.read_text() + "\n[parameters.stim.window]\nresponse_s = [0.0, 0.8]\n")
    assert run_cli("run", changed, "-o", run_dir, "--executor", "serial", "--quiet", "--no-report") == 0
    summary = pd.read_csv(run_dir / "summary.csv").fillna("").set_index("unit")
    assert summary.loc["m01/s0", "steps_run"] == "stim"
    assert summary.loc["m01/s0", "steps_skipped"] == "register,neurons,spines"
    assert summary.loc["m01", "steps_run"] == "summary"


def test_bad_session_fails_alone(small_experiment, small_serial_run, tmp_path):
    config, _ = small_experiment
    run_dir = tmp_path / "run"
    shutil.copytree(small_serial_run, run_dir)
    bad = config.parent / "m01" / "bad" / "func_00001.tif"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"II*\x00" + b"\x00garbage" * 50)
    text = config.read_text() + (
        '\n[[sessions]]\nanimal = "m01"\nid = "bad"\ntime_h = 72.0\nfunctional = "m01/bad/func_00001.tif"\n'
    )
    bad_config = config.parent / "with_bad.toml"
    bad_config.write_text(text)
    argv = [
        sys.executable,
        "-m",
        "imagingkit",
        "run",
        str(bad_config),
        "-o",
        str(run_dir),
        "--executor",
        "serial",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    failures = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert len(failures) == 1 and "m01/bad failed" in failures[0] and "func_00001.tif" in failures[0]
    summary = pd.read_csv(run_dir / "summary.csv").fillna("").set_index("unit")
    assert summary.loc["m01/bad", "status"] == "failed"
    assert "m01/bad/func_00001.tif" in summary.loc["m01/bad", "error"]
    assert (summary.drop(index="m01/bad")["status"] == "ok").all()
    assert (run_dir / "report" / "index.html").is_file()
