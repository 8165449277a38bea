"""``imagingkit neurons``: detect ROIs and extract their traces from a registered movie."""

from __future__ import annotations

import argparse
from pathlib import Path

from imagingkit.commands._progress import frame_progress
from imagingkit.errors import MissingFileError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "neurons",
        help="detect neuron (or small-process) ROIs and extract F, Fneu, dF/F and spikes",
        description=(
            "Detect ROIs in a registered movie (or the output folder of `imagingkit register`, whose "
            "shifts.csv bad frames are then excluded; light-artifact frames are skipped by detection) and write rois.csv, roi_labels.tif and traces.npz."
        ),
    )
    parser.add_argument(
        "source", metavar="MOVIE_OR_REGDIR", help="registered movie, or a register output folder"
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument("--engine", choices=("builtin", "suite2p"), default="builtin")
    parser.add_argument(
        "--diameter", type=float, default=None, metavar="PX", help="expected ROI diameter (pixels)"
    )
    parser.add_argument("--mode", choices=("soma", "small"), default="soma")
    parser.add_argument("--frame-rate-hz", type=float, default=None, help="override the file's frame rate")
    parser.add_argument(
        "--cell-threshold", type=float, default=0.5, help="cell_prob at or above which is_cell"
    )
    parser.add_argument("--plane", type=int, default=0)
    parser.add_argument("--channel", type=int, default=0)
    parser.add_argument("--field", type=int, help="ScanImage multi-ROI: use only this field (0-based)")
    parser.set_defaults(func=run)


def open_movie(path: Path, frame_rate_hz: float | None = None, field: int | None = None):
    """Open a movie lazily with :func:`imagingkit.io.open_recording` (one field of a multi-ROI file)."""
    from imagingkit.io import open_recording

    overrides = {} if frame_rate_hz is None else {"frame_rate_hz": frame_rate_hz}
    if field is not None:
        overrides["field"] = field
    return open_recording(path, **overrides)


def resolve_source(source: Path) -> tuple[Path, Path | None]:
    """The movie file and the shifts.csv (or None) for a movie path or a register folder."""
    if not source.exists():
        raise MissingFileError(f"{source}: no such file or folder")
    if source.is_dir() and (source / "registered.tif").is_file():
        shifts = source / "shifts.csv"
        return source / "registered.tif", shifts if shifts.is_file() else None
    return source, None


def run(args: argparse.Namespace) -> int:
    from imagingkit.motion import read_frame_flags
    from imagingkit.neurons import (
        DetectionParams,
        ExtractionParams,
        detect_rois,
        extract_traces,
        write_results,
    )

    movie_path, shifts_path = resolve_source(Path(args.source))
    recording = open_movie(movie_path, args.frame_rate_hz, args.field)
    flags = None if shifts_path is None else read_frame_flags(shifts_path, recording.n_frames, args.plane)
    detection = DetectionParams(
        mode=args.mode,
        diameter_px=args.diameter,
        frame_rate_hz=args.frame_rate_hz,
        plane=args.plane,
        channel=args.channel,
    )
    with frame_progress(recording.n_frames, "detecting ROIs") as progress:
        rois = detect_rois(
            recording,
            detection,
            engine=args.engine,
            bad_frames=None if flags is None else flags.unusable_for_detection,
            cell_threshold=args.cell_threshold,
            progress=progress,
        )
    with frame_progress(recording.n_frames, "extracting traces") as progress:
        traces = extract_traces(
            recording,
            rois,
            ExtractionParams(plane=args.plane, channel=args.channel),
            bad_frames=None if flags is None else flags.bad,
            frame_rate_hz=args.frame_rate_hz,
            progress=progress,
        )
    out = write_results(rois, traces, args.out)
    n_bad = 0 if flags is None else int(flags.bad.sum())
    print(
        f"{rois.n_rois} ROIs ({int(rois.is_cell.sum())} cells), {recording.n_frames} frames ({n_bad} bad) -> {out}"
    )
    return 0
