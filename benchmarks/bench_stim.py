"""Benchmark imagingkit.stim: responder detection, latency, sub-frame timing, speed.

Run: ``python benchmarks/bench_stim.py [--quick]`` (from the repository root).
Prints a table and writes ``benchmarks/results/bench_stim.json`` and
``benchmarks/results/bench_stim_f1.png``.

1. F1 of responder detection (Wilcoxon + Benjamini-Hochberg at 5 % FDR) and
   false-positive rate among non-responders vs number of trials and SNR
   (response peak dF/F / per-frame noise SD), on traces simulated at each ROI's
   true sub-frame sample time with GCaMP6f kernels (tests/stim/simdata.py).
2. Latency: error with and without sub-frame timing for ROIs in the top and
   bottom quarter of the frame; bias, spread and coverage of the three onset
   methods (``departure``, ``fraction``, ``model``) side by side on the same
   simulated bursts (one transient per burst, or one per pulse) vs SNR, and
   the spurious latency change between two sessions whose responses differ
   4x (same cells, same latencies).
3. Full :mod:`imagingkit.synth` recordings (movie, light artifacts, DAQ
   triggers, neuropil, overlapping somata) through
   :func:`imagingkit.stim.analysis.analyse_responses`: events from raw
   triggers, artifact lines from the movie, responders (Wilcoxon, shuffled-
   event-times permutation, sham permutation) on raw F, neuropil-corrected
   F - 0.7 Fneu and demixed traces (imagingkit.neurons.extract_traces with the
   true footprints, tests/stim/simdata.py), with and without the artifact mask;
   FPR also among non-responders without cross-talk from a responder; latency
   error of the three onset methods (and of ``model`` with a wrong kernel) on
   each trace and on noiseless calcium, by tercile of the measured effect
   size, and the latency change to a second session of the same cells with
   2x larger responses (``learning_gain``).
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


def analyse(sim, subframe=True, test="wilcoxon", **stats):
    times = roi_sample_times(
        sim.frame_times_s, sim.truth.roi_y, line_period_s=sim.line_period_s if subframe else None
    )
    trials = trial_responses(sim.dff, times, sim.events, WindowParams())
    return response_statistics(trials, StatsParams(test=test, **stats), sample_times_s=times)


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


#: onset methods compared side by side: name -> StatsParams fields
LATENCY_VARIANTS = {
    "departure": {"latency_method": "departure"},
    "fraction": {"latency_method": "fraction"},
    "model": {"latency_method": "model"},
}
#: the model with the wrong response shape: one transient per event, or a mis-set GCaMP6f kernel
MODEL_VARIANTS = {
    "model per_event": {"latency_method": "model", "latency_transients": "per_event"},
    "model decay 0.4 s": {"latency_method": "model", "kernel_decay_s": 0.4},
    "model decay 0.8 s": {"latency_method": "model", "kernel_decay_s": 0.8},
    "model rise 0.03 s": {"latency_method": "model", "kernel_rise_s": 0.03},
    "model rise 0.08 s": {"latency_method": "model", "kernel_rise_s": 0.08},
}


def latency_summary(err_s) -> dict:
    """Median (bias), IQR (spread), median |error| and coverage (finite fraction) of latency errors, in ms."""
    err = np.asarray(err_s, dtype=float) * 1e3
    ok = err[np.isfinite(err)]
    if ok.size == 0:
        return {"median_ms": np.nan, "iqr_ms": np.nan, "mae_ms": np.nan, "coverage": 0.0, "n": 0}
    q25, q50, q75 = np.percentile(ok, [25, 50, 75])
    return {
        "median_ms": float(q50),
        "iqr_ms": float(q75 - q25),
        "mae_ms": float(np.median(np.abs(ok))),
        "coverage": float(ok.size / max(err.size, 1)),
        "n": int(ok.size),
    }


def bench_latency(n_rois, seed):
    """Sub-frame vs frame-start timing, top and bottom quarter of the frame (single-transient bursts)."""
    sim = simulate_trials(
        n_rois=n_rois, n_trials=40, snr=5.0, seed=seed, frac_excited=0.6, frac_inhibited=0.0
    )
    resp = sim.truth.responsive != 0
    top = resp & (sim.truth.roi_y < sim.n_lines / 4)
    bottom = resp & (sim.truth.roi_y >= 3 * sim.n_lines / 4)
    out = {"frame_period_ms": 1e3 / sim.frame_rate_hz, "n_lines": sim.n_lines}
    methods = {
        "departure": {"latency_method": "departure"},
        "model per_event": MODEL_VARIANTS["model per_event"],
    }
    for method, stats in methods.items():
        for subframe in (True, False):
            err = analyse(sim, subframe=subframe, **stats)["latency_s"].to_numpy() - sim.truth.latency_s
            key = f"{method}|{'subframe' if subframe else 'frame_start'}"
            for name, sel in (("top", top), ("bottom", bottom)):
                out[f"{key}|{name}_bias_ms"] = float(np.nanmean(err[sel]) * 1e3)
                out[f"{key}|{name}_mae_ms"] = float(np.nanmean(np.abs(err[sel])) * 1e3)
    return out


def bench_latency_methods(n_rois, seeds, snrs, n_trials=40):
    """Onset methods side by side on simulated 45 ms bursts (10 pulses at 200 Hz) vs SNR.

    Two response models: one GCaMP6f transient per burst, or one per pulse. Also
    the latency change between two sessions of the same cells (same latencies,
    same noise) whose responses differ 4x (gain 0.5 vs 2, SNR 2 at gain 1).
    """
    methods = {**LATENCY_VARIANTS, "model per_event": MODEL_VARIANTS["model per_event"]}
    rows, shifts = [], []
    for per_pulse in (False, True):
        response = "transient per pulse" if per_pulse else "one transient per burst"
        for snr in snrs:
            errs = {m: [] for m in methods}
            for seed in seeds:
                sim = simulate_trials(
                    n_rois=n_rois, n_trials=n_trials, snr=snr, seed=seed, frac_excited=0.6,
                    frac_inhibited=0.0, per_pulse=per_pulse,
                )  # fmt: skip
                excited = sim.truth.responsive > 0
                for m, stats in methods.items():
                    err = analyse(sim, **stats)["latency_s"].to_numpy() - sim.truth.latency_s
                    errs[m].append(err[excited])
            for m in methods:
                rows.append(
                    {
                        "response": response,
                        "snr": snr,
                        "method": m,
                        **latency_summary(np.concatenate(errs[m])),
                    }
                )
        lat = {m: [] for m in methods}
        for seed in seeds:
            base = simulate_trials(
                n_rois=n_rois, n_trials=n_trials, snr=2.0, seed=seed, frac_excited=0.6, frac_inhibited=0.0,
                per_pulse=per_pulse,
            )  # fmt: skip
            sessions = [
                simulate_trials(
                    n_rois=n_rois,
                    n_trials=n_trials,
                    snr=2.0,
                    seed=100 + seed,
                    gain=gain,
                    truth=base.truth,
                    per_pulse=per_pulse,
                )  # fmt: skip
                for gain in (0.5, 2.0)
            ]
            excited = base.truth.responsive > 0
            for m, stats in methods.items():
                a, b = (analyse(x, **stats)["latency_s"].to_numpy()[excited] for x in sessions)
                lat[m].append(b - a)
        for m in methods:
            d = np.concatenate(lat[m]) * 1e3
            d = d[np.isfinite(d)]
            shifts.append(
                {"response": response, "method": m, "median_shift_ms": float(np.median(d)),
                 "iqr_shift_ms": float(np.subtract(*np.percentile(d, [75, 25]))), "n": int(d.size)}
            )  # fmt: skip
    return {
        "n_rois": n_rois,
        "seeds": list(seeds),
        "n_trials": n_trials,
        "by_snr": rows,
        "session_shift": shifts,
    }


def _synth_sim(n_frames, seed, session=0, learning_gain=1.0):
    from imagingkit.synth import StimProtocol, simulate_functional

    return simulate_functional(
        n_frames=n_frames, shape_yx=(96, 96), n_cells=40, frame_rate_hz=30.0, seed=seed, cell_seed=seed,
        session_index=session, learning_gain=learning_gain,
        stim=StimProtocol(
            n_pulses=5, frequency_hz=20.0, inter_trial_interval_s=2.5, iti_jitter_s=0.3, sham_fraction=0.2
        ),
    )  # fmt: skip


def _synth_events(truth):
    from imagingkit.stim.sources import label_sham_trials
    from imagingkit.stim.triggers import PulseParams, events_from_triggers

    params = PulseParams(max_gap_s=0.1)
    stim = events_from_triggers(truth.triggers[:, 1], truth.trigger_rate_hz, params)
    trial = events_from_triggers(truth.triggers[:, 2], truth.trigger_rate_hz, params)
    return label_sham_trials(trial, stim)


def _latency_rows(result, truth, **labels) -> list[dict]:
    """Per-cell latency error of every onset method (and model variant) on one analysis's trials."""
    rows = []
    cells = np.flatnonzero(truth.responsive != 0)
    for method, stats in {**LATENCY_VARIANTS, **MODEL_VARIANTS}.items():
        table = response_statistics(result.trials, StatsParams(**stats), sample_times_s=result.sample_times_s)
        latency = table["latency_s"].to_numpy()
        effect = np.abs(table["effect_size"].to_numpy())
        for i in cells:
            rows.append(
                {**labels, "method": method, "roi": int(i), "sign": int(truth.responsive[i]),
                 "latency_s": float(latency[i]), "error_s": float(latency[i] - truth.latency_s[i]),
                 "effect_size": float(effect[i])}
            )  # fmt: skip
    return rows


