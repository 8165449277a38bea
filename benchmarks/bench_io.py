"""I/O benchmark: open time, sequential read throughput and peak RSS on ScanImage-style TIFF series.

For each series size it writes a multi-file ScanImage 2016-style BigTIFF series
(512 x 512 int16 pages, per-page frame descriptions, ``imagingkit.synth.writers``)
and measures, side by side:

* open time (headers only) of ``open_recording`` vs ``tifffile`` listing the
  pages and their offsets — both must scale with the number of pages, not bytes;
* sequential read throughput of ``Recording.iter_chunks`` vs a raw read of the
  same pages (``np.memmap`` of each file, pages copied at their tifffile
  offsets; what ``tifffile.memmap`` does for a contiguous file) and vs
  ``tifffile.TiffFile.asarray``; goal: ours / raw >= 0.9;
* peak RSS (``ru_maxrss`` of a fresh child process) while reading the largest
  series frame by frame, ours vs the memory-mapped raw read; goal < 500 MB.

Reads are from the page cache (files just written), the same for every reader.

Usage: ``python benchmarks/bench_io.py [--quick] [--rss-gb 4] [--workdir DIR]``;
prints a table and writes ``benchmarks/results/bench_io.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from imagingkit._atomic import atomic_path
from imagingkit.io import open_recording

FRAME_YX = (512, 512)
PAGE_MB = FRAME_YX[0] * FRAME_YX[1] * 2 / 2**20
RESULTS = Path(__file__).resolve().parent / "results" / "bench_io.json"


def write_series(folder: Path, n_frames: int, frames_per_file: int) -> list[Path]:
    """A single-plane, single-channel ScanImage series of ``n_frames`` 512x512 int16 frames."""
    from imagingkit.synth.writers import ScanImageSeriesWriter  # not imported by the RSS child processes

    rng = np.random.default_rng(0)
    block = rng.integers(0, 4000, size=(64, 1, 1, *FRAME_YX)).astype(np.int16)
    shape = (n_frames, 1, 1, *FRAME_YX)
    with ScanImageSeriesWriter(folder, "bench", shape, np.int16, 30.0, frames_per_file=frames_per_file) as w:
        for t0 in range(0, n_frames, 64):
            w.write(block[: min(64, n_frames - t0)])
    return w.files


def page_offsets(files: list[Path]) -> list[np.ndarray]:
    out = []
    for f in files:
        with tifffile.TiffFile(f) as tif:
            tif.pages.useframes = True
            out.append(np.array([p.dataoffsets[0] for p in tif.pages], dtype=np.int64))
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def read_ours(rec, chunk: int = 64) -> int:
    total = 0
    for _, block in rec.iter_chunks(chunk):
        total += block.nbytes
    return total


def read_raw_memmap(
    files: list[Path], offsets: list[np.ndarray], chunk: int = 64, frame_by_frame=False
) -> int:
    """Copy every page out of a memory map of its file into a new block per chunk, like ``iter_chunks``."""
    page_bytes = FRAME_YX[0] * FRAME_YX[1] * 2
    total = 0
    step = 1 if frame_by_frame else chunk
    for f, offs in zip(files, offsets, strict=True):
        mm = np.memmap(f, dtype=np.uint8, mode="r")
        for i in range(0, len(offs), step):
            sub = offs[i : i + step]
            buf = np.empty((len(sub), *FRAME_YX), dtype=np.int16)  # a consumer gets a new array per chunk
            for k, o in enumerate(sub):
                buf[k] = mm[o : o + page_bytes].view(np.int16).reshape(FRAME_YX)
            total += buf[: len(sub)].nbytes
        del mm
    return total


def read_tifffile(files: list[Path], chunk: int = 64) -> int:
    total = 0
    for f in files:
        with tifffile.TiffFile(f) as tif:
            n = len(tif.pages)
            for i in range(0, n, chunk):
                total += tif.asarray(key=range(i, min(i + chunk, n))).nbytes
    return total


def child_rss(mode: str, first: Path) -> dict:
    """Run one frame-by-frame read in a fresh process; return its peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(first)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss on Linux also counts the parent before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mode: str, first: Path) -> None:
    base = peak_rss_mb()
    t0 = time.perf_counter()
    if mode == "ours":
        nbytes = read_ours(open_recording(first), chunk=1)
    else:
        files = sorted(first.parent.glob("bench_*.tif"))
        nbytes = read_raw_memmap(files, page_offsets(files), frame_by_frame=True)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "mode": mode,
                "peak_rss_mb": peak,
                "rss_before_read_mb": base,
                "bytes": nbytes,
                "seconds": seconds,
            }
        )
    )


