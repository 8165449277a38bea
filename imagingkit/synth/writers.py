"""Write simulated data in real microscope formats, with the truth in sidecar files.

* :func:`write_scanimage_tiff_series`: ScanImage 2016+ BigTIFF files
  ``basename_00001.tif``, ``basename_00002.tif`` ... with the binary static
  header block after the BigTIFF header (magic 117637889, version 3: ``SI.*``
  lines, then the ROI groups as JSON) that :func:`tifffile.read_scanimage_metadata`
  reads, the same header in every page's Software tag and the ROI groups in
  its Artist tag, and per-page frame data (``frameNumbers``,
  ``frameTimestamps_sec``, ``auxTrigger0`` ...) in ImageDescription. Pages
  are interleaved channels fastest, then planes, then time.
* :func:`write_tiff`: an ImageJ hyperstack (TZCYX) with pixel size, z step and frame interval.
* :func:`write_sbx`: Scanbox ``.sbx`` (uint16, inverted, (frames, Y, X, C)) plus ``.mat`` ``info``.
* :func:`write_functional`: simulate and stream to disk in chunks, never holding the movie.
* :func:`write_functional_truth`, :func:`write_dendrite_sessions`: truth sidecars and structural series.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io
import tifffile

from imagingkit._atomic import atomic_path
from imagingkit.errors import ParameterError
from imagingkit.io.recording import Recording, derive_frame_times
from imagingkit.synth.functional import FunctionalModel, FunctionalTruth, make_spec

SCANIMAGE_MAGIC = 117637889  # 0x07030301
FORMATS = ("scanimage", "tiff", "sbx")


# ----------------------------------------------------------------------------- inputs
def _blocks(
    data: Recording | np.ndarray, chunk_frames: int = 64
) -> tuple[tuple[int, ...], np.dtype, Iterator]:
    """Shape, dtype and a chunk iterator of a Recording or (T, Z, C, Y, X) / (T, Y, X) array."""
    if isinstance(data, Recording):
        return data.shape, data.dtype, (b for _, b in data.iter_chunks(chunk_frames))
    arr = np.asarray(data)
    if arr.ndim == 3:
        arr = arr[:, None, None]
    if arr.ndim != 5:
        raise ParameterError(f"movie must be (T, Y, X) or (T, Z, C, Y, X), got shape {arr.shape}")
    return arr.shape, arr.dtype, (arr[t : t + chunk_frames] for t in range(0, arr.shape[0], chunk_frames))


def _rate(data, frame_rate_hz):
    if frame_rate_hz is None and isinstance(data, Recording):
        frame_rate_hz = data.frame_rate_hz
    if frame_rate_hz is None or frame_rate_hz <= 0:
        raise ParameterError(f"frame_rate_hz must be given and positive, got {frame_rate_hz}")
    return float(frame_rate_hz)


# ----------------------------------------------------------------------------- ScanImage
def _matlab(value: Any) -> str:
    """A Python value as ScanImage writes it in its ``key = value`` header lines."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    if value is None:
        return "[]"
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(float(arr)) if arr.dtype.kind == "f" else str(arr.item())
    if arr.size == 0:
        return "[]"
    if arr.ndim == 1:
        return "[" + " ".join(_num(v) for v in arr) + "]"
    return "[" + ";".join(" ".join(_num(v) for v in row) for row in arr) + "]"


def _num(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.9g}"


