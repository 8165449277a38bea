"""Write ScanImage-2016-style TIFF files for tests, the way ScanImage lays them out.

Pages are (volume, plane incl. saved flyback, channel) interleaved; every page's
ImageDescription holds the varying frame data (``frameNumbers = 1\\n
frameTimestamps_sec = 0.000000\\n...``); the non-varying ``SI.*`` header is in
the Software tag and the ROI groups JSON in the Artist tag, as ScanImage writes
them and :attr:`tifffile.TiffFile.scanimage_metadata` / ``is_scanimage`` expect.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile


def si_header(
    *,
    channels=(1,),
    frame_rate_hz=30.0,
    n_slices=1,
    fast_z=False,
    n_flyback=0,
    discard_flyback=True,
    bidirectional=True,
    line_period_s=6.3e-05,
    zoom=2.0,
    fov_um=None,
    frames_per_slice=None,
    z_step_um=2.0,
    volume_rate_hz=None,
    lines_pixels=(32, 48),
    extra_lines=(),
) -> str:
    """The non-varying ``SI.*`` header text (Software tag); ``extra_lines`` are appended as given."""
    chan = "[" + ";".join(str(c) for c in channels) + "]" if len(channels) > 1 else str(channels[0])
    lines = [
        "SI.VERSION_MAJOR = '2016b'",
        "SI.VERSION_MINOR = '0'",
        f"SI.hChannels.channelSave = {chan}",
        f"SI.hRoiManager.scanFrameRate = {frame_rate_hz}",
        f"SI.hRoiManager.linePeriod = {line_period_s}",
        f"SI.hRoiManager.scanZoomFactor = {zoom}",
        f"SI.hRoiManager.linesPerFrame = {lines_pixels[0]}",
        f"SI.hRoiManager.pixelsPerLine = {lines_pixels[1]}",
        f"SI.hScan2D.bidirectional = {'true' if bidirectional else 'false'}",
        f"SI.hFastZ.enable = {'true' if fast_z else 'false'}",
        f"SI.hFastZ.numDiscardFlybackFrames = {n_flyback}",
        f"SI.hFastZ.discardFlybackFrames = {'true' if discard_flyback else 'false'}",
        f"SI.hStackManager.numSlices = {n_slices}",
        f"SI.hStackManager.stackZStepSize = {z_step_um}",
        f"SI.hStackManager.framesPerSlice = {frames_per_slice if frames_per_slice else 'Inf'}",
        "SI.objectiveResolution = 15",
    ]
    if volume_rate_hz is not None:
        lines.append(f"SI.hRoiManager.scanVolumeRate = {volume_rate_hz}")
    if fov_um is not None:
        h, w = fov_um
        lines.append(
            f"SI.hRoiManager.imagingFovUm = [{-w / 2} {-h / 2};{w / 2} {-h / 2};{w / 2} {h / 2};{-w / 2} {h / 2}]"
        )
    return "\n".join([*lines, *extra_lines])


def roi_groups_json(size_xy_deg=(4.0, 2.0), pixels_xy=(48, 32)) -> str:
    return json.dumps(
        {
            "RoiGroups": {
                "imagingRoiGroup": {
                    "ver": 1,
                    "name": "Default Imaging ROI Group",
                    "rois": {
                        "ver": 1,
                        "name": "Default Imaging Roi",
                        "scanfields": {
                            "centerXY": [0, 0],
                            "sizeXY": list(size_xy_deg),
                            "pixelResolutionXY": list(pixels_xy),
                        },
                    },
                },
                "photostimRoiGroups": None,
            }
        }
    )


def mroi_groups_json(fields) -> str:
    """ROI groups of a multi-ROI acquisition: ``fields`` are (name, centerXY, sizeXY, pixelResolutionXY)."""
    rois = [
        {
            "ver": 1,
            "name": name,
            "enable": 1,
            "discretePlaneMode": 0,
            "scanfields": {"centerXY": list(center), "sizeXY": list(size), "pixelResolutionXY": list(pixels)},
        }
        for name, center, size, pixels in fields
    ]
    return json.dumps({"RoiGroups": {"imagingRoiGroup": {"ver": 1, "name": "MROI", "rois": rois}}})


def frame_description(
    frame_number: int, timestamp_s: float, aux: dict | None = None, acq_trigger=None
) -> str:
    aux = aux or {}
    fields = [
        f"frameNumbers = {frame_number}",
        "acquisitionNumbers = 1",
        f"frameNumberAcquisition = {frame_number}",
        f"frameTimestamps_sec = {timestamp_s:.6f}",
        f"acqTriggerTimestamps_sec = {'' if acq_trigger is None else f'{acq_trigger:.6f}'}",
        "nextFileMarkerTimestamps_sec = ",
        "endOfAcquisition = 0",
        "endOfAcquisitionMode = 0",
        "dcOverVoltage = 0",
        "epoch = [2024  5 17 10 31 12.345]",
    ]
    for k in range(4):
        times = aux.get(k, [])
        fields.append(f"auxTrigger{k} = [" + " ".join(f"{t:.6f}" for t in times) + "]")
    fields.append("I2CData = {}")
    return "\n".join(fields)


def write_scanimage_series(
    folder: Path,
    pages: np.ndarray,
    header: str,
    *,
    frame_rate_hz: float,
    n_channels: int,
    pages_per_file: int | None = None,
    basename: str = "file_00001",
    aux: dict | None = None,
    bigtiff: bool = True,
    jitter_s: float = 0.0,
    roi_groups: str | None = None,
) -> list[Path]:
    """Write ``pages`` ((n_pages, Y, X), already in ScanImage interleaved order) to one or more files.

    ``aux`` maps an aux channel k to event times (s); each event is written in
    the description of the frame during which it happened. ``roi_groups`` is the ROI
    groups JSON (default: one imaging ROI covering the page).
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_pages = len(pages)
    per_file = pages_per_file or n_pages
    files = []
    aux = aux or {}
    for file_no, start in enumerate(range(0, n_pages, per_file), start=1):
        name = f"{basename}_{file_no:05d}.tif" if pages_per_file else f"{basename}.tif"
        path = folder / name
        with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
            for p in range(start, min(start + per_file, n_pages)):
                frame = p // n_channels
                t = frame / frame_rate_hz + (jitter_s * ((frame * 7919) % 13) / 13.0)
                t0, t1 = frame / frame_rate_hz, (frame + 1) / frame_rate_hz
                events = {k: [e for e in v if t0 <= e < t1] for k, v in aux.items()}
                desc = frame_description(frame + 1, t, events, acq_trigger=0.0 if frame == 0 else None)
                tw.write(
                    pages[p],
                    description=desc,
                    software=header,
                    extratags=[(315, "s", 0, roi_groups or roi_groups_json(), True)],
                    metadata=None,
                    contiguous=False,
                )
        files.append(path)
    return files


def write_mroi_series(folder: Path, pages: np.ndarray, fields, *, fov_um=None, flyto_s=0.0005) -> list[Path]:
    """A multi-ROI ScanImage file at 10 Hz: ``fields`` as in :func:`mroi_groups_json`, stacked in ``pages``.

    With the header's 63 µs line period, ``flyto_s`` = 0.5 ms gives 8 fly-to lines between fields.
    """
    header = si_header(
        lines_pixels=pages.shape[1:],
        fov_um=fov_um,
        extra_lines=("SI.hRoiManager.mroiEnable = true", f"SI.hScan2D.flytoTimePerScanfield = {flyto_s}"),
    )
    return write_scanimage_series(
        folder, pages, header, frame_rate_hz=10.0, n_channels=1, roi_groups=mroi_groups_json(fields)
    )
