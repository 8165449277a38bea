"""The recording model: one lazy 5-D array (time, plane, channel, y, x) with timing.

Every loader in :mod:`imagingkit.io` returns a :class:`Recording`. Its pixels
live in a :class:`FrameSource` that reads time points on demand, so a recording
larger than RAM is never loaded whole unless :meth:`Recording.load` is called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imagingkit.errors import ParameterError

DIMS = ("time", "plane", "channel", "y", "x")
DIMS_SHORT = "TZCYX"


class FrameSource(Protocol):
    """What a loader provides: shape, dtype and a reader of time-point ranges."""

    shape: tuple[int, int, int, int, int]
    dtype: np.dtype

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        """Return time points ``t_start:t_stop`` as a (n, Z, C, Y, X) array."""
        ...


class ArraySource:
    """A :class:`FrameSource` over an in-memory or memory-mapped (T, Z, C, Y, X) array."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 5:
            raise ParameterError(f"ArraySource needs a 5-D (T, Z, C, Y, X) array, got shape {array.shape}")
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        return np.asarray(self.array[t_start:t_stop])


class LazyArray:
    """A read-only 5-D array view over a :class:`FrameSource`.

    Indexing reads only the time points asked for; the result is an
    in-memory :class:`numpy.ndarray`. Iterate with :meth:`Recording.iter_chunks`
    to stream a recording at bounded memory.
    """

    def __init__(self, source: FrameSource):
        self.source = source

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return tuple(self.source.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.source.dtype)

    @property
    def ndim(self) -> int:
        return 5

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        t_key, rest = key[0], key[1:]
        n_time = self.shape[0]
        if isinstance(t_key, (int, np.integer)):
            t = int(t_key) + (n_time if t_key < 0 else 0)
            if not 0 <= t < n_time:
                raise IndexError(f"time index {t_key} out of range for {n_time} time points")
            block = self.source.read(t, t + 1)[0]
            return block[rest] if rest else block
        if isinstance(t_key, slice):
            start, stop, step = t_key.indices(n_time)
            if step == 1:
                block = self.source.read(start, max(start, stop))
            else:
                idx = np.arange(start, stop, step)
                block = self._take(idx)
        elif t_key is Ellipsis:
            block = self.source.read(0, n_time)
            return block[(Ellipsis, *rest)] if rest else block
        else:
            idx = np.asarray(t_key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + n_time, idx)
            block = self._take(idx)
        return block[(slice(None), *rest)] if rest else block

    def _take(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        for i, t in enumerate(idx):
            out[i] = self.source.read(int(t), int(t) + 1)[0]
        return out


@dataclasses.dataclass(frozen=True)
class Recording:
    """A multiphoton recording: lazy pixels, timing and metadata.

    Attributes
    ----------
    data : LazyArray
        Pixels as (time, plane, channel, y, x). Read by indexing or by
        :meth:`iter_chunks`; never loaded whole unless :meth:`load` is called.
    format : str
        Loader that produced it ("tiff", "scanimage", "scanbox", "hdf5", "suite2p"...).
    frame_rate_hz : float or None
        Rate at which the scanner acquires single-plane frames.
    volume_rate_hz : float or None
        Rate of time points (volumes); equals ``frame_rate_hz`` for one plane,
        ``frame_rate_hz / (n_planes + flyback frames)`` for fast-z volumes.
    pixel_size_um : tuple of float or None
        (y, x) pixel size in micrometres where the file says.
    z_step_um : float or None
        Distance between planes in micrometres where known.
    frame_times_s : ndarray or None
        (T, Z) start time of each plane's frame in seconds, from the file where
        it has them, else derived from the rates. ``None`` only when no rate is known.
    line_period_s : float or None
        Time between scan lines (s); for a bidirectional scan, between a line
        and the next (opposite-direction) one.
    bidirectional : bool or None
        Whether lines were scanned in both directions (resonant scanners).
    timestamps_from_file : bool
        True when ``frame_times_s`` was read from the file, False when derived.
    trigger_times_s : dict
        Named trigger/event time arrays found in the file (e.g. ScanImage
        ``auxTrigger0``), in seconds on the recording clock.
    metadata : dict
        The raw metadata as parsed from the file(s).
    source_files : tuple of Path
        The files the pixels come from, in order.
    """

    data: LazyArray
    format: str
    frame_rate_hz: float | None = None
    volume_rate_hz: float | None = None
    pixel_size_um: tuple[float, float] | None = None
    z_step_um: float | None = None
    frame_times_s: np.ndarray | None = None
    line_period_s: float | None = None
    bidirectional: bool | None = None
    timestamps_from_file: bool = False
    trigger_times_s: dict = dataclasses.field(default_factory=dict)
    metadata: dict = dataclasses.field(default_factory=dict)
    source_files: tuple[Path, ...] = ()

    # -- shape -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(T, Z, C, Y, X)."""
        return self.data.shape

    @property
    def dims(self) -> str:
        return DIMS_SHORT

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def n_frames(self) -> int:
        """Number of time points (volumes for multi-plane recordings)."""
        return self.shape[0]

    @property
    def n_planes(self) -> int:
        return self.shape[1]

    @property
    def n_channels(self) -> int:
        return self.shape[2]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.shape[3], self.shape[4]

    @property
    def time_s(self) -> np.ndarray | None:
        """(T,) start time of each time point in seconds (first plane)."""
        return None if self.frame_times_s is None else self.frame_times_s[:, 0]

    # -- reading ---------------------------------------------------------------
    def load(self) -> np.ndarray:
        """Read the whole recording into memory as a (T, Z, C, Y, X) array."""
        return self.data[:]

    def iter_chunks(
        self, chunk_frames: int = 256, plane: int | None = None, channel: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the recording in blocks of time points.

        Parameters
        ----------
        chunk_frames : int
            Time points per block; memory use is bounded by one block.
        plane, channel : int or None
            Select one plane / channel (the axis is dropped), or keep all.

        Yields
        ------
        t_start : int
            Index of the block's first time point.
        block : ndarray
            (n, Z, C, Y, X) with the selected axes dropped.
        """
        if chunk_frames < 1:
            raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self._check_axis_index("plane", plane, self.n_planes)
        self._check_axis_index("channel", channel, self.n_channels)
        for t0 in range(0, self.n_frames, chunk_frames):
            block = self.data.source.read(t0, min(t0 + chunk_frames, self.n_frames))
            if channel is not None:
                block = block[:, :, channel]
            if plane is not None:
                block = block[:, plane]
            yield t0, block

    def mean_image(self, plane: int = 0, channel: int = 0, chunk_frames: int = 256) -> np.ndarray:
        """(Y, X) float64 mean over time of one plane and channel, streamed."""
        total = np.zeros(self.frame_shape, dtype=np.float64)
        for _, block in self.iter_chunks(chunk_frames, plane=plane, channel=channel):
            total += block.sum(axis=0, dtype=np.float64)
        return total / max(self.n_frames, 1)

    @staticmethod
    def _check_axis_index(name: str, index: int | None, size: int) -> None:
        if index is not None and not 0 <= index < size:
            raise ParameterError(f"{name} {index} does not exist: the recording has {size} {name}(s)")

    # -- summaries and overrides -------------------------------------------------
    def summary(self) -> dict:
        """The JSON-able summary printed by ``imagingkit info --json``."""
        return {
            "format": self.format,
            "dims": self.dims,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "n_frames": self.n_frames,
            "n_planes": self.n_planes,
            "n_channels": self.n_channels,
            "frame_rate_hz": self.frame_rate_hz,
            "volume_rate_hz": self.volume_rate_hz,
            "pixel_size_um": None if self.pixel_size_um is None else [float(v) for v in self.pixel_size_um],
            "z_step_um": self.z_step_um,
            "line_period_s": self.line_period_s,
            "bidirectional": self.bidirectional,
            "timestamps_from_file": self.timestamps_from_file,
            "trigger_channels": sorted(self.trigger_times_s),
            "n_files": len(self.source_files),
            "files": [str(p) for p in self.source_files],
        }

    def with_overrides(self, **overrides: Any) -> Recording:
        """Return a copy with fields replaced; timing is re-derived when rates change.

        Accepts any field name (``frame_rate_hz``, ``volume_rate_hz``,
        ``pixel_size_um``, ``z_step_um``, ``line_period_s``, ``bidirectional``,
        ``frame_times_s``). A scalar ``pixel_size_um`` means square pixels.
        """
        if not overrides:
            return self
        fields = {f.name for f in dataclasses.fields(self)} - {"data"}
        unknown = set(overrides) - fields
        if unknown:
            raise ParameterError(
                f"unknown recording field(s) {sorted(unknown)}; can override: {sorted(fields)}"
            )
        values = dict(overrides)
        if "pixel_size_um" in values and values["pixel_size_um"] is not None:
            size = np.atleast_1d(np.asarray(values["pixel_size_um"], dtype=float))
            if size.size == 1:
                size = np.repeat(size, 2)
            if size.size != 2 or np.any(size <= 0):
                raise ParameterError(
                    f"pixel_size_um must be one or two positive numbers, got {overrides['pixel_size_um']}"
                )
            values["pixel_size_um"] = (float(size[0]), float(size[1]))
        for key in ("frame_rate_hz", "volume_rate_hz"):
            if values.get(key) is not None and not values[key] > 0:
                raise ParameterError(f"{key} must be positive, got {values[key]}")
        rates_changed = "frame_rate_hz" in values or "volume_rate_hz" in values
        if "frame_rate_hz" in values and "volume_rate_hz" not in values and self.n_planes == 1:
            values["volume_rate_hz"] = values["frame_rate_hz"]
        if "volume_rate_hz" in values and "frame_rate_hz" not in values and self.n_planes == 1:
            values["frame_rate_hz"] = values["volume_rate_hz"]
        new = dataclasses.replace(self, **values)
        if "frame_times_s" in values:
            times = np.asarray(values["frame_times_s"], dtype=float)
            if times.ndim == 1:
                times = times[:, None] + np.zeros(self.n_planes)
            if times.shape != (self.n_frames, self.n_planes):
                raise ParameterError(
                    f"frame_times_s must have shape ({self.n_frames}, {self.n_planes}), got {times.shape}"
                )
            return dataclasses.replace(new, frame_times_s=times, timestamps_from_file=False)
        if rates_changed:
            new = dataclasses.replace(
                new,
                frame_times_s=derive_frame_times(
                    new.n_frames, new.n_planes, new.frame_rate_hz, new.volume_rate_hz
                ),
                timestamps_from_file=False,
            )
        return new


def derive_frame_times(
    n_frames: int, n_planes: int, frame_rate_hz: float | None, volume_rate_hz: float | None
) -> np.ndarray | None:
    """(T, Z) frame start times from the rates: volume t starts at t / volume rate,
    plane z of it z / frame rate later."""
    if volume_rate_hz is None and frame_rate_hz is None:
        return None
    volume_rate = volume_rate_hz if volume_rate_hz is not None else frame_rate_hz / n_planes
    frame_rate = frame_rate_hz if frame_rate_hz is not None else volume_rate * n_planes
    t = np.arange(n_frames)[:, None] / volume_rate
    z = np.arange(n_planes)[None, :] / frame_rate
    return t + z


def make_recording(
    source: FrameSource,
    format: str,
    *,
    frame_rate_hz: float | None = None,
    volume_rate_hz: float | None = None,
    frame_times_s: np.ndarray | None = None,
    **fields: Any,
) -> Recording:
    """Build a :class:`Recording`, filling the volume rate and frame times from the rates.

    Loaders call this; it keeps the derived fields consistent.
    """
    n_frames, n_planes = source.shape[0], source.shape[1]
    if volume_rate_hz is None and frame_rate_hz is not None and n_planes == 1:
        volume_rate_hz = frame_rate_hz
    if frame_rate_hz is None and volume_rate_hz is not None and n_planes == 1:
        frame_rate_hz = volume_rate_hz
    from_file = frame_times_s is not None
    if frame_times_s is None:
        frame_times_s = derive_frame_times(n_frames, n_planes, frame_rate_hz, volume_rate_hz)
    else:
        frame_times_s = np.asarray(frame_times_s, dtype=float).reshape(n_frames, n_planes)
    return Recording(
        data=LazyArray(source),
        format=format,
        frame_rate_hz=None if frame_rate_hz is None else float(frame_rate_hz),
        volume_rate_hz=None if volume_rate_hz is None else float(volume_rate_hz),
        frame_times_s=frame_times_s,
        timestamps_from_file=from_file,
        **fields,
    )


def from_array(
    array: np.ndarray, dims: str = "TYX", *, frame_rate_hz: float | None = None, **fields: Any
) -> Recording:
    """Wrap an in-memory array as a Recording (useful in scripts and tests).

    Parameters
    ----------
    array : ndarray
        Pixels with axes named by ``dims``.
    dims : str
        Axis letters among T, Z, C, Y, X (Y and X required), e.g. "TYX", "TZCYX".
    """
    dims = dims.upper()
    if set(dims) - set(DIMS_SHORT) or "Y" not in dims or "X" not in dims or len(set(dims)) != len(dims):
        raise ParameterError(
            f"dims must use each of T, Z, C, Y, X at most once and include Y and X, got {dims!r}"
        )
    if len(dims) != array.ndim:
        raise ParameterError(f"dims {dims!r} has {len(dims)} axes but the array has {array.ndim}")
    full = array
    for letter in DIMS_SHORT:
        if letter not in dims:
            full = full[..., None]
            dims += letter
    order = [dims.index(letter) for letter in DIMS_SHORT]
    full = np.transpose(full, order)
    return make_recording(ArraySource(full), "array", frame_rate_hz=frame_rate_hz, **fields)
