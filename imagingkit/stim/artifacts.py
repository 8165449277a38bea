"""Light artifacts: scan lines contaminated by the stimulation light.

While the stimulation light is on, some of it reaches the detector and the
lines scanned at that moment come out brighter across their whole width. We
find them from the movie itself: each line's brightness (median across the
line, so a bright cell in part of the line barely moves it) is compared with
the same line in all other frames (robust z-score: median and MAD), and a line
is contaminated when it is an outlier *and* was scanned while the light was on
(synchronous with an event). The result is one shared boolean mask, (T, Y)
lines or (T,) frames, which :func:`roi_artifact_mask` turns into a per-ROI,
per-frame mask that every later step respects (masked samples become NaN).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, ParameterError

_MAD_TO_SD = 1.4826


#: Default artifact margin (rows beyond the ROI radius) for traces that include the neuropil
#: annulus (neuropil-subtracted F, dF/F): light on the annulus lines contaminates them too.
NEUROPIL_MARGIN_PX = 20.0


@dataclasses.dataclass(frozen=True)
class ArtifactParams:
    """Light-artifact detection.

    Attributes
    ----------
    z_threshold : float
        Robust z-score above which a line is an outlier.
    pad_s : float
        Time added before and after each event's light-on interval when
        deciding whether a line was scanned during the light.
    require_event_sync : bool
        Only lines scanned during an event can be flagged (recommended).
    chunk_frames : int
        Frames per block when streaming a recording.
    margin_px : float
        Rows beyond each ROI (above and below its radius) whose contamination
        also masks the ROI. 0 for raw ROI fluorescence; for neuropil-corrected
        traces (``F - r * Fneu``, ``dff``) the neuropil annulus extends the
        ROI's reach, and light on the annulus' lines enters the trace as a
        negative transient: use the annulus' outer distance (about 20 px for
        the default annulus of :mod:`imagingkit.neurons`).
    """

    z_threshold: float = 5.0
    pad_s: float = 0.002
    require_event_sync: bool = True
    chunk_frames: int = 256
    margin_px: float = 0.0

    def __post_init__(self):
        if not self.z_threshold > 0:
            raise ParameterError(f"ArtifactParams.z_threshold must be positive, got {self.z_threshold}")
        if self.pad_s < 0 or self.chunk_frames < 1:
            raise ParameterError("ArtifactParams.pad_s must be >= 0 and chunk_frames >= 1")
        if self.margin_px < 0:
            raise ParameterError(f"ArtifactParams.margin_px must be >= 0, got {self.margin_px}")


def line_brightness_from_movie(movie: np.ndarray) -> np.ndarray:
    """(T, Y) median brightness of each line of a (T, Y, X) movie."""
    movie = np.asarray(movie)
    if movie.ndim != 3:
        raise ParameterError(f"movie must be (T, Y, X), got shape {movie.shape}")
    return np.median(movie, axis=2).astype(np.float32)


def line_brightness(recording, *, plane: int = 0, channel: int = 0, chunk_frames: int = 256) -> np.ndarray:
    """(T, Y) median brightness of each line of one plane, streamed from a Recording."""
    out = np.empty((recording.n_frames, recording.frame_shape[0]), dtype=np.float32)
    for t0, block in recording.iter_chunks(chunk_frames, plane=plane, channel=channel):
        out[t0 : t0 + len(block)] = np.median(block, axis=2)
    return out


def light_on_lines(
    events: pd.DataFrame, line_times_s: np.ndarray, line_period_s: float, pad_s: float
) -> np.ndarray:
    """(T, Y) bool: lines whose scan interval overlaps an event's light-on interval (+/- pad)."""
    start = events["onset_s"].to_numpy(dtype=float) - pad_s
    stop = start + pad_s + np.maximum(events["duration_s"].to_numpy(dtype=float), 0.0) + pad_s
    order = np.argsort(start)
    start, stop = start[order], np.maximum.accumulate(stop[order])
    t = np.asarray(line_times_s, dtype=float)
    # a line [t, t + lp) overlaps [start, stop] if t <= stop and t + lp >= start for some event
    k = np.searchsorted(start, t + line_period_s, side="right") - 1
    valid = k >= 0
    return valid & (t <= np.where(valid, stop[np.maximum(k, 0)], -np.inf))


