"""Spike inference with OASIS (the ``oasis-deconv`` package), NaN-aware."""

from __future__ import annotations

import numpy as np

from imagingkit.errors import ParameterError


def deconvolve_traces(dff: np.ndarray, frame_rate_hz: float, tau_decay_s: float = 0.7) -> np.ndarray:
    """Infer spiking activity from (n, T) dF/F traces with OASIS (AR(1), L1 penalty).

    Bad frames (NaN) are linearly interpolated for OASIS only; the output is
    NaN at those frames again. A trace with no valid sample gives all NaN.

    Parameters
    ----------
    dff : ndarray
        (n, T) dF/F.
    frame_rate_hz : float
    tau_decay_s : float
        Indicator decay time; the AR(1) coefficient is ``exp(-1 / (tau * fs))``.

    Returns
    -------
    ndarray
        (n, T) float64 non-negative spike estimates (dF/F units per frame).
    """
    from oasis.functions import deconvolve

    if not (frame_rate_hz > 0 and tau_decay_s > 0):
        raise ParameterError(
            f"frame_rate_hz and tau_decay_s must be positive, got {frame_rate_hz}, {tau_decay_s}"
        )
    dff = np.atleast_2d(np.asarray(dff, dtype=np.float64))
    out = np.full(dff.shape, np.nan)
    t = np.arange(dff.shape[1])
    for i, trace in enumerate(dff):
        valid = np.isfinite(trace)
        if valid.sum() < 3:
            continue
        y = trace if valid.all() else np.interp(t, t[valid], trace[valid])
        if np.ptp(y) == 0:
            out[i] = 0.0
        else:
            _, spikes, *_ = deconvolve(y, tau_d=tau_decay_s, framerate=frame_rate_hz, penalty=1)
            out[i] = spikes
        out[i, ~valid] = np.nan
    return out
