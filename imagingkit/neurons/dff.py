"""dF/F with a robust running baseline that ignores bad (NaN) frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from imagingkit.errors import ParameterError


def nan_gaussian_smooth(traces: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along time that skips NaNs (normalised convolution).

    Each output sample is the Gaussian-weighted mean of the valid samples
    around it; it is NaN only where no valid sample lies within 4 sigma.
    """
    traces = np.asarray(traces, dtype=np.float64)
    if sigma_frames <= 0:
        return traces.copy()
    valid = np.isfinite(traces)
    filled = np.where(valid, traces, 0.0)
    num = ndimage.gaussian_filter1d(filled, sigma_frames, axis=-1, mode="nearest")
    den = ndimage.gaussian_filter1d(valid.astype(np.float64), sigma_frames, axis=-1, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-6, num / den, np.nan)


def running_baseline(
    traces: np.ndarray,
    frame_rate_hz: float,
    method: str = "maximin",
    window_s: float = 60.0,
    smooth_s: float = 0.3,
    percentile: float = 8.0,
) -> np.ndarray:
    """(n, T) running baseline of (n, T) traces; NaN samples are excluded from every window.

    Parameters
    ----------
    traces : ndarray
        (n, T) traces; NaN marks bad frames.
    frame_rate_hz : float
    method : {"maximin", "percentile"}
        "maximin": Gaussian smoothing (sigma ``smooth_s``), then a running
        minimum and a running maximum over ``window_s`` (as suite2p).
        "percentile": the running ``percentile`` over ``window_s`` of the
        smoothed trace.
    window_s, smooth_s : float
        Window length and smoothing sigma in seconds.
    percentile : float
        Percentile for the "percentile" method.
    """
    if method not in ("maximin", "percentile"):
        raise ParameterError(f"baseline method must be 'maximin' or 'percentile', got {method!r}")
    traces = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if traces.shape[1] == 0 or traces.shape[0] == 0:
        return traces.copy()
    smooth = nan_gaussian_smooth(traces, smooth_s * frame_rate_hz)
    smooth[~np.isfinite(traces)] = np.nan
    window = max(3, int(round(window_s * frame_rate_hz)))
    frame = pd.DataFrame(smooth.T)
    if method == "maximin":
        low = frame.rolling(window, center=True, min_periods=1).min()
        base = low.rolling(window, center=True, min_periods=1).max()
    else:
        base = frame.rolling(window, center=True, min_periods=1).quantile(percentile / 100.0)
    base = np.array(base.to_numpy().T)
    # fill windows that held no valid sample from the nearest baseline value
    for row in base:
        bad = ~np.isfinite(row)
        if bad.any() and not bad.all():
            row[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), row[~bad])
    return base


def compute_dff(
    corrected: np.ndarray,
    frame_rate_hz: float,
    raw: np.ndarray | None = None,
    method: str = "maximin",
    window_s: float = 60.0,
    smooth_s: float = 0.3,
    percentile: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """dF/F = (F_corrected - F0) / F0 with F0 the running baseline of the corrected trace.

    Parameters
    ----------
    corrected : ndarray
        (n, T) neuropil-corrected fluorescence, NaN at bad frames.
    frame_rate_hz : float
    raw : ndarray, optional
        (n, T) uncorrected fluorescence. When neuropil subtraction pushes a
        baseline near or below zero, the denominator is floored at 10 % of the
        raw trace's median so dF/F stays finite (without ``raw``: at 1e-6).
    method, window_s, smooth_s, percentile
        See :func:`running_baseline`.

    Returns
    -------
    dff : ndarray
        (n, T), NaN where the input is NaN.
    baseline : ndarray
        (n, T) F0.
    """
    corrected = np.atleast_2d(np.asarray(corrected, dtype=np.float64))
    baseline = running_baseline(corrected, frame_rate_hz, method, window_s, smooth_s, percentile)
    if raw is not None:
        floor = 0.1 * np.abs(np.nanmedian(np.asarray(raw, dtype=np.float64), axis=1, keepdims=True))
        floor = np.where(np.isfinite(floor) & (floor > 0), floor, 1e-6)
    else:
        floor = 1e-6
    denom = np.maximum(baseline, floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        dff = (corrected - baseline) / denom
    return dff, baseline
