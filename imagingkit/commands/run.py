"""``imagingkit run CONFIG.toml -o RUN_DIR`` and ``imagingkit demo [-o DIR]``: the main job."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from imagingkit.errors import ParameterError

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the whole pipeline on an experiment config (TOML)")
    run.add_argument("config", type=Path, help="experiment config (TOML)")
    run.add_argument("-o", "--output", type=Path, required=True, help="run folder (re-runs resume in it)")
    _add_execution_options(run)
    run.set_defaults(func=_run)

    demo = subparsers.add_parser("demo", help="run the whole pipeline on the bundled sample data")
    demo.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="run folder")
    _add_execution_options(demo)
    demo.set_defaults(func=_demo)


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"sessions run in parallel (local pool or local Dask cluster; default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "serial", "dask"),
        default="local",
        help="where sessions run (default local pool)",
    )
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (implies --executor dask)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug messages")


def _setup_logging(args: argparse.Namespace, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logger = logging.getLogger("imagingkit")
    logger.setLevel(logging.DEBUG)
    logger.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(message)s"))
    logfile = logging.FileHandler(run_dir / "run.log")
    logfile.setLevel(logging.DEBUG)
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(console)
    logger.addHandler(logfile)


def _execute(config_path: Path, args: argparse.Namespace) -> int:
    from imagingkit.pipeline import load_config
    from imagingkit.pipeline.runner import run_experiment

    if args.workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {args.workers}")
    config = load_config(config_path)
    _setup_logging(args, args.output)
    summary = run_experiment(
        config,
        args.output,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        report=not args.no_report,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if not args.quiet:
        print(summary[["unit", "status", "seconds", "steps_run", "steps_skipped"]].to_string(index=False))
        if not args.no_report:
            print(f"report: {(args.output / 'report' / 'index.html').resolve()}")
    failed = summary[summary["status"] != "ok"]
    for row in failed.itertuples():
        print(f"imagingkit {args.command}: {row.unit} failed: {row.error}", file=sys.stderr)
    if len(failed):
        print(f"{len(failed)} unit(s) failed; see {args.output / 'summary.csv'}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    return _execute(args.config, args)


def _demo(args: argparse.Namespace) -> int:
    config = SAMPLE_DATA / "experiment.toml"
    if not config.is_file():
        raise ParameterError(f"{config}: sample experiment not found; run sample_data/make_sample_data.py")
    return _execute(config, args)
