"""Benchmark imagingkit.stim: responder detection, latency, sub-frame timing, speed.

Run: ``python benchmarks/bench_stim.py [--quick]`` (from the repository root).
Prints a table and writes ``benchmarks/results/bench_stim.json`` and
``benchmarks/results/bench_stim_f1.png``.

1. F1 of responder detection (Wilcoxon + Benjamini-Hochberg at 5 % FDR) and
   false-positive rate among non-responders vs number of trials and SNR
   (response peak dF/F / per-frame noise SD), on traces simulated at each ROI's
   true sub-frame sample time with GCaMP6f kernels (tests/stim/simdata.py).
2. Latency error with and without sub-frame timing for ROIs in the top and
   bottom quarter of the frame.
3. Full :mod:`imagingkit.synth` recordings (movie, light artifacts, DAQ
   triggers, neuropil, overlapping somata) through
   :func:`imagingkit.stim.analysis.analyse_responses`: events from raw
   triggers, artifact lines from the movie, responders (Wilcoxon, shuffled-
   event-times permutation, sham permutation) on raw F, neuropil-corrected
   F - 0.7 Fneu and demixed traces (imagingkit.neurons.extract_traces with the
   true footprints, tests/stim/simdata.py), with and without the artifact mask;
   FPR also among non-responders without cross-talk from a responder; latency
   error of both onset methods, and on noiseless calcium.
4. Speed: 1,000 ROIs x 200 trials x 100 samples, trial extraction + statistics
   including the 999-resample permutation tests (sign-flip, shuffled event
   times), against a per-ROI loop of ``scipy.stats.permutation_test`` (the
   obvious baseline), extrapolated.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagingkit.stim.responses import WindowParams, trial_responses  # noqa: E402
from imagingkit.stim.stats import StatsParams, response_statistics  # noqa: E402
from imagingkit.stim.timing import roi_sample_times  # noqa: E402
from tests.stim.simdata import simulate_trials  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def scores(pred, truth):
    tp = int(np.sum((pred != 0) & (truth != 0)))
    fp = int(np.sum((pred != 0) & (truth == 0)))
    fn = int(np.sum((pred == 0) & (truth != 0)))
    return 2 * tp / max(2 * tp + fp + fn, 1), fp / max(int(np.sum(truth == 0)), 1)


def analyse(sim, subframe=True, test="wilcoxon"):
    times = roi_sample_times(
        sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s if subframe else None
    )
    trials = trial_responses(sim.dff, times, sim.events, WindowParams())
    return response_statistics(trials, StatsParams(test=test))


def bench_f1(trial_counts, snrs, n_rois, seeds):
    rows = []
    for n_trials in trial_counts:
        for snr in snrs:
            f1s, fprs = [], []
            for seed in seeds:
                sim = simulate_trials(n_rois=n_rois, n_trials=n_trials, snr=snr, seed=seed)
                f1, fpr = scores(analyse(sim)["direction"].to_numpy(), sim.truth.responsive)
                f1s.append(f1)
                fprs.append(fpr)
            rows.append(
                {"n_trials": n_trials, "snr": snr, "f1": float(np.mean(f1s)), "fpr": float(np.mean(fprs))}
            )
    return rows


def bench_latency(n_rois, seed):
    sim = simulate_trials(
        n_rois=n_rois, n_trials=40, snr=5.0, seed=seed, frac_excited=0.6, frac_inhibited=0.0
    )
    resp = sim.truth.responsive != 0
    top = resp & (sim.truth.roi_y < sim.n_lines / 4)
    bottom = resp & (sim.truth.roi_y >= 3 * sim.n_lines / 4)
    out = {"frame_period_ms": 1e3 / sim.frame_rate_hz, "n_lines": sim.n_lines}
    for subframe in (True, False):
        err = analyse(sim, subframe=subframe)["latency_s"].to_numpy() - sim.truth.latency_s
        key = "subframe" if subframe else "frame_start"
        for name, sel in (("top", top), ("bottom", bottom)):
            out[f"{key}_{name}_bias_ms"] = float(np.nanmean(err[sel]) * 1e3)
            out[f"{key}_{name}_mae_ms"] = float(np.nanmean(np.abs(err[sel])) * 1e3)
    return out


def bench_synth(n_frames, seeds):
    """The full imagingkit.synth chain through :func:`imagingkit.stim.analysis.analyse_responses`."""
    import pandas as pd

    from imagingkit.stim.analysis import analyse_responses
    from imagingkit.stim.artifacts import ArtifactParams
    from imagingkit.stim.sources import label_sham_trials
    from imagingkit.stim.triggers import PulseParams, events_from_triggers
    from imagingkit.synth import StimProtocol, simulate_functional
    from tests.stim.simdata import synth_traces

    rows, latency = [], []
    for seed in seeds:
        sim = simulate_functional(
            n_frames=n_frames, shape_yx=(96, 96), n_cells=40, frame_rate_hz=30.0, seed=seed,
            stim=StimProtocol(
                n_pulses=5, frequency_hz=20.0, inter_trial_interval_s=2.5, iti_jitter_s=0.3, sham_fraction=0.2
            ),
        )  # fmt: skip
        truth = sim.truth
        extracted = synth_traces(sim)
        params = PulseParams(max_gap_s=0.1)
        stim = events_from_triggers(truth.triggers[:, 1], truth.trigger_rate_hz, params)
        trial = events_from_triggers(truth.triggers[:, 2], truth.trigger_rate_hz, params)
        events = label_sham_trials(trial, stim)
        onset_err = np.abs(events["onset_s"].to_numpy() - truth.events["onset_s"].to_numpy())
        rois = pd.DataFrame(
            {"roi_id": np.arange(truth.n_rois), "y": truth.centroids_yx[:, 0], "x": truth.centroids_yx[:, 1],
             "radius_px": extracted.radius_px}
        )  # fmt: skip
        real, resp = truth.responsive, truth.responsive != 0
        clean = (real == 0) & (extracted.crosstalk < 0.05)
        for trace, margin in (("F", 0.0), ("corrected", 20.0), ("demixed", 20.0)):
            for masked in (True, False):
                for test in ("wilcoxon", "shuffle", "sham"):
                    result = analyse_responses(
                        getattr(extracted, trace), None, rois, events, recording=sim.recording,
                        window=WindowParams(input_kind="raw"), stats=StatsParams(test=test),
                        artifacts=ArtifactParams(margin_px=margin) if masked else None,
                    )  # fmt: skip
                    pred = result.table["direction"].to_numpy()
                    f1, fpr = scores(pred, real)
                    rows.append(
                        {
                            "seed": seed, "trace": trace, "masked": masked, "test": test, "f1": f1, "fpr": fpr,
                            "fpr_no_crosstalk": float(np.mean(pred[clean] != 0)),
                            "n_trials": result.report["n_trials"], "n_stim": int(resp.sum()),
                            "onset_max_error_us": float(onset_err.max() * 1e6),
                            "artifact_lines": result.report["artifact_lines"],
                            "artifact_lines_true": int(truth.artifact_mask.sum()),
                        }
                    )  # fmt: skip
            for method in ("fraction", "departure"):
                result = analyse_responses(
                    getattr(extracted, trace), None, rois, events, recording=sim.recording,
                    window=WindowParams(input_kind="raw"), stats=StatsParams(latency_method=method),
                    artifacts=ArtifactParams(margin_px=margin),
                )  # fmt: skip
                err = result.table["latency_s"].to_numpy() - truth.latency_s
                latency.append(
                    {"seed": seed, "trace": trace, "method": method,
                     "excited_median_ms": float(np.nanmedian(err[real > 0]) * 1e3),
                     "excited_mae_ms": float(np.nanmedian(np.abs(err[real > 0])) * 1e3),
                     "inhibited_median_ms": float(np.nanmedian(err[real < 0]) * 1e3)}
                )  # fmt: skip
        # noiseless calcium: the bias of the latency definition itself (no noise, no masking)
        for method in ("fraction", "departure"):
            result = analyse_responses(
                truth.calcium, None, rois, events, recording=sim.recording, artifacts=None,
                stats=StatsParams(latency_method=method),
            )  # fmt: skip
            err = result.table["latency_s"].to_numpy() - truth.latency_s
            latency.append(
                {"seed": seed, "trace": "noiseless calcium", "method": method,
                 "excited_median_ms": float(np.nanmedian(err[real > 0]) * 1e3),
                 "excited_mae_ms": float(np.nanmedian(np.abs(err[real > 0])) * 1e3),
                 "inhibited_median_ms": float(np.nanmedian(err[real < 0]) * 1e3)}
            )  # fmt: skip
    table = pd.DataFrame(rows).groupby(["trace", "masked", "test"], sort=False).mean(numeric_only=True)
    lat = pd.DataFrame(latency).groupby(["trace", "method"], sort=False).mean(numeric_only=True)
    return {
        "n_frames": n_frames,
        "seeds": list(seeds),
        "line_period_us": float(truth.line_period_s * 1e6),
        "detection": table.drop(columns="seed").reset_index().to_dict(orient="records"),
        "latency": lat.drop(columns="seed").reset_index().to_dict(orient="records"),
    }


def speed_data(n_rois=1000, n_trials=200, seed=0):
    rng = np.random.default_rng(seed)
    rate = 30.0
    iti = 3.5
    n_frames = int((n_trials * iti + 4) * rate)
    frame_times = np.arange(n_frames) / rate
    traces = rng.normal(0, 0.1, (n_rois, n_frames)).astype(np.float32)
    onsets = 2.0 + np.arange(n_trials) * iti
    responders = rng.random(n_rois) < 0.3
    kernel = np.exp(-np.arange(30) / 15.0) * 0.3
    for k in np.round(onsets * rate).astype(int):
        traces[responders, k + 1 : k + 31] += kernel
    times = roi_sample_times(frame_times, rng.uniform(0, 511, n_rois), line_period_s=1 / rate / 512)
    import pandas as pd

    events = pd.DataFrame({"onset_s": onsets, "duration_s": 0.01, "condition": "stim"})
    return traces, times, events


def bench_speed(repeats: int):
    traces, times, events = speed_data()
    window = WindowParams(baseline_s=(-1.0, 0.0), response_s=(0.0, 2.3), sample_period_s=1 / 30)
    out = {}
    for test in ("sign_flip", "wilcoxon", "shuffle"):
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            trials = trial_responses(traces, times, events, window)
            t1 = time.perf_counter()
            response_statistics(
                trials, StatsParams(test=test, n_permutations=999), traces=traces, sample_times_s=times
            )
            t2 = time.perf_counter()
            if t2 - t0 < best:
                best, split = t2 - t0, (t1 - t0, t2 - t1)
        out[f"{test}_total_s"] = best
        out[f"{test}_extract_s"], out[f"{test}_stats_s"] = split
    out["shape"] = list(trials.dff.shape)
    # baseline: scipy.stats.permutation_test called ROI by ROI (no vectorisation across ROIs)
    from scipy import stats

    from imagingkit.stim.stats import trial_deltas

    delta = trial_deltas(trials).astype(np.float64)
    n_loop = 25
    t0 = time.perf_counter()
    for i in range(n_loop):
        stats.permutation_test((delta[i],), np.sum, permutation_type="samples", n_resamples=999, rng=i)
    out["per_roi_loop_stats_s_extrapolated"] = (time.perf_counter() - t0) / n_loop * delta.shape[0]
    return out


def plot_f1(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    snrs = sorted({r["snr"] for r in rows})
    for snr in snrs:
        sel = [r for r in rows if r["snr"] == snr]
        axes[0].plot([r["n_trials"] for r in sel], [r["f1"] for r in sel], "o-", label=f"SNR {snr:g}")
        axes[1].plot([r["n_trials"] for r in sel], [r["fpr"] for r in sel], "o-", label=f"SNR {snr:g}")
    axes[0].axhline(0.95, color="k", ls=":", lw=0.8)
    axes[1].axhline(0.05, color="k", ls=":", lw=0.8)
    for ax, label in zip(axes, ("F1 (responders)", "false-positive rate (non-responders)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("trials")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[0].set_title("responder detection, Wilcoxon + BH 5 % FDR")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, < 60 s")
    args = parser.parse_args(argv)
    quick = args.quick
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"quick": quick, "python": platform.python_version(), "machine": platform.machine()}
    t = time.perf_counter()
    result["f1_grid"] = bench_f1(
        (10, 20, 40) if quick else (5, 10, 20, 40, 80),
        (0.25, 0.5, 1.0) if quick else (0.125, 0.25, 0.5, 1.0, 2.0),
        n_rois=150 if quick else 300,
        seeds=(0,) if quick else (0, 1, 2),
    )
    result["latency"] = bench_latency(n_rois=200 if quick else 600, seed=1)
    result["synth"] = bench_synth(1800 if quick else 3000, seeds=(4,) if quick else (0, 1, 2, 3, 4, 5))
    result["speed"] = bench_speed(repeats=1 if quick else 3)
    result["wall_s"] = time.perf_counter() - t
    plot_f1(result["f1_grid"], RESULTS / "bench_stim_f1.png")
    (RESULTS / "bench_stim.json").write_text(json.dumps(result, indent=2))

    print("\nResponder detection (Wilcoxon + BH 5 % FDR), mean over seeds")
    print(f"{'trials':>7} {'SNR':>5} {'F1':>6} {'FPR':>6}")
    for r in result["f1_grid"]:
        print(f"{r['n_trials']:>7} {r['snr']:>5g} {r['f1']:>6.3f} {r['fpr']:>6.3f}")
    lat = result["latency"]
    print(
        f"\nLatency error (ms; frame period {lat['frame_period_ms']:.1f} ms)   bias top / bottom   MAE top / bottom"
    )
    for key in ("subframe", "frame_start"):
        print(
            f"  {key:<12} {lat[f'{key}_top_bias_ms']:>8.1f} / {lat[f'{key}_bottom_bias_ms']:<8.1f}"
            f" {lat[f'{key}_top_mae_ms']:>8.1f} / {lat[f'{key}_bottom_mae_ms']:<8.1f}"
        )
    syn = result["synth"]
    print(
        f"\nimagingkit.synth recordings ({syn['n_frames']} frames, seeds {syn['seeds']}): responders, mean over seeds"
    )
    print(f"  {'trace':<10} {'masked':<7} {'test':<9} {'F1':>6} {'FPR':>6} {'FPR clean':>9} {'trials':>6}")
    for r in syn["detection"]:
        print(
            f"  {r['trace']:<10} {r['masked']!s:<7} {r['test']:<9} {r['f1']:>6.3f} {r['fpr']:>6.3f}"
            f" {r['fpr_no_crosstalk']:>9.3f} {r['n_trials']:>6.1f}"
        )
    r0 = syn["detection"][0]
    print(
        f"  onsets from 10 kHz triggers: max error {r0['onset_max_error_us']:.0f} us (line {syn['line_period_us']:.0f} us);"
        f" artifact lines {r0['artifact_lines']:.0f} found / {r0['artifact_lines_true']:.0f} true"
    )
    print(
        f"  latency error (ms)  {'trace':<18} {'method':<10} {'exc median':>10} {'exc MAE':>8} {'inh median':>10}"
    )
    for r in syn["latency"]:
        print(
            f"  {'':<19} {r['trace']:<18} {r['method']:<10} {r['excited_median_ms']:>10.1f}"
            f" {r['excited_mae_ms']:>8.1f} {r['inhibited_median_ms']:>10.1f}"
        )
    sp = result["speed"]
    print(f"\nSpeed {sp['shape']} (ROIs, trials, samples), best of runs")
    for test in ("sign_flip", "wilcoxon", "shuffle"):
        print(
            f"  {test:<10} total {sp[f'{test}_total_s']:.2f} s (extract {sp[f'{test}_extract_s']:.2f} s,"
            f" stats {sp[f'{test}_stats_s']:.2f} s)"
        )
    print(
        f"  per-ROI scipy.permutation_test loop (baseline, stats only): {sp['per_roi_loop_stats_s_extrapolated']:.1f} s"
    )
    print(f"\nwrote {RESULTS / 'bench_stim.json'} and bench_stim_f1.png in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
