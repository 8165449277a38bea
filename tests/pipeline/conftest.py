"""Shared simulated experiments and runs of the pipeline tests (built once per test session)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagingkit.cli import main
from tests.pipeline.simexp import write_experiment

#: Fields that record when or how fast something ran, not what it produced.
TIMING_FIELDS = {"started", "seconds", "elapsed_s", "reference_s", "frames_per_s"}


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def result_hashes(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every result file of a run (step folders only), timing fields removed from JSON.

    Temporary ``.part`` entries are never results and must not exist under a final name.
    """
    hashes = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] in ("report", "run.log", "summary.csv", "config.json"):
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden temporaries are not results
        data = path.read_bytes()
        if path.suffix == ".json":
            data = json.dumps(_strip_timing(json.loads(data)), sort_keys=True).encode()
        hashes[rel.as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def run_cli(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def sim_experiment(tmp_path_factory):
    """2 animals x 3 sessions, functional (with triggers) + structural, and the truth."""
    root = tmp_path_factory.mktemp("simexp")
    config, truths = write_experiment(root, n_animals=2, times_h=(0.0, 24.0, 48.0), structural=True)
    return config, truths


@pytest.fixture(scope="session")
def e2e_run(sim_experiment, tmp_path_factory):
    """The whole pipeline through the CLI on :func:`sim_experiment` (local pool, 2 workers)."""
    config, truths = sim_experiment
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    code = run_cli("run", config, "-o", run_dir, "--workers", 2, "--quiet")
    return code, run_dir, truths


@pytest.fixture(scope="session")
def small_experiment(tmp_path_factory):
    """1 animal x 2 sessions, functional + structural: for executors, resume and failure tests."""
    root = tmp_path_factory.mktemp("smallexp")
    config, truths = write_experiment(root, n_animals=1, times_h=(0.0, 24.0), structural=True, seed=5)
    return config, truths


@pytest.fixture(scope="session")
def small_serial_run(small_experiment, tmp_path_factory):
    """The small experiment run serially, uninterrupted: the reference for other executors and resume."""
    config, _ = small_experiment
    run_dir = tmp_path_factory.mktemp("serial") / "run"
    code = run_cli("run", config, "-o", run_dir, "--executor", "serial", "--quiet", "--no-report")
    assert code == 0
    return run_dir
