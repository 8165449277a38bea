"""napari readers: microscope recordings, suite2p output folders and imagingkit run folders.

Recordings open through :func:`imagingkit.open_recording` and stay lazy: the pixels are a
dask array with one chunk per time point over the Recording's :class:`LazyArray`, so napari
reads only the frames it shows. Scales are in micrometres.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import dask.array as da
import numpy as np
import pandas as pd

from imagingkit.io import Recording, open_recording

from ._base import RECORDING_KEY, ROIS_KEY, TRACES_KEY

RECORDING_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".sbx", ".h5", ".hdf5")
CHANNEL_COLORMAPS = {1: ["gray"], 2: ["green", "magenta"], 3: ["green", "magenta", "cyan"]}


# -- entry points (npe2 reader contributions) -----------------------------------------------------------------
def get_recording_reader(path):
    """Return a reader for a single recording file, or None if imagingkit cannot open it."""
    if isinstance(path, list):
        return None
    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in RECORDING_SUFFIXES:
        return None
    return read_recording


def get_folder_reader(path):
    """Return a reader for a suite2p output folder or an imagingkit run folder, else None."""
    if isinstance(path, list):
        return None
    path = Path(path)
    if not path.is_dir():
        return None
    if _find_suite2p_plane(path) is not None:
        return read_suite2p_folder
    if run_folder_files(path):
        return read_run_folder
    return None


# -- recordings -----------------------------------------------------------------------------------------------
def lazy_dask(recording: Recording, chunk_frames: int = 1) -> da.Array:
    """The recording's (T, Z, C, Y, X) pixels as a dask array reading ``chunk_frames`` time points per chunk."""
    lazy = recording.data
    chunks = (chunk_frames, *lazy.shape[1:])
    return da.from_array(
        lazy, chunks=chunks, lock=False, asarray=False, name=False, meta=np.empty((0,) * 5, lazy.dtype)
    )


def recording_layers(
    recording: Recording, name: str, translate_yx_um: tuple[float, float] = (0.0, 0.0)
) -> list[tuple]:
    """One (T, Z, Y, X) image layer per channel with scale (1, z_step_um, pixel_size_um).

    ``translate_yx_um`` places the image's corner (a multi-ROI field within the scanned field).
    """
    data = lazy_dask(recording)
    py, px = recording.pixel_size_um or (1.0, 1.0)
    scale = (1.0, float(recording.z_step_um or 1.0), float(py), float(px))
    first = np.asarray(recording.data[0])  # (Z, C, Y, X), one time point: cheap contrast limits
    colormaps = CHANNEL_COLORMAPS.get(recording.n_channels, ["gray"] * recording.n_channels)
    layers = []
    for channel in range(recording.n_channels):
        lo, hi = np.percentile(first[:, channel], (0.5, 99.8))
        suffix = f" ch{channel}" if recording.n_channels > 1 else ""
        meta = {
            "name": f"{name}{suffix}",
            "scale": scale,
            "translate": (0.0, 0.0, *(float(v) for v in translate_yx_um)),
            "axis_labels": ("t", "z", "y", "x"),
            "colormap": colormaps[channel],
            "blending": "additive" if recording.n_channels > 1 else "translucent",
            "contrast_limits": (float(lo), float(max(hi, lo + 1))),
            "metadata": {
                RECORDING_KEY: recording,
                "imagingkit_channel": channel,
                "imagingkit_summary": recording.summary(),
            },
        }
        layers.append((data[:, :, channel], meta, "image"))
    return layers


def read_recording(path) -> list[tuple]:
    """Read a ScanImage/TIFF (series), Scanbox or HDF5 recording lazily.

    A ScanImage multi-ROI file gives one layer per field, each placed where it was scanned.
    """
    path = Path(path)
    recording = open_recording(path)
    scanfields = recording.metadata.get("scanfields") or []
    if not scanfields:
        return recording_layers(recording, path.stem)
    um_per_deg = recording.metadata.get("header", {}).get("SI.objectiveResolution")
    layers = []
    for index, field in enumerate(scanfields):
        corner = field_corner_yx_um(field, um_per_deg)
        layers += recording_layers(open_recording(path, field=index), f"{path.stem} {field['name']}", corner)
    return layers


