"""``imagingkit info PATH``: what a recording holds, as a human summary or one JSON object."""

from __future__ import annotations

import argparse
import json
import math
import sys

from imagingkit.io import open_recording


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info",
        help="summarise a recording (shape, rates, pixel size, timing)",
        description=(
            "Open a recording lazily (TIFF/ScanImage/ImageJ series, Scanbox .sbx, HDF5, suite2p folder) "
            "and print its dimensions, rates, pixel size and timing. Pixel data are not read."
        ),
    )
    parser.add_argument("path", help="recording file, folder or glob pattern of TIFF files")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--dataset", help="HDF5 dataset name")
    parser.add_argument("--axes", help="axis order: HDF5 dataset (e.g. yxt) or TIFF page axes (e.g. Z)")
    parser.add_argument("--plane", type=int, help="suite2p: open only planeN")
    parser.add_argument("--field", type=int, help="ScanImage multi-ROI: open only this field (0-based)")
    parser.add_argument(
        "--no-series", action="store_true", help="TIFF: open this file only, not its numbered series"
    )
    parser.add_argument("--frame-rate-hz", type=float, help="override the frame rate (Hz)")
    parser.add_argument("--volume-rate-hz", type=float, help="override the volume rate (Hz)")
    parser.add_argument(
        "--pixel-size-um",
        type=float,
        nargs="+",
        metavar="UM",
        help="override the pixel size: one value or y x",
    )
    parser.add_argument("--z-step-um", type=float, help="override the z step (µm)")
    parser.add_argument("--line-period-s", type=float, help="override the line period (s)")
    parser.set_defaults(func=run)
    return parser


def options_from_args(args: argparse.Namespace) -> dict:
    """Loader options and field overrides given on the command line."""
    options: dict = {}
    for name in (
        "dataset",
        "axes",
        "plane",
        "field",
        "frame_rate_hz",
        "volume_rate_hz",
        "z_step_um",
        "line_period_s",
    ):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "pixel_size_um", None):
        options["pixel_size_um"] = args.pixel_size_um
    if getattr(args, "no_series", False):
        options["series"] = False
    return options


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_summary(summary: dict) -> str:
    """The human-readable summary printed without ``--json``."""

    def rate(v):
        return "unknown" if v is None else f"{v:.6g} Hz"

    size = summary["pixel_size_um"]
    z_step, line_period = summary["z_step_um"], summary["line_period_s"]
    size_text = "unknown" if size is None else f"{size[0]:.4g} x {size[1]:.4g} µm (y x)"
    z_text = "unknown" if z_step is None else f"{z_step:.4g} µm"
    line_text = "unknown" if line_period is None else f"{line_period * 1e3:.4g} ms"
    bidi = summary["bidirectional"]
    if summary["timestamps_from_file"]:
        timing = "from file"
    elif summary["frame_rate_hz"] or summary["volume_rate_hz"]:
        timing = "derived from rate"
    else:
        timing = "none (no rate known; pass --frame-rate-hz)"
    lines = [
        f"format          {summary['format']}",
        f"shape ({summary['dims']})   {' x '.join(str(s) for s in summary['shape'])}  {summary['dtype']}",
        f"frames          {summary['n_frames']}  planes {summary['n_planes']}  channels {summary['n_channels']}",
        f"frame rate      {rate(summary['frame_rate_hz'])}",
        f"volume rate     {rate(summary['volume_rate_hz'])}",
        f"pixel size      {size_text}",
        f"z step          {z_text}",
        f"line period     {line_text}",
        f"bidirectional   {'unknown' if bidi is None else bidi}",
        f"timestamps      {timing}",
        f"triggers        {', '.join(summary['trigger_channels']) or 'none'}",
        f"files           {summary['n_files']}"
        + (f"  ({summary['files'][0]} ...)" if summary["files"] else ""),
    ]
    for index, field in enumerate(summary.get("scanfields") or []):
        size = field["pixel_size_um"]
        lines.append(
            f"field {index:<9} {field['name']}: {field['n_rows']} x {field['n_cols']} px from page row "
            f"{field['row_start']}" + ("" if size is None else f", {size[0]:.4g} x {size[1]:.4g} µm (y x)")
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    recording = open_recording(args.path, **options_from_args(args))
    summary = {k: _json_safe(v) for k, v in recording.summary().items()}
    if recording.metadata.get("scanfields"):
        summary["scanfields"] = recording.metadata["scanfields"]
    warnings = recording.metadata.get("warnings") or []
    if args.json:
        summary["warnings"] = list(warnings)
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0
