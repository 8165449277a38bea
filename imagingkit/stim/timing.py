"""Sub-frame timing: when each ROI was actually sampled.

A laser-scanning microscope builds a frame line by line, so a ROI near the
bottom of the frame is sampled up to one frame period after one at the top.
For fast optogenetic responses this matters: aligning every ROI to the frame
start shifts bottom ROIs' latencies by up to a frame.

Sample time of ROI ``i`` in frame ``t``::

    t_frame[t, plane_i] + (y_i + f_i) * line_period_s

``t_frame`` is the recording's ``frame_times_s`` ((T, Z): plane offsets of a
fast-z volume are already in its columns), ``y_i`` the ROI's centroid row
(line ``y`` is scanned from ``t_frame + y * line_period_s``) and ``f_i`` the
fraction of a line elapsed when the beam reaches the ROI's column.

Line period convention (the :class:`~imagingkit.io.Recording` contract):
``line_period_s`` is the time from one image line to the next. For a
bidirectional (resonant) scan the mirror's period holds two lines (one each
way), so ``line_period_s`` is half the mirror period; ScanImage's
``scanLinePeriod`` for bidirectional scans already means this per-line time.
If you only know the mirror period of a bidirectional scan, pass half of it.
Within a line, a unidirectional scan reaches column ``x`` at fraction
``f = (x + 0.5) / n_pixels_x`` (used when ``roi_x_px`` and ``n_pixels_x`` are
given); in a bidirectional scan every other line runs backwards, so a ROI
spanning several lines has no consistent in-line offset and ``f = 0``. The
fill fraction (turn-around time) is ignored: an error below one line period.
"""

from __future__ import annotations

import numpy as np

from imagingkit.errors import ParameterError


def roi_sample_times(
    frame_times_s: np.ndarray,
    roi_y_px: np.ndarray,
    *,
    line_period_s: float | None,
    roi_x_px: np.ndarray | None = None,
    n_pixels_x: int | None = None,
    bidirectional: bool = False,
    roi_plane: np.ndarray | None = None,
) -> np.ndarray:
    """Per-ROI, per-frame sample times in seconds.

    Parameters
    ----------
    frame_times_s : ndarray
        (T,) or (T, Z) frame start times.
    roi_y_px : ndarray
        (n_rois,) centroid rows (pixels, 0 = first scanned line).
    line_period_s : float or None
        Time between consecutive lines. None gives frame-start timing (every
        ROI sampled at its frame's start), the "no sub-frame timing" case.
    roi_x_px : ndarray or None
        (n_rois,) centroid columns, used for unidirectional scans with ``n_pixels_x``.
    n_pixels_x : int or None
        Pixels per line.
    bidirectional : bool
        Whether lines alternate direction (see module docstring).
    roi_plane : ndarray or None
        (n_rois,) plane index of each ROI for volumes (default plane 0).

    Returns
    -------
    ndarray
        (n_rois, T) float64 sample times.
    """
    times = np.asarray(frame_times_s, dtype=float)
    times = times.reshape(len(times), -1)
    y = np.asarray(roi_y_px, dtype=float).ravel()
    plane = np.zeros(len(y), dtype=int) if roi_plane is None else np.asarray(roi_plane, dtype=int).ravel()
    if len(plane) != len(y):
        raise ParameterError(f"roi_plane has {len(plane)} entries for {len(y)} ROIs")
    if plane.size and (plane.min() < 0 or plane.max() >= times.shape[1]):
        raise ParameterError(
            f"ROI plane indices {plane.min()}..{plane.max()} but frame times have {times.shape[1]} plane(s)"
        )
    start = times[:, plane].T  # (n_rois, T)
    if line_period_s is None:
        return np.ascontiguousarray(start)
    if not line_period_s > 0:
        raise ParameterError(f"line_period_s must be positive, got {line_period_s}")
    if np.any(y < -0.5):
        raise ParameterError("ROI rows (y) must be >= 0")
    frac = np.zeros(len(y))
    if not bidirectional and roi_x_px is not None and n_pixels_x:
        frac = (np.asarray(roi_x_px, dtype=float).ravel() + 0.5) / float(n_pixels_x)
    offset = (np.maximum(y, 0.0) + frac) * line_period_s
    return start + offset[:, None]


def line_times(frame_times_s: np.ndarray, n_lines: int, line_period_s: float, plane: int = 0) -> np.ndarray:
    """(T, n_lines) start time of every scan line of one plane."""
    times = np.asarray(frame_times_s, dtype=float)
    times = times.reshape(len(times), -1)[:, plane]
    return times[:, None] + np.arange(n_lines)[None, :] * line_period_s
