"""Trial-aligned responses: peri-stimulus windows, per-trial dF/F, trial averages.

Each ROI's trace is sampled at its own sub-frame times
(:func:`imagingkit.stim.timing.roi_sample_times`); :func:`trial_responses`
interpolates it onto one common peri-stimulus time axis (seconds from event
onset) so that trials and ROIs line up exactly. Samples masked as light
artifacts are NaN and stay NaN (an interpolated point touching a NaN sample is
NaN). Each trial is expressed as dF/F relative to its own pre-stimulus
baseline window.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, ParameterError
from imagingkit.stim.events import check_overlap


@dataclasses.dataclass(frozen=True)
class WindowParams:
    """Peri-stimulus windows.

    Attributes
    ----------
    baseline_s : (float, float)
        Baseline window relative to onset, e.g. (-1, 0).
    response_s : (float, float)
        Response window relative to onset, e.g. (0, 1).
    sample_period_s : float or None
        Step of the common time axis; None = the median frame period.
    input_kind : {"dff", "raw"}
        ``"dff"``: traces are already dF/F (e.g. ``traces.npz['dff']``); a trial's
        dF/F relative to its baseline ``b`` is ``(x - b) / (1 + b)``, the exact
        re-referencing of F to the trial's own F0. ``"raw"``: fluorescence;
        ``(F - Fb) / Fb``.
    min_baseline_fraction : float
        A trial's baseline needs at least this fraction of unmasked samples,
        else the trial is NaN for that ROI.
    overlap : {"error", "drop", "allow"}
        What to do with trials whose window overlaps the previous trial's.
    """

    baseline_s: tuple[float, float] = (-1.0, 0.0)
    response_s: tuple[float, float] = (0.0, 1.0)
    sample_period_s: float | None = None
    input_kind: Literal["dff", "raw"] = "dff"
    min_baseline_fraction: float = 0.5
    overlap: Literal["error", "drop", "allow"] = "error"

    def __post_init__(self):
        b0, b1 = self.baseline_s
        r0, r1 = self.response_s
        if not b0 < b1:
            raise ParameterError(f"baseline window {self.baseline_s} must have start < end")
        if not r0 < r1:
            raise ParameterError(f"response window {self.response_s} must have start < end")
        if b1 > r0 + 1e-12:
            raise ParameterError(
                f"baseline window {self.baseline_s} must end before the response window {self.response_s} starts"
            )
        if self.sample_period_s is not None and not self.sample_period_s > 0:
            raise ParameterError(f"sample_period_s must be positive, got {self.sample_period_s}")
        if self.input_kind not in ("dff", "raw"):
            raise ParameterError(f"input_kind must be 'dff' or 'raw', got {self.input_kind!r}")
        if self.overlap not in ("error", "drop", "allow"):
            raise ParameterError(f"overlap must be 'error', 'drop' or 'allow', got {self.overlap!r}")
        if not 0 < self.min_baseline_fraction <= 1:
            raise ParameterError("min_baseline_fraction must be in (0, 1]")

    @property
    def span_s(self) -> tuple[float, float]:
        """The whole peri-stimulus window (baseline start, response end)."""
        return (self.baseline_s[0], self.response_s[1])


@dataclasses.dataclass(frozen=True)
class TrialResponses:
    """Per-trial dF/F on a common peri-stimulus time axis.

    Attributes
    ----------
    dff : ndarray
        (n_rois, n_trials, n_samples) float32; NaN where masked or unavailable.
    time_s : ndarray
        (n_samples,) time from event onset.
    events : DataFrame
        The events used as trials, in order.
    params : WindowParams
    n_dropped_overlap : int
        Trials dropped because they overlapped the previous one (``overlap="drop"``).
    n_masked_trials : int
        Trials whose response window was entirely masked in every ROI.
    """

    dff: np.ndarray
    time_s: np.ndarray
    events: pd.DataFrame
    params: WindowParams
    n_dropped_overlap: int = 0
    n_masked_trials: int = 0

    @property
    def baseline_index(self) -> np.ndarray:
        b0, b1 = self.params.baseline_s
        return np.flatnonzero((self.time_s >= b0 - 1e-9) & (self.time_s < b1 - 1e-9))

    @property
    def response_index(self) -> np.ndarray:
        r0, r1 = self.params.response_s
        return np.flatnonzero((self.time_s >= r0 - 1e-9) & (self.time_s <= r1 + 1e-9))

    def window_mean(self, which: Literal["baseline", "response"]) -> np.ndarray:
        """(n_rois, n_trials) NaN-mean of each trial over the baseline or response window."""
        index = self.baseline_index if which == "baseline" else self.response_index
        return _nanmean(self.dff[:, :, index], axis=2)

    def mean(self, condition: str | None = None) -> np.ndarray:
        """(n_rois, n_samples) trial average (NaN-aware), optionally of one condition."""
        dff = self.dff if condition is None else self.dff[:, self.events["condition"].to_numpy() == condition]
        return _nanmean(dff, axis=1)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    total = np.where(finite, x, 0).sum(axis=axis, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def time_axis(params: WindowParams, sample_period_s: float) -> np.ndarray:
    """Common peri-stimulus axis from baseline start to response end (inclusive) at ``sample_period_s``."""
    start, stop = params.span_s
    n = int(np.floor((stop - start) / sample_period_s + 1e-9)) + 1
    return start + np.arange(n) * sample_period_s


def trial_responses(
    traces: np.ndarray,
    sample_times_s: np.ndarray,
    events: pd.DataFrame,
    params: WindowParams = WindowParams(),
    *,
    source: str = "traces",
) -> TrialResponses:
    """Cut each ROI's trace into trials aligned on event onsets, as dF/F to each trial's baseline.

    Parameters
    ----------
    traces : ndarray
        (n_rois, T) dF/F or fluorescence (see ``params.input_kind``); NaN = masked.
    sample_times_s : ndarray
        (n_rois, T) sample time of every ROI and frame (sub-frame timing), or
        (T,) shared times.
    events : DataFrame
        Events table on the imaging clock; every row is a trial.
    params : WindowParams

    Returns
    -------
    TrialResponses

    Raises
    ------
    DataError
        No events, overlapping trials (with ``overlap="error"``), or every trial
        entirely masked.
    """
    traces = np.asarray(traces, dtype=np.float32)
    if traces.ndim != 2:
        raise DataError(f"{source}: traces must be (n_rois, n_frames), got shape {traces.shape}")
    times = np.asarray(sample_times_s, dtype=np.float64)
    if times.ndim == 1:
        times = np.broadcast_to(times, traces.shape)
    if times.shape != traces.shape:
        raise DataError(f"{source}: sample times {times.shape} do not match traces {traces.shape}")
    if len(events) == 0:
        raise DataError(f"{source}: no events to align to")
    events = events.sort_values("onset_s", kind="stable").reset_index(drop=True)
    overlap = check_overlap(events, params.span_s)
    n_dropped = 0
    if overlap.any():
        onset = events["onset_s"].to_numpy()
        if params.overlap == "error":
            gap = float(np.min(np.diff(onset)))
            raise DataError(
                f"{source}: {int(overlap.sum())} trial(s) overlap the previous one: the shortest interval between "
                f"onsets is {gap:.3f} s but the window {params.span_s} s spans "
                f"{params.span_s[1] - params.span_s[0]:.3f} s; shorten --baseline/--window or drop overlapping trials"
            )
        if params.overlap == "drop":
            keep = _non_overlapping(onset, params.span_s)
            n_dropped = int((~keep).sum())
            events = events.loc[keep].reset_index(drop=True)
    period = params.sample_period_s
    if period is None and traces.shape[1] > 1:
        period = float(np.median(np.diff(times[0])))
    if not period or not period > 0:
        raise DataError(
            f"{source}: cannot infer the sample period from the sample times; set sample_period_s"
        )
    axis = time_axis(params, period)
    query = events["onset_s"].to_numpy()[:, None] + axis[None, :]
    out = np.empty((traces.shape[0], len(events), len(axis)), dtype=np.float32)
    for i in range(traces.shape[0]):
        out[i] = np.interp(query, times[i], traces[i], left=np.nan, right=np.nan)
    result = TrialResponses(dff=out, time_s=axis, events=events, params=params, n_dropped_overlap=n_dropped)
    out = _rebaseline(result)
    response = out[:, :, result.response_index]
    masked_trial = ~np.isfinite(response).any(axis=(0, 2))
    if masked_trial.all():
        raise DataError(
            f"{source}: all {len(events)} trials are entirely masked (artifact mask or missing baseline) in every ROI; "
            "check the artifact threshold and the event times"
        )
    return dataclasses.replace(result, dff=out, n_masked_trials=int(masked_trial.sum()))


def _non_overlapping(onset: np.ndarray, span_s: tuple[float, float]) -> np.ndarray:
    keep = np.ones(len(onset), dtype=bool)
    last_end = -np.inf
    for k, t in enumerate(onset):
        if t + span_s[0] < last_end:
            keep[k] = False
        else:
            last_end = t + span_s[1]
    return keep


def _rebaseline(result: TrialResponses) -> np.ndarray:
    """Express every trial relative to its own baseline window; NaN where the baseline is too masked."""
    x = result.dff
    base_idx = result.baseline_index
    if base_idx.size == 0:
        raise ParameterError(f"baseline window {result.params.baseline_s} holds no sample of the time axis")
    base = x[:, :, base_idx]
    frac = np.isfinite(base).mean(axis=2)
    b = _nanmean(base, axis=2)
    b = np.where(frac >= result.params.min_baseline_fraction, b, np.nan)[:, :, None].astype(np.float32)
    out = np.subtract(x, b, dtype=np.float32)  # a new array: the caller's data stay untouched
    with np.errstate(invalid="ignore", divide="ignore"):
        out /= b if result.params.input_kind == "raw" else (1.0 + b)
    return out


def sort_by_response(
    trial_mean: np.ndarray, time_s: np.ndarray, response_s: tuple[float, float]
) -> np.ndarray:
    """ROI order for a heatmap: by mean response-window value, largest first."""
    index = (time_s >= response_s[0]) & (time_s <= response_s[1])
    value = np.nan_to_num(_nanmean(trial_mean[:, index], axis=1), nan=-np.inf)
    return np.argsort(-value, kind="stable")
