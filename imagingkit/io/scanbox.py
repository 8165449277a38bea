"""Scanbox recordings: a raw ``.sbx`` file and its ``.mat`` info header.

Layout (as Scanbox writes it and CaImAn / sbxreader read it): uint16 samples,
frame after frame; within a frame rows (Y), then columns (X), then channels
interleaved fastest, i.e. C order ``(frames, Y, X, C)`` with ``(Y, X) = info.sz``.
Values are stored inverted: intensity = ``65535 - sample``. With an
optotune/ETL volume scan consecutive frames cycle through the planes.

Rules used (documented choices):

* Channels: ``info.chan.nchan`` when present (Scanbox >= 3); else
  ``info.channels`` 1 -> 2 channels (PMT0 and PMT1), 2 -> PMT0 only, 3 -> PMT1 only.
* Frame rate: ``resfreq / recordsPerBuffer`` with the records per buffer as
  stored — one record per resonant mirror period, which holds one line
  (unidirectional, ``scanmode == 1``) or two (bidirectional, ``scanmode == 0``),
  so this equals ``resfreq * (2 if bidirectional else 1) / lines``.
* Planes: ``otparam[2]`` when ``volscan`` is set (else the rows of
  ``etl_table``); volume rate = frame rate / planes.
* TTL events (``info.frame``, ``info.line``, ``info.event_id``): the line
  counter counts resonant periods, so an event at (frame, line) happened
  ``(frame * recordsPerBuffer + line) / resfreq`` seconds after the first frame
  started. Times go to ``trigger_times_s["ttl"]`` and, per distinct id,
  ``trigger_times_s["event_id_<k>"]``.
* Line period: ``1 / resfreq`` per record, i.e. ``1 / (2 resfreq)`` between
  lines of a bidirectional scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from imagingkit.errors import FileFormatError, MetadataError, MissingFileError
from imagingkit.io._rawio import RawReader
from imagingkit.io.recording import Recording, make_recording

SBX_DTYPE = np.dtype("<u2")


class SbxSource:
    """A :class:`~imagingkit.io.recording.FrameSource` over a ``.sbx`` file (inverted uint16)."""

    def __init__(self, path: Path, n_volumes: int, n_planes: int, n_channels: int, shape_yx: tuple[int, int]):
        self.path = Path(path)
        self.shape = (n_volumes, n_planes, n_channels, *shape_yx)
        self.dtype = np.dtype(np.uint16)
        self.frame_nbytes = shape_yx[0] * shape_yx[1] * n_channels * SBX_DTYPE.itemsize
        self._reader = RawReader([self.path])

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        n_volumes, n_planes, n_channels, ny, nx = self.shape
        n = max(t_stop - t_start, 0)
        raw = np.empty((n, n_planes, ny, nx, n_channels), dtype=SBX_DTYPE)
        if n:
            self._reader.read_into(0, t_start * n_planes * self.frame_nbytes, raw)
        np.subtract(np.uint16(65535), raw, out=raw)
        return np.ascontiguousarray(np.moveaxis(raw, 4, 2)).astype(self.dtype, copy=False)


def load_info(mat_path: Path):
    """The ``info`` struct of a Scanbox ``.mat`` header (scipy mat_struct)."""
    if not mat_path.exists():
        raise MissingFileError(f"{mat_path}: Scanbox info file not found (needed beside the .sbx)")
    try:
        mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError / MatReadError / TypeError on bad files
        raise FileFormatError(f"{mat_path}: not a readable MATLAB file ({exc})") from exc
    if "info" not in mat:
        raise FileFormatError(f"{mat_path}: no 'info' struct; not a Scanbox header")
    return mat["info"]


def _field(info, name: str, mat_path: Path, default=None):
    value = getattr(info, name, default)
    if value is None:
        raise MetadataError(f"{mat_path}: Scanbox info has no field {name!r}")
    return value


def n_channels_of(info) -> int:
    """Saved channels (see module docstring)."""
    chan = getattr(info, "chan", None)
    if chan is not None and getattr(chan, "nchan", None) is not None:
        return int(chan.nchan)
    return 2 if int(getattr(info, "channels", 2)) == 1 else 1


def n_planes_of(info) -> int:
    """Planes of an optotune/ETL volume scan, 1 without one."""
    if not int(np.asarray(getattr(info, "volscan", 0) or 0)):
        return 1
    otparam = np.atleast_1d(np.asarray(getattr(info, "otparam", []), dtype=float))
    if otparam.size >= 3 and np.isfinite(otparam[2]) and otparam[2] >= 1:
        return int(otparam[2])
    table = np.asarray(getattr(info, "etl_table", []))
    return max(int(table.shape[0]) if table.ndim == 2 else 1, 1)


def open_sbx(path: str | Path) -> Recording:
    """Open a Scanbox ``.sbx`` recording lazily.

    Parameters
    ----------
    path : str or Path
        The ``.sbx`` file; its ``.mat`` header must sit beside it with the same stem.

    Returns
    -------
    Recording
        ``format="scanbox"``, uint16 (already un-inverted), ``(T, Z, C, Y, X)``
        with T counting volumes for optotune/ETL recordings.

    Raises
    ------
    MissingFileError
        The ``.sbx`` or its ``.mat`` is missing.
    FileFormatError
        The file size is not a whole number of frames, or the frames do not
        divide into planes.
    """
    path = Path(path)
    mat_path = path.with_suffix(".mat")
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    info = load_info(mat_path)
    size = np.atleast_1d(np.asarray(_field(info, "sz", mat_path, default=np.array([512, 796])))).astype(int)
    if size.size != 2 or np.any(size < 1):
        raise MetadataError(f"{mat_path}: info.sz must be [lines pixels], got {size.tolist()}")
    shape_yx = (int(size[0]), int(size[1]))
    n_channels = n_channels_of(info)
    n_planes = n_planes_of(info)
    frame_nbytes = shape_yx[0] * shape_yx[1] * n_channels * SBX_DTYPE.itemsize
    file_size = path.stat().st_size
    if file_size == 0:
        raise FileFormatError(f"{path}: empty file (0 bytes)")
    if file_size % frame_nbytes:
        raise FileFormatError(
            f"{path}: size {file_size} bytes is not a whole number of frames of {frame_nbytes} bytes "
            f"({shape_yx[0]}x{shape_yx[1]} px x {n_channels} channel(s) x 2 bytes; truncated file?)"
        )
    n_frames = file_size // frame_nbytes
    if n_frames % n_planes:
        raise FileFormatError(
            f"{path}: {n_frames} frames do not divide into volumes of {n_planes} planes x {n_channels} channel(s)"
        )
    resfreq = float(_field(info, "resfreq", mat_path))
    records = float(_field(info, "recordsPerBuffer", mat_path))
    bidirectional = int(getattr(info, "scanmode", 1)) == 0
    frame_rate_hz = resfreq / records
    events = _ttl_events(info, resfreq, records)
    source = SbxSource(path, n_frames // n_planes, n_planes, n_channels, shape_yx)
    metadata = {
        "resfreq": resfreq,
        "recordsPerBuffer": records,
        "scanmode": int(getattr(info, "scanmode", 1)),
        "sz": list(shape_yx),
        "volscan": int(np.asarray(getattr(info, "volscan", 0) or 0)),
        "otparam": np.atleast_1d(np.asarray(getattr(info, "otparam", []))).tolist(),
        "etl_table": np.asarray(getattr(info, "etl_table", [])).tolist(),
        "events": events,
        "scanbox_version": getattr(info, "scanbox_version", None),
        "objective": getattr(info, "objective", None),
        "magnification": getattr(getattr(info, "config", None), "magnification", None),
        "info_file": str(mat_path),
        "info": info,
    }
    return make_recording(
        source,
        "scanbox",
        frame_rate_hz=frame_rate_hz,
        volume_rate_hz=frame_rate_hz / n_planes,
        line_period_s=1.0 / resfreq / (2 if bidirectional else 1),
        bidirectional=bidirectional,
        trigger_times_s=_trigger_dict(events),
        metadata=metadata,
        source_files=(path,),
    )


def _ttl_events(info, resfreq: float, records: float) -> dict:
    frame = np.atleast_1d(np.asarray(getattr(info, "frame", []), dtype=float))
    line = np.atleast_1d(np.asarray(getattr(info, "line", []), dtype=float))
    ids = np.atleast_1d(np.asarray(getattr(info, "event_id", []), dtype=float))
    n = min(frame.size, line.size)
    frame, line = frame[:n], line[:n]
    ids = ids[:n] if ids.size >= n else np.zeros(n)
    return {
        "frame": frame.astype(int),
        "line": line.astype(int),
        "event_id": ids.astype(int),
        "time_s": (frame * records + line) / resfreq,
    }


def _trigger_dict(events: dict) -> dict[str, np.ndarray]:
    if not events["time_s"].size:
        return {}
    out = {"ttl": events["time_s"]}
    for k in np.unique(events["event_id"]):
        out[f"event_id_{k}"] = events["time_s"][events["event_id"] == k]
    return out