def scanimage_header(
    shape_yx: tuple[int, int],
    n_planes: int,
    n_channels: int,
    frame_rate_hz: float,
    zoom: float,
    line_period_s: float,
    bidirectional: bool,
    z_step_um: float | None,
    frames_per_file: int,
    fov_um_yx: tuple[float, float],
    objective_resolution_um_per_deg: float,
    version: str = "2016b",
) -> tuple[str, dict]:
    """The ``SI.*`` static header text and the ROI-groups dict of a simulated acquisition."""
    ny, nx = shape_yx
    fast_z = n_planes > 1
    size_deg = (
        fov_um_yx[1] / objective_resolution_um_per_deg,
        fov_um_yx[0] / objective_resolution_um_per_deg,
    )
    fields = {
        "SI.LINE_FORMAT_VERSION": 1,
        "SI.VERSION_MAJOR": version,
        "SI.VERSION_MINOR": "0",
        "SI.acqsPerLoop": 1,
        "SI.objectiveResolution": float(objective_resolution_um_per_deg),
        "SI.hChannels.channelSave": np.arange(1, n_channels + 1)[:, None] if n_channels > 1 else 1,
        "SI.hChannels.channelsActive": np.arange(1, n_channels + 1)[:, None] if n_channels > 1 else 1,
        "SI.hChannels.channelsDataType": "int16",
        "SI.hRoiManager.linesPerFrame": ny,
        "SI.hRoiManager.pixelsPerLine": nx,
        "SI.hRoiManager.scanFrameRate": float(frame_rate_hz),
        "SI.hRoiManager.scanFramePeriod": 1.0 / float(frame_rate_hz),
        "SI.hRoiManager.scanVolumeRate": float(frame_rate_hz) / n_planes,
        "SI.hRoiManager.linePeriod": float(line_period_s),
        "SI.hRoiManager.scanZoomFactor": float(zoom),
        "SI.hRoiManager.mroiEnable": False,
        "SI.hScan2D.bidirectional": bool(bidirectional),
        "SI.hScan2D.logFramesPerFile": int(frames_per_file * n_planes),
        "SI.hScan2D.logFramesPerFileLock": True,
        "SI.hScan2D.scannerType": "Resonant",
        "SI.hStackManager.enable": bool(fast_z),
        "SI.hStackManager.numSlices": int(n_planes),
        "SI.hStackManager.actualNumSlices": int(n_planes),
        "SI.hStackManager.stackZStepSize": float(z_step_um) if z_step_um else 1.0,
        "SI.hStackManager.actualStackZStepSize": float(z_step_um) if z_step_um else 1.0,
        "SI.hStackManager.framesPerSlice": 1,
        "SI.hFastZ.enable": bool(fast_z),
        "SI.hFastZ.numDiscardFlybackFrames": 0,
        "SI.hFastZ.discardFlybackFrames": True,
        "SI.hFastZ.numVolumes": 1,
    }
    text = "\n".join(f"{k} = {_matlab(v)}" for k, v in fields.items()) + "\n"
    roi_groups = {
        "RoiGroups": {
            "imagingRoiGroup": {
                "ver": 1,
                "classname": "scanimage.mroi.RoiGroup",
                "name": "Default Imaging ROI Group",
                "rois": {
                    "ver": 1,
                    "classname": "scanimage.mroi.Roi",
                    "name": "Default Imaging Roi",
                    "zs": 0,
                    "scanfields": {
                        "ver": 1,
                        "classname": "scanimage.mroi.scanfield.fields.RotatedRectangle",
                        "name": "Default Imaging Scanfield",
                        "centerXY": [0, 0],
                        "sizeXY": [size_deg[0], size_deg[1]],
                        "rotationDegrees": 0,
                        "pixelResolutionXY": [nx, ny],
                    },
                },
            },
            "photostimRoiGroups": None,
            "integrationRoiGroup": {
                "ver": 1,
                "classname": "scanimage.mroi.RoiGroup",
                "name": "",
                "rois": {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None},
            },
        }
    }
    return text, roi_groups


