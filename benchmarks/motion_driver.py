"""Run one registration of a .npy movie in a fresh process and report time, memory and shifts.

Used by ``bench_motion.py`` so every engine runs isolated (peak RSS of its own).
Engines: ``builtin`` and ``suite2p`` (imagingkit's suite2p engine, suite2p 0.14
in ``.venv-suite2p``). The movie is streamed from disk with explicit reads
(no memory map, so peak RSS is the engine's own memory).

    python benchmarks/motion_driver.py MOVIE.npy OUT_JSON --engine builtin [--nonrigid]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class NpyFileSource:
    """A :class:`~imagingkit.io.recording.FrameSource` reading time ranges of a (T, Y, X) ``.npy`` file."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or len(shape) != 3:
            raise ValueError(f"{path}: expected a C-ordered (T, Y, X) array")
        self.dtype = np.dtype(dtype)
        self.shape = (shape[0], 1, 1, shape[1], shape[2])
        self.frame_bytes = shape[1] * shape[2] * self.dtype.itemsize

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        n = max(0, t_stop - t_start)
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + t_start * self.frame_bytes)
            data = np.fromfile(fh, dtype=self.dtype, count=n * self.frame_bytes // self.dtype.itemsize)
        return data.reshape(n, *self.shape[1:])


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
    parser.add_argument("--engine", default="builtin")
    parser.add_argument("--nonrigid", action="store_true")
    parser.add_argument("--no-movie", action="store_true", help="do not write registered.tif")
    args = parser.parse_args()

    from imagingkit.io.recording import make_recording
    from imagingkit.motion import NonRigidParams, RigidParams, register_movie

    source = NpyFileSource(args.movie)
    rec = make_recording(source, "npy", frame_rate_hz=30.0)
    movie = rec.data
    params = NonRigidParams() if args.nonrigid else RigidParams()
    with tempfile.TemporaryDirectory(dir=Path(args.out_json).parent) as tmp:
        start = time.perf_counter()
        cpu_start = time.process_time()
        res = register_movie(
            rec, Path(tmp) / "reg", params, engine=args.engine, write_movie=not args.no_movie
        )
        elapsed = time.perf_counter() - start
        cpu_s = time.process_time() - cpu_start
    shifts_path = Path(args.out_json).with_suffix(".shifts.npy")
    np.save(shifts_path, res.shifts[["dy", "dx"]].to_numpy())
    blocks_path = None
    if res.block_shifts is not None:
        blocks_path = Path(args.out_json).with_suffix(".blocks.npz")
        b = res.block_shifts
        np.savez(
            blocks_path,
            dy=b["dy"][:, 0],
            dx=b["dx"][:, 0],
            centres_y=b["centres_y"],
            centres_x=b["centres_x"],
        )
    out = {
        "engine": f"imagingkit-{args.engine}",
        "nonrigid": args.nonrigid,
        "n_frames": int(movie.shape[0]),
        "shape_yx": list(movie.shape[1:]),
        "elapsed_s": elapsed,
        "cpu_s": cpu_s,
        "reference_s": res.metrics["reference_s"],
        "frames_per_s": movie.shape[0] / elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "shifts": str(shifts_path),
        "blocks": None if blocks_path is None else str(blocks_path),
        "bad_frames": res.shifts["bad"].to_numpy().nonzero()[0].tolist(),
        "wrote_movie": not args.no_movie,
    }
    Path(args.out_json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