def _summarise_synth_latency(cells) -> dict:
    """Bias/spread per trace and method, by effect-size tercile, and the session-to-session shift."""
    first = cells[cells["session"] == 0]
    exc = first[first["sign"] > 0]
    overall = []
    for (trace, method), g in exc.groupby(["trace", "method"], sort=False):
        inh = first[(first["sign"] < 0) & (first["trace"] == trace) & (first["method"] == method)]
        overall.append(
            {"trace": trace, "method": method, **latency_summary(g["error_s"]),
             "inhibited_median_ms": float(np.nanmedian(inh["error_s"]) * 1e3)}
        )  # fmt: skip
    terciles = []
    for trace, g in exc.groupby("trace", sort=False):
        ref = g[g["method"] == "departure"]["effect_size"]
        edges = np.nanpercentile(ref, [100 / 3, 200 / 3])
        for method, h in g.groupby("method", sort=False):
            k = np.digitize(h["effect_size"], edges)
            for b in range(3):
                sel = h[k == b]
                terciles.append(
                    {"trace": trace, "method": method, "tercile": b + 1,
                     "effect_size_median": float(np.median(sel["effect_size"])), **latency_summary(sel["error_s"])}
                )  # fmt: skip
    shifts = []
    later = cells[(cells["session"] == 1) & (cells["sign"] > 0)]
    if len(later):
        keys = ["seed", "trace", "method", "roi"]
        pair = exc.merge(later, on=keys, suffixes=("_0", "_1"))
        pair["shift_ms"] = (pair["latency_s_1"] - pair["latency_s_0"]) * 1e3
        for (trace, method), g in pair.groupby(["trace", "method"], sort=False):
            d = g["shift_ms"].to_numpy()
            d = d[np.isfinite(d)]
            shifts.append(
                {"trace": trace, "method": method, "median_shift_ms": float(np.median(d)) if d.size else np.nan,
                 "iqr_shift_ms": float(np.subtract(*np.percentile(d, [75, 25]))) if d.size else np.nan,
                 "n": int(d.size)}
            )  # fmt: skip
    return {"overall": overall, "by_effect_tercile": terciles, "session_shift": shifts}


