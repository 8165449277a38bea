"""Run suite2p 1.x registration on a .npy movie on the CPU and report time, memory and shifts.

Runs inside the separate suite2p 1.1 environment (``.venv-bench-s2p``) so that
imagingkit itself never needs suite2p 1.1 importable. It calls suite2p's own
stage functions the way its pipeline does: ``compute_reference`` on
``nimg_init`` frames spread over the movie, then ``register_frames`` in batches
with ``device=cpu``, writing registered frames to a raw int16 file on disk (as
suite2p's ``data.bin``). Offsets are converted to imagingkit's convention
(suite2p rolls frames by ``-dy, -dx``: the same sign).

    .venv-bench-s2p/bin/python benchmarks/suite2p11_driver.py MOVIE.npy OUT_JSON [--nonrigid]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("movie")
    parser.add_argument("out_json")
    parser.add_argument("--nonrigid", action="store_true")
    args = parser.parse_args()

    t_import = time.perf_counter()
    import suite2p
    import torch
    from suite2p.parameters import default_settings
    from suite2p.registration import register

    t_import = time.perf_counter() - t_import
    device = torch.device("cpu")
    movie = np.load(args.movie, mmap_mode="r")
    n, ly, lx = movie.shape
    settings = default_settings()["registration"]
    settings["nonrigid"] = args.nonrigid
    out_path = Path(args.out_json).with_suffix(".registered.bin")
    start = time.perf_counter()
    cpu_start = time.process_time()
    idx = np.linspace(0, n - 1, min(settings["nimg_init"], n)).astype(int)
    frames = np.asarray(movie[idx]).astype(np.int16)
    ref = register.compute_reference(frames, settings=settings, device=device)
    t_ref = time.perf_counter() - start
    f_in = np.asarray(movie).astype(np.int16) if n * ly * lx <= 2e8 else _Int16View(movie)
    f_out = np.memmap(out_path, dtype=np.int16, mode="w+", shape=(n, ly, lx))
    _, _, _, offsets, blocks, *_ = register.register_frames(
        f_in, ref, f_align_out=f_out, batch_size=settings["batch_size"], nonrigid=args.nonrigid,
        block_size=settings["block_size"], maxregshift=settings["maxregshift"],
        maxregshiftNR=settings["maxregshiftNR"], snr_thresh=settings["snr_thresh"],
        smooth_sigma=settings["smooth_sigma"], spatial_taper=settings["spatial_taper"], device=device,
    )  # fmt: skip
    f_out.flush()
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    del f_out
    out_path.unlink()
    shifts = np.stack([offsets[0], offsets[1]], axis=1).astype(float)
    shifts_path = Path(args.out_json).with_suffix(".shifts.npy")
    np.save(shifts_path, shifts)
    blocks_path = None
    if args.nonrigid:
        ny, nx = (int(v) for v in blocks[2])
        yb, xb = np.asarray(blocks[0]), np.asarray(blocks[1])
        total_y = (offsets[0][:, None] + offsets[3]).reshape(n, ny, nx)
        total_x = (offsets[1][:, None] + offsets[4]).reshape(n, ny, nx)
        centres_y = yb[::nx].mean(axis=1) - 0.5
        centres_x = xb[:nx].mean(axis=1) - 0.5
        blocks_path = Path(args.out_json).with_suffix(".blocks.npz")
        np.savez(blocks_path, dy=total_y, dx=total_x, centres_y=centres_y, centres_x=centres_x)
    out = {
        "engine": f"suite2p-{suite2p.version}",
        "nonrigid": args.nonrigid,
        "n_frames": int(n),
        "shape_yx": [ly, lx],
        "elapsed_s": elapsed,
        "cpu_s": cpu_s,
        "reference_s": t_ref,
        "import_s": t_import,
        "frames_per_s": n / elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "shifts": str(shifts_path),
        "blocks": None if blocks_path is None else str(blocks_path),
    }
    Path(args.out_json).write_text(json.dumps(out, indent=2))
    return 0


class _Int16View:
    """Slices of a memory-mapped movie converted to int16 on access (suite2p reads in batches)."""

    def __init__(self, movie):
        self.movie = movie
        self.shape = movie.shape

    def __getitem__(self, key):
        return np.asarray(self.movie[key]).astype(np.int16)


if __name__ == "__main__":
    sys.exit(main())
