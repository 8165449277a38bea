"""The ``imagingkit`` command: a thin shell over the library functions.

Each subcommand lives in :mod:`imagingkit.commands` as a module with
``add_parser(subparsers)``; the parser's ``func(args) -> int`` does the work.
Errors of the :class:`~imagingkit.errors.ImagingKitError` family are printed on
one line (no traceback) and give exit code 1; bad arguments give exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from imagingkit import __version__
from imagingkit.errors import ImagingKitError

COMMAND_MODULES = (
    "info",
    "simulate",
    "register",
    "neurons",
    "spines",
    "stim",
    "run",
    "export_nwb",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="imagingkit",
        description="Two-photon calcium imaging and optogenetics toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"imagingkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"imagingkit.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"imagingkit.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ImagingKitError as exc:
        print(f"imagingkit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"imagingkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
