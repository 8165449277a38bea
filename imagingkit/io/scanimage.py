"""ScanImage metadata: acquisition layout, timing and triggers from TIFF headers.

Two header families are understood:

* ScanImage 3.x writes ``state.acq.frameRate=8.13`` lines (``\\r``-separated)
  in every page's ImageDescription.
* ScanImage 5.x / 2016 and later write the non-varying ``SI.*`` header (and
  the ROI groups as JSON) once, in a block after the BigTIFF header that
  :func:`tifffile.read_scanimage_metadata` reads, and again in the Software
  (``SI.*``) and Artist (JSON) tags; each page's ImageDescription holds the
  varying frame data (``frameNumbers``, ``frameTimestamps_sec``,
  ``acqTriggerTimestamps_sec``, ``auxTrigger0..3`` ...).

All values are parsed with :func:`tifffile.matlabstr2py`; this module turns them
into a :class:`ScanImageInfo`. The TIFF loader (:mod:`imagingkit.io.tiff`) uses
it to map pages to (time, plane, channel).

Pixel size rule (first that applies):

1. ``SI.hRoiManager.imagingFovUm`` (corner points of the field in µm, ScanImage
   2018+): field height/width divided by lines/pixels.
2. The first imaging ROI's scanfield ``sizeXY`` (degrees) times
   ``SI.objectiveResolution`` (µm per degree), divided by its
   ``pixelResolutionXY``.
3. A user calibration ``fov_um_at_zoom1`` (field of view in µm at zoom 1,
   scalar or (y, x)) divided by the zoom factor and the pixel counts.
4. Otherwise unknown (``None``); pass ``pixel_size_um=`` to override.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np
import tifffile

from imagingkit.errors import MetadataError

TRIGGER_KEYS = (
    "acqTriggerTimestamps_sec",
    "nextFileMarkerTimestamps_sec",
    "auxTrigger0",
    "auxTrigger1",
    "auxTrigger2",
    "auxTrigger3",
)


@dataclasses.dataclass(frozen=True)
class ScanImageInfo:
    """What a ScanImage header says about the acquisition.

    Attributes
    ----------
    version : str
        ScanImage version ("3.8", "2016b", "2019"...).
    channels_saved : tuple of int
        1-based ids of the saved channels, in page order.
    n_planes : int
        Imaging planes per volume (1 without a stack).
    n_flyback_frames : int
        Frames of fast-z flyback per volume (time spent, saved or not).
    n_flyback_saved : int
        Flyback frames present in the file per volume (dropped on reading).
    frames_per_slice : int
        Frames saved per plane before moving on (>1 only for slow stacks).
    fast_z : bool
        Volumes acquired with a fast z actuator (piezo / ETL).
    frame_rate_hz, volume_rate_hz : float or None
    line_period_s : float or None
    bidirectional : bool or None
    zoom : float or None
    pixel_size_um : (float, float) or None
    z_step_um : float or None
    header : dict
        The parsed header (``state.*`` or ``SI.*`` keys).
    roi_groups : dict
        ScanImage ROI groups (2016+), or empty.
    """

    version: str
    channels_saved: tuple[int, ...]
    n_planes: int = 1
    n_flyback_frames: int = 0
    n_flyback_saved: int = 0
    frames_per_slice: int = 1
    fast_z: bool = False
    frame_rate_hz: float | None = None
    volume_rate_hz: float | None = None
    line_period_s: float | None = None
    bidirectional: bool | None = None
    zoom: float | None = None
    pixel_size_um: tuple[float, float] | None = None
    z_step_um: float | None = None
    header: dict = dataclasses.field(default_factory=dict, repr=False)
    roi_groups: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def n_channels(self) -> int:
        return len(self.channels_saved)

    @property
    def pages_per_volume(self) -> int:
        """Pages one time point occupies in the file."""
        return (self.n_planes + self.n_flyback_saved) * self.frames_per_slice * self.n_channels


# -- parsing --------------------------------------------------------------------
def is_scanimage3(description: str) -> bool:
    """True for a ScanImage 3.x ``state.*`` ImageDescription."""
    return description.lstrip().startswith("state.")


def parse_header(text: str) -> dict:
    """Parse ``key=value`` / ``key = value`` MATLAB lines (either header family) into a dict."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        parsed = tifffile.matlabstr2py(text)
    except Exception as exc:  # tifffile raises several types on malformed text
        raise MetadataError(f"ScanImage header could not be parsed: {exc}") from exc
    if not isinstance(parsed, dict):
        raise MetadataError("ScanImage header holds no key=value lines")
    return parsed


