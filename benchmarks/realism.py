"""Realism and speed of imagingkit.synth against a real two-photon movie.

Run: ``python benchmarks/realism.py [--quick]`` (from the repository root).
Writes ``benchmarks/results/realism.json`` and ``benchmarks/results/realism.png``.

Realism: the real in-vivo GCaMP movie of CA1 (``sima_example/example.tif``,
20 frames of 128 x 256) is compared with a simulation of the same size and
default parameters on
1. the noise model: per-pixel variance of frame-to-frame differences / 2 (slow
   signal and static structure removed) against the pixel mean, binned by mean;
   slope (ADU per photon x excess-noise factor) and intercept;
2. the radially averaged spatial power spectrum of the mean image (both over
   20 frames) and of single frames (log-log slope between 0.02 and 0.3 cycles/pixel);
3. the pixel histogram (values / movie median): percentiles, Wasserstein
   distance and Kolmogorov-Smirnov statistic.
Speed: simulating 10,000 frames of 512 x 512 (300 cells, motion, stimulation)
streamed to a ScanImage TIFF series, wall time and peak RSS of the process,
next to a naive per-frame baseline (``Generator.poisson`` + ``ndimage.shift``
+ ``Generator.normal``), timed on 200 frames and extrapolated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagingkit.synth import MotionSpec, simulate_functional  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
REALDATA = Path(os.environ.get("IMAGINGKIT_REALDATA", ROOT.parent / "shared" / "realdata"))


# ----------------------------------------------------------------------------- metrics
def noise_curve(movie: np.ndarray, n_bins: int = 12) -> dict:
    """Binned (mean, var of frame differences / 2) per pixel and a linear fit on the lower 80 % of means."""
    m = movie.astype(np.float64)
    mean = m.mean(axis=0).ravel()
    var = (np.diff(m, axis=0) ** 2).mean(axis=0).ravel() / 2
    edges = np.percentile(mean, np.linspace(0, 100, n_bins + 1))
    centres, medians = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (mean >= lo) & (mean <= hi)
        centres.append(float(mean[sel].mean()))
        medians.append(float(np.median(var[sel])))
    centres, medians = np.array(centres), np.array(medians)
    low = centres <= np.percentile(mean, 80)
    slope, intercept = np.polyfit(centres[low], medians[low], 1)
    return {
        "mean_adu": centres.tolist(),
        "noise_var_adu2": medians.tolist(),
        "slope_adu": float(slope),
        "intercept_adu2": float(intercept),
        "x_intercept_adu": float(-intercept / slope) if slope else None,
    }


def radial_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum (normalised to sum 1) at frequencies in cycles/pixel."""
    img = image.astype(np.float64) - image.mean()
    ny, nx = img.shape
    window = np.outer(np.hanning(ny), np.hanning(nx))
    power = np.abs(np.fft.fftshift(np.fft.fft2(img * window))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(ny))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(nx))[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    bins = np.linspace(0, 0.5, 41)
    idx = np.digitize(radius.ravel(), bins) - 1
    ok = (idx >= 0) & (idx < 40)
    spec = np.bincount(idx[ok], weights=power.ravel()[ok], minlength=40) / np.maximum(
        np.bincount(idx[ok], minlength=40), 1
    )
    freq = (bins[:-1] + bins[1:]) / 2
    return freq, spec / spec.sum()


def spectrum_slope(freq: np.ndarray, spec: np.ndarray, lo: float = 0.02, hi: float = 0.3) -> float:
    sel = (freq >= lo) & (freq <= hi) & (spec > 0)
    return float(np.polyfit(np.log(freq[sel]), np.log(spec[sel]), 1)[0])


def histogram_stats(movie: np.ndarray) -> dict:
    v = movie.astype(np.float64).ravel()
    med = np.median(v)
    pct = np.percentile(v / med, [1, 5, 25, 50, 75, 95, 99])
    return {
        "median_adu": float(med),
        "percentiles_over_median": pct.tolist(),
        "cv": float(v.std() / v.mean()),
        "fraction_at_min": float(np.mean(v <= v.min())),
    }


def compare(real: np.ndarray, sim: np.ndarray) -> dict:
    out = {"real": {}, "sim": {}}
    for name, movie in (("real", real), ("sim", sim)):
        out[name]["noise"] = noise_curve(movie)
        f, s_mean = radial_spectrum(movie[: len(real)].mean(axis=0))  # same number of frames averaged
        _, s_frame = radial_spectrum(movie[len(movie) // 2])
        out[name]["spectrum_mean_image"] = s_mean.tolist()
        out[name]["spectrum_frame"] = s_frame.tolist()
        out[name]["spectrum_slope_mean_image"] = spectrum_slope(f, s_mean)
        out[name]["spectrum_slope_frame"] = spectrum_slope(f, s_frame)
        out[name]["histogram"] = histogram_stats(movie)
    out["frequency_cycles_per_px"] = f.tolist()
    a = real.astype(np.float64).ravel() / np.median(real)
    b = sim.astype(np.float64).ravel() / np.median(sim)
    rng = np.random.default_rng(0)
    b_sub = rng.choice(b, size=min(b.size, 400_000), replace=False)
    out["histogram_wasserstein"] = float(stats.wasserstein_distance(a, b_sub))
    out["histogram_ks"] = float(stats.ks_2samp(a, b_sub).statistic)
    out["noise_slope_ratio_sim_over_real"] = (
        out["sim"]["noise"]["slope_adu"] / out["real"]["noise"]["slope_adu"]
    )
    return out


# ----------------------------------------------------------------------------- speed
SPEED_SCRIPT = r"""
import json, resource, sys, time
from imagingkit.synth import MotionSpec, StimProtocol
from imagingkit.synth.writers import write_functional
n, out, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
files, truth = write_functional(out, name="bench", format="scanimage", n_frames=n, shape_yx=(512, 512), n_cells=300,
                                seed=0, motion=MotionSpec(), stim=StimProtocol(), n_threads=threads,
                                frames_per_file=2000, chunk_frames=32)
elapsed = time.perf_counter() - t
size = sum(f.stat().st_size for f in files)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "bytes_written": size, "n_files": len(files)}))
"""


def time_streaming(n_frames: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("IMAGINGKIT_BENCH_TMP")) as tmp:
        res = subprocess.run(
            [sys.executable, "-c", SPEED_SCRIPT, str(n_frames), tmp, str(threads)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out.update(n_frames=n_frames, threads=threads, frames_per_s=n_frames / out["seconds"])
    return out


def time_naive_baseline(n_frames: int = 200) -> dict:
    """Per-frame numpy/scipy baseline: dense scene, ndimage.shift, Generator.poisson, Generator.normal."""
    rng = np.random.default_rng(0)
    scene = ndimage.gaussian_filter(rng.uniform(0.5, 4, (512, 512)), 3).astype(np.float32)
    t = time.perf_counter()
    for _ in range(n_frames):
        frame = ndimage.shift(scene, rng.normal(0, 1, 2), order=1, mode="nearest")
        photons = rng.poisson(np.clip(frame, 0, None))
        adu = 80 + 600 * photons + rng.normal(0, 40, frame.shape)
        np.clip(np.round(adu), 0, 65535).astype(np.uint16)
    per_frame = (time.perf_counter() - t) / n_frames
    return {
        "seconds_per_frame": per_frame,
        "extrapolated_10000_frames_s": per_frame * 10_000,
        "note": "render+noise only, no disk writing, single thread",
    }


# ----------------------------------------------------------------------------- plot
def plot(result: dict, real: np.ndarray, sim: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    ax[0, 0].imshow(real.mean(axis=0), cmap="gray")
    ax[0, 0].set_title("real CA1 (sima example.tif), mean")
    ax[0, 1].imshow(sim.mean(axis=0), cmap="gray")
    ax[0, 1].set_title("simulated (defaults), mean")
    ax[0, 2].imshow(sim[len(sim) // 2], cmap="gray")
    ax[0, 2].set_title("simulated, one frame")
    for name, colour in (("real", "k"), ("sim", "tab:red")):
        n = result[name]["noise"]
        ax[1, 0].plot(
            n["mean_adu"],
            n["noise_var_adu2"],
            "o-",
            color=colour,
            label=f"{name}: slope {n['slope_adu']:.0f} ADU",
        )
        f = result["frequency_cycles_per_px"]
        ax[1, 1].loglog(
            f[1:], result[name]["spectrum_mean_image"][1:], "-", color=colour, label=f"{name} mean image"
        )
        ax[1, 1].loglog(f[1:], result[name]["spectrum_frame"][1:], "--", color=colour, label=f"{name} frame")
    ax[1, 0].set_xlabel("pixel mean (ADU)")
    ax[1, 0].set_ylabel("var of frame differences / 2 (ADU^2)")
    ax[1, 0].legend()
    ax[1, 0].set_title("noise model")
    ax[1, 1].set_xlabel("spatial frequency (cycles/px)")
    ax[1, 1].set_title("radial power spectrum (normalised)")
    ax[1, 1].legend(fontsize=8)
    bins = np.linspace(0, 5, 101)
    ax[1, 2].hist(
        real.ravel() / np.median(real), bins, density=True, histtype="step", color="k", label="real"
    )
    ax[1, 2].hist(
        sim.ravel() / np.median(sim), bins, density=True, histtype="step", color="tab:red", label="sim"
    )
    ax[1, 2].set_xlabel("pixel value / median")
    ax[1, 2].set_title(f"histogram (KS {result['histogram_ks']:.3f})")
    ax[1, 2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 frames for the speed test (< 60 s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    import tifffile

    real = tifffile.imread(REALDATA / "sima_example" / "example.tif")
    sim = simulate_functional(
        n_frames=200, shape_yx=real.shape[1:], n_cells=60, seed=0, motion=MotionSpec(), stim=None
    ).movie[:, 0, 0]
    result = compare(real, sim)
    n_frames = 1000 if args.quick else 10_000
    result["speed"] = {
        "streamed": time_streaming(n_frames, args.threads),
        "naive_baseline": time_naive_baseline(),
    }
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    plot(result, real, sim, RESULTS / "realism.png")
    with open(RESULTS / "realism.json", "w") as fh:
        json.dump(result, fh, indent=1)

    print(f"{'metric':42s} {'real':>12s} {'sim':>12s}")
    rows = [
        (
            "noise slope (ADU per photon x ENF)",
            result["real"]["noise"]["slope_adu"],
            result["sim"]["noise"]["slope_adu"],
        ),
        (
            "noise intercept (ADU^2)",
            result["real"]["noise"]["intercept_adu2"],
            result["sim"]["noise"]["intercept_adu2"],
        ),
        (
            "spectrum slope, mean image",
            result["real"]["spectrum_slope_mean_image"],
            result["sim"]["spectrum_slope_mean_image"],
        ),
        (
            "spectrum slope, single frame",
            result["real"]["spectrum_slope_frame"],
            result["sim"]["spectrum_slope_frame"],
        ),
        ("pixel CV", result["real"]["histogram"]["cv"], result["sim"]["histogram"]["cv"]),
        ("median (ADU)", result["real"]["histogram"]["median_adu"], result["sim"]["histogram"]["median_adu"]),
    ]
    for name, a, b in rows:
        print(f"{name:42s} {a:12.3f} {b:12.3f}")
    for p, a, b in zip(
        [1, 5, 25, 50, 75, 95, 99],
        result["real"]["histogram"]["percentiles_over_median"],
        result["sim"]["histogram"]["percentiles_over_median"],
        strict=True,
    ):
        print(f"{'percentile ' + str(p) + ' / median':42s} {a:12.3f} {b:12.3f}")
    print(
        f"histogram KS {result['histogram_ks']:.3f}, Wasserstein {result['histogram_wasserstein']:.3f} (x median)"
    )
    sp = result["speed"]["streamed"]
    nb = result["speed"]["naive_baseline"]
    print(
        f"streamed {sp['n_frames']} frames 512x512 ({sp['threads']} threads): {sp['seconds']:.1f} s, "
        f"{sp['frames_per_s']:.0f} frames/s, {sp['cpu_seconds']:.0f} CPU-s, peak RSS {sp['peak_rss_mb']:.0f} MB, "
        f"{sp['bytes_written'] / 1e9:.2f} GB in {sp['n_files']} files"
    )
    print(
        f"naive per-frame baseline: {nb['seconds_per_frame'] * 1e3:.1f} ms/frame -> "
        f"{nb['extrapolated_10000_frames_s']:.0f} s for 10,000 frames (render+noise only)"
    )


if __name__ == "__main__":
    main()
