"""Tracking files: session arguments (``IMAGE`` or ``IMAGE,SPINES_CSV``), loading images, writing outputs.

Output folder (written atomically, all or nothing):
``tracks.csv`` (one row per track per session), ``turnover.csv`` (pooled, one row per session),
``turnover_by_dendrite.csv``, ``turnover_ci.csv`` (bootstrap intervals), ``cohort_survival.csv``,
``spine_events.csv`` (every gain and loss, those to check first: :mod:`imagingkit.tracking.events`),
``tracking.png`` (fate map and survival curves), ``params.json``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit._atomic import atomic_dir
from imagingkit.errors import FileFormatError, MissingFileError, ParameterError
from imagingkit.tracking.events import list_events
from imagingkit.tracking.figures import plot_tracking
from imagingkit.tracking.session import TrackingResult
from imagingkit.tracking.turnover import TURNOVER_COLUMNS


def parse_session_arg(text: str) -> tuple[Path, Path | None]:
    """Split a session argument ``IMAGE`` or ``IMAGE,SPINES_CSV`` into paths.

    A comma (not a colon, which Windows paths contain) separates the image from its table.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
        raise ParameterError(f"session {text!r}: expected IMAGE or IMAGE,SPINES_CSV")
    image = Path(parts[0])
    table = Path(parts[1]) if len(parts) == 2 else None
    if table is not None and table.suffix.lower() != ".csv":
        raise ParameterError(f"session {text!r}: the spine table {table} must be a .csv file")
    return image, table


def load_session_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A structural image: (Y, X), or (Z, Y, X) for multi-plane files; time-averaged.

    Returns the image and the file's pixel size in µm (None if not stored).
    """
    from imagingkit.io import open_recording

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such image")
    recording = open_recording(path)
    planes = [recording.mean_image(plane=z, channel=0) for z in range(recording.n_planes)]
    image = planes[0] if len(planes) == 1 else np.stack(planes)
    pixel = None if recording.pixel_size_um is None else float(np.mean(recording.pixel_size_um))
    return np.asarray(image, dtype=np.float32), pixel


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_tracking_outputs(
    result: TrackingResult, outdir: str | Path, sources: list[str] | None = None
) -> Path:
    """Write every tracking output into ``outdir`` at once (see module docstring)."""
    outdir = Path(outdir)
    with atomic_dir(outdir) as tmp:
        result.tracks.to_csv(tmp / "tracks.csv", index=False)
        turnover = result.turnover
        extra = [c for c in turnover.columns if c not in TURNOVER_COLUMNS]
        turnover[list(TURNOVER_COLUMNS) + extra].to_csv(tmp / "turnover.csv", index=False)
        result.turnover_by_dendrite.to_csv(tmp / "turnover_by_dendrite.csv", index=False)
        result.turnover_ci.to_csv(tmp / "turnover_ci.csv", index=False)
        result.cohorts.to_csv(tmp / "cohort_survival.csv", index=False)
        list_events(result.tracks).to_csv(tmp / "spine_events.csv", index=False)
        plot_tracking(result.tracks, result.turnover, result.cohorts, tmp / "tracking.png")
        meta = {
            "params": _jsonable(result.params),
            "times_h": result.times_h.tolist(),
            "match_fraction": {int(k): float(v) for k, v in result.match_fraction.items()},
            "sources": sources or [],
        }
        (tmp / "params.json").write_text(json.dumps(meta, indent=2))
    return outdir


def read_tracks_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``tracks.csv`` back (for review); checks the columns review and statistics need."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such tracks table")
    table = pd.read_csv(path, dtype={"spine_id": "Int64"})
    needed = [
        "track_id",
        "session",
        "spine_id",
        "y",
        "x",
        "z",
        "present",
        "fate",
        "in_view",
        "reviewed",
        "dendrite_id",
        "intensity_ratio",
    ]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise FileFormatError(f"{path}: missing column(s) {', '.join(missing)} of a tracks table")
    for column in ("present", "in_view", "reviewed", "refound", "discovered", "absence_confirmed"):
        if column in table:  # the last three only where absences were checked on the images
            table[column] = table[column].astype(bool)
    return table
