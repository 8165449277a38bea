"""Read the per-frame flags of a ``shifts.csv`` written by :func:`imagingkit.motion.register_movie`.

``bad``: frames that could not be aligned (corrupt, jumps, low correlation, mostly light artifact);
their pixels are not trusted anywhere downstream. ``artifact``: frames with a few stimulation-light
lines, aligned on their clean lines; ROI detection should ignore them (bright lines look like
activity), while traces keep them and the stimulus analysis masks the affected lines itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.errors import FileFormatError


@dataclasses.dataclass(frozen=True)
class FrameFlags:
    """(T,) boolean flags of one plane."""

    bad: np.ndarray
    artifact: np.ndarray

    @property
    def unusable_for_detection(self) -> np.ndarray:
        """Frames ROI detection should skip: bad or with light-artifact lines."""
        return self.bad | self.artifact


def _as_bool(column: pd.Series) -> np.ndarray:
    return column.astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def read_frame_flags(path: str | Path, n_frames: int | None = None, plane: int = 0) -> FrameFlags:
    """Flags of ``plane`` from a ``shifts.csv`` (columns ``frame, plane, dy, dx, corr, bad[, artifact]``).

    Parameters
    ----------
    path : path
        The ``shifts.csv``.
    n_frames : int, optional
        Expected number of frames; frames missing from the file are unflagged.
    plane : int
        Plane whose rows to read.

    Raises
    ------
    FileFormatError
        Missing ``frame``/``bad`` column, or frame numbers outside ``0 .. n_frames - 1``.
    """
    path = Path(path)
    table = pd.read_csv(path)
    for column in ("frame", "bad"):
        if column not in table.columns:
            raise FileFormatError(
                f"{path}: missing column {column!r} (expected frame, plane, dy, dx, corr, bad)"
            )
    if "plane" in table.columns:
        table = table[table["plane"] == plane]
    frames = table["frame"].to_numpy(int)
    size = int(n_frames) if n_frames is not None else (int(frames.max()) + 1 if frames.size else 0)
    if frames.size and (frames.min() < 0 or frames.max() >= size):
        raise FileFormatError(f"{path}: frame numbers outside 0..{size - 1}")
    bad = np.zeros(size, bool)
    artifact = np.zeros(size, bool)
    bad[frames] = _as_bool(table["bad"])
    if "artifact" in table.columns:
        artifact[frames] = _as_bool(table["artifact"])
    return FrameFlags(bad=bad, artifact=artifact)
