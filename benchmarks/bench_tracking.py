"""Benchmark of imagingkit.tracking: linking accuracy, gain/loss F1, turnover vs truth, speed.

Runs on point series with known identities (:mod:`imagingkit.tracking.testing`: tracking errors
only, from true positions with localisation jitter) across warp and missed-detection levels,
and times 10 sessions x 2,000 spines. Peer/baseline in the same run: the same LAP linker
without gap closing / warp refinement (``plain``).

    .venv/bin/python benchmarks/bench_tracking.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.tracking import (
    BootstrapParams,
    FateParams,
    LinkParams,
    TrackingParams,
    compute_turnover,
    track_spines,
)
from imagingkit.tracking.evaluate import event_scores, link_scores, truth_tracks
from imagingkit.tracking.testing import simulate_point_series

OUT = Path(__file__).parent / "results" / "bench_tracking.json"


def _true_ids(ps, detections):
    t = ps.truth[ps.truth["det_index"] >= 0]
    lookup = pd.Series(
        t["spine_id"].to_numpy(), index=pd.MultiIndex.from_arrays([t["session"], t["det_index"]])
    )
    return lookup.loc[list(zip(detections["session"], detections["det_index"], strict=False))].to_numpy()


def evaluate(ps, params):
    start = time.perf_counter()
    result = track_spines(
        ps.tables,
        ps.times_h,
        params,
        list(zip(ps.to_reference, ps.to_session, strict=False)),
        [ps.shape] * len(ps.tables),
    )
    seconds = time.perf_counter() - start
    ids = _true_ids(ps, result.detections)
    tt = truth_tracks(ps.truth)
    truth = compute_turnover(tt, ps.times_h)
    row = {**link_scores(result.detections, ids), **event_scores(result.tracks, result.detections, ids, tt)}
    for column, scale in (
        ("turnover_ratio", 100),
        ("survival_baseline", 100),
        ("formation_rate", 1),
        ("elimination_rate", 1),
    ):
        row[f"{column}_max_err_pp"] = float(
            np.nanmax(np.abs(result.turnover[column] - truth[column])) * scale
        )
    row["seconds"] = seconds
    return row


def configs():
    base = dict(edge_margin_um=0.0)
    return {
        "default (K=2, gap closing, warp refinement)": TrackingParams(
            pixel_size_um=0.2, fates=FateParams(**base), bootstrap=BootstrapParams(n_boot=200)
        ),
        "plain LAP (K=1, no gap closing, no refinement)": TrackingParams(
            pixel_size_um=0.2,
            link=LinkParams(max_gap_sessions=0, refine_passes=0),
            fates=FateParams(loss_min_sessions=1, **base),
            bootstrap=BootstrapParams(n_boot=200),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = range(1) if args.quick else range(3)
    rows = []
    grid = (
        [(w, m) for w in (0.0, 2.0, 4.0) for m in (0.0, 0.05)]
        if not args.quick
        else [(2.0, 0.0), (2.0, 0.05)]
    )
    for warp_px, p_miss in grid:
        for name, params in configs().items():
            scores = [
                evaluate(
                    simulate_point_series(
                        n_spines=240,
                        n_dendrites=6,
                        seed=s,
                        warp_px=warp_px,
                        p_miss=p_miss,
                        p_loss=0.1,
                        p_gain=0.1,
                    ),
                    params,
                )
                for s in seeds
            ]
            mean = pd.DataFrame(scores).mean(numeric_only=True).to_dict()
            rows.append({"config": name, "warp_px": warp_px, "p_miss": p_miss, **mean})
    table = pd.DataFrame(rows)
    # speed: 10 sessions x 2,000 spines (linking + fates + statistics, 200 bootstrap replicates)
    big = simulate_point_series(
        n_sessions=10, n_spines=2000, n_dendrites=20, shape=(1024, 1024), p_miss=0.05, seed=0
    )
    speed = evaluate(big, configs()["default (K=2, gap closing, warp refinement)"])
    columns = [
        "config",
        "warp_px",
        "p_miss",
        "pair_recall",
        "pair_precision",
        "gain_f1",
        "loss_f1",
        "turnover_ratio_max_err_pp",
        "survival_baseline_max_err_pp",
        "seconds",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table[columns].to_string(index=False))
    print(
        f"speed 10 sessions x 2000 spines: {speed['seconds']:.2f} s, pair recall {speed['pair_recall']:.3f}"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"accuracy": rows, "speed_10x2000": speed, "quick": args.quick}, indent=2, default=float)
    )
    print(f"saved {OUT}")


if __name__ == "__main__":
    main()