def bench_size(folder: Path, size_mb: float, frames_per_file: int, repeats: int) -> dict:
    n_frames = max(int(size_mb / PAGE_MB), 1)
    t0 = time.perf_counter()
    files = write_series(folder, n_frames, frames_per_file)
    write_s = time.perf_counter() - t0
    nbytes = sum(f.stat().st_size for f in files)
    open_s = best_of(lambda: open_recording(files[0]), repeats)
    tifffile_open_s = best_of(lambda: page_offsets(files), repeats)
    offsets = page_offsets(files)
    rec = open_recording(files[0])
    rows = {"ours": [], "raw_memmap": [], "tifffile": []}
    for _ in range(repeats):  # interleaved so that cache state is shared fairly
        for name, fn in (
            ("raw_memmap", lambda: read_raw_memmap(files, offsets)),
            ("ours", lambda: read_ours(rec)),
            ("tifffile", lambda: read_tifffile(files)),
        ):
            t = time.perf_counter()
            fn()
            rows[name].append(time.perf_counter() - t)
    pixel_mb = n_frames * PAGE_MB
    speed = {name: pixel_mb / min(times) for name, times in rows.items()}
    return {
        "size_mb": nbytes / 2**20,
        "n_frames": n_frames,
        "n_files": len(files),
        "write_s": write_s,
        "open_s": open_s,
        "open_us_per_page": open_s / n_frames * 1e6,
        "tifffile_page_scan_s": tifffile_open_s,
        "read_mb_per_s": speed,
        "ratio_vs_raw_memmap": speed["ours"] / speed["raw_memmap"],
        "ratio_vs_tifffile": speed["ours"] / speed["tifffile"],
        "files": files,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s")
    parser.add_argument(
        "--rss-gb", type=float, default=None, help="size of the RSS test series (default 4, quick 0.5)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write the series (deleted after)"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FIRST_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child[0], Path(args.child[1]))
        return 0
    sizes_mb = [16, 64] if args.quick else [64, 256, 1024]
    rss_gb = args.rss_gb if args.rss_gb is not None else (0.5 if args.quick else 4.0)
    repeats = 2 if args.quick else 3
    frames_per_file = 128 if args.quick else 1024  # 64 MB / 512 MB files
    work = Path(tempfile.mkdtemp(prefix="bench_io_", dir=args.workdir))
    try:
        results = []
        for size in sizes_mb:
            folder = work / f"s{size}"
            row = bench_size(folder, size, frames_per_file, repeats)
            row.pop("files")
            results.append(row)
            shutil.rmtree(folder)
        folder = work / "rss"
        t0 = time.perf_counter()
        files = write_series(folder, int(rss_gb * 1024 / PAGE_MB), frames_per_file=2048)
        rss_write_s = time.perf_counter() - t0
        rss = {
            "size_gb": sum(f.stat().st_size for f in files) / 2**30,
            "n_files": len(files),
            "write_s": rss_write_s,
            "ours": child_rss("ours", files[0]),
            "raw_memmap": child_rss("raw_memmap", files[0]),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "bench_io",
        "quick": args.quick,
        "frame_yx": FRAME_YX,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "tifffile": tifffile.__version__,
            "numpy": np.__version__,
        },
        "series": results,
        "rss": rss,
        "goals": {"ratio_vs_raw_memmap": ">= 0.9", "peak_rss_mb": "< 500"},
    }
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    print(f"\nsaved {RESULTS}")
    return 0


def print_table(report: dict) -> None:
    print(
        f"{'size MB':>8} {'frames':>7} {'files':>5} {'open s':>8} {'us/page':>8} {'tifffile scan s':>15} "
        f"{'ours MB/s':>10} {'raw mmap MB/s':>13} {'tifffile MB/s':>13} {'ours/raw':>8}"
    )
    for r in report["series"]:
        s = r["read_mb_per_s"]
        print(
            f"{r['size_mb']:8.0f} {r['n_frames']:7d} {r['n_files']:5d} {r['open_s']:8.3f} "
            f"{r['open_us_per_page']:8.1f} {r['tifffile_page_scan_s']:15.3f} {s['ours']:10.0f} "
            f"{s['raw_memmap']:13.0f} {s['tifffile']:13.0f} {r['ratio_vs_raw_memmap']:8.2f}"
        )
    rss = report["rss"]
    print(f"\npeak RSS reading a {rss['size_gb']:.2f} GB series ({rss['n_files']} files) frame by frame:")
    for mode in ("ours", "raw_memmap"):
        c = rss[mode]
        print(
            f"  {mode:10s} {c['peak_rss_mb']:8.0f} MB peak ({c['rss_before_read_mb']:.0f} MB after imports), "
            f"{c['bytes'] / 2**20 / c['seconds']:.0f} MB/s"
        )


if __name__ == "__main__":
    sys.exit(main())
