"""``imagingkit register`` (motion correction of a movie) and ``imagingkit register-sessions``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile

from imagingkit._atomic import atomic_dir
from imagingkit.commands._progress import frame_progress
from imagingkit.errors import FileFormatError, MissingFileError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "register",
        help="motion-correct a movie (rigid or piecewise-rigid)",
        description=(
            "Register every frame of a recording to a reference built from the data and write "
            "OUTDIR/registered.tif, shifts.csv (frame, plane, dy, dx, corr, bad, ..., artifact), reference.tif, "
            "mean_image.tif, metrics.json and, with --nonrigid, block_shifts.npz. dy, dx: the frame's "
            "content relative to the reference, in pixels."
        ),
    )
    parser.add_argument("movie", help="recording (TIFF/ScanImage, .sbx, HDF5, suite2p folder)")
    parser.add_argument("-o", "--out", required=True, help="output folder (replaced only when complete)")
    parser.add_argument("--nonrigid", action="store_true", help="piecewise-rigid registration")
    parser.add_argument("--channel", type=int, default=0, help="channel to align on (default 0)")
    parser.add_argument("--engine", choices=("builtin", "suite2p"), default="builtin")
    parser.add_argument("--plane", type=int, nargs="+", help="planes to register (default all)")
    parser.add_argument("--block-size-px", type=int, default=128, help="piecewise-rigid block size (px)")
    parser.add_argument("--chunk-frames", type=int, default=200, help="frames per streamed chunk")
    parser.add_argument("--no-movie", action="store_true", help="write shifts and metrics only")
    parser.add_argument(
        "--bidi", choices=("auto", "on", "off"), default="auto",
        help="bidirectional scan phase correction (auto: when the file says bidirectional)",
    )  # fmt: skip
    parser.add_argument("--frame-rate-hz", type=float, help="override the frame rate (Hz)")
    parser.add_argument("--field", type=int, help="ScanImage multi-ROI: register only this field (0-based)")
    parser.set_defaults(func=run)

    sessions = subparsers.add_parser(
        "register-sessions",
        help="register images or z-stacks of the same field across sessions",
        description=(
            "Register each image (2-D TIFF) or z-stack (3-D TIFF) to the first one: similarity "
            "transform then a smooth warp. Writes OUTDIR/session_N.tif (registered onto the first), "
            "OUTDIR/transform_N.npz and OUTDIR/sessions.json."
        ),
    )
    sessions.add_argument(
        "images", nargs="+", help="one image or z-stack per session (TIFF); first = reference"
    )
    sessions.add_argument("-o", "--out", required=True, help="output folder")
    sessions.add_argument("--rigid-only", action="store_true", help="no non-rigid warp")
    sessions.set_defaults(func=run_sessions)
    return parser


def run(args: argparse.Namespace) -> int:
    from imagingkit.io import open_recording
    from imagingkit.motion import NonRigidParams, RigidParams, register_movie

    overrides = {} if args.frame_rate_hz is None else {"frame_rate_hz": args.frame_rate_hz}
    if args.field is not None:
        overrides["field"] = args.field
    recording = open_recording(args.movie, **overrides)
    bidi = {"auto": None, "on": True, "off": False}[args.bidi]
    if args.nonrigid:
        params = NonRigidParams(
            block_size_px=args.block_size_px, chunk_frames=args.chunk_frames, bidi_correction=bidi
        )
    else:
        params = RigidParams(chunk_frames=args.chunk_frames, bidi_correction=bidi)
    with frame_progress(recording.n_frames, "registering") as progress:
        result = register_movie(
            recording, args.out, params, channel=args.channel, engine=args.engine, planes=args.plane,
            write_movie=not args.no_movie, progress=progress,
        )  # fmt: skip
    n_bad = int(result.shifts["bad"].sum())
    n_artifact = int(result.shifts["artifact"].sum())
    print(
        f"registered {recording.n_frames} frames ({result.metrics['frames_per_s']:.0f} frames/s, "
        f"engine {args.engine}); {n_bad} bad frame(s), {n_artifact} aligned on clean lines around "
        f"light-artifact lines; output in {args.out}"
    )
    return 0


def _read_image(path: str) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{p}: no such image")
    try:
        image = np.squeeze(tifffile.imread(p))
    except Exception as exc:  # tifffile raises several types for non-TIFF input
        raise FileFormatError(f"{p}: cannot read as TIFF ({exc})") from exc
    if image.ndim not in (2, 3):
        raise FileFormatError(f"{p}: expected a 2-D image or 3-D (Z, Y, X) stack, got shape {image.shape}")
    return image


def run_sessions(args: argparse.Namespace) -> int:
    from imagingkit.motion.sessions import SessionParams, register_sessions

    images = [_read_image(p) for p in args.images]
    transforms = register_sessions(images, 0, SessionParams(nonrigid=not args.rigid_only))
    summary = []
    with atomic_dir(args.out) as tmp:
        for i, (image, transform) in enumerate(zip(images, transforms, strict=True)):
            tifffile.imwrite(tmp / f"session_{i}.tif", transform.warp_image(image))
            transform.save(tmp / f"transform_{i}.npz")
            summary.append(
                {
                    "session": i,
                    "file": str(args.images[i]),
                    "shift_yx": list(transform.shift_yx),
                    "rotation_deg": transform.rotation_deg,
                    "scale": transform.scale,
                    "shift_z": transform.shift_z,
                    "nonrigid": transform.flow is not None,
                    "correlation": transform.correlation,
                }
            )
        (tmp / "sessions.json").write_text(json.dumps(summary, indent=2))
    print(f"registered {len(images) - 1} session(s) to {args.images[0]}; output in {args.out}")
    return 0
