"""``imagingkit export-nwb RUN_DIR -o FILE.nwb [--session ANIMAL/SESSION]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-nwb", help="export a run's session(s) to NWB (needs the nwb extra)"
    )
    parser.add_argument("run_dir", type=Path, help="a folder written by 'imagingkit run'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="NWB file to write")
    parser.add_argument(
        "--session", default=None, help="ANIMAL/SESSION to export; default: every session (one file each)"
    )
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from imagingkit.pipeline.nwb import export_run_nwb

    for path in export_run_nwb(args.run_dir, args.output, session_key=args.session):
        print(path)
    return 0
