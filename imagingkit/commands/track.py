"""``imagingkit spines track``: follow spines across imaging sessions and write turnover tables.

Added to the ``spines`` command by :func:`add_track_parser` (called from
:mod:`imagingkit.commands.spines`).

Usage::

    imagingkit spines track SESSION_0 SESSION_1 ... [--times-h 0,1,6,24] -o OUTDIR

Each SESSION is an image file (spines are detected) or ``IMAGE,SPINES_CSV`` (a comma, not a
colon, so Windows paths work). Writes ``OUTDIR/tracks.csv``, ``turnover.csv``, the other tables
of :mod:`imagingkit.tracking.files` and ``tracking.png``, atomically.
"""

from __future__ import annotations

import argparse
import dataclasses

from imagingkit.errors import ParameterError


def _times(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--times-h: expected comma-separated hours, got {text!r}") from exc


def add_track_parser(spines_subparsers) -> argparse.ArgumentParser:
    """Add the ``track`` subcommand to the ``spines`` command's subparsers."""
    parser = spines_subparsers.add_parser(
        "track",
        help="track spines across sessions: fates, turnover, survival",
        description="Register sessions, detect spines where no table is given, link spines across "
        "sessions and write tracks.csv, turnover.csv and a figure.",
    )
    parser.add_argument(
        "sessions", nargs="+", metavar="SESSION", help="IMAGE or IMAGE,SPINES_CSV, in time order"
    )
    parser.add_argument("--times-h", type=_times, default=None, help="session times in hours, e.g. 0,1,6,24")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--pixel-size-um", type=float, default=None, help="pixel size (default: from the image)"
    )
    parser.add_argument("--z-step-um", type=float, default=1.0, help="plane spacing of z-stacks (µm)")
    parser.add_argument(
        "--reference", type=int, default=0, help="reference session index (coordinates frame)"
    )
    parser.add_argument("--max-link-um", type=float, default=1.5, help="linking gate (µm)")
    parser.add_argument(
        "--loss-min-sessions",
        type=int,
        default=2,
        help="K: an absence between two presences is a loss if it lasts >= K sessions; gap closing "
        "bridges K-1 sessions (default 2, for detected spines; 1 for curated tables without misses)",
    )
    parser.add_argument(
        "--no-image-check",
        action="store_true",
        help="do not check absences on the images (by default a spine missed in a session is "
        "looked for at its place and re-found if the image shows it; see imagingkit.tracking.recheck)",
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates across dendrites")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run_track)
    return parser


def run_track(args: argparse.Namespace) -> int:
    """Run ``imagingkit spines track``; returns the exit code."""
    from imagingkit.tracking import (
        BootstrapParams,
        FateParams,
        LinkParams,
        RecheckParams,
        TrackingParams,
        track_sessions,
    )
    from imagingkit.tracking.files import load_session_image, parse_session_arg, write_tracking_outputs
    from imagingkit.tracking.session import validate_times
    from imagingkit.tracking.tables import read_spines_csv

    parsed = [parse_session_arg(s) for s in args.sessions]
    times = validate_times(args.times_h, len(parsed))
    sessions, pixel = [], args.pixel_size_um
    for image_path, table_path in parsed:
        image, file_pixel = load_session_image(image_path)
        pixel = pixel if pixel is not None else file_pixel
        sessions.append((image, read_spines_csv(table_path)) if table_path else image)
    if pixel is None:
        raise ParameterError(f"{parsed[0][0]}: no pixel size stored; pass --pixel-size-um")
    loss_k = args.loss_min_sessions
    params = TrackingParams(
        pixel_size_um=pixel,
        z_step_um=args.z_step_um,
        reference_index=args.reference,
        link=dataclasses.replace(LinkParams(), max_link_um=args.max_link_um, max_gap_sessions=loss_k - 1),
        fates=FateParams(loss_min_sessions=loss_k),
        bootstrap=BootstrapParams(n_boot=args.n_boot, seed=args.seed),
        recheck=RecheckParams(enabled=not args.no_image_check),
    )
    result = track_sessions(sessions, times, params)
    write_tracking_outputs(result, args.output, sources=list(args.sessions))
    n_tracks = result.tracks["track_id"].nunique()
    print(f"{n_tracks} spine tracks over {len(sessions)} sessions -> {args.output}")
    return 0