def field_corner_yx_um(field: dict, um_per_deg: float | None) -> tuple[float, float]:
    """Top-left corner (µm) of a multi-ROI field from its scan-angle centre and size; (0, 0) uncalibrated."""
    if not um_per_deg:
        return 0.0, 0.0
    (cx, cy), (sx, sy) = field["center_xy_deg"], field["size_xy_deg"]
    corner = ((cy - sy / 2) * um_per_deg, (cx - sx / 2) * um_per_deg)
    return corner if np.all(np.isfinite(corner)) else (0.0, 0.0)


# -- suite2p output folders ----------------------------------------------------------------------------------
def _find_suite2p_plane(path: Path) -> Path | None:
    from imagingkit.io.suite2p_folder import plane_folders

    for candidate in (path, path / "plane0", path / "suite2p" / "plane0"):
        if (candidate / "stat.npy").is_file():
            try:
                return plane_folders(candidate)[0]
            except FileNotFoundError:
                return None
    return None


def read_suite2p_folder(path) -> list[tuple]:
    """Mean image and ROIs (Labels, with ``iscell`` as features) of a suite2p output folder."""
    from imagingkit.neurons.interop import read_suite2p_folder as read_folder

    plane = _find_suite2p_plane(Path(path))
    roi_set, traces = read_folder(plane)
    ops = traces.get("ops", {})
    name = plane.parent.name if plane.parent.name != "suite2p" else plane.parent.parent.name
    layers = []
    mean = ops.get("meanImg")
    if mean is not None:
        layers.append(
            (np.asarray(mean, np.float32), {"name": f"{name} mean image", "colormap": "gray"}, "image")
        )
    layers.append(
        _roi_labels_layer(
            roi_set,
            SimpleNamespace(**{k: v for k, v in traces.items() if k != "ops"}),
            f"{name} ROIs",
            (1.0, 1.0),
        )
    )
    return layers


def _roi_labels_layer(roi_set, traces, name: str, scale: tuple[float, float]) -> tuple:
    """A Labels layer tuple of an ROI set, carrying the RoiSet and traces for the widgets."""
    features = roi_set.to_dataframe().rename(columns={"roi_id": "index"})
    metadata = {ROIS_KEY: roi_set, TRACES_KEY: traces}
    return (
        roi_set.to_label_image(),
        {"name": name, "features": features, "metadata": metadata, "scale": scale, "opacity": 0.6},
        "labels",
    )


# -- imagingkit run folders ----------------------------------------------------------------------------------
RUN_FILES = ("registered.tif", "roi_labels.tif", "spines.csv", "tracks.csv")
MAX_PER_KIND = 12  # a whole-experiment run folder: at most this many layers of each kind


def run_folder_files(path: Path) -> dict[str, list[Path]]:
    """The imagingkit output files under ``path`` (up to three levels deep), by file name."""
    found: dict[str, list[Path]] = {}
    for name in RUN_FILES:
        hits = [p for depth in range(4) for p in sorted(path.glob("/".join(["*"] * depth + [name])))]
        if hits:
            found[name] = hits[:MAX_PER_KIND]
    return found


def _label(path: Path, root: Path) -> str:
    """A layer name from a file's folder relative to the opened folder (e.g. ``m01/day0``)."""
    rel = path.parent.relative_to(root)
    parts = [p for p in rel.parts if p not in ("register", "neurons", "spines", "tracking", "stim")]
    return "/".join(parts) or root.name


