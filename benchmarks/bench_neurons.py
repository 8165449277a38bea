"""Neuron ROI detection and traces: built-in engine vs suite2p on the same simulated movies.

For each SNR level and density a movie is simulated with :mod:`imagingkit.synth`;
the built-in engine runs in this process and suite2p 0.14.6 in its own venv
(``/work/main/.venv-suite2p``) through ``suite2p_driver.py`` on the very same
movie (saved as .npy), and suite2p 1.x too when ``/work/main/.venv-bench-s2p``
exists. Both ROI sets go through the same extraction so the dF/F correlation
compares detection quality. Scores: precision, recall, F1 of ``is_cell`` ROIs
(match: IoU >= 0.3 or centroid distance <= 4 px, one-to-one), median
correlation of dF/F with the true calcium over matched ROIs, and time.

A scale run streams a raw 512x512 uint16 movie from disk (np.fromfile, chunks
of 200 frames) through detection and extraction in a subprocess and reports
time and peak RSS (default 6000 frames; ``--scale-frames 54000`` for 30 min at
30 Hz).

Usage: python benchmarks/bench_neurons.py [--quick] [--no-suite2p] [--no-scale] [--scale-only]
       [--scale-frames N ...] [--seed S]
Full runs save benchmarks/results/bench_neurons.json; --quick saves bench_neurons_quick.json;
--seed S (S != 0, a held-out check) saves bench_neurons[_quick]_seedS.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_neurons.json"
RESULTS_QUICK = (
    ROOT / "benchmarks" / "results" / "bench_neurons_quick.json"
)  # --quick never overwrites the full run
SUITE2P_VENVS = {"suite2p-0.14": ROOT / ".venv-suite2p", "suite2p-1.x": ROOT / ".venv-bench-s2p"}


def simulate(snr: float, n_cells: int, n_frames: int, shape_yx=(128, 128), seed: int = 0):
    from imagingkit.synth import simulate_functional

    return simulate_functional(n_frames=n_frames, shape_yx=shape_yx, n_cells=n_cells, snr=snr, seed=seed)


def score(rois, truth, recording) -> dict:
    from imagingkit.neurons import extract_traces
    from imagingkit.neurons.evaluate import match_rois, trace_correlations, truth_masks

    cells = rois.subset(rois.is_cell)
    match = match_rois(cells, truth_masks(truth.footprints))
    corr = np.array([])
    if len(match.pairs):
        traces = extract_traces(recording, cells.subset(match.pairs[:, 0]))
        corr = trace_correlations(
            traces.dff, truth.calcium, np.column_stack([np.arange(len(match.pairs)), match.pairs[:, 1]])
        )
    return {
        "n_rois": int(rois.n_rois),
        "n_cells": int(cells.n_rois),
        "precision": round(match.precision, 3),
        "recall": round(match.recall, 3),
        "f1": round(match.f1, 3),
        "dff_corr_median": round(float(np.nanmedian(corr)), 3) if corr.size else None,
    }


def run_suite2p(venv: Path, movie_path: Path, fs: float, diameter: float) -> tuple:
    from imagingkit.neurons import RoiSet

    out = movie_path.with_suffix(f".{venv.name}.npz")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(ROOT / "benchmarks" / "suite2p_driver.py"),
            str(movie_path),
            str(out),
            "--frame-rate-hz",
            str(fs),
            "--diameter",
            str(diameter),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"suite2p driver failed: {proc.stderr[-2000:]}")
    data = np.load(out)
    shape = tuple(int(v) for v in data["shape_yx"])
    offsets, pixels, lam = data["offsets"], data["pixels"], data["lam"]
    ypix = [pixels[a:b] // shape[1] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    xpix = [pixels[a:b] % shape[1] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    lams = [lam[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    rois = RoiSet.from_pixels(
        shape, ypix, xpix, lams, cell_prob=data["cell_prob"], is_cell=data["is_cell"], engine="suite2p"
    )
    return rois, float(data["seconds"]), wall


def accuracy(configs, n_frames: int, with_suite2p: bool, tmp: Path, seed: int = 0) -> list[dict]:
    from imagingkit.neurons import DetectionParams, detect_rois

    rows = []
    for n_cells, levels in configs:
        for snr in levels:
            sim = simulate(snr, n_cells, n_frames, seed=seed)
            rec = sim.recording
            t0 = time.perf_counter()
            rois = detect_rois(rec, DetectionParams(diameter_px=12))
            row = {
                "snr": snr,
                "n_cells_true": n_cells,
                "n_frames": n_frames,
                "engine": "builtin",
                "detect_s": round(time.perf_counter() - t0, 2),
            }
            row.update(score(rois, sim.truth, rec))
            rows.append(row)
            print(_fmt(row), flush=True)
            if not with_suite2p:
                continue
            movie_path = tmp / f"movie_snr{snr}_n{n_cells}.npy"
            np.save(movie_path, sim.movie[:, 0, 0])
            for name, venv in SUITE2P_VENVS.items():
                if not (venv / "bin" / "python").exists():
                    continue
                s2p, seconds, wall = run_suite2p(venv, movie_path, rec.frame_rate_hz, 12.0)
                row = {
                    "snr": snr,
                    "n_cells_true": n_cells,
                    "n_frames": n_frames,
                    "engine": name,
                    "detect_s": round(seconds, 2),
                    "subprocess_wall_s": round(wall, 2),
                }
                row.update(score(s2p, sim.truth, rec))
                rows.append(row)
                print(_fmt(row), flush=True)
    return rows


def _fmt(row: dict) -> str:
    return (
        f"{row['engine']:>13} snr={row['snr']:<5} cells={row['n_cells_true']:<3} rois={row['n_rois']:<3} "
        f"is_cell={row['n_cells']:<3} P={row['precision']:.2f} R={row['recall']:.2f} F1={row['f1']:.2f} "
        f"dFF_r={row['dff_corr_median']} t={row['detect_s']}s"
    )


SCALE_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
from imagingkit.io.recording import make_recording
from imagingkit.neurons import DetectionParams, ExtractionParams, detect_rois, extract_traces


class RawSource:
    # reads frames from a headerless uint16 file with np.fromfile: no memory map, nothing cached
    def __init__(self, path, n_frames, shape_yx):
        self.path, self.frame_px = path, shape_yx[0] * shape_yx[1]
        self.shape, self.dtype = (n_frames, 1, 1, *shape_yx), np.dtype(np.uint16)

    def read(self, t0, t1):
        with open(self.path, "rb") as fh:
            fh.seek(t0 * self.frame_px * 2)
            data = np.fromfile(fh, np.uint16, (t1 - t0) * self.frame_px)
        return data.reshape(t1 - t0, 1, 1, *self.shape[3:])


path, n_frames, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rec = make_recording(RawSource(path, n_frames, (512, 512)), "raw", frame_rate_hz=30.0)
params = DetectionParams(diameter_px=12, chunk_frames=chunk)
t0 = time.perf_counter()
rois = detect_rois(rec, params)
t1 = time.perf_counter()
rss_detect = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
traces = extract_traces(rec, rois, ExtractionParams(chunk_frames=chunk))
t2 = time.perf_counter()
print(json.dumps({"n_frames": n_frames, "n_rois": int(rois.n_rois), "n_cells": int(rois.is_cell.sum()),
                  "n_bins_cap": params.n_bins_cap((512, 512)), "chunk_frames": chunk,
                  "detect_s": t1 - t0, "extract_s": t2 - t1, "peak_rss_detect_mb": rss_detect,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_tiled_movie(path: Path, n_frames: int, tile) -> None:
    """A raw uint16 512x512 movie tiling a 128x128 simulated movie 4x4 in space (and cyclically in time)."""
    with open(path, "wb") as fh:
        for t0 in range(0, n_frames, 500):
            idx = np.arange(t0, min(n_frames, t0 + 500)) % len(tile)
            np.tile(tile[idx], (1, 4, 4)).astype(np.uint16).tofile(fh)


def scale(lengths: list[int], tmp: Path, chunk_frames: int = 200) -> dict:
    """Detection + extraction of 512x512 raw movies of the given lengths in a subprocess: time and peak RSS."""
    sim = simulate(8.0, 30, 3000, seed=3)
    tile = sim.movie[:, 0, 0]
    runs = []
    for n in lengths:
        path = tmp / f"scale_{n}.raw"
        write_tiled_movie(path, n, tile)
        proc = subprocess.run(
            [sys.executable, "-c", SCALE_SCRIPT, str(path), str(n), str(chunk_frames)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        path.unlink()
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["total_s"] = round(run["detect_s"] + run["extract_s"], 1)
        runs.append(run)
        print(
            f"  scale 512x512 x {n} frames: detect {run['detect_s']:.1f} s, extract {run['extract_s']:.1f} s, "
            f"{run['n_rois']} ROIs, peak RSS {run['peak_rss_mb']:.0f} MB "
            f"(detection {run['peak_rss_detect_mb']:.0f} MB)",
            flush=True,
        )
    return {
        "measured": runs,
        "note": "raw uint16 512x512 file tiling a 128x128 simulated movie 4x4 (cyclic in time), read with "
        f"np.fromfile in chunks of {chunk_frames} frames; binned movie capped by max_binned_mb (600 MiB).",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="< 60 s: two SNR levels, built-in only, no scale run"
    )
    parser.add_argument("--no-suite2p", action="store_true")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument(
        "--scale-only", action="store_true", help="run only the scale part (keeps saved accuracy rows)"
    )
    parser.add_argument(
        "--scale-frames",
        type=int,
        nargs="+",
        default=[6000],
        help="lengths of the 512x512 scale runs (54000 = 30 min at 30 Hz)",
    )
    parser.add_argument("--seed", type=int, default=0, help="simulation seed of the accuracy movies")
    args = parser.parse_args()
    if args.quick:
        configs, n_frames = [(30, [4.0, 8.0])], 1500
        with_suite2p = False
        args.no_scale = True
    else:
        configs, n_frames = [(30, [3.0, 5.0, 8.0, 16.0]), (60, [5.0, 8.0])], 3000
        with_suite2p = not args.no_suite2p
    results_path = RESULTS_QUICK if args.quick else RESULTS
    if args.seed != 0:  # held-out seeds go to their own file
        results_path = results_path.with_name(f"{results_path.stem}_seed{args.seed}.json")
    with tempfile.TemporaryDirectory(prefix="bench-neurons-") as tmp:
        tmp = Path(tmp)
        rows = None if args.scale_only else accuracy(configs, n_frames, with_suite2p, tmp, args.seed)
        scale_result = None if args.no_scale else scale(args.scale_frames, tmp)
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    command = " ".join(["python", "benchmarks/bench_neurons.py", *sys.argv[1:]])
    result = {
        "quick": args.quick,
        "seed": args.seed,
        "accuracy_command": command if rows is not None else previous.get("accuracy_command"),
        "accuracy": rows if rows is not None else previous.get("accuracy"),
        "scale_command": command if scale_result is not None else previous.get("scale_command"),
        "scale": scale_result if scale_result is not None else previous.get("scale"),
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result, indent=2))
    print(f"saved {results_path}")


if __name__ == "__main__":
    main()
