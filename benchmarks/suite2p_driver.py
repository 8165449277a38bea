"""Run suite2p detection on a .npy movie in the suite2p venv (called by bench_neurons.py).

Usage: python suite2p_driver.py MOVIE.npy OUT.npz --frame-rate-hz 30 --diameter 12 [--mode soma]
Writes the detected ROIs (flattened pixel indices with offsets), iscell, cell_prob and the
detection time in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # imagingkit from this checkout

from imagingkit.io.recording import from_array  # noqa: E402
from imagingkit.neurons.params import DetectionParams  # noqa: E402
from imagingkit.neurons.suite2p_engine import detect_suite2p  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("movie")
    parser.add_argument("out")
    parser.add_argument("--frame-rate-hz", type=float, default=30.0)
    parser.add_argument("--diameter", type=float, default=12.0)
    parser.add_argument("--mode", default="soma")
    args = parser.parse_args()
    movie = np.load(args.movie, mmap_mode="r")
    rec = from_array(movie, "TYX", frame_rate_hz=args.frame_rate_hz)
    params = DetectionParams(mode=args.mode, diameter_px=args.diameter, frame_rate_hz=args.frame_rate_hz)
    t0 = time.perf_counter()
    rois = detect_suite2p(rec, params)
    elapsed = time.perf_counter() - t0
    nx = rec.frame_shape[1]
    flat = [y.astype(np.int64) * nx + x for y, x in zip(rois.ypix, rois.xpix, strict=True)]
    offsets = np.cumsum([0] + [len(f) for f in flat])
    np.savez(
        args.out,
        pixels=np.concatenate(flat) if flat else np.zeros(0, np.int64),
        offsets=offsets,
        lam=np.concatenate(rois.lam) if flat else np.zeros(0, np.float32),
        is_cell=rois.is_cell,
        cell_prob=rois.cell_prob,
        shape_yx=np.array(rois.shape_yx),
        seconds=elapsed,
    )
    print(f"suite2p: {rois.n_rois} ROIs ({int(rois.is_cell.sum())} cells) in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