def frame_description(
    frame_number: int, acquisition_number: int, timestamp_s: float, aux: dict[str, np.ndarray], epoch: str
) -> str:
    """The per-page ImageDescription ScanImage 2016+ writes."""
    lines = [
        f"frameNumbers = {frame_number}",
        f"acquisitionNumbers = {acquisition_number}",
        f"frameNumberAcquisition = {frame_number}",
        f"frameTimestamps_sec = {timestamp_s:.6f}",
        "acqTriggerTimestamps_sec = " + ("0.000000" if frame_number == 1 else ""),
        "nextFileMarkerTimestamps_sec = ",
        "endOfAcquisition = 0",
        "endOfAcquisitionMode = 0",
        "dcOverVoltage = 0",
        f"epoch = {epoch}",
    ]
    for k in range(4):
        values = aux.get(f"auxTrigger{k}", np.zeros(0))
        lines.append(
            f"auxTrigger{k} = " + ("[" + " ".join(f"{v:.6f}" for v in values) + "]" if len(values) else "[]")
        )
    lines.append("I2CData = {}")
    return "\n".join(lines) + "\n"


class ScanImageSeriesWriter:
    """Stream (n, Z, C, Y, X) blocks into a ScanImage 2016+ TIFF series.

    Use as a context manager; :meth:`write` accepts blocks of any length and
    starts a new file every ``frames_per_file`` time points. Each file is
    written under a temporary name and renamed when complete.
    """

    def __init__(
        self,
        folder: str | Path,
        basename: str,
        shape: tuple[int, int, int, int, int],
        dtype,
        frame_rate_hz: float,
        frames_per_file: int = 1000,
        zoom: float = 2.0,
        pixel_size_um: float | tuple[float, float] | None = None,
        line_period_s: float | None = None,
        bidirectional: bool = True,
        z_step_um: float | None = None,
        frame_times_s: np.ndarray | None = None,
        aux_triggers_s: dict[str, np.ndarray] | None = None,
        objective_resolution_um_per_deg: float = 15.0,
        epoch: str = "[2026 1 1 12 0 0.000]",
    ):
        if frames_per_file < 1:
            raise ParameterError(f"frames_per_file must be >= 1, got {frames_per_file}")
        self.folder = Path(folder)
        self.basename = basename
        self.shape = tuple(int(s) for s in shape)
        n_frames, n_planes, n_channels, ny, nx = self.shape
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.uint16), np.dtype(np.int16)):
            raise ParameterError(f"ScanImage TIFFs hold int16/uint16 samples, got {self.dtype}")
        self.frames_per_file = int(frames_per_file)
        if frame_times_s is None:
            frame_times_s = derive_frame_times(n_frames, n_planes, frame_rate_hz, frame_rate_hz / n_planes)
        self.frame_times = np.asarray(frame_times_s, dtype=float).reshape(n_frames, n_planes)
        self.aux = {k: np.sort(np.asarray(v, dtype=float)) for k, v in (aux_triggers_s or {}).items()}
        line_period_s = line_period_s or 0.95 / (frame_rate_hz * ny)
        if pixel_size_um is None:
            pixel_size_um = 1.0
        px = np.broadcast_to(np.asarray(pixel_size_um, dtype=float), (2,))
        self.header, self.roi_groups = scanimage_header(
            (ny, nx),
            n_planes,
            n_channels,
            frame_rate_hz,
            zoom,
            line_period_s,
            bidirectional,
            z_step_um,
            frames_per_file,
            (px[0] * ny, px[1] * nx),
            objective_resolution_um_per_deg,
        )
        self.roi_json = json.dumps(self.roi_groups)
        self.epoch = epoch
        self.files: list[Path] = []
        self._t = 0
        self._stack = contextlib.ExitStack()
        self._tif = None
        self._in_file = 0

    def __enter__(self) -> ScanImageSeriesWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.close()
        if exc_type is None and self._t != self.shape[0]:
            raise ParameterError(
                f"ScanImage series {self.basename}: got {self._t} time points, expected {self.shape[0]}"
            )

    def _open_next(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        path = self.folder / f"{self.basename}_{len(self.files) + 1:05d}.tif"
        tmp = self._stack.enter_context(atomic_path(path))
        self._tif = self._stack.enter_context(tifffile.TiffWriter(tmp, bigtiff=True, byteorder="<"))
        # ScanImage's static metadata block right after the 16-byte BigTIFF header (v3 layout)
        text = self.header.encode("ascii") + b"\x00"
        roi = self.roi_json.encode("ascii") + b"\x00"
        self._tif._fh.write(struct.pack("<IIII", SCANIMAGE_MAGIC, 3, len(text), len(roi)) + text + roi)
        self.files.append(path)
        self._in_file = 0

    def write(self, block: np.ndarray) -> None:
        """Append time points (n, Z, C, Y, X)."""
        block = np.asarray(block)
        if block.shape[1:] != self.shape[1:]:
            raise ParameterError(f"block shape {block.shape[1:]} does not match the series' {self.shape[1:]}")
        _, n_planes, n_channels, _, _ = self.shape
        for frame in block:
            if self._tif is None or self._in_file == self.frames_per_file:
                self._open_next()
            t = self._t
            for z in range(n_planes):
                start = self.frame_times[t, z]
                nxt = (
                    self.frame_times[t, z + 1]
                    if z + 1 < n_planes
                    else (self.frame_times[t + 1, 0] if t + 1 < self.shape[0] else np.inf)
                )
                aux = {k: v[(v >= start) & (v < nxt)] for k, v in self.aux.items()}
                number = t * n_planes + z + 1
                desc = frame_description(number, 1, start, aux, self.epoch)
                for c in range(n_channels):
                    self._tif.write(
                        frame[z, c].astype(self.dtype, copy=False),
                        contiguous=False,
                        description=desc,
                        software=self.header,
                        extratags=[(315, "s", 0, self.roi_json, True)],
                        metadata=None,
                    )
            self._t += 1
            self._in_file += 1
        if self._t == self.shape[0]:
            self._stack.close()
            self._tif = None


def write_scanimage_tiff_series(
    data: Recording | np.ndarray,
    folder: str | Path,
    basename: str = "file",
    frames_per_file: int = 1000,
    frame_rate_hz: float | None = None,
    zoom: float = 2.0,
    pixel_size_um: float | tuple[float, float] | None = None,
    line_period_s: float | None = None,
    bidirectional: bool | None = None,
    z_step_um: float | None = None,
    aux_triggers_s: dict[str, np.ndarray] | None = None,
    chunk_frames: int = 64,
) -> list[Path]:
    """Write a recording as a ScanImage 2016+ TIFF series ``basename_00001.tif`` ...

    Parameters
    ----------
    data : Recording or ndarray
        (T, Z, C, Y, X) or (T, Y, X) int16/uint16 pixels; a Recording is streamed.
    folder : path
        Output folder (created).
    frames_per_file : int
        Time points (volumes) per file.
    frame_rate_hz : float
        Single-plane frame rate (``SI.hRoiManager.scanFrameRate``); from the Recording if omitted.
    zoom : float
        ``SI.hRoiManager.scanZoomFactor``.
    pixel_size_um : float or (float, float)
        Encoded through ``SI.objectiveResolution`` and the scanfield size (degrees).
    line_period_s, bidirectional, z_step_um
        ``SI.hRoiManager.linePeriod``, ``SI.hScan2D.bidirectional``, ``SI.hStackManager.stackZStepSize``.
    aux_triggers_s : dict
        ``{"auxTrigger0": times_s, ...}``: each event goes in the description of the frame during which it came.

    Returns
    -------
    list of Path
        The files written, in order.
    """
    shape, dtype, blocks = _blocks(data, chunk_frames)
    rate = _rate(data, frame_rate_hz)
    rec = data if isinstance(data, Recording) else None
    writer = ScanImageSeriesWriter(
        folder,
        basename,
        shape,
        dtype,
        rate,
        frames_per_file,
        zoom,
        pixel_size_um if pixel_size_um is not None else (rec.pixel_size_um if rec else None),
        line_period_s if line_period_s is not None else (rec.line_period_s if rec else None),
        bool(
            bidirectional
            if bidirectional is not None
            else (rec.bidirectional if rec and rec.bidirectional is not None else True)
        ),
        z_step_um if z_step_um is not None else (rec.z_step_um if rec else None),
        rec.frame_times_s if rec is not None else None,
        aux_triggers_s,
    )
    with writer:
        for block in blocks:
            writer.write(block)
    return writer.files


# ----------------------------------------------------------------------------- plain TIFF
def write_tiff(
    data: Recording | np.ndarray,
    path: str | Path,
    frame_rate_hz: float | None = None,
    pixel_size_um: float | tuple[float, float] | None = None,
    z_step_um: float | None = None,
    imagej: bool = True,
    chunk_frames: int = 64,
) -> Path:
    """Write a (T, Z, C, Y, X) movie as one ImageJ hyperstack (or plain BigTIFF with ``imagej=False``).

    ImageJ metadata carries the frame interval (``finterval``), z ``spacing``
    and ``unit='um'``; the X/Y resolution tags carry the pixel size.
    """
    shape, dtype, blocks = _blocks(data, chunk_frames)
    rec = data if isinstance(data, Recording) else None
    if frame_rate_hz is None and rec is not None:
        frame_rate_hz = rec.volume_rate_hz or rec.frame_rate_hz
    if pixel_size_um is None and rec is not None:
        pixel_size_um = rec.pixel_size_um
    if z_step_um is None and rec is not None:
        z_step_um = rec.z_step_um
    n_frames, n_planes, n_channels, ny, nx = shape
    meta: dict[str, Any] = {"axes": "TZCYX"}
    kwargs: dict[str, Any] = {}
    if pixel_size_um is not None:
        px = np.broadcast_to(np.asarray(pixel_size_um, dtype=float), (2,))
        kwargs["resolution"] = (1.0 / px[1], 1.0 / px[0])
        meta["unit"] = "um"
    if frame_rate_hz:
        meta["finterval"] = 1.0 / float(frame_rate_hz)
    if z_step_um:
        meta["spacing"] = float(z_step_um)
        meta["unit"] = "um"
    pages = (
        block[i, z, c]
        for block in blocks
        for i in range(block.shape[0])
        for z in range(n_planes)
        for c in range(n_channels)
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, imagej=imagej, bigtiff=not imagej) as tif:
            tif.write(
                pages,
                shape=shape,
                dtype=dtype,
                metadata=meta if imagej else {"axes": "TZCYX"},
                photometric="minisblack",
                **kwargs,
            )
    return path


# ----------------------------------------------------------------------------- Scanbox
def write_sbx(
    data: Recording | np.ndarray,
    path_without_ext: str | Path,
    frame_rate_hz: float | None = None,
    bidirectional: bool = True,
    event_times_s: np.ndarray | None = None,
    event_ids: np.ndarray | None = None,
    chunk_frames: int = 64,
) -> Path:
    """Write Scanbox ``.sbx`` + ``.mat``: uint16 stored as ``65535 - value``, (frames, Y, X, C) order.

    The ``info`` struct holds ``sz``, ``recordsPerBuffer`` (lines, halved for a
    bidirectional scan), ``resfreq`` (chosen so that ``resfreq / recordsPerBuffer``
    is the frame rate), ``scanmode`` (0 bidirectional, 1 unidirectional),
    ``channels`` (1 = both PMTs, 2 = PMT0 only) and ``chan.nchan``, ``volscan`` and
    ``otparam = [0 0 n_planes]`` for volumes, and TTL events as ``frame``, ``line``
    (resonant periods into the frame) and ``event_id``.

    Returns
    -------
    Path
        The ``.sbx`` path.
    """
    shape, dtype, blocks = _blocks(data, chunk_frames)
    rate = _rate(data, frame_rate_hz)
    n_frames, n_planes, n_channels, ny, nx = shape
    if n_channels > 2:
        raise ParameterError(f"Scanbox stores 1 or 2 channels, got {n_channels}")
    records = ny // 2 if bidirectional else ny
    if bidirectional and ny % 2:
        raise ParameterError(f"a bidirectional Scanbox frame needs an even number of lines, got {ny}")
    resfreq = rate * records
    stem = Path(path_without_ext)
    sbx, mat = stem.with_suffix(".sbx"), stem.with_suffix(".mat")
    info: dict[str, Any] = {
        "sz": np.array([ny, nx], dtype=float),
        "recordsPerBuffer": float(records),
        "resfreq": float(resfreq),
        "scanmode": 0.0 if bidirectional else 1.0,
        "channels": 1.0 if n_channels == 2 else 2.0,
        "chan": {"nchan": float(n_channels)},
        "volscan": 1.0 if n_planes > 1 else 0.0,
        "otparam": np.array([0.0, 0.0, float(n_planes)]) if n_planes > 1 else np.zeros(0),
        "scanbox_version": 3.0,
        "simulated_by": "imagingkit.synth",
    }
    times = np.zeros(0) if event_times_s is None else np.asarray(event_times_s, dtype=float)
    frame_period = records / resfreq
    frame_idx = np.floor(times / frame_period)
    info["frame"] = frame_idx.astype(float)
    info["line"] = np.floor((times - frame_idx * frame_period) * resfreq)
    info["event_id"] = np.ones(times.size) if event_ids is None else np.asarray(event_ids, dtype=float)
    with atomic_path(sbx) as tmp_sbx, atomic_path(mat) as tmp_mat:
        with open(tmp_sbx, "wb") as fh:
            for block in blocks:
                vals = np.clip(np.asarray(block), 0, 65535).astype(np.uint16)
                raw = np.uint16(65535) - np.moveaxis(vals, 2, -1)  # (n, Z, Y, X, C)
                fh.write(np.ascontiguousarray(raw).astype("<u2").tobytes())
        scipy.io.savemat(tmp_mat, {"info": info}, do_compression=False)
        # savemat adds ".mat" to names without it; the temp name ends in ".part"
        produced = Path(str(tmp_mat) + ".mat")
        if produced.exists():
            produced.replace(tmp_mat)
    return sbx


# ----------------------------------------------------------------------------- truth sidecars
def write_functional_truth(truth: FunctionalTruth, folder: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>_truth.npz``, ``<name>_events.csv``, ``<name>_rois.csv``, ``<name>_triggers.npz``.

    The truth ``.npz`` holds the arrays of :class:`FunctionalTruth` (footprints
    as CSR parts ``footprints_data/indices/indptr`` with ``shape_yx``, spike
    times as ``spike_times_s`` + ``spike_roi``); the trigger file holds
    ``triggers`` (n_samples, n_channels) float32 volts, ``rate_hz`` and ``channels``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "truth": folder / f"{name}_truth.npz",
        "events": folder / f"{name}_events.csv",
        "rois": folder / f"{name}_rois.csv",
        "triggers": folder / f"{name}_triggers.npz",
    }
    fp = truth.footprints_sparse.tocsr()
    spikes = truth.spike_times_s
    arrays = dict(
        footprints_data=fp.data,
        footprints_indices=fp.indices,
        footprints_indptr=fp.indptr,
        shape_yx=np.asarray(truth.shape_yx),
        labels=truth.labels_per_plane,
        roi_plane=truth.roi_plane,
        centroids_yx=truth.centroids_yx,
        roi_kind=truth.roi_kind.astype(str),
        calcium=truth.calcium,
        spike_times_s=np.concatenate(spikes) if spikes else np.zeros(0),
        spike_roi=np.concatenate([np.full(len(s), k) for k, s in enumerate(spikes)])
        if spikes
        else np.zeros(0, int),
        spike_rates_hz=truth.spike_rates_hz,
        roi_time_offset_s=truth.roi_time_offset_s,
        frame_times_s=truth.frame_times_s,
        line_period_s=truth.line_period_s,
        shifts_yx=truth.shifts_yx,
        bad_frames=truth.bad_frames,
        corrupt_kind=truth.corrupt_kind,
        responsive=truth.responsive,
        latency_s=truth.latency_s,
        response_amplitude=truth.response_amplitude,
        trial_amplitudes=truth.trial_amplitudes,
        artifact_mask=truth.artifact_mask,
        neuropil=truth.neuropil,
        drift=truth.drift,
        mean_image=truth.mean_image.astype(np.float32),
        photon_gain_adu=truth.photon_gain_adu,
        offset_adu=truth.offset_adu,
        read_noise_adu=truth.read_noise_adu,
        learning_factor=truth.learning_factor,
        session_index=truth.session_index,
        indicator=truth.indicator,
    )
    if truth.nonrigid_modes is not None:
        arrays.update(nonrigid_modes=truth.nonrigid_modes, nonrigid_weights=truth.nonrigid_weights)
    with atomic_path(paths["truth"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    with atomic_path(paths["events"]) as tmp:
        truth.events.to_csv(tmp, index=False)
    with atomic_path(paths["rois"]) as tmp:
        truth.roi_table().to_csv(tmp, index=False)
    with atomic_path(paths["triggers"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                triggers=truth.triggers,
                rate_hz=truth.trigger_rate_hz,
                channels=np.asarray(truth.trigger_channels),
            )
    return paths


def write_functional(
    folder: str | Path,
    name: str = "sim",
    format: str = "scanimage",
    chunk_frames: int = 32,
    frames_per_file: int = 1000,
    n_threads: int = 2,
    zoom: float = 2.0,
    **sim_kwargs: Any,
) -> tuple[list[Path], FunctionalTruth]:
    """Simulate a functional recording and stream it to disk chunk by chunk.

    The movie is never held in memory: each chunk of ``chunk_frames`` time
    points is rendered (footprints x traces as one sparse product, motion,
    artifact, noise) and written. Pixels are identical to
    :func:`~imagingkit.synth.simulate_functional` with the same arguments.

    Parameters
    ----------
    folder : path
        Output folder; files ``<name>_00001.tif``... (scanimage), ``<name>.tif``
        (tiff) or ``<name>.sbx``/``.mat`` (sbx), plus the truth sidecars.
    format : {"scanimage", "tiff", "sbx"}
    **sim_kwargs
        Arguments of :func:`~imagingkit.synth.simulate_functional`.

    Returns
    -------
    files : list of Path
    truth : FunctionalTruth
    """
    if format not in FORMATS:
        raise ParameterError(f"format must be one of {FORMATS}, got {format!r}")
    spec = make_spec(**sim_kwargs)
    model = FunctionalModel(spec)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (spec.n_frames, spec.n_planes, spec.n_channels, *spec.shape_yx)
    blocks = (block for _, block in model.iter_chunks(chunk_frames, n_threads))
    pulses = model.pulses
    if format == "scanimage":
        writer = ScanImageSeriesWriter(
            folder,
            name,
            shape,
            spec.dtype,
            spec.frame_rate_hz,
            frames_per_file,
            zoom,
            spec.pixel_size_um,
            spec.line_period,
            spec.bidirectional,
            spec.z_step_um if spec.n_planes > 1 else None,
            model.frame_times,
            {"auxTrigger0": pulses["start_s"].to_numpy()} if len(pulses) else None,
        )
        with writer:
            for block in blocks:
                writer.write(block)
        files = writer.files
    elif format == "tiff":
        files = [
            write_tiff(
                _Stream(shape, spec.dtype, blocks),
                folder / f"{name}.tif",
                spec.volume_rate_hz,
                spec.pixel_size_um,
                spec.z_step_um if spec.n_planes > 1 else None,
            )
        ]
    else:
        sbx = write_sbx(
            _Stream(shape, spec.dtype, blocks),
            folder / name,
            spec.frame_rate_hz,
            spec.bidirectional,
            event_times_s=model.events.loc[model.events.condition == "stim", "onset_s"].to_numpy(),
        )
        files = [sbx, sbx.with_suffix(".mat")]
    truth = model.truth()
    write_functional_truth(truth, folder, name)
    return files, truth


class _Stream:
    """A (T, Z, C, Y, X) block stream that :func:`_blocks` accepts like an array."""

    def __init__(self, shape, dtype, blocks: Iterable[np.ndarray]):
        self.shape, self.dtype, self.blocks = shape, np.dtype(dtype), blocks


_array_blocks = _blocks


def _blocks(data, chunk_frames: int = 64):  # noqa: F811 - extends the array/Recording version with streams
    if isinstance(data, _Stream):
        return data.shape, data.dtype, iter(data.blocks)
    return _array_blocks(data, chunk_frames)


# ----------------------------------------------------------------------------- structural
def write_dendrite_sessions(dsim, folder: str | Path, basename: str = "session") -> dict[str, Any]:
    """Write each session as an ImageJ TIFF with pixel size (and z step) plus the truth tables.

    Files: ``<basename><ss>_<time>h.tif`` (one per session, (Y, X) or (Z, Y, X), e.g. ``session01_1h.tif``;
    deliberately not a numbered series, so each opens alone),
    ``spines_truth.csv`` (one row per spine per session), ``sessions.csv``
    (session, time_h, file, transform parameters) and ``dendrites.npz``
    (per dendrite ``centreline_<i>``, ``arc_um_<i>``, ``radius_um_<i>``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for s, img in enumerate(dsim.images):
        path = (
            folder / f"{basename}{s:02d}_{dsim.times_h[s]:g}h.tif"
        )  # not a numbered series: one file per session
        meta: dict[str, Any] = {"axes": "ZYX" if img.ndim == 3 else "YX", "unit": "um"}
        if img.ndim == 3:
            meta["spacing"] = float(dsim.z_step_um)
        with atomic_path(path) as tmp:
            tifffile.imwrite(
                tmp,
                img,
                imagej=True,
                resolution=(1 / dsim.pixel_size_um, 1 / dsim.pixel_size_um),
                metadata=meta,
            )
        files.append(path)
    with atomic_path(folder / "spines_truth.csv") as tmp:
        dsim.truth.to_csv(tmp, index=False)
    rows = []
    for s, tr in enumerate(dsim.transforms):
        rows.append(
            dict(
                session=s,
                time_h=dsim.times_h[s],
                file=files[s].name,
                shift_y_px=tr.shift_px[0],
                shift_x_px=tr.shift_px[1],
                shift_z_px=tr.shift_px[2] if len(tr.shift_px) > 2 else 0.0,
                rotation_deg=tr.rotation_deg,
                warp_amplitude_px=tr.warp_amplitude_px,
                warp_wavevectors=json.dumps(tr.warp_wavevectors),
                warp_phases=json.dumps(tr.warp_phases),
                centre_y=tr.centre_yx[0],
                centre_x=tr.centre_yx[1],
            )
        )
    with atomic_path(folder / "sessions.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    arrays = {}
    for d in dsim.dendrites:
        arrays[f"centreline_{d.dendrite_id}"] = d.centreline
        arrays[f"arc_um_{d.dendrite_id}"] = d.arc_um
        arrays[f"radius_um_{d.dendrite_id}"] = d.radius_um
    with atomic_path(folder / "dendrites.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, pixel_size_um=dsim.pixel_size_um, **arrays)
    return {
        "images": files,
        "truth": folder / "spines_truth.csv",
        "sessions": folder / "sessions.csv",
        "dendrites": folder / "dendrites.npz",
    }
