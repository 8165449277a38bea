"""Spine and dendrite tables: columns, validation, result container and CSV files.

Spine table columns (one row per spine; pixel coordinates in array order, pixel
centres at integers; ``z``/``z_um`` are NaN — empty in CSV — for 2D images):

``spine_id, y, x, z, y_um, x_um, z_um, dendrite_id, arc_um, distance_um, side,
intensity_ratio, peak_ratio, neck_length_um, head_radius_um, snr, confidence``
(definitions in :mod:`imagingkit.spines.measure`).

Dendrite table columns: ``dendrite_id, length_um, n_spines, density_per_um``
(``shaft_radius_um`` is kept as an extra column).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit._atomic import atomic_path
from imagingkit.errors import FileFormatError, MissingFileError, ParameterError

SPINE_COLUMNS = (
    "spine_id",
    "y",
    "x",
    "z",
    "y_um",
    "x_um",
    "z_um",
    "dendrite_id",
    "arc_um",
    "distance_um",
    "side",
    "intensity_ratio",
    "peak_ratio",
    "neck_length_um",
    "head_radius_um",
    "snr",
    "confidence",
)
DENDRITE_COLUMNS = ("dendrite_id", "length_um", "n_spines", "density_per_um", "shaft_radius_um")


@dataclasses.dataclass(frozen=True)
class SpineResult:
    """Output of :func:`detect_spines` and :func:`measure_spines`.

    Attributes
    ----------
    spines : DataFrame
        Columns :data:`SPINE_COLUMNS`.
    dendrites : DataFrame
        Columns :data:`DENDRITE_COLUMNS`.
    trace : DendriteTrace or None
        The traced dendrites (centrelines), reusable by :func:`measure_spines`.
    message : str or None
        Why the tables are empty (no dendrite, no spine), else None.
    """

    spines: pd.DataFrame
    dendrites: pd.DataFrame
    trace: object = None
    message: str | None = None


def empty_spine_table() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in SPINE_COLUMNS})
    return frame.astype({"spine_id": "int64", "dendrite_id": "int64", "side": "int64"})


def empty_dendrite_table() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in DENDRITE_COLUMNS})
    return frame.astype({"dendrite_id": "int64", "n_spines": "int64"})


def validate_spine_positions(table: pd.DataFrame, ndim: int, shape: tuple[int, ...]) -> pd.DataFrame:
    """Check an (edited) spine table and return ``spine_id, y, x, z`` with ids filled.

    Rows without a ``spine_id`` (added by hand) get new ids after the largest one.

    Raises
    ------
    ParameterError
        Missing ``y``/``x`` (or ``z`` for a stack), non-finite or out-of-image positions.
    """
    need = ["y", "x"] + (["z"] if ndim == 3 else [])
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ParameterError(f"spine table lacks column(s) {missing}; expected at least {need}")
    out = pd.DataFrame(index=range(len(table)))
    for c in need:
        values = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            raise ParameterError(f"spine table column {c!r} has empty or non-numeric values")
        out[c] = values
    if ndim == 2:
        out["z"] = np.nan
    lows = np.zeros(ndim)
    highs = np.asarray(shape, float) - 1
    coords = out[["z", "y", "x"] if ndim == 3 else ["y", "x"]].to_numpy()
    outside = np.any((coords < lows - 0.5) | (coords > highs + 0.5), axis=1)
    if outside.any():
        raise ParameterError(
            f"spine table rows {np.flatnonzero(outside).tolist()[:10]} lie outside the image of shape {shape}"
        )
    ids = (
        pd.to_numeric(table["spine_id"], errors="coerce")
        if "spine_id" in table
        else pd.Series(np.nan, out.index)
    )
    ids = ids.reset_index(drop=True)
    if ids.dropna().duplicated().any():
        raise ParameterError("spine table has duplicate spine_id values")
    start = int(ids.max()) + 1 if ids.notna().any() else 0
    n_new = int(ids.isna().sum())
    ids[ids.isna()] = np.arange(start, start + n_new)
    out.insert(0, "spine_id", ids.astype("int64").to_numpy())
    return out


def dendrite_table(dendrites: pd.DataFrame, spines: pd.DataFrame) -> pd.DataFrame:
    """Per-dendrite length, spine count and density (spines per micrometre)."""
    if len(dendrites) == 0:
        return empty_dendrite_table()
    counts = spines.groupby("dendrite_id").size() if len(spines) else pd.Series(dtype="int64")
    out = dendrites[["dendrite_id", "length_um", "shaft_radius_um"]].copy()
    out["n_spines"] = out["dendrite_id"].map(counts).fillna(0).astype("int64")
    out["density_per_um"] = out["n_spines"] / out["length_um"]
    return out[list(DENDRITE_COLUMNS)].reset_index(drop=True)


def dendrites_path_for(spines_path: str | Path) -> Path:
    """``dendrites.csv`` beside the spines file."""
    return Path(spines_path).with_name("dendrites.csv")


def write_tables(
    result: SpineResult, spines_path: str | Path, dendrites_path: str | Path | None = None
) -> tuple[Path, Path]:
    """Write the spine table and the dendrite table as CSV, each atomically."""
    spines_path = Path(spines_path)
    dendrites_path = Path(dendrites_path) if dendrites_path else dendrites_path_for(spines_path)
    if spines_path.resolve() == dendrites_path.resolve():
        raise ParameterError(f"{spines_path}: the spine table may not be called dendrites.csv")
    with atomic_path(spines_path) as tmp:
        result.spines.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(dendrites_path) as tmp:
        result.dendrites.to_csv(tmp, index=False, float_format="%.4f")
    return spines_path, dendrites_path


def read_spine_table(path: str | Path) -> pd.DataFrame:
    """Read a spine CSV written by :func:`write_tables` (or edited by hand)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such spine table")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not a readable CSV spine table ({exc})") from exc
    missing = [c for c in ("y", "x") if c not in table.columns]
    if missing:
        raise FileFormatError(f"{path}: spine table lacks column(s) {missing}")
    return table
