"""Motion correction benchmark: imagingkit's built-in engine vs suite2p, same movies, same run.

Accuracy (RMS error against simulator truth, after removing the constant offset
of the reference) and throughput (frames/s, reference included, registered movie
written to disk) for rigid and piecewise-rigid registration of simulated 256x256
movies; then throughput and peak memory of the built-in engine at 1k/10k/50k
frames streamed from a file on disk (128x128 frames by default).

Each engine runs in its own process: the built-in engine with this Python,
suite2p 0.14 through imagingkit's suite2p engine in ``.venv-suite2p``, and
suite2p 1.1 through ``suite2p11_driver.py`` in ``.venv-bench-s2p`` (build it with
``python -m venv .venv-bench-s2p && .venv-bench-s2p/bin/pip install suite2p==1.1.0``).
Missing environments are skipped and reported.

    python benchmarks/bench_motion.py            # default: 1000 frames, scaling 1k/10k/50k
    python benchmarks/bench_motion.py --quick    # < 60 s: 300 frames, scaling 1k/3k
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
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PYTHONS = {
    "imagingkit-builtin": Path(sys.executable),
    "imagingkit-suite2p (suite2p 0.14)": ROOT / ".venv-suite2p" / "bin" / "python",
    "suite2p 1.1": ROOT / ".venv-bench-s2p" / "bin" / "python",
}


def simulate(n_frames: int, shape_yx: tuple[int, int], nonrigid: bool, seed: int):
    from imagingkit.synth import MotionSpec, simulate_functional

    motion = MotionSpec(
        random_walk_sigma_px=0.3,
        jump_probability=0.002,
        nonrigid_amplitude_px=6.0 if nonrigid else 0.0,
        nonrigid_scale_px=40.0,
        nonrigid_timescale_frames=10.0,
    )
    n_cells = int(80 * shape_yx[0] * shape_yx[1] / 256**2)
    return simulate_functional(
        n_frames=n_frames, shape_yx=shape_yx, n_cells=n_cells, seed=seed, motion=motion, n_threads=2
    )


def run_engine(name: str, movie: Path, out_json: Path, nonrigid: bool, timeout_s: float) -> dict | None:
    python = PYTHONS[name]
    if not python.exists():
        return {"engine": name, "skipped": f"{python} not found"}
    if name == "suite2p 1.1":
        cmd = [str(python), str(ROOT / "benchmarks" / "suite2p11_driver.py"), str(movie), str(out_json)]
    else:
        engine = "builtin" if name == "imagingkit-builtin" else "suite2p"
        cmd = [
            str(python),
            str(ROOT / "benchmarks" / "motion_driver.py"),
            str(movie),
            str(out_json),
            "--engine",
            engine,
        ]
    if nonrigid:
        cmd.append("--nonrigid")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)
    if proc.returncode != 0:
        return {"engine": name, "skipped": f"failed: {proc.stderr.strip().splitlines()[-1:]}"}
    out = json.loads(out_json.read_text())
    out["engine"] = name
    out["wall_s"] = time.perf_counter() - start
    out["register_frames_per_s"] = out["n_frames"] / max(out["elapsed_s"] - out["reference_s"], 1e-9)
    return out


def rigid_rms(shifts: np.ndarray, truth, exclude: np.ndarray) -> float:
    good = ~exclude
    err = shifts[good] - truth.shifts_yx[good]
    err -= np.median(err, axis=0)
    return float(np.sqrt(np.mean(err**2)))


def block_truth(truth, centres_y: np.ndarray, centres_x: np.ndarray) -> np.ndarray:
    """(T, 2, ny, nx) true total shift at block centres: D(c) = s + u(c + D), one fixed-point step."""
    cy, cx = np.meshgrid(centres_y, centres_x, indexing="ij")
    out = np.empty((len(truth.shifts_yx), 2, *cy.shape))
    modes = truth.nonrigid_modes
    for t, s in enumerate(truth.shifts_yx):
        u = np.tensordot(truth.nonrigid_weights[t], modes, 1)
        coords = [cy + s[0], cx + s[1]]
        for axis in range(2):
            out[t, axis] = s[axis] + ndi.map_coordinates(u[axis], coords, order=1, mode="nearest")
    return out


def block_rms(result: dict, truth, exclude: np.ndarray) -> float | None:
    path = result.get("blocks")
    if not path:
        return None
    with np.load(path) as b:
        est = np.stack([b["dy"], b["dx"]], axis=1)  # T, 2, ny, nx
        true = block_truth(truth, b["centres_y"], b["centres_x"])
    err = (est - true)[~exclude]
    err -= np.median(err, axis=0, keepdims=True)  # the reference's own (per-block) offset
    return float(np.sqrt(np.mean(err**2)))


def write_movie(path: Path, movie: np.ndarray) -> None:
    np.save(path, movie)


def tiled_movie(path: Path, base: np.ndarray, n_frames: int) -> None:
    """A long movie on disk: the base movie repeated (no RAM copy of the whole)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=base.dtype, shape=(n_frames, *base.shape[1:]))
    for t0 in range(0, n_frames, len(base)):
        n = min(len(base), n_frames - t0)
        out[t0 : t0 + n] = base[:n]
    out.flush()
    del out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument(
        "--frames", type=int, default=1000, help="frames of the 256x256 accuracy/speed movies"
    )
    parser.add_argument("--scaling", type=int, nargs="*", default=[1000, 10000, 50000])
    parser.add_argument("--scaling-shape", type=int, nargs=2, default=[128, 128])
    parser.add_argument("--engines", nargs="*", default=list(PYTHONS))
    parser.add_argument("--out", default=str(RESULTS / "bench_motion.json"))
    args = parser.parse_args()
    if args.quick:
        args.frames, args.scaling = 300, [1000, 3000]
        args.engines = [e for e in args.engines if e != "imagingkit-suite2p (suite2p 0.14)"]
    work = Path(tempfile.mkdtemp(prefix="bench_motion_"))
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": os.getloadavg(),
        },
        "command": " ".join(["python", "benchmarks/bench_motion.py", *sys.argv[1:]]),
        "frames": args.frames,
        "shape_yx": [256, 256],
        "comparison": [],
        "scaling": [],
    }
    try:
        for nonrigid in (False, True):
            sim = simulate(args.frames, (256, 256), nonrigid, seed=11 + nonrigid)
            movie_path = work / f"movie_{'nonrigid' if nonrigid else 'rigid'}.npy"
            write_movie(movie_path, sim.movie[:, 0, 0])
            exclude = sim.truth.bad_frames | sim.truth.jump_frames
            for name in args.engines:
                tag = name.split()[0].replace("(", "")
                out_json = work / f"{tag}_{'nr' if nonrigid else 'rigid'}.json"
                res = run_engine(name, movie_path, out_json, nonrigid, timeout_s=3600)
                if "skipped" not in res:
                    res["rigid_rms_px"] = rigid_rms(np.load(res["shifts"]), sim.truth, exclude)
                    if nonrigid:
                        res["block_rms_px"] = block_rms(res, sim.truth, exclude)
                res["mode"] = "nonrigid" if nonrigid else "rigid"
                report["comparison"].append(res)
                print(_row(res), flush=True)
        base = simulate(1000, tuple(args.scaling_shape), False, seed=5).movie[:, 0, 0]
        for n in args.scaling:
            path = work / f"scaling_{n}.npy"
            tiled_movie(path, base, n)
            res = run_engine("imagingkit-builtin", path, work / f"scaling_{n}.json", False, timeout_s=7200)
            res["mode"] = f"scaling {args.scaling_shape[0]}x{args.scaling_shape[1]}"
            if "skipped" not in res:
                res["cpu_ms_per_frame"] = 1e3 * res["cpu_s"] / res["n_frames"]
            report["scaling"].append(res)
            print(_row(res), flush=True)
            path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_avg_end"] = os.getloadavg()
    _summary(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for row in report["comparison"] + report["scaling"]:
        for key in ("shifts", "blocks"):
            row.pop(key, None)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")
    return 0


def _row(r: dict) -> str:
    if "skipped" in r:
        return f"{r.get('mode', ''):>10} {r['engine']:<36} skipped: {r['skipped']}"
    extra = f" block_rms={r['block_rms_px']:.3f}px" if r.get("block_rms_px") is not None else ""
    rms = f" rigid_rms={r['rigid_rms_px']:.3f}px" if "rigid_rms_px" in r else ""
    return (
        f"{r['mode']:>10} {r['engine']:<36} n={r['n_frames']:>6} {r['frames_per_s']:8.1f} frames/s "
        f"(ref {r['reference_s']:.1f}s) cpu {1e3 * r['cpu_s'] / r['n_frames']:.2f} ms/frame "
        f"peak_rss={r['peak_rss_mb']:.0f}MB{rms}{extra}"
    )


def _summary(report: dict) -> None:
    print(
        "\n| mode | engine | frames/s (total) | frames/s (after reference) | CPU ms/frame | rigid RMS (px) "
        "| block RMS (px) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in report["comparison"]:
        if "skipped" in r:
            print(f"| {r['mode']} | {r['engine']} | skipped | | | | | |")
            continue
        block = r.get("block_rms_px")
        print(
            f"| {r['mode']} | {r['engine']} | {r['frames_per_s']:.0f} | {r['register_frames_per_s']:.0f} | "
            f"{1e3 * r['cpu_s'] / r['n_frames']:.2f} | {r['rigid_rms_px']:.3f} | "
            f"{'' if block is None else f'{block:.3f}'} | {r['peak_rss_mb']:.0f} |"
        )
    by = {(r["mode"], r["engine"]): r for r in report["comparison"] if "skipped" not in r}
    for mode in ("rigid", "nonrigid"):
        ours, theirs = by.get((mode, "imagingkit-builtin")), by.get((mode, "suite2p 1.1"))
        if ours and theirs:
            ratio = ours["frames_per_s"] / theirs["frames_per_s"]
            ratio_reg = ours["register_frames_per_s"] / theirs["register_frames_per_s"]
            report.setdefault("speedup_vs_suite2p_1_1", {})[mode] = {
                "total": ratio,
                "after_reference": ratio_reg,
            }
            print(
                f"{mode}: built-in is {ratio:.2f}x suite2p 1.1's throughput ({ratio_reg:.2f}x after the reference)"
            )
    if report["scaling"]:
        print(
            "\n| frames | wall s | frames/s (wall) | CPU s | CPU ms/frame | peak RSS (MB) |\n|---|---|---|---|---|---|"
        )
        for r in report["scaling"]:
            if "skipped" not in r:
                print(
                    f"| {r['n_frames']} | {r['elapsed_s']:.1f} | {r['frames_per_s']:.0f} | {r['cpu_s']:.1f} | "
                    f"{1e3 * r['cpu_s'] / r['n_frames']:.3f} | {r['peak_rss_mb']:.0f} |"
                )


if __name__ == "__main__":
    sys.exit(main())