def read_run_folder(path) -> list[tuple]:
    """Layers of an imagingkit run folder (a run, an animal or a session).

    - ``register/registered.tif``: the registered movie (lazy, as a recording);
    - ``neurons/roi_labels.tif`` (+ ``rois.csv``, ``traces.npz``): Labels with the ROI set and traces;
    - ``spines/spines.csv``: Points at (y, x) or (z, y, x), every column as ``features``;
    - ``tracking/tracks.csv``: a Tracks layer of the present spines (session as time), fates as features.
    """
    root = Path(path)
    files = run_folder_files(root)
    layers: list[tuple] = []
    pixel_sizes: dict[Path, tuple[float, float]] = {}
    for movie in files.get("registered.tif", []):
        recording = open_recording(movie)
        session = movie.parent.parent
        pixel_sizes[session] = tuple(recording.pixel_size_um or (1.0, 1.0))
        layers += recording_layers(recording, f"{_label(movie, root)} registered")
    for labels_path in files.get("roi_labels.tif", []):
        layers.append(
            _neurons_layer(
                labels_path, pixel_sizes.get(labels_path.parent.parent, (1.0, 1.0)), _label(labels_path, root)
            )
        )
    for spines_path in files.get("spines.csv", []):
        layers.append(_spines_layer(spines_path, _label(spines_path, root)))
    for tracks_path in files.get("tracks.csv", []):
        layers.append(_tracks_layer(tracks_path, _label(tracks_path, root)))
    return layers


def _neurons_layer(labels_path: Path, scale: tuple[float, float], label: str) -> tuple:
    from imagingkit.neurons import RoiSet, read_traces
    from imagingkit.neurons.io import read_label_image, read_rois_csv

    folder = labels_path.parent
    roi_set = RoiSet.from_label_image(read_label_image(labels_path))
    if (folder / "rois.csv").is_file():
        table = read_rois_csv(folder / "rois.csv").set_index("roi_id")
        if len(table) == roi_set.n_rois:
            roi_set = dataclasses.replace(
                roi_set, is_cell=table["is_cell"].to_numpy(bool), cell_prob=table["cell_prob"].to_numpy(float)
            )
    traces = (
        SimpleNamespace(**read_traces(folder / "traces.npz")) if (folder / "traces.npz").is_file() else None
    )
    return _roi_labels_layer(roi_set, traces, f"{label} ROIs", scale)


def _spines_layer(spines_path: Path, label: str) -> tuple:
    from imagingkit.spines import read_spine_table

    table = read_spine_table(spines_path)
    has_z = "z" in table and table["z"].notna().any()
    columns = ["z", "y", "x"] if has_z else ["y", "x"]
    coords = table[columns].to_numpy(float) if len(table) else np.zeros((0, len(columns)))
    scale = []
    for column in columns:  # micrometres per pixel from the table's own _um columns
        um = f"{column}_um"
        ratio = (
            (table[um] / table[column]).replace([np.inf, -np.inf], np.nan).dropna()
            if um in table
            else pd.Series(dtype=float)
        )
        scale.append(float(ratio.median()) if len(ratio) else 1.0)
    meta = {
        "name": f"{label} spines",
        "features": table,
        "scale": tuple(scale),
        "size": 4 * scale[-1],
        "face_color": "transparent",
        "border_color": "yellow",
        "out_of_slice_display": has_z,
    }
    return (coords, meta, "points")


def _tracks_layer(tracks_path: Path, label: str) -> tuple:
    from imagingkit.tracking.files import read_tracks_csv

    tracks = read_tracks_csv(tracks_path)
    present = tracks[tracks["present"]].sort_values(["track_id", "session"])
    data = present[["track_id", "session", "y", "x"]].to_numpy(float)
    fates = sorted(tracks["fate"].astype(str).unique())
    features = {
        "fate_code": present["fate"].astype(str).map({f: i for i, f in enumerate(fates)}).to_numpy(float)
    }
    meta = {
        "name": f"{label} spine tracks",
        "features": features,
        "tail_length": 3,
        "metadata": {"fates": fates, "tracks": tracks},
    }
    return (data, meta, "tracks")