def detect_light_artifacts(
    brightness: np.ndarray,
    events: pd.DataFrame,
    line_times_s: np.ndarray,
    line_period_s: float,
    params: ArtifactParams = ArtifactParams(),
) -> np.ndarray:
    """Mask of lines contaminated by the stimulation light.

    Parameters
    ----------
    brightness : ndarray
        (T, Y) line brightness (:func:`line_brightness`).
    events : DataFrame
        Events on the imaging clock; sham events (condition ``"sham"``) are included
        as candidates too, so a failed shutter would still be caught.
    line_times_s : ndarray
        (T, Y) start time of every line (:func:`imagingkit.stim.timing.line_times`).
    line_period_s : float
        Time between lines.
    params : ArtifactParams

    Returns
    -------
    ndarray
        (T, Y) bool, True = contaminated.
    """
    b = np.asarray(brightness, dtype=np.float64)
    if b.shape != np.shape(line_times_s):
        raise ParameterError(
            f"brightness {b.shape} and line_times_s {np.shape(line_times_s)} differ in shape"
        )
    candidate = light_on_lines(events, line_times_s, line_period_s, params.pad_s)
    reference = np.where(candidate, np.nan, b)
    if np.isnan(reference).all(axis=0).any():
        reference = b  # every frame is a candidate for some line: fall back to all frames
    median = np.nanmedian(reference, axis=0)
    mad = np.nanmedian(np.abs(reference - median), axis=0) * _MAD_TO_SD
    floor = max(float(np.nanmedian(mad)) * 0.1, 1e-6)
    z = (b - median) / np.maximum(mad, floor)
    outlier = z > params.z_threshold
    return outlier & candidate if params.require_event_sync else outlier


def frame_mask(line_mask: np.ndarray) -> np.ndarray:
    """(T,) bool: frames with any contaminated line."""
    mask = np.asarray(line_mask, dtype=bool)
    return mask if mask.ndim == 1 else mask.any(axis=1)


def roi_artifact_mask(mask: np.ndarray, roi_y_min_px: np.ndarray, roi_y_max_px: np.ndarray) -> np.ndarray:
    """Per-ROI, per-frame mask from a shared line or frame mask.

    Parameters
    ----------
    mask : ndarray
        (T, Y) line mask or (T,) frame mask.
    roi_y_min_px, roi_y_max_px : ndarray
        (n_rois,) first and last row each ROI covers (inclusive, clipped to the frame).

    Returns
    -------
    ndarray
        (n_rois, T) bool: True where any line of the ROI was contaminated in that frame.
    """
    mask = np.asarray(mask, dtype=bool)
    lo = np.asarray(roi_y_min_px, dtype=float).ravel()
    hi = np.asarray(roi_y_max_px, dtype=float).ravel()
    if mask.ndim == 1:
        return np.broadcast_to(mask, (len(lo), len(mask))).copy()
    n_lines = mask.shape[1]
    lo = np.clip(np.floor(lo), 0, n_lines - 1).astype(int)
    hi = np.clip(np.ceil(hi), 0, n_lines - 1).astype(int)
    csum = np.concatenate(
        [np.zeros((mask.shape[0], 1), dtype=np.int32), np.cumsum(mask, axis=1, dtype=np.int32)], axis=1
    )
    counts = csum[:, hi + 1] - csum[:, lo]  # (T, n_rois)
    return (counts > 0).T


def apply_mask(traces: np.ndarray, roi_mask: np.ndarray) -> np.ndarray:
    """Copy of (n_rois, T) traces with masked samples set to NaN (input untouched)."""
    traces = np.array(traces, dtype=np.float32, copy=True)
    if roi_mask.shape != traces.shape:
        raise DataError(f"artifact mask {roi_mask.shape} does not match traces {traces.shape}")
    traces[roi_mask] = np.nan
    return traces
