"""The neurons room's files: ``rois.csv``, ``roi_labels.tif`` and ``traces.npz``.

All writers are atomic (temporary name, then rename); :func:`write_results`
writes the three files into a folder that appears only when complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from imagingkit._atomic import atomic_dir, atomic_path
from imagingkit.errors import FileFormatError, MissingFileError
from imagingkit.neurons.extract import Traces
from imagingkit.neurons.roiset import CSV_COLUMNS, RoiSet

TRACE_KEYS = ("F", "Fneu", "dff", "spikes", "time_s")


def write_rois_csv(roi_set: RoiSet, path: str | Path) -> Path:
    """Write ``rois.csv`` (roi_id, y, x, npix, radius_px, cell_prob, is_cell); header only when empty."""
    path = Path(path)
    with atomic_path(path) as tmp:
        roi_set.to_dataframe().to_csv(tmp, index=False)
    return path


def read_rois_csv(path: str | Path) -> pd.DataFrame:
    """Read ``rois.csv`` and check its columns."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    table = pd.read_csv(path)
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise FileFormatError(f"{path}: missing column(s) {missing}; expected {list(CSV_COLUMNS)}")
    return table


def write_label_image(roi_set: RoiSet, path: str | Path) -> Path:
    """Write ``roi_labels.tif``: (Y, X) int32, 0 = background, label = roi_id."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, roi_set.to_label_image(), photometric="minisblack")
    return path


def read_label_image(path: str | Path) -> np.ndarray:
    """Read ``roi_labels.tif`` as a (Y, X) integer array."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    labels = tifffile.imread(path)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise FileFormatError(
            f"{path}: expected a 2-D integer label image, got {labels.dtype} {labels.shape}"
        )
    return labels


def write_traces(traces: Traces, path: str | Path) -> Path:
    """Write ``traces.npz``: F, Fneu, dff, spikes as (n_rois, n_frames) float32 and time_s."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                F=np.asarray(traces.F, np.float32),
                Fneu=np.asarray(traces.Fneu, np.float32),
                dff=np.asarray(traces.dff, np.float32),
                spikes=np.asarray(traces.spikes, np.float32),
                time_s=np.asarray(traces.time_s, np.float64),
            )
    return path


def read_traces(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``traces.npz`` into a dict with keys F, Fneu, dff, spikes, time_s."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    with np.load(path) as data:
        missing = [k for k in TRACE_KEYS if k not in data.files]
        if missing:
            raise FileFormatError(f"{path}: missing array(s) {missing}; expected {list(TRACE_KEYS)}")
        return {k: data[k] for k in TRACE_KEYS}


def write_results(roi_set: RoiSet, traces: Traces, out_dir: str | Path) -> Path:
    """Write rois.csv, roi_labels.tif and traces.npz into ``out_dir`` atomically.

    Files already in ``out_dir`` that are not ours are kept; ours are replaced
    only once all three are written.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir.with_name(out_dir.name + ".neurons-tmp")) as tmp:
        write_rois_csv(roi_set, tmp / "rois.csv")
        write_label_image(roi_set, tmp / "roi_labels.tif")
        write_traces(traces, tmp / "traces.npz")
    staged = out_dir.with_name(out_dir.name + ".neurons-tmp")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("rois.csv", "roi_labels.tif", "traces.npz"):
        (staged / name).replace(out_dir / name)
    staged.rmdir()
    return out_dir