def bench_synth(n_frames, seeds, learning_gain=2.0):
    """The full imagingkit.synth chain through :func:`imagingkit.stim.analysis.analyse_responses`."""
    import pandas as pd

    from imagingkit.stim.analysis import analyse_responses
    from imagingkit.stim.artifacts import ArtifactParams
    from tests.stim.simdata import synth_traces

    rows, cells = [], []
    for seed in seeds:
        sim = _synth_sim(n_frames, seed)
        truth = sim.truth
        extracted = synth_traces(sim)
        events = _synth_events(truth)
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
                    if masked and test == "wilcoxon":  # latency of every method on the same trials
                        cells += _latency_rows(result, truth, seed=seed, session=0, trace=trace)
        # noiseless calcium: the bias of the latency definition itself (no noise, no masking)
        result = analyse_responses(truth.calcium, None, rois, events, recording=sim.recording, artifacts=None)
        cells += _latency_rows(result, truth, seed=seed, session=0, trace="noiseless calcium")
        # a later session of the same cells (same latencies) with larger responses: true shift 0
        later = _synth_sim(n_frames, seed, session=1, learning_gain=learning_gain)
        assert np.allclose(later.truth.latency_s, truth.latency_s, equal_nan=True)
        extracted = synth_traces(later)
        for trace in ("corrected", "demixed"):
            result = analyse_responses(
                getattr(extracted, trace), None, rois, _synth_events(later.truth), recording=later.recording,
                window=WindowParams(input_kind="raw"), artifacts=ArtifactParams(margin_px=20.0),
            )  # fmt: skip
            cells += _latency_rows(result, later.truth, seed=seed, session=1, trace=trace)
    table = pd.DataFrame(rows).groupby(["trace", "masked", "test"], sort=False).mean(numeric_only=True)
    return {
        "n_frames": n_frames,
        "seeds": list(seeds),
        "learning_gain_session_1": learning_gain,
        "line_period_us": float(truth.line_period_s * 1e6),
        "detection": table.drop(columns="seed").reset_index().to_dict(orient="records"),
        "latency": _summarise_synth_latency(pd.DataFrame(cells)),
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
    result["latency_methods"] = bench_latency_methods(
        n_rois=150 if quick else 400,
        seeds=(0,) if quick else (0, 1, 2),
        snrs=(1.0, 4.0) if quick else (0.5, 1.0, 2.0, 4.0, 8.0),
    )
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
        f"\nLatency error, single-transient bursts (ms; frame period {lat['frame_period_ms']:.1f} ms)"
        "   bias top / bottom   MAE top / bottom"
    )
    for method in ("departure", "model per_event"):
        for key in ("subframe", "frame_start"):
            k = f"{method}|{key}|"
            print(
                f"  {method:<16} {key:<12} {lat[k + 'top_bias_ms']:>8.1f} / {lat[k + 'bottom_bias_ms']:<8.1f}"
                f" {lat[k + 'top_mae_ms']:>8.1f} / {lat[k + 'bottom_mae_ms']:<8.1f}"
            )
    lm = result["latency_methods"]
    print(
        f"\nLatency error of excited cells vs SNR, simulated 45 ms bursts ({lm['n_rois']} ROIs x seeds {lm['seeds']},"
        f" {lm['n_trials']} trials): median (bias) / IQR / coverage"
    )
    methods = list(dict.fromkeys(r["method"] for r in lm["by_snr"]))
    for response in dict.fromkeys(r["response"] for r in lm["by_snr"]):
        print(f"  {response:<24}" + "".join(f"{m:>24}" for m in methods))
        for snr in dict.fromkeys(r["snr"] for r in lm["by_snr"]):
            cells = {r["method"]: r for r in lm["by_snr"] if r["response"] == response and r["snr"] == snr}
            print(
                f"  {'SNR ' + format(snr, 'g'):<24}"
                + "".join(
                    f"{cells[m]['median_ms']:>9.1f} /{cells[m]['iqr_ms']:>5.1f} /{cells[m]['coverage']:>5.2f}"
                    for m in methods
                )
            )
        shifts = {r["method"]: r for r in lm["session_shift"] if r["response"] == response}
        print(
            f"  {'session shift, 4x amp.':<24}"
            + "".join(
                f"{shifts[m]['median_shift_ms']:>9.1f} /{shifts[m]['iqr_shift_ms']:>5.1f} /{'':>5}"
                for m in methods
            )
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
    sl = syn["latency"]
    print(
        f"  latency error of excited cells (ms), masked traces, cells pooled over seeds:"
        f"\n  {'trace':<18} {'method':<18} {'median':>7} {'IQR':>6} {'|err|':>6} {'cover':>6} {'inh. median':>11}"
    )
    for r in sl["overall"]:
        print(
            f"  {r['trace']:<18} {r['method']:<18} {r['median_ms']:>7.1f} {r['iqr_ms']:>6.1f} {r['mae_ms']:>6.1f}"
            f" {r['coverage']:>6.2f} {r['inhibited_median_ms']:>11.1f}"
        )
    print("  median error (ms) by tercile of the measured effect size (low / mid / high)")
    for trace in ("F", "demixed"):
        for method in ("departure", "fraction", "model"):
            t3 = [r for r in sl["by_effect_tercile"] if r["trace"] == trace and r["method"] == method]
            print(
                f"  {trace:<18} {method:<18} "
                + " / ".join(f"{r['median_ms']:.1f} (d {r['effect_size_median']:.1f})" for r in t3)
            )
    print(
        f"  latency change to session 1 (same cells and latencies, responses x{syn['learning_gain_session_1']:g}),"
        " median / IQR (ms), truth 0"
    )
    for r in sl["session_shift"]:
        if r["method"] in LATENCY_VARIANTS:
            print(
                f"  {r['trace']:<18} {r['method']:<18} {r['median_shift_ms']:>7.1f} {r['iqr_shift_ms']:>6.1f}"
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
