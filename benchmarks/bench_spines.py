"""Spine detection benchmark: imagingkit.spines vs a plain LoG baseline on simulated dendrites.

Images and truth come from :func:`imagingkit.synth.simulate_dendrite_sessions` (the
reference session of each simulation). For every image, side by side:

* ``imagingkit``: :func:`imagingkit.spines.detect_spines` (default parameters);
* ``log``: :func:`imagingkit.spines.detect_spines_log` — ``skimage.feature.blob_log``
  restricted to 0.5-3.5 um from the same traced centrelines; its threshold is tuned for
  best F1 on separate images (seed 100) before the run.

Detection is scored by one-to-one matching (Hungarian) within 0.5 um (3D distance for
stacks) against the present, in-view truth spines: precision, recall, F1, pooled over
seeds, on **all** spines and on the **visible** ones: head radius >= 0.2 um (smaller
heads are below the two-photon resolution, PSF sigma 0.17 um) and noiseless head-peak /
shaft-peak contrast (synth's ``intensity_ratio``) >= 0.3. Below that limit are the
sub-resolution spines (synth ``dim``: head radius 0.12-0.2 um, 35-60 % brightness; in 2D
their noiseless contrast is 0.1-0.3; in 3D a small head on top of the shaft borrows the
shaft's axial blur, hence the radius criterion), which sit at the noise floor and which a
human would not see either; detections matched to them count neither as true nor as
false positives in the visible score. Also outside the visible set are border spines: the head is in the
image but the shaft point it grows from is not (synth ``base_in_fov`` False, about 2 % of 3D spines),
so no dendrite leads to it, no tracing can reach it and its contrast is undefined (synth's
``intensity_ratio`` is NaN for them; until session 3 it was head over the edge pixel, 3-40, and
they counted as visible misses). They stay in the all-spines score. The issue-6 goal (F1 >= 0.90 at typical in-vivo SNR, ``noise=1``: shaft
~40 photons per pixel) is stated on the visible spines; the all-spines F1 is reported
beside it. Recall is also broken down by true head radius, neck length and contrast.
Errors: arc-length position (per dendrite, origin and direction aligned), ``peak_ratio``
vs synth's ``intensity_ratio`` (synth defines it as noiseless head peak / shaft peak),
and ``intensity_ratio`` (integrated head / shaft) vs the same measurement at the true
positions on the noiseless image. Evaluation seeds 0-4 (2D and 3D), and at typical SNR also
20 images per dimension on seeds 200-219 (five images hold only ~150 visible spines: an F1
sampling error of about 0.02); the method was tuned on seeds 10-29 (checked on 30-49), the LoG
threshold on seed 100.

Speed: a 1024 x 1024 image (goal < 2 s) and a 512 x 512 x 40 stack (goal < 20 s),
measured after a warm-up call (skan compiles numba code on first use, ~5 s once per process).

Usage: ``python benchmarks/bench_spines.py [--quick]``; prints a table and writes
``benchmarks/results/bench_spines.json`` (``bench_spines_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit._atomic import atomic_path
from imagingkit.spines import detect_spines, detect_spines_log, measure_spines, prepare_image
from imagingkit.spines.evaluate import (
    VISIBLE_CONTRAST,
    VISIBLE_HEAD_RADIUS_UM,
    arc_errors,
    detection_scores,
    visible_detection_scores,
    visible_spines,
)
from imagingkit.synth import simulate_dendrite_sessions

RESULTS = Path(__file__).resolve().parent / "results" / "bench_spines.json"
LOG_THRESHOLDS = (0.03, 0.05, 0.08, 0.12, 0.2, 0.3)
LARGE_SEEDS = range(200, 220)  # a larger evaluation sample at typical SNR, never used for tuning


def simulate(ndim: int, seed: int, noise: float, dim_fraction: float = 0.15, shape=None, density=0.4):
    shape = shape or ((256, 256) if ndim == 2 else (21, 256, 256))
    return simulate_dendrite_sessions(
        n_sessions=1,
        times_h=(0,),
        shape=shape,
        ndim=ndim,
        seed=seed,
        noise=noise,
        dim_fraction=dim_fraction,
        spine_density_per_um=density,
    )


def truth_of(sim) -> pd.DataFrame:
    t = sim.truth
    return t[t.present & t.in_fov].reset_index(drop=True)


def spacing_of(sim) -> tuple:
    return (
        (sim.z_step_um, sim.pixel_size_um, sim.pixel_size_um) if sim.z_step_um else (sim.pixel_size_um,) * 2
    )


def tune_log_threshold(ndim: int) -> float:
    """The LoG threshold with the best F1 on tuning images (seed 100, noise 1)."""
    sim = simulate(ndim, 100, 1.0)
    result = detect_spines(sim.images[0], pixel_size_um=sim.pixel_size_um, z_step_um=sim.z_step_um)
    prepared = prepare_image(sim.images[0], sim.pixel_size_um, sim.z_step_um)
    f1 = [
        detection_scores(
            detect_spines_log(prepared, result.trace, threshold=t), truth_of(sim), spacing_of(sim)
        )["f1"]
        for t in LOG_THRESHOLDS
    ]
    return LOG_THRESHOLDS[int(np.argmax(f1))]


def run_image(sim, log_threshold: float) -> dict:
    """Detections of both methods on one image, with matching and measurement errors."""
    truth = truth_of(sim)
    spacing = spacing_of(sim)
    t0 = time.perf_counter()
    result = detect_spines(sim.images[0], pixel_size_um=sim.pixel_size_um, z_step_um=sim.z_step_um)
    seconds = time.perf_counter() - t0
    prepared = prepare_image(sim.images[0], sim.pixel_size_um, sim.z_step_um)
    log = detect_spines_log(prepared, result.trace, threshold=log_threshold)
    ours = detection_scores(result.spines, truth, spacing)
    base = detection_scores(log, truth, spacing)
    p = result.spines.iloc[ours["pred_index"]].reset_index(drop=True)
    t = truth.iloc[ours["truth_index"]].reset_index(drop=True)
    arc = arc_errors(
        p.arc_um.to_numpy(), t.arc_um.to_numpy(), p.dendrite_id.to_numpy(), t.dendrite_id.to_numpy()
    )
    # integrated ratio: same measurement at the true positions on the noiseless image
    cols = ["y", "x", "z"] if sim.z_step_um else ["y", "x"]
    clean = measure_spines(
        sim.noiseless[0],
        t[cols],
        pixel_size_um=sim.pixel_size_um,
        z_step_um=sim.z_step_um,
        dendrites=result.trace,
    ).spines
    found = np.zeros(len(truth), bool)
    found[ours["truth_index"]] = True
    found_log = np.zeros(len(truth), bool)
    found_log[base["truth_index"]] = True
    visible = visible_spines(truth)  # see the module docstring
    # the rule before session 3: border spines (base out of view) counted as visible
    with_border = visible | (
        ~truth.base_in_fov.to_numpy(bool) & (truth.head_radius_um.to_numpy() >= VISIBLE_HEAD_RADIUS_UM)
    )
    return {
        "ours": ours,
        "log": base,
        "ours_visible": visible_detection_scores(result.spines, truth, visible, spacing),
        "log_visible": visible_detection_scores(log, truth, visible, spacing),
        "ours_visible_with_border": visible_detection_scores(result.spines, truth, with_border, spacing),
        "n_border": int((~truth.base_in_fov).sum()),
        "seconds": seconds,
        "arc_err": arc,
        "peak_ratio": np.column_stack([p.peak_ratio, t.intensity_ratio]),
        "int_ratio": np.column_stack([p.intensity_ratio, clean.intensity_ratio]),
        "truth": truth.assign(found=found, found_log=found_log),
    }


def pooled(runs: list[dict], key: str) -> dict:
    tp = sum(r[key]["tp"] for r in runs)
    n_pred = sum(r[key]["n_pred"] for r in runs)
    n_truth = sum(r[key]["n_truth"] for r in runs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_truth if n_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "n_truth": n_truth,
    }


def errors(runs: list[dict]) -> dict:
    arc = np.concatenate([r["arc_err"] for r in runs]) if runs else np.zeros(0)
    pr = np.concatenate([r["peak_ratio"] for r in runs])
    # ratios are undefined where the shaft leaves the image (shaft peak ~ 0): keep finite, sane ones
    pr = pr[np.all(np.isfinite(pr), axis=1) & np.all(np.abs(pr) < 10, axis=1)]
    ir = np.concatenate([r["int_ratio"] for r in runs])
    ok = np.all(np.isfinite(ir), axis=1) & (ir[:, 1] > 0.05)
    return {
        "arc_err_median_um": round(float(np.median(arc)), 3) if arc.size else None,
        "arc_err_p90_um": round(float(np.percentile(arc, 90)), 3) if arc.size else None,
        "peak_ratio_corr": round(float(np.corrcoef(pr[:, 0], pr[:, 1])[0, 1]), 3) if len(pr) > 2 else None,
        "peak_ratio_median_rel_err": round(float(np.median(np.abs(pr[:, 0] / pr[:, 1] - 1))), 3)
        if len(pr)
        else None,
        "intensity_ratio_median_rel_err": round(float(np.median(np.abs(ir[ok, 0] / ir[ok, 1] - 1))), 3)
        if ok.any()
        else None,
    }


def scenario(
    name: str,
    ndim: int,
    noise: float,
    seeds,
    log_threshold: float,
    dim_fraction: float = 0.15,
    density: float = 0.4,
) -> dict:
    runs = [run_image(simulate(ndim, s, noise, dim_fraction, density=density), log_threshold) for s in seeds]
    row = {
        "scenario": name,
        "ndim": ndim,
        "noise": noise,
        "dim_fraction": dim_fraction,
        "density_per_um": density,
        "n_images": len(runs),
        "ours": pooled(runs, "ours"),
        "log": pooled(runs, "log"),
        "ours_visible": pooled(runs, "ours_visible"),
        "log_visible": pooled(runs, "log_visible"),
        "ours_visible_with_border": pooled(runs, "ours_visible_with_border"),
        "n_border_spines": sum(r["n_border"] for r in runs),
        "seconds_per_image": round(float(np.mean([r["seconds"] for r in runs])), 3),
        **errors(runs),
    }
    row["_truth"] = pd.concat([r["truth"] for r in runs], ignore_index=True)
    return row


def recall_by(truth: pd.DataFrame, column: str, edges) -> list[dict]:
    bins = pd.cut(truth[column], edges)
    out = []
    for interval, group in truth.groupby(bins, observed=True):
        out.append(
            {
                column: f"{interval.left:g}-{interval.right:g}",
                "n": len(group),
                "recall_ours": round(float(group.found.mean()), 3),
                "recall_log": round(float(group.found_log.mean()), 3),
            }
        )
    return out


def _tile(image: np.ndarray, reps: int) -> np.ndarray:
    """Mirror-tile the last two axes ``reps`` x ``reps`` (a bigger image with the same content)."""
    row = np.concatenate([image if i % 2 == 0 else image[..., ::-1] for i in range(reps)], axis=-1)
    return np.concatenate([row if i % 2 == 0 else row[..., ::-1, :] for i in range(reps)], axis=-2)


def speed(quick: bool) -> dict:
    """Seconds for a 1024x1024 image and a 512x512x40 stack (mirror-tiled simulations with --quick)."""
    out = {}
    image = (
        _tile(simulate(2, 7, 1.0).images[0], 4)
        if quick
        else simulate(2, 7, 1.0, shape=(1024, 1024)).images[0]
    )
    t0 = time.perf_counter()
    result = detect_spines(image, pixel_size_um=0.2)
    out["image_1024x1024_s"] = round(time.perf_counter() - t0, 2)
    out["image_1024x1024_n_spines"] = len(result.spines)
    lateral = 128 if quick else 256
    sim3 = simulate(3, 7, 1.0, shape=(20, lateral, lateral))
    tile = np.concatenate([sim3.images[0], sim3.images[0][::-1]], axis=0)  # 40 planes
    stack = _tile(tile, 512 // lateral)
    t0 = time.perf_counter()
    result = detect_spines(stack, pixel_size_um=0.2, z_step_um=1.0)
    out["stack_512x512x40_s"] = round(time.perf_counter() - t0, 2)
    out["stack_512x512x40_n_spines"] = len(result.spines)
    return out


def save_figure(path: Path, seed: int = 0, noise: float = 1.0) -> None:
    """Truth (green: found, yellow: missed) and detections (red +: true, magenta x: false) on one image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim = simulate(2, seed, noise)
    truth = truth_of(sim)
    result = detect_spines(sim.images[0], pixel_size_um=sim.pixel_size_um)
    scores = detection_scores(result.spines, truth, spacing_of(sim))
    found = np.zeros(len(truth), bool)
    found[scores["truth_index"]] = True
    hit = np.zeros(len(result.spines), bool)
    hit[scores["pred_index"]] = True
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, image, title in zip(
        axes, (sim.images[0], sim.noiseless[0]), ("image (noise 1)", "noiseless"), strict=True
    ):
        ax.imshow(image, cmap="gray", vmax=np.percentile(image, 99.7))
        for _, line in result.trace.centreline.groupby("dendrite_id"):
            ax.plot(line.x, line.y, "c-", lw=0.6)
        sp = result.spines
        ax.scatter(truth.x[found], truth.y[found], s=50, facecolors="none", edgecolors="lime", lw=0.8)
        ax.scatter(truth.x[~found], truth.y[~found], s=60, facecolors="none", edgecolors="yellow", lw=1.2)
        ax.scatter(sp.x[hit], sp.y[hit], s=12, c="red", marker="+")
        ax.scatter(sp.x[~hit], sp.y[~hit], s=30, c="magenta", marker="x")
        ax.set_title(f"{title}: seed {seed}, P {scores['precision']:.2f} R {scores['recall']:.2f}")
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and levels (< 60 s)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    seeds = range(2) if args.quick else range(5)
    seeds3 = range(1) if args.quick else range(5)
    warm = simulate(2, 99, 1.0)  # numba warm-up (skan compiles on first use)
    detect_spines(warm.images[0], pixel_size_um=0.2)
    detect_spines(np.concatenate([warm.images[0], warm.images[0][:, ::-1]], axis=1), pixel_size_um=0.2)
    thr2 = tune_log_threshold(2)
    thr3 = 0.3 if args.quick else tune_log_threshold(3)  # 0.3: the full run's tuned value
    rows = []
    noises = (1.0, 2.0) if args.quick else (0.5, 1.0, 1.5, 2.0, 3.0)
    for noise in noises:
        rows.append(scenario(f"2D noise {noise}", 2, noise, seeds, thr2))
    if not args.quick:
        rows.append(scenario("2D no sub-resolution spines", 2, 1.0, seeds, thr2, dim_fraction=0.0))
        rows.append(scenario("2D sub-resolution spines only", 2, 1.0, seeds, thr2, dim_fraction=1.0))
        rows.append(scenario("2D crowded (0.9 /um) noise 1.0", 2, 1.0, seeds, thr2, density=0.9))
    for noise in (1.0,) if args.quick else (1.0, 2.0):
        rows.append(scenario(f"3D noise {noise}", 3, noise, seeds3, thr3))
    if not args.quick:  # typical SNR on 20 more images never used in development (smaller sampling error)
        rows.append(scenario("2D noise 1.0, seeds 200-219", 2, 1.0, LARGE_SEEDS, thr2))
        rows.append(scenario("3D noise 1.0, seeds 200-219", 3, 1.0, LARGE_SEEDS, thr3))
    truth_2d = pd.concat(
        [
            r["_truth"]
            for r in rows
            if r["ndim"] == 2
            and r["dim_fraction"] == 0.15
            and r["noise"] == 1.0
            and r["density_per_um"] == 0.4
        ]
    )
    truth_3d = pd.concat([r["_truth"] for r in rows if r["ndim"] == 3 and r["noise"] == 1.0])
    truth_3d = truth_3d.assign(abs_elevation_deg=truth_3d.elevation_deg.abs())
    breakdown = {
        "by_head_radius_um": recall_by(truth_2d, "head_radius_um", [0, 0.2, 0.3, 0.45, 1.0]),
        "by_neck_length_um": recall_by(truth_2d, "neck_length_um", [0, 0.5, 1.0, 1.5, 3.0]),
        "by_contrast": recall_by(truth_2d, "intensity_ratio", [0, 0.2, VISIBLE_CONTRAST, 0.5, 1.0, 5.0]),
        "3d_by_abs_elevation_deg": recall_by(truth_3d, "abs_elevation_deg", [0, 45, 90]),
    }
    timing = speed(args.quick)
    for r in rows:
        r.pop("_truth")
    print(f"LoG baseline threshold (tuned on seed 100): 2D {thr2}, 3D {thr3}")
    header = (
        f"{'scenario':32s} {'all: P':>7s} {'R':>5s} {'F1':>5s} {'LoG F1':>6s} | {'visible: P':>10s} {'R':>5s} "
        f"{'F1':>5s} {'LoG F1':>6s} | {'arc med':>7s} {'pk r':>5s} {'int err':>7s} {'s/img':>6s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        o, b, ov, bv = r["ours"], r["log"], r["ours_visible"], r["log_visible"]
        print(
            f"{r['scenario']:32s} {o['precision']:7.2f} {o['recall']:5.2f} {o['f1']:5.2f} {b['f1']:6.2f} | "
            f"{ov['precision']:10.2f} {ov['recall']:5.2f} {ov['f1']:5.2f} {bv['f1']:6.2f} | "
            f"{r['arc_err_median_um'] or float('nan'):7.2f} {r['peak_ratio_corr'] or float('nan'):5.2f} "
            f"{r['intensity_ratio_median_rel_err'] or float('nan'):7.2f} {r['seconds_per_image']:6.2f}"
        )
    print("visible F1 with border spines counted as visible (the rule before session 3):")
    for r in rows:
        print(
            f"  {r['scenario']:32s} {r['ours_visible_with_border']['f1']:.3f} ({r['n_border_spines']} border spines)"
        )
    print("recall by true head radius (2D, noise 1):", breakdown["by_head_radius_um"])
    print("recall by true neck length (2D, noise 1):", breakdown["by_neck_length_um"])
    print("recall by noiseless contrast (2D, noise 1):", breakdown["by_contrast"])
    print("recall by |elevation| (3D, noise 1):", breakdown["3d_by_abs_elevation_deg"])
    print("speed:", timing, "(goals: 1024x1024 < 2 s, 512x512x40 < 20 s)")
    payload = {
        "benchmark": "bench_spines",
        "quick": args.quick,
        "match_tolerance_um": 0.5,
        "visible_limit": {"contrast": VISIBLE_CONTRAST, "head_radius_um": VISIBLE_HEAD_RADIUS_UM},
        "log_threshold": {"2d": thr2, "3d": thr3},
        "rows": rows,
        "recall_breakdown": breakdown,
        "speed": timing,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor(),
            "cpus": __import__("os").cpu_count(),
        },
    }
    if not args.quick:
        save_figure(RESULTS.with_name("bench_spines_example.png"))
    path = RESULTS.with_name("bench_spines_quick.json") if args.quick else RESULTS
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
