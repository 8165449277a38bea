"""``imagingkit stim responses``: events + traces -> per-ROI stimulus responses.

Reads ``NEURONS_OUTDIR/traces.npz`` (``dff``, ``F``, ``Fneu`` (n_rois, n_frames), ``time_s``)
and ``NEURONS_OUTDIR/rois.csv`` (``roi_id, y, x`` and optionally ``radius_px``, ``plane``),
takes events from an events table / NWB file / Scanbox .mat (``--events``), raw triggers
(``--triggers``) or the recording's ScanImage auxiliary triggers (``--events-from
scanimage-aux[:auxTrigger0]``), and writes into OUTDIR (atomically): ``events.csv`` (with
``frame``), ``responses.csv``, ``trial_responses.npz``, ``responses.png`` and ``report.json``.
Trigger-file formats: see :mod:`imagingkit.stim.triggers`. The analysis itself is
:mod:`imagingkit.stim.analysis`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagingkit.errors import ParameterError
from imagingkit.stim.artifacts import NEUROPIL_MARGIN_PX


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
        "--events",
        type=Path,
        help="events table (CSV/TSV, onset_s on the imaging clock), NWB file (.nwb: OptogeneticSeries) "
        "or Scanbox info file (.mat: TTL frame/line records)",
    )
    source.add_argument("--triggers", type=Path, help="trigger file (.npy/.npz/.csv/.h5)")
    source.add_argument(
        "--events-from",
        metavar="scanimage-aux[:CHANNEL]",
        help="ScanImage auxiliary-trigger timestamps of --recording (default channel auxTrigger0)",
    )
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
    p.add_argument("--hdf5-group", help="HDF5 group of the trigger channels [root]")
    p.add_argument("--power-scale", type=float, help="mW per trigger unit of an analog light command")
    p.add_argument("--nwb-series", help="name of the OptogeneticSeries in an NWB --events file [all]")
    p.add_argument(
        "--pulse-duration",
        type=float,
        default=0.0,
        help="light-pulse length (s) for events from pulse-start timestamps (scanimage-aux) [0]",
    )
    p.add_argument(
        "--max-gap", type=float, default=0.5, help="pulses closer than this (s) form one train [0.5]"
    )
    p.add_argument(
        "--recording",
        type=Path,
        help="the movie (any format, several planes allowed): frame times, line period, light artifacts",
    )
    p.add_argument(
        "--field", type=int, help="ScanImage multi-ROI --recording: the field the ROIs are in (0-based)"
    )
    p.add_argument("--plane", type=int, default=0, help="plane of ROIs when rois.csv has no plane column [0]")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--baseline", default="-1,0", help="baseline window start,end in s [-1,0]")
    p.add_argument("--window", default="0,1", help="response window start,end in s [0,1]")
    p.add_argument(
        "--trace",
        default="dff",
        choices=("dff", "F", "F-neuropil"),
        help="dff of traces.npz (neuropil-corrected), raw F, or F - r * Fneu [dff]",
    )
    p.add_argument("--neuropil-coefficient", type=float, default=0.7, help="r of --trace F-neuropil [0.7]")
    p.add_argument("--test", default="wilcoxon", choices=("wilcoxon", "sign_flip", "sham", "shuffle"))
    p.add_argument("--permutations", type=int, default=999, help="resamples of the permutation tests [999]")
    p.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate [0.05]")
    p.add_argument(
        "--latency",
        default="model",
        choices=("model", "departure", "fraction"),
        help="onset: fit of the indicator kernel at every light pulse, first departure from the baseline "
        "noise, or 10 %% of the peak [model]",
    )
    p.add_argument("--overlap", default="error", choices=("error", "drop"), help="overlapping trials [error]")
    p.add_argument("--line-period", type=float, help="line period (s) when there is no --recording")
    p.add_argument("--artifact-z", type=float, default=5.0, help="robust z of a light-contaminated line [5]")
    p.add_argument(
        "--artifact-margin",
        type=float,
        help=f"rows beyond each ROI whose light artifact masks it [0 for F, {NEUROPIL_MARGIN_PX:g} for "
        "traces with neuropil subtraction]",
    )
    p.add_argument("--no-artifacts", action="store_true", help="skip light-artifact detection")
    p.set_defaults(func=run_responses)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _window(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise ParameterError(f"--{name} must be two numbers 'start,end' in seconds, got {text!r}") from exc
    return a, b


def _event_source(args: argparse.Namespace):
    from imagingkit.stim.analysis import EventSource

    channels = dict(
        stim_channel=args.stim_channel,
        frame_channel=args.frame_channel,
        trial_channel=args.trial_channel,
        trigger_rate_hz=args.trigger_rate,
        power_mw_per_unit=args.power_scale,
        hdf5_group=args.hdf5_group,
    )
    if args.triggers is not None:
        if not args.stim_channel:
            raise ParameterError("--triggers needs --stim-channel")
        return EventSource("triggers", args.triggers, **channels)
    if args.events is not None:
        return EventSource.from_path(args.events, nwb_series=args.nwb_series)
    kind, _, channel = args.events_from.partition(":")
    if kind != "scanimage-aux":
        raise ParameterError(f"--events-from must be 'scanimage-aux[:CHANNEL]', got {args.events_from!r}")
    if args.recording is None:
        raise ParameterError(
            "--events-from scanimage-aux reads the triggers of --recording: give --recording"
        )
    return EventSource(
        "scanimage-aux", aux_channel=channel or "auxTrigger0", pulse_duration_s=args.pulse_duration
    )


def run_responses(args: argparse.Namespace) -> int:
    from imagingkit.stim.analysis import (
        analyse_responses,
        events_for_session,
        load_neurons_outdir,
        session_frame_times,
        write_response_outputs,
    )
    from imagingkit.stim.artifacts import ArtifactParams
    from imagingkit.stim.responses import WindowParams
    from imagingkit.stim.stats import StatsParams
    from imagingkit.stim.triggers import PulseParams

    traces, time_s, rois, input_kind = load_neurons_outdir(
        args.traces, args.trace, neuropil_coefficient=args.neuropil_coefficient
    )
    window = WindowParams(
        baseline_s=_window(args.baseline, "baseline"),
        response_s=_window(args.window, "window"),
        input_kind=input_kind,
        overlap=args.overlap,
    )
    stats = StatsParams(
        test=args.test, alpha=args.alpha, n_permutations=args.permutations, latency_method=args.latency
    )
    margin = args.artifact_margin
    if margin is None:
        margin = 0.0 if args.trace == "F" else NEUROPIL_MARGIN_PX
    artifacts = None if args.no_artifacts else ArtifactParams(z_threshold=args.artifact_z, margin_px=margin)
    recording = None
    if args.recording is not None:
        from imagingkit.io import open_recording

        recording = open_recording(args.recording, **({} if args.field is None else {"field": args.field}))
    source = f"{args.traces / 'traces.npz'}"
    frame_times = session_frame_times(traces.shape[1], time_s, recording, source=source)
    events, clock_report = events_for_session(
        _event_source(args), frame_times, recording=recording, pulses=PulseParams(max_gap_s=args.max_gap)
    )
    result = analyse_responses(
        traces,
        time_s,
        rois,
        events,
        recording=recording,
        line_period_s=args.line_period if recording is None or not recording.line_period_s else None,
        plane=args.plane,
        window=window,
        stats=stats,
        artifacts=artifacts,
        source=source,
    )
    result.report.update(clock=clock_report, trace=args.trace)
    if args.trace == "F-neuropil":
        result.report["neuropil_coefficient"] = args.neuropil_coefficient
    if result.report["events_left_out"]:
        print(f"imagingkit stim: {result.report['events_left_out']}")
    write_response_outputs(result, args.output, title=str(args.traces))
    r = result.report
    print(
        f"imagingkit stim: {r['n_trials']} trials, {r['n_responsive']}/{r['n_rois']} ROIs responsive "
        f"({r['n_excited']} excited, {r['n_inhibited']} inhibited) -> {args.output}"
    )
    return 0