def static_metadata(tif: tifffile.TiffFile) -> tuple[dict, dict]:
    """Non-varying ``SI.*`` header and ROI groups of a ScanImage 2016+ file.

    Uses :attr:`tifffile.TiffFile.scanimage_metadata` (the block ScanImage
    writes after the BigTIFF header) and falls back to the first page's
    Software and Artist tags, which ScanImage also fills.
    """
    meta = tif.scanimage_metadata or {}
    frame_data = meta.get("FrameData") or {}
    roi_groups = meta.get("RoiGroups") or {}
    page = tif.pages.first
    if not frame_data and page.software.startswith("SI."):
        frame_data = parse_header(page.software)
    if not roi_groups:
        artist = page.tags.valueof(315)  # Artist
        if artist:
            try:
                roi_groups = json.loads(artist).get("RoiGroups", {})
            except (ValueError, AttributeError):
                roi_groups = {}
    return frame_data, roi_groups


def _flat_numbers(value) -> np.ndarray:
    """A parsed MATLAB value ('' / scalar / [a b] / [a;b]) as a flat float array."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return np.zeros(0)
    try:
        return np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.zeros(0)


def _number(header: dict, *keys: str, default=None):
    for key in keys:
        if key in header:
            arr = _flat_numbers(header[key])
            if arr.size == 1 and np.isfinite(arr[0]):
                return float(arr[0])
            if arr.size == 1 and default is not None:
                return default
    return default


def _flag(header: dict, *keys: str) -> bool | None:
    for key in keys:
        if key in header:
            value = header[key]
            if isinstance(value, str):
                return value.strip().lower() in ("true", "1")
            return bool(np.asarray(value).ravel()[0]) if np.asarray(value).size else None
    return None


def _pixel_from_fov(fov_um_yx, zoom: float | None, shape_yx: tuple[int, int]) -> tuple[float, float] | None:
    if fov_um_yx is None:
        return None
    fov = np.broadcast_to(np.asarray(fov_um_yx, dtype=float), (2,))
    if zoom:
        fov = fov / zoom
    return float(fov[0] / shape_yx[0]), float(fov[1] / shape_yx[1])


# -- ScanImage 3.x ----------------------------------------------------------------
def info_from_scanimage3(header: dict, shape_yx: tuple[int, int], fov_um_at_zoom1=None) -> ScanImageInfo:
    """Acquisition layout of a ScanImage 3.x file from its ``state.*`` header."""
    saved = tuple(k for k in range(1, 5) if _number(header, f"state.acq.savingChannel{k}", default=0))
    if not saved:
        n_save = int(_number(header, "state.acq.numberOfChannelsSave", default=1))
        saved = tuple(range(1, n_save + 1))
    n_planes = int(_number(header, "state.acq.numberOfZSlices", default=1) or 1)
    frames = int(_number(header, "state.acq.numberOfFrames", default=1) or 1)
    if _number(header, "state.acq.averaging", default=0):
        frames = 1
    else:
        frames //= max(int(_number(header, "state.acq.numAvgFramesSave", default=1) or 1), 1)
    ms_per_line = _number(header, "state.acq.msPerLine")
    zoom = _number(header, "state.acq.zoomFactor")
    version = header.get("state.software.version", "3")
    return ScanImageInfo(
        version=str(version),
        channels_saved=saved,
        n_planes=n_planes,
        frames_per_slice=max(frames, 1) if n_planes > 1 else 1,
        fast_z=False,
        frame_rate_hz=_number(header, "state.acq.frameRate"),
        volume_rate_hz=None,
        line_period_s=None if ms_per_line is None else ms_per_line / 1000.0,
        bidirectional=_flag(header, "state.acq.bidirectionalScan"),
        zoom=zoom,
        pixel_size_um=_pixel_from_fov(fov_um_at_zoom1, zoom, shape_yx),
        z_step_um=_number(header, "state.acq.zStepSize") if n_planes > 1 else None,
        header=header,
    )


# -- ScanImage 2016+ ----------------------------------------------------------------
def _first_imaging_scanfield(roi_groups: dict) -> dict | None:
    group = roi_groups.get("imagingRoiGroup") if isinstance(roi_groups, dict) else None
    rois = group.get("rois") if isinstance(group, dict) else None
    if isinstance(rois, list):
        rois = rois[0] if rois else None
    fields = rois.get("scanfields") if isinstance(rois, dict) else None
    if isinstance(fields, list):
        fields = fields[0] if fields else None
    return fields if isinstance(fields, dict) else None


def _pixel_size_2016(
    header: dict, roi_groups: dict, shape_yx: tuple[int, int], zoom: float | None, fov_um_at_zoom1
) -> tuple[float, float] | None:
    corners = header.get("SI.hRoiManager.imagingFovUm")
    if corners is not None:
        pts = np.asarray(corners, dtype=float)
        if pts.ndim == 2 and pts.shape[1] == 2 and pts.shape[0] >= 2:
            width, height = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
            if width > 0 and height > 0:
                return float(height / shape_yx[0]), float(width / shape_yx[1])
    field = _first_imaging_scanfield(roi_groups)
    um_per_deg = _number(header, "SI.objectiveResolution")
    if field is not None and um_per_deg:
        size_xy = _flat_numbers(field.get("sizeXY"))
        pixels_xy = _flat_numbers(field.get("pixelResolutionXY"))
        if size_xy.size == 2 and pixels_xy.size == 2 and np.all(pixels_xy > 0):
            return (
                float(size_xy[1] * um_per_deg / pixels_xy[1]),
                float(size_xy[0] * um_per_deg / pixels_xy[0]),
            )
    return _pixel_from_fov(fov_um_at_zoom1, zoom, shape_yx)


def info_from_scanimage2016(
    header: dict, roi_groups: dict, shape_yx: tuple[int, int], fov_um_at_zoom1=None
) -> ScanImageInfo:
    """Acquisition layout of a ScanImage 5.x/2016+ file from its ``SI.*`` header.

    Planes: ``SI.hStackManager.actualNumSlices`` (else ``numSlices``; for
    2020+ fast stacks ``numFramesPerVolume``). Flyback:
    ``SI.hFastZ.numDiscardFlybackFrames`` (2020+: ``numFramesPerVolumeWithFlyback
    - numFramesPerVolume``); they are in the file only when
    ``SI.hFastZ.discardFlybackFrames`` is false, and are then dropped.
    """
    channels = _flat_numbers(header.get("SI.hChannels.channelSave", 1)).astype(int)
    saved = tuple(int(c) for c in channels) or (1,)
    stack_enabled = _flag(header, "SI.hStackManager.enable")
    stack_mode = str(header.get("SI.hStackManager.stackMode", "")).lower()
    fast_z = bool(_flag(header, "SI.hFastZ.enable")) or (bool(stack_enabled) and stack_mode == "fast")
    n_planes = int(
        _number(header, "SI.hStackManager.actualNumSlices", "SI.hStackManager.numSlices", default=1) or 1
    )
    if stack_enabled is False:
        n_planes = 1
    per_volume = _number(header, "SI.hStackManager.numFramesPerVolume")
    with_flyback = _number(header, "SI.hStackManager.numFramesPerVolumeWithFlyback")
    if fast_z and per_volume:
        n_planes = int(per_volume)
    n_flyback = 0
    if fast_z and n_planes > 1:
        if with_flyback is not None and per_volume is not None:
            n_flyback = int(with_flyback - per_volume)
        else:
            n_flyback = int(_number(header, "SI.hFastZ.numDiscardFlybackFrames", default=0) or 0)
    discard = _flag(header, "SI.hFastZ.discardFlybackFrames")
    n_flyback_saved = 0 if (discard is None or discard) else n_flyback
    frames_per_slice = 1
    if n_planes > 1 and not fast_z:
        frames = _number(header, "SI.hStackManager.framesPerSlice", default=1) or 1
        average = _number(header, "SI.hScan2D.logAverageFactor", default=1) or 1
        frames_per_slice = max(int(frames // average), 1)
    frame_rate = _number(header, "SI.hRoiManager.scanFrameRate")
    volume_rate = None
    if n_planes == 1:
        volume_rate = frame_rate
    elif fast_z:
        volume_rate = _number(header, "SI.hRoiManager.scanVolumeRate")
        if volume_rate is None and frame_rate:
            volume_rate = frame_rate / (n_planes + n_flyback)
    zoom = _number(header, "SI.hRoiManager.scanZoomFactor")
    z_step = _number(header, "SI.hStackManager.actualStackZStepSize", "SI.hStackManager.stackZStepSize")
    version = header.get("SI.VERSION_MAJOR", "2016+")
    return ScanImageInfo(
        version=str(version),
        channels_saved=saved,
        n_planes=n_planes,
        n_flyback_frames=n_flyback,
        n_flyback_saved=n_flyback_saved,
        frames_per_slice=frames_per_slice,
        fast_z=fast_z,
        frame_rate_hz=frame_rate,
        volume_rate_hz=volume_rate,
        line_period_s=_number(header, "SI.hRoiManager.linePeriod"),
        bidirectional=_flag(header, "SI.hScan2D.bidirectional"),
        zoom=zoom,
        pixel_size_um=_pixel_size_2016(header, roi_groups, shape_yx, zoom, fov_um_at_zoom1),
        z_step_um=z_step if n_planes > 1 else None,
        header=header,
        roi_groups=roi_groups if isinstance(roi_groups, dict) else {},
    )


# -- multi-ROI (mROI) fields ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScanField:
    """One imaging ROI of a ScanImage multi-ROI acquisition, as it lies in every page.

    ScanImage stores the ROIs of one frame one below the other in a single page, in the
    order of the ROI group, with ``round(SI.hScan2D.flytoTimePerScanfield /
    SI.hRoiManager.linePeriod)`` lines recorded while the scanners fly from one ROI to the
    next (the layout scanreader and suite2p's mesoscope reader assume).

    Attributes
    ----------
    name : str
        The ROI's name in the ROI group.
    row_start : int
        First page row of the field.
    n_rows, n_cols : int
        Lines and pixels per line (``pixelResolutionXY`` reversed).
    center_xy_deg, size_xy_deg : (float, float)
        Scanfield centre and size in scan angle (degrees), as ScanImage gives them.
    pixel_size_um : (float, float) or None
        (y, x) µm per pixel: ``sizeXY * SI.objectiveResolution / pixelResolutionXY``.
    """

    name: str
    row_start: int
    n_rows: int
    n_cols: int
    center_xy_deg: tuple[float, float]
    size_xy_deg: tuple[float, float]
    pixel_size_um: tuple[float, float] | None


def _imaging_rois(roi_groups: dict) -> list[dict]:
    group = roi_groups.get("imagingRoiGroup") if isinstance(roi_groups, dict) else None
    rois = group.get("rois") if isinstance(group, dict) else None
    rois = [rois] if isinstance(rois, dict) else list(rois or [])
    return [r for r in rois if isinstance(r, dict) and r.get("enable", 1) not in (0, False)]


def multiroi_fields(header: dict, roi_groups: dict, page_shape_yx: tuple[int, int], path) -> list[ScanField]:
    """The fields of a multi-ROI acquisition, or an empty list for an ordinary one.

    Parameters
    ----------
    header : dict
        Parsed ``SI.*`` header.
    roi_groups : dict
        The ROI groups JSON.
    page_shape_yx : (int, int)
        Size of one TIFF page.
    path : Path
        The file, for error messages.

    Raises
    ------
    MetadataError
        The ROIs and fly-to lines do not add up to the page height, or a ROI is imaged
        only at some depths (discrete plane mode), which this reader does not lay out.
    """
    rois = _imaging_rois(roi_groups)
    if not _flag(header, "SI.hRoiManager.mroiEnable") or len(rois) < 2:
        return []
    line_period = _number(header, "SI.hRoiManager.linePeriod")
    flyto = _number(header, "SI.hScan2D.flytoTimePerScanfield", default=0.0)
    if not line_period:
        raise MetadataError(
            f"{path}: multi-ROI file without SI.hRoiManager.linePeriod; cannot find its fields"
        )
    n_fly_lines = round(flyto / line_period)
    um_per_deg = _number(header, "SI.objectiveResolution")
    fields, row = [], 0
    for i, roi in enumerate(rois):
        if _flag(roi, "discretePlaneMode"):
            raise MetadataError(f"{path}: ROI {i + 1} is imaged at discrete planes only; not supported")
        scanfield = roi.get("scanfields")
        scanfield = scanfield[0] if isinstance(scanfield, list) and scanfield else scanfield
        if not isinstance(scanfield, dict):
            raise MetadataError(f"{path}: ROI {i + 1} of the imaging ROI group has no scanfield")
        pixels_xy = _flat_numbers(scanfield.get("pixelResolutionXY")).astype(int)
        size_xy = _flat_numbers(scanfield.get("sizeXY"))
        center_xy = _flat_numbers(scanfield.get("centerXY"))
        if pixels_xy.size != 2 or np.any(pixels_xy < 1):
            raise MetadataError(f"{path}: ROI {i + 1} has no valid pixelResolutionXY")
        pixel_size = None
        if um_per_deg and size_xy.size == 2:
            pixel_size = (
                float(size_xy[1] * um_per_deg / pixels_xy[1]),
                float(size_xy[0] * um_per_deg / pixels_xy[0]),
            )
        fields.append(
            ScanField(
                name=str(roi.get("name") or f"ROI {i + 1}"),
                row_start=row,
                n_rows=int(pixels_xy[1]),
                n_cols=int(pixels_xy[0]),
                center_xy_deg=tuple(float(v) for v in center_xy[:2])
                if center_xy.size >= 2
                else (np.nan, np.nan),
                size_xy_deg=tuple(float(v) for v in size_xy[:2]) if size_xy.size == 2 else (np.nan, np.nan),
                pixel_size_um=pixel_size,
            )
        )
        row += int(pixels_xy[1]) + n_fly_lines
    height = row - n_fly_lines
    widest = max(f.n_cols for f in fields)
    if height != page_shape_yx[0] or widest > page_shape_yx[1]:
        raise MetadataError(
            f"{path}: {len(fields)} multi-ROI fields of {[f.n_rows for f in fields]} lines with {n_fly_lines} "
            f"fly-to lines between them make {height} x {widest} pixels, but pages are "
            f"{page_shape_yx[0]} x {page_shape_yx[1]}"
        )
    return fields


# -- per-frame data -------------------------------------------------------------------
_FRAME_LINE = re.compile(r"^[ \t]*([A-Za-z_][\w.]*)[ \t]*=[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:Inf|inf|NaN|nan)")


def frame_fields(description: str) -> dict[str, str]:
    """``key = value`` lines of a per-frame description as raw strings.

    A lean tokenizer instead of :func:`tifffile.matlabstr2py` (used for the
    static header): per-frame values are numbers or numeric vectors, and a long
    recording has one description per page, so this is 10x faster.
    """
    return dict(_FRAME_LINE.findall(description))


def parse_numbers(text: str | None) -> np.ndarray:
    """Numbers in a per-frame value (``''``, ``1.5``, ``[0.1 0.2]``, ``[1;2]``) as a float array."""
    if not text:
        return np.zeros(0)
    return np.array([float(v) for v in _NUMBER.findall(text)], dtype=float)


def parse_frame_descriptions(descriptions: Sequence[str]) -> dict:
    """Per-page frame data of ScanImage 2016+ pages.

    Returns
    -------
    dict
        ``frame_numbers`` (n,) int (-1 where absent), ``timestamps_s`` (n,)
        float (NaN where absent), ``acquisition_numbers`` (n,) int, and for each
        name in :data:`TRIGGER_KEYS` the sorted unique event times (s) found.
    """
    n = len(descriptions)
    numbers = np.full(n, -1, dtype=np.int64)
    acquisitions = np.full(n, -1, dtype=np.int64)
    timestamps = np.full(n, np.nan)
    events: dict[str, list[np.ndarray]] = {key: [] for key in TRIGGER_KEYS}
    for i, text in enumerate(descriptions):
        if not text or "frameNumbers" not in text:
            continue
        fields = frame_fields(text)
        values = parse_numbers(fields.get("frameNumbers"))
        if values.size:
            numbers[i] = int(values[0])
        values = parse_numbers(fields.get("acquisitionNumbers"))
        if values.size:
            acquisitions[i] = int(values[0])
        values = parse_numbers(fields.get("frameTimestamps_sec"))
        if values.size:
            timestamps[i] = values[0]
        for key in TRIGGER_KEYS:
            values = parse_numbers(fields.get(key))
            if values.size:
                events[key].append(values[np.isfinite(values)])
    out = {"frame_numbers": numbers, "timestamps_s": timestamps, "acquisition_numbers": acquisitions}
    for key, chunks in events.items():
        out[key] = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0)
    return out


def trigger_times(frame_data: dict) -> dict[str, np.ndarray]:
    """Non-empty trigger channels of :func:`parse_frame_descriptions` output, by short name."""
    names = {
        "acqTriggerTimestamps_sec": "acqTrigger",
        "nextFileMarkerTimestamps_sec": "nextFileMarker",
    }
    return {
        names.get(key, key): frame_data[key] for key in TRIGGER_KEYS if frame_data.get(key, np.zeros(0)).size
    }
