"""``imagingkit spines``: detect dendritic spines (``detect``) and track them across sessions (``track``).

``imagingkit spines detect IMAGE -o spines.csv`` writes the spine table and
``dendrites.csv`` beside it. IMAGE is a TIFF (2D image, 3D z-stack, or a time series
whose mean image is used when its axes say T) or any recording ``imagingkit.io`` opens
(its mean image per plane). Pixel size and z step come from ImageJ/TIFF metadata or
the recording where present; ``--pixel-size``/``--z-step`` override them.
"""

from __future__ import annotations

import argparse
import importlib
import warnings
from pathlib import Path

import numpy as np

from imagingkit.errors import FileFormatError, MissingFileError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "spines",
        help="detect dendritic spines in structural images; track them across sessions",
        description="Dendritic spine detection and measurement (and tracking, when available).",
    )
    sub = parser.add_subparsers(dest="spines_command", metavar="SUBCOMMAND")
    detect = sub.add_parser(
        "detect",
        help="trace dendrites and detect spines in an image or z-stack",
        description=(
            "Trace dendrites, detect spines and measure them. Writes one row per spine "
            "(spine_id, y, x, z, dendrite_id, arc_um, distance_um, intensity_ratio, confidence, ...) "
            "and dendrites.csv (dendrite_id, length_um, n_spines, density_per_um) beside it."
        ),
    )
    detect.add_argument(
        "image", help="structural image: TIFF (2D, z-stack) or a recording imagingkit can open"
    )
    detect.add_argument("-o", "--output", required=True, help="spine table to write (CSV)")
    detect.add_argument(
        "--pixel-size", type=float, nargs="+", metavar="UM", help="pixel size in µm (one value or y x)"
    )
    detect.add_argument(
        "--z-step", type=float, metavar="UM", help="z step of a stack in µm (required for stacks)"
    )
    detect.add_argument(
        "--sensitivity",
        type=float,
        default=1.0,
        help="detection sensitivity (default 1): higher finds dimmer spines but more false ones",
    )
    detect.add_argument("--channel", type=int, default=0, help="channel of a multi-channel recording")
    detect.set_defaults(func=run_detect)
    _add_track(sub)
    parser.set_defaults(func=lambda args: _help(parser))
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_track(sub) -> None:
    """``spines track`` comes from :mod:`imagingkit.commands.track` once it exists."""
    try:
        module = importlib.import_module("imagingkit.commands.track")
    except ModuleNotFoundError as exc:
        if exc.name == "imagingkit.commands.track":
            return
        raise
    module.add_track_parser(sub)


def _tiff_image(path: Path) -> tuple[np.ndarray, tuple | None, float | None]:
    """Pixels of a TIFF with its pixel size and z step where the file says (ImageJ/resolution tags)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            ij = tif.imagej_metadata or {}
            page = tif.pages[0]
            res = page.tags.get("XResolution"), page.tags.get("YResolution")
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise FileFormatError(f"{path}: not a readable TIFF ({exc})") from exc
    keep = [i for i, n in enumerate(data.shape) if n > 1 or axes[i] in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "T" in axes and data.ndim == 3 and "Z" not in axes:
        data = data.mean(axis=axes.index("T"))  # a functional series: its mean image
    pixel = z_step = None
    unit = str(ij.get("unit", "")).lower()
    if unit in ("micron", "um", "µm", "\\u00b5m") and all(r is not None for r in res):
        sizes = []
        for tag in (res[1], res[0]):
            num, den = tag.value
            sizes.append(den / num if num else None)
        if all(sizes):
            pixel = tuple(sizes)
        if "spacing" in ij:
            z_step = float(ij["spacing"])
    return data, pixel, z_step


def load_structural_image(path: str | Path, channel: int = 0):
    """Image array (or Recording) plus pixel size and z step from the file, for ``spines detect``."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such image")
    if path.suffix.lower() in (".tif", ".tiff"):
        return _tiff_image(path)
    from imagingkit.io import open_recording

    recording = open_recording(path)
    return recording, recording.pixel_size_um, recording.z_step_um


def run_detect(args: argparse.Namespace) -> int:
    from imagingkit.spines import detect_spines, write_tables
    from imagingkit.spines.measure import NoSpinesWarning

    image, pixel, z_step = load_structural_image(args.image, args.channel)
    if args.pixel_size:
        pixel = args.pixel_size[0] if len(args.pixel_size) == 1 else tuple(args.pixel_size[:2])
    if args.z_step is not None:
        z_step = args.z_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSpinesWarning)
        result = detect_spines(
            image, pixel_size_um=pixel, z_step_um=z_step, sensitivity=args.sensitivity, channel=args.channel
        )
    spines_path, dendrites_path = write_tables(result, args.output)
    if result.message:
        print(f"imagingkit spines detect: {args.image}: {result.message}")
    total = float(result.dendrites["length_um"].sum()) if len(result.dendrites) else 0.0
    print(
        f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s), {total:.1f} µm traced "
        f"-> {spines_path}, {dendrites_path}"
    )
    return 0
