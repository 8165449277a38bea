"""``imagingkit stim responses``: events + traces -> per-ROI stimulus responses.

Reads ``NEURONS_OUTDIR/traces.npz`` (``dff`` or ``F`` (n_rois, n_frames),
``time_s``) and ``NEURONS_OUTDIR/rois.csv`` (``roi_id, y, x`` and optionally
``radius_px``, ``plane``), takes events from an events table or from raw
triggers, and writes into OUTDIR (atomically): ``events.csv`` (with
``frame``), ``responses.csv``, ``trial_responses.npz``, ``responses.png`` and
``report.json``. Trigger-file formats: see :mod:`imagingkit.stim.triggers`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit._atomic import atomic_dir
from imagingkit.errors import DataError, FileFormatError, MissingFileError, ParameterError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("stim", help="optogenetic stimulus-response analysis")
    sub = parser.add_subparsers(dest="stim_command", metavar="SUBCOMMAND")
    p = sub.add_parser(
        "responses",
        help="align traces to stimulation events and test every ROI",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--traces", required=True, type=Path, help="neurons output folder (traces.npz, rois.csv)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events", type=Path, help="events table (CSV/TSV) with onset_s on the imaging clock"
    )
    source.add_argument("--triggers", type=Path, help="trigger file (.npy/.npz/.csv/.h5)")
    p.add_argument("--stim-channel", help="trigger channel of the light command / stim TTL")
    p.add_argument(
        "--frame-channel", help="trigger channel of the frame clock (puts triggers on the imaging clock)"
    )
    p.add_argument(
        "--trial-channel", help="trigger channel marking every trial; trials without light become sham"
    )
    p.add_argument(
        "--trigger-rate", type=float, help="trigger sample rate (Hz) when the file does not store it"
    )
    p.add_argument("--power-scale", type=float, help="mW per trigger unit of an analog light command")
    p.add_argument(
        "--max-gap", type=float, default=0.5, help="pulses closer than this (s) form one train [0.5]"
    )
    p.add_argument(
        "--recording", type=Path, help="the movie: frame times, line period, light-artifact detection"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--baseline", default="-1,0", help="baseline window start,end in s [-1,0]")
    p.add_argument("--window", default="0,1", help="response window start,end in s [0,1]")
    p.add_argument("--trace", default="dff", choices=("dff", "F"), help="which trace of traces.npz [dff]")
    p.add_argument("--test", default="wilcoxon", choices=("wilcoxon", "sign_flip", "sham"))
    p.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate [0.05]")
    p.add_argument("--overlap", default="error", choices=("error", "drop"), help="overlapping trials [error]")
    p.add_argument("--line-period", type=float, help="line period (s) when there is no --recording")
    p.add_argument("--artifact-z", type=float, default=5.0, help="robust z of a light-contaminated line [5]")
    p.add_argument("--no-artifacts", action="store_true", help="skip light-artifact detection")
    p.set_defaults(func=run_responses)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _window(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise ParameterError(f"--{name} must be two numbers 'start,end' in seconds, got {text!r}") from exc
    return a, b


def load_neurons_outdir(
    folder: Path, trace: str = "dff"
) -> tuple[np.ndarray, np.ndarray | None, pd.DataFrame]:
    """(n_rois, T) traces, (T,) time_s (or None) and the ROI table of a neurons output folder."""
    npz, csv = folder / "traces.npz", folder / "rois.csv"
    for f in (npz, csv):
        if not f.is_file():
            raise MissingFileError(
                f"{f}: not found (expected a neurons output folder with traces.npz and rois.csv)"
            )
    with np.load(npz, allow_pickle=False) as data:
        if trace not in data:
            raise FileFormatError(f"{npz}: no array {trace!r} (has {list(data.keys())})")
        traces = np.asarray(data[trace], dtype=np.float32)
        time_s = np.asarray(data["time_s"], dtype=float) if "time_s" in data else None
    rois = pd.read_csv(csv)
    missing = {"roi_id", "y", "x"} - set(rois.columns)
    if missing:
        raise FileFormatError(f"{csv}: missing column(s) {sorted(missing)}")
    if traces.ndim != 2 or traces.shape[0] != len(rois):
        raise FileFormatError(f"{npz}: {trace} has shape {traces.shape} but {csv} lists {len(rois)} ROIs")
    return traces, time_s, rois


def run_responses(args: argparse.Namespace) -> int:
    from imagingkit.stim import artifacts, clock, figures, responses, sources, stats, timing, triggers
    from imagingkit.stim import events as ev

    baseline, window = _window(args.baseline, "baseline"), _window(args.window, "window")
    wparams = responses.WindowParams(
        baseline_s=baseline,
        response_s=window,
        input_kind="raw" if args.trace == "F" else "dff",
        overlap=args.overlap,
    )
    sparams = stats.StatsParams(test=args.test, alpha=args.alpha)
    traces, time_s, rois = load_neurons_outdir(args.traces, args.trace)
    n_rois, n_frames = traces.shape
    report: dict = {"n_rois": n_rois, "n_frames": n_frames}

    # imaging clock: frame times, line period
    recording = None
    line_period, bidirectional, frame_shape = args.line_period, False, None
    if args.recording is not None:
        from imagingkit.io import open_recording

        recording = open_recording(args.recording)
        if recording.n_frames != n_frames:
            raise DataError(
                f"{args.recording}: the recording has {recording.n_frames} frames but {args.traces / 'traces.npz'} "
                f"has {n_frames}; they must come from the same movie"
            )
        frame_times = clock.recording_frame_times(recording.frame_times_s, n_frames, recording.frame_rate_hz)
        line_period = recording.line_period_s if recording.line_period_s else line_period
        bidirectional = bool(recording.bidirectional)
        frame_shape = recording.frame_shape
    elif time_s is not None:
        frame_times = np.asarray(time_s, dtype=float)[:, None]
    else:
        raise DataError(f"{args.traces / 'traces.npz'} has no time_s and no --recording was given")
    report["sub_frame_timing"] = line_period is not None
    report["line_period_s"] = line_period

    # events
    if args.events is not None:
        events = sources.read_event_table(args.events)
        report["clock"] = "events table taken as on the imaging clock"
    else:
        if not args.stim_channel:
            raise ParameterError("--triggers needs --stim-channel")
        data = triggers.read_trigger_file(args.triggers, rate_hz=args.trigger_rate)
        pparams = triggers.PulseParams(max_gap_s=args.max_gap)
        events = triggers.events_from_triggers(
            data.channel(args.stim_channel),
            data.rate_hz,
            pparams,
            t0_s=data.t0_s,
            power_mw_per_unit=args.power_scale,
            source=f"{args.triggers}:{args.stim_channel}",
        )
        if args.trial_channel:
            trials = triggers.events_from_triggers(
                data.channel(args.trial_channel),
                data.rate_hz,
                pparams,
                t0_s=data.t0_s,
                source=f"{args.triggers}:{args.trial_channel}",
            )
            events = sources.label_sham_trials(trials, events)
        if args.frame_channel:
            onsets = clock.frame_times_from_clock(
                data.channel(args.frame_channel),
                data.rate_hz,
                n_frames_expected=frame_times.size,
                t0_s=data.t0_s,
                source=f"{args.triggers}:{args.frame_channel}",
            )
            fit = clock.fit_clock(onsets, np.sort(frame_times.ravel()), source=str(args.triggers))
            events = clock.align_events(events, fit)
            report["clock"] = fit.report()
        else:
            report["clock"] = "no frame channel: trigger clock taken as the imaging clock"
    report["n_events_total"] = len(events)
    selection = ev.select_in_recording(events, frame_times, window_s=wparams.span_s, source="events")
    events = selection.events
    report.update(n_events_before_start=selection.n_before, n_events_after_end=selection.n_after)
    if selection.message():
        print(f"imagingkit stim: {selection.message()}")

    # sub-frame sample times and light artifacts
    plane = rois["plane"].to_numpy(dtype=int) if "plane" in rois.columns else None
    roi_y, roi_x = rois["y"].to_numpy(dtype=float), rois["x"].to_numpy(dtype=float)
    sample_times = timing.roi_sample_times(
        frame_times,
        roi_y,
        line_period_s=line_period,
        roi_x_px=roi_x,
        n_pixels_x=None if frame_shape is None else frame_shape[1],
        bidirectional=bidirectional,
        roi_plane=plane,
    )
    masked = traces
    report["artifact_lines"] = 0
    if recording is not None and line_period and not args.no_artifacts:
        aparams = artifacts.ArtifactParams(z_threshold=args.artifact_z)
        radius = rois["radius_px"].to_numpy(dtype=float) if "radius_px" in rois.columns else np.zeros(n_rois)
        roi_mask = np.zeros(traces.shape, dtype=bool)
        for z in range(recording.n_planes):
            brightness = artifacts.line_brightness(recording, plane=z, chunk_frames=aparams.chunk_frames)
            lines = timing.line_times(frame_times, brightness.shape[1], line_period, plane=z)
            mask = artifacts.detect_light_artifacts(brightness, events, lines, line_period, aparams)
            report["artifact_lines"] += int(mask.sum())
            in_plane = (plane if plane is not None else np.zeros(n_rois, dtype=int)) == z
            roi_mask[in_plane] = artifacts.roi_artifact_mask(mask, roi_y - radius, roi_y + radius)[in_plane]
        report["artifact_samples_masked"] = int(roi_mask.sum())
        masked = artifacts.apply_mask(traces, roi_mask)

    trials = responses.trial_responses(masked, sample_times, events, wparams, source=str(args.traces))
    table = stats.response_statistics(trials, sparams, roi_ids=rois["roi_id"].to_numpy())
    report.update(
        n_trials=len(trials.events),
        n_trials_dropped_overlap=trials.n_dropped_overlap,
        n_trials_fully_masked=trials.n_masked_trials,
        n_responsive=int(table["responsive"].sum()),
        n_excited=int((table["direction"] > 0).sum()),
        n_inhibited=int((table["direction"] < 0).sum()),
        test=args.test,
        alpha=args.alpha,
    )
    events_out = ev.assign_frames(trials.events, frame_times)
    trial_mean = trials.mean(condition=None)
    order = responses.sort_by_response(trial_mean, trials.time_s, wparams.response_s)
    with atomic_dir(args.output) as tmp:
        events_out.to_csv(tmp / "events.csv", index=False)
        cols = list(stats.RESPONSE_COLUMNS) + [c for c in table.columns if c not in stats.RESPONSE_COLUMNS]
        table[cols].to_csv(tmp / "responses.csv", index=False)
        np.savez_compressed(
            tmp / "trial_responses.npz",
            dff=trials.dff,
            time_s=trials.time_s,
            roi_id=rois["roi_id"].to_numpy(),
            event_id=trials.events["event_id"].to_numpy(),
            condition=trials.events["condition"].to_numpy().astype(str),
        )
        figures.plot_responses(
            trial_mean,
            trials.time_s,
            table,
            np.c_[roi_y, roi_x],
            tmp / "responses.png",
            order=order,
            frame_shape=frame_shape,
            title=str(args.traces),
        )
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print(
        f"imagingkit stim: {report['n_trials']} trials, {report['n_responsive']}/{n_rois} ROIs responsive "
        f"({report['n_excited']} excited, {report['n_inhibited']} inhibited) -> {args.output}"
    )
    return 0
