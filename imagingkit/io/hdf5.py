"""HDF5 recordings: one dataset of an HDF5 file, with a named axis order, read lazily with h5py.

The file stays open (read-only) for the life of the recording's source and is
read by h5py slicing, one block of time points at a time; it is closed when
the source is garbage-collected or :meth:`H5Source.close` is called.

Dataset choice: ``dataset=`` if given; else the only dataset in the file; else
the first of ``imaging``, ``data``, ``mov`` that exists. Axis order: ``axes=``
if given (letters among T, Z, C, Y, X, e.g. ``"yxt"``, ``"tzyxc"``), else the
dataset's ``axes`` / ``DIMENSION_LABELS`` attribute, else ``"tyx"`` / ``"tzyx"``
/ ``"tzcyx"`` by number of dimensions (2-D: ``"yx"``). An
``element_size_um`` attribute gives the z step and pixel size: its last two
values are (y, x) and, for a dataset with a Z axis, the first is the z step.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from imagingkit.errors import FileFormatError, MissingFileError, ParameterError
from imagingkit.io.recording import DIMS_SHORT, Recording, make_recording

DEFAULT_NAMES = ("imaging", "data", "mov")
_DEFAULT_AXES = {2: "YX", 3: "TYX", 4: "TZYX", 5: "TZCYX"}


class H5Source:
    """A :class:`~imagingkit.io.recording.FrameSource` over an h5py dataset with named axes."""

    def __init__(self, path: Path, dataset: str, axes: str):
        self.path = Path(path)
        self.name = dataset
        self.file = h5py.File(self.path, "r")
        self.dataset = self.file[dataset]
        self.axes = axes
        self.dtype = self.dataset.dtype
        sizes = dict(zip(axes, self.dataset.shape, strict=True))
        self.shape = tuple(int(sizes.get(letter, 1)) for letter in DIMS_SHORT)
        self._order = [axes.index(letter) for letter in DIMS_SHORT if letter in axes]

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        key = tuple(slice(t_start, t_stop) if letter == "T" else slice(None) for letter in self.axes)
        try:
            block = self.dataset[key]
        except Exception as exc:  # h5py raises OSError / KeyError on damaged chunks
            raise FileFormatError(f"{self.path}: dataset {self.name!r} cannot be read: {exc}") from exc
        block = np.transpose(block, self._order)
        full = block
        present = [letter for letter in DIMS_SHORT if letter in self.axes]
        for i, letter in enumerate(DIMS_SHORT):
            if letter not in present:
                full = np.expand_dims(full, i)
                present.insert(i, letter)
        if "T" not in self.axes:
            full = full[t_start:t_stop]
        return np.ascontiguousarray(full)

    def __getstate__(self) -> dict:  # picklable for process pools: the file is reopened
        return {"path": self.path, "name": self.name, "axes": self.axes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["name"], state["axes"])

    def close(self) -> None:
        """Close the HDF5 file."""
        if self.file.id.valid:
            self.file.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _datasets(group: h5py.Group) -> list[str]:
    names: list[str] = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def choose_dataset(h5: h5py.File, path: Path, dataset: str | None) -> str:
    """The dataset to read (see module docstring)."""
    names = _datasets(h5)
    if dataset is not None:
        if dataset.strip("/") not in names:
            raise FileFormatError(f"{path}: no dataset {dataset!r}; datasets: {names}")
        return dataset.strip("/")
    if len(names) == 1:
        return names[0]
    for candidate in DEFAULT_NAMES:
        if candidate in names:
            return candidate
    raise FileFormatError(
        f"{path}: {len(names)} datasets ({', '.join(names[:8]) or 'none'}) and none is called "
        f"{'/'.join(DEFAULT_NAMES)}; pass dataset="
    )


def _axes_of(ds: h5py.Dataset, path: Path, axes: str | None) -> str:
    if axes is None:
        attr = ds.attrs.get("axes", None)
        if attr is None and "DIMENSION_LABELS" in ds.attrs:
            attr = "".join(str(v)[:1] for v in ds.attrs["DIMENSION_LABELS"])
        if isinstance(attr, bytes):
            attr = attr.decode()
        axes = str(attr) if attr is not None else _DEFAULT_AXES.get(ds.ndim)
        if axes is None:
            raise ParameterError(f"{path}: dataset {ds.name} has {ds.ndim} dimensions; pass axes=")
    axes = axes.upper()
    if len(axes) != ds.ndim or set(axes) - set(DIMS_SHORT) or len(set(axes)) != len(axes):
        raise ParameterError(
            f"{path}: axes={axes!r} does not fit dataset {ds.name} of shape {ds.shape}; "
            "give one distinct letter among T, Z, C, Y, X per dimension (e.g. 'yxt')"
        )
    if "Y" not in axes or "X" not in axes:
        raise ParameterError(f"{path}: axes={axes!r} must include Y and X")
    return axes


def _element_size(ds: h5py.Dataset, axes: str) -> tuple[tuple[float, float] | None, float | None]:
    size = ds.attrs.get("element_size_um", None)
    if size is None:
        return None, None
    size = np.atleast_1d(np.asarray(size, dtype=float))
    if size.size < 2 or np.any(~np.isfinite(size[-2:])) or np.any(size[-2:] <= 0):
        return None, None
    z_step = float(size[0]) if "Z" in axes and size.size >= 3 else None
    return (float(size[-2]), float(size[-1])), z_step


def open_hdf5(path: str | Path, dataset: str | None = None, axes: str | None = None) -> Recording:
    """Open one dataset of an HDF5 file as a lazy Recording.

    Parameters
    ----------
    path : str or Path
    dataset : str or None
        Dataset name (e.g. ``"imaging"``); see the module docstring for the default.
    axes : str or None
        Axis order of the dataset, e.g. ``"yxt"`` or ``"tzyxc"``.

    Returns
    -------
    Recording
        ``format="hdf5"``; no frame rate unless the dataset has a
        ``frame_rate_hz`` attribute (override with ``frame_rate_hz=``).
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: empty file (0 bytes), expected HDF5")
    try:
        with h5py.File(path, "r") as h5:
            name = choose_dataset(h5, path, dataset)
            ds = h5[name]
            axes = _axes_of(ds, path, axes)
            pixel_size, z_step = _element_size(ds, axes)
            attrs = {k: _plain(v) for k, v in ds.attrs.items()}
            rate = attrs.get("frame_rate_hz")
    except (OSError, KeyError) as exc:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
    source = H5Source(path, name, axes)
    return make_recording(
        source,
        "hdf5",
        frame_rate_hz=float(rate) if rate else None,
        pixel_size_um=pixel_size,
        z_step_um=z_step,
        metadata={"dataset": name, "axes": axes, "attrs": attrs},
        source_files=(path,),
    )


def _plain(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
