"""Spine tables as tracking input: required columns, defaults for optional ones, reading CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, FileFormatError, MissingFileError

#: Columns a spine table must have (pixel coordinates in that session's image frame).
REQUIRED_COLUMNS = ("spine_id", "y", "x")
#: Optional columns and the value used when absent.
OPTIONAL_DEFAULTS = {"z": 0.0, "dendrite_id": 0, "arc_um": np.nan, "intensity_ratio": np.nan}


def standardize_spine_table(table: pd.DataFrame, name: str = "spine table") -> pd.DataFrame:
    """Check a spine table and return a copy with the columns tracking uses.

    Parameters
    ----------
    table : DataFrame
        Must have ``spine_id, y, x`` (pixels, session frame); may have ``z`` (plane index;
        empty everywhere for a 2-D image, then taken as 0),
        ``dendrite_id``, ``arc_um`` and ``intensity_ratio``; other columns are kept.
    name : str
        How to name the table in error messages (e.g. its file path).

    Returns
    -------
    DataFrame
        A new table with every optional column filled with its default when missing.

    Raises
    ------
    DataError
        A required column is missing or a coordinate is not finite.
    """
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{name}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)}; a spine table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_DEFAULTS)})"
        )
    out = table.copy()
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in out.columns:
            out[column] = default
    z = pd.to_numeric(out["z"], errors="coerce").to_numpy(float)
    out["z"] = np.where(np.isnan(z), 0.0, z) if np.all(np.isnan(z)) else z  # 2-D images: z empty -> plane 0
    for column in ("y", "x", "z"):
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(values)):
            raise DataError(f"{name}: column {column!r} has missing or non-numeric values")
        out[column] = values
    if out["spine_id"].duplicated().any():
        raise DataError(f"{name}: column 'spine_id' has duplicated values")
    out["dendrite_id"] = pd.to_numeric(out["dendrite_id"], errors="coerce").fillna(-1).astype(int)
    out["arc_um"] = pd.to_numeric(out["arc_um"], errors="coerce").astype(float)
    out["intensity_ratio"] = pd.to_numeric(out["intensity_ratio"], errors="coerce").astype(float)
    return out.reset_index(drop=True)


def read_spines_csv(path: str | Path) -> pd.DataFrame:
    """Read and check a ``spines.csv`` file written by ``imagingkit spines`` (or by hand).

    Raises
    ------
    MissingFileError
        The file does not exist.
    FileFormatError
        The file is not a readable CSV table or lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such spines table")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not a readable CSV table ({exc})") from exc
    try:
        return standardize_spine_table(table, name=str(path))
    except DataError as exc:
        raise FileFormatError(str(exc)) from exc
