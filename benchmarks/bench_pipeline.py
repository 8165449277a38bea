"""Benchmark the batch pipeline: 8 simulated sessions with 1 worker vs 2 workers (and Dask).

Run: ``python benchmarks/bench_pipeline.py [--quick] [--dask]`` (from the repository root).
Prints a table and writes ``benchmarks/results/bench_pipeline.json``.

The experiment (``tests/pipeline/simexp.py``): 2 animals x 4 sessions, each a ScanImage TIFF
series of 900 frames of 128 x 128 px (25 somata, optogenetic stimulation, raw trigger file)
and a 256 x 256 structural image; ``--quick``: 2 x 2 sessions of 450 frames. Each
configuration runs ``imagingkit run`` in a fresh process into a fresh folder (nothing
cached); wall time is measured around the process, peak memory is the largest sum of the
resident set sizes of the process and all its children (psutil, sampled every 50 ms).
Registration's own threads are left at their default (2), as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pipeline.simexp import write_experiment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(argv: list[str]) -> dict:
    """Run a command; return wall time (s), peak tree RSS (MB) and exit code."""
    start = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(proc))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    done.set()
    sampler.join()
    return {
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "exit_code": proc.returncode,
        "stderr_tail": stderr.decode(errors="replace").strip().splitlines()[-3:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 x 2 sessions of 450 frames (< 60 s)")
    parser.add_argument("--dask", action="store_true", help="also run on a local Dask cluster (2 workers)")
    args = parser.parse_args()
    n_per_animal = 2 if args.quick else 4
    functional = {"n_frames": 450} if args.quick else {}
    work = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    try:
        t0 = time.perf_counter()
        config, _ = write_experiment(
            work / "data",
            n_animals=2,
            times_h=tuple(24.0 * s for s in range(n_per_animal)),
            functional=functional,
        )
        simulate_s = time.perf_counter() - t0
        configs = [("local", 1), ("local", 2)] + ([("dask", 2)] if args.dask else [])
        rows = []
        for executor, workers in configs:
            out = work / f"run_{executor}_{workers}"
            argv = [sys.executable, "-m", "imagingkit", "run", str(config), "-o", str(out), "--quiet"]
            argv += ["--executor", executor, "--workers", str(workers), "--no-report"]
            result = run_measured(argv)
            rows.append({"executor": executor, "workers": workers, **result})
            shutil.rmtree(out, ignore_errors=True)
        base = rows[0]["wall_s"]
        for row in rows:
            row["speedup"] = round(base / row["wall_s"], 2)
        report = {
            "benchmark": "pipeline",
            "quick": args.quick,
            "n_sessions": 2 * n_per_animal,
            "session": f"ScanImage series {functional.get('n_frames', 900)} frames 128x128, 25 cells, "
            "triggers; structural 256x256",
            "simulate_s": round(simulate_s, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "runs": rows,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{report['n_sessions']} sessions ({report['session']}); {os.cpu_count()} CPUs")
    print(f"{'executor':<9}{'workers':>8}{'wall (s)':>10}{'speed-up':>10}{'peak RSS (MB)':>15}{'exit':>6}")
    for row in rows:
        print(
            f"{row['executor']:<9}{row['workers']:>8}{row['wall_s']:>10.1f}{row['speedup']:>10.2f}"
            f"{row['peak_rss_mb']:>15.0f}{row['exit_code']:>6}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "bench_pipeline_quick.json" if args.quick else "bench_pipeline.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(f"saved {RESULTS / name}")


if __name__ == "__main__":
    main()
