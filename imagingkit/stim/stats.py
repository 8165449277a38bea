"""Per-ROI response statistics: amplitude, latency, significance, FDR, direction.

For every ROI and stimulation trial the response is the mean dF/F in the
response window minus the mean in the baseline window (``delta``). Tests,
all from :mod:`scipy.stats` and vectorised across ROIs:

``"wilcoxon"`` (default)
    Paired Wilcoxon signed-rank test of response vs baseline across trials.
``"sign_flip"``
    Paired permutation test: the sign of each trial's ``delta`` is flipped at
    random (the one-sample case of :func:`scipy.stats.permutation_test`,
    computed for all ROIs with one matrix product; see :func:`_sign_flip`).
``"sham"``
    Two-sample permutation test of stim-trial ``delta`` against sham-trial
    ``delta`` (trials with the light blocked), labels permuted.
``"shuffle"``
    Permutation test against shuffled event times: the mean ``delta`` at the
    real onsets against its distribution when the same number of onsets is
    drawn at random over the recording (:func:`shuffled_events_test`; needs
    the continuous traces, not only the cut trials). Under the null the trace
    is unrelated to the event times; no assumption on the trial distribution.

p-values are corrected across ROIs with Benjamini-Hochberg
(:func:`scipy.stats.false_discovery_control`); a ROI is responsive when
``q <= alpha``, excited (+1) or inhibited (-1) by the sign of its amplitude.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from imagingkit.errors import DataError, ParameterError
from imagingkit.stim.events import SHAM
from imagingkit.stim.latency import check_latency_params, fit_model_latency
from imagingkit.stim.responses import TrialResponses, WindowParams, _nanmean

TESTS = ("wilcoxon", "sign_flip", "sham", "shuffle")
LATENCY_METHODS = ("departure", "fraction", "model")
RESPONSE_COLUMNS = ("roi_id", "amplitude", "latency_s", "p_value", "q_value", "responsive", "direction")


@dataclasses.dataclass(frozen=True)
class StatsParams:
    """Response statistics.

    Attributes
    ----------
    test : {"wilcoxon", "sign_flip", "sham", "shuffle"}
        Significance test (module docstring).
    alpha : float
        False-discovery rate for Benjamini-Hochberg.
    n_permutations : int
        Resamples for the permutation tests.
    latency_method : {"departure", "fraction", "model"}
        ``"departure"``: first time the trial-averaged response
        leaves its baseline by ``latency_z`` baseline SDs (and stays out for
        two samples), back-extrapolated to the baseline along the rising edge
        (:func:`response_timing`). ``"fraction"``: time the response first
        reaches ``latency_fraction`` of its peak, searched backwards from the
        peak; late for pulse trains whose peak builds up over several pulses
        (synth 5-pulse 20 Hz trains, 6 seeds: +33 ms on noiseless calcium and
        +36 ms on raw F, against +12 and +20 ms for ``"departure"``; on single
        45 ms bursts ``"departure"`` is ~12 ms early, ``"fraction"`` ~5 ms).
        ``"model"`` (default): least-squares fit of the known response shape, the
        indicator kernel (``kernel_rise_s``, ``kernel_decay_s``) started at
        every pulse of the event's train, shifted by the latency and scaled
        (:mod:`imagingkit.stim.latency`); reported for responsive ROIs whose
        fit explains at least ``latency_min_r2`` of the trial average (else NaN).
        Same synth trains, pooled median error: +0.5 ms on noiseless calcium,
        -4 / +3 ms on masked raw F / demixed F - 0.7 Fneu (``"departure"``
        +11, +21, +43 ms), and it does not change with the response amplitude.
    latency_fraction : float
        See ``latency_method="fraction"``.
    latency_z : float
        See ``latency_method="departure"``.
    kernel_rise_s, kernel_decay_s : float
        Rise and decay time constants (s) of the indicator's double-exponential
        transient for ``latency_method="model"``. Defaults: GCaMP6f, as in
        :mod:`imagingkit.synth` (rise 50 ms, decay 550 ms; Chen et al. 2013,
        layer 2/3 in vivo, rounded); GCaMP6s ~0.18 / 1.8 s, jGCaMP8m ~0.01 / 0.25 s.
    latency_range_s : (float, float)
        Latencies searched by ``"model"`` (s from each pulse's start to the
        start of its transient); a best fit at the end of the range gives NaN.
    latency_step_ms : float
        Grid step of the ``"model"`` search (milliseconds).
    latency_transients : {"per_pulse", "per_event"}
        Response model of ``"model"``: a transient at every light pulse of the
        train (linear summation, equal size; the :mod:`imagingkit.synth` model)
        or one transient per event (cells firing once per burst). With the
        wrong choice the latency is biased (per-pulse model on single transients
        to 45 ms bursts: ~-22 ms).
    latency_min_r2 : float
        ``"model"``: latencies whose fit explains less than this fraction of the
        trial average's sum of squares (baseline-referenced) are NaN.
    min_trials : int
        ROIs with fewer usable trials get p = NaN (never responsive).
    seed : int
        Seed of the permutation tests.
    """

    test: Literal["wilcoxon", "sign_flip", "sham", "shuffle"] = "wilcoxon"
    alpha: float = 0.05
    n_permutations: int = 999
    latency_method: Literal["departure", "fraction", "model"] = "model"
    latency_fraction: float = 0.1
    latency_z: float = 3.0
    kernel_rise_s: float = 0.05
    kernel_decay_s: float = 0.55
    latency_range_s: tuple[float, float] = (0.0, 0.3)
    latency_step_ms: float = 1.0
    latency_transients: Literal["per_pulse", "per_event"] = "per_pulse"
    latency_min_r2: float = 0.5
    min_trials: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.test not in TESTS:
            raise ParameterError(f"test must be one of {TESTS}, got {self.test!r}")
        if self.latency_method not in LATENCY_METHODS:
            raise ParameterError(
                f"latency_method must be one of {LATENCY_METHODS}, got {self.latency_method!r}"
            )
        check_latency_params(
            self.kernel_rise_s, self.kernel_decay_s, self.latency_range_s, self.latency_step_ms / 1e3
        )
        if self.latency_transients not in ("per_pulse", "per_event"):
            raise ParameterError(
                f"latency_transients must be 'per_pulse' or 'per_event', got {self.latency_transients!r}"
            )
        if not 0 <= self.latency_min_r2 < 1:
            raise ParameterError(f"latency_min_r2 must be in [0, 1), got {self.latency_min_r2}")
        if not self.latency_z > 0:
            raise ParameterError(f"latency_z must be positive, got {self.latency_z}")
        if not 0 < self.alpha < 1:
            raise ParameterError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.latency_fraction < 1:
            raise ParameterError(f"latency_fraction must be in (0, 1), got {self.latency_fraction}")
        if self.n_permutations < 99:
            raise ParameterError(f"n_permutations must be >= 99, got {self.n_permutations}")


def trial_deltas(trials: TrialResponses) -> np.ndarray:
    """(n_rois, n_trials) response-window mean minus baseline-window mean of every trial."""
    return trials.window_mean("response") - trials.window_mean("baseline")


def response_statistics(
    trials: TrialResponses,
    params: StatsParams = StatsParams(),
    *,
    roi_ids: np.ndarray | None = None,
    traces: np.ndarray | None = None,
    sample_times_s: np.ndarray | None = None,
) -> pd.DataFrame:
    """Test every ROI for a response to stimulation.

    Parameters
    ----------
    trials : TrialResponses
        From :func:`imagingkit.stim.responses.trial_responses`; trials whose
        condition is ``"sham"`` serve as controls and are excluded from the
        amplitude and latency.
    params : StatsParams
    roi_ids : ndarray or None
        (n_rois,) identifiers for the table (default 0..n-1).
    traces, sample_times_s : ndarray or None
        The (n_rois, T) traces (NaN = masked) and sample times the trials were
        cut from; needed by ``test="shuffle"``; ``latency_method="model"``
        takes the sample period from ``sample_times_s`` (default: the trial
        axis step).

    Returns
    -------
    DataFrame
        One row per ROI: ``roi_id, amplitude, latency_s, p_value, q_value,
        responsive, direction, time_to_peak_s, peak_dff, effect_size, n_trials,
        latency_fit_r2`` (R^2 of the ``"model"`` latency fit, NaN for other methods).
        ``amplitude`` is the mean over stim trials of response minus baseline
        (dF/F); ``effect_size`` Cohen's d_z of those deltas (or, for the sham
        test, Cohen's d of stim vs sham).
    """
    n_rois = trials.dff.shape[0]
    roi_ids = np.arange(n_rois) if roi_ids is None else np.asarray(roi_ids)
    if len(roi_ids) != n_rois:
        raise ParameterError(f"{len(roi_ids)} roi_ids for {n_rois} ROIs")
    condition = trials.events["condition"].to_numpy().astype(str)
    is_sham = condition == SHAM
    if not (~is_sham).any():
        raise DataError("no stimulation trials: every event is a sham trial")
    delta = trial_deltas(trials).astype(np.float64)
    stim_delta = delta[:, ~is_sham]
    n_valid = np.isfinite(stim_delta).sum(axis=1)
    amplitude = _nanmean(stim_delta, axis=1).astype(np.float64)
    sd = np.sqrt(
        _nanmean((stim_delta - amplitude[:, None]) ** 2, axis=1) * n_valid / np.maximum(n_valid - 1, 1)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = amplitude / sd
    if params.test == "wilcoxon":
        p = _wilcoxon(stim_delta, params.min_trials)
    elif params.test == "sign_flip":
        p = _sign_flip(stim_delta, params)
    elif params.test == "shuffle":
        if traces is None or sample_times_s is None:
            raise ParameterError("test='shuffle' needs the continuous traces and sample_times_s")
        p = shuffled_events_test(
            traces, sample_times_s, trials.events[~is_sham], trials.params, params, trial_time_s=trials.time_s
        )
    else:
        sham_delta = delta[:, is_sham]
        if sham_delta.shape[1] < 2:
            raise DataError(f"the sham test needs at least 2 sham trials, got {sham_delta.shape[1]}")
        p = _sham_permutation(stim_delta, sham_delta, params)
        pooled = np.sqrt((np.nanvar(stim_delta, axis=1, ddof=1) + np.nanvar(sham_delta, axis=1, ddof=1)) / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = (amplitude - np.nanmean(sham_delta, axis=1)) / pooled
    p = np.where(n_valid >= params.min_trials, p, np.nan)
    q = benjamini_hochberg(p)
    responsive = np.isfinite(q) & (q <= params.alpha)
    direction = np.where(responsive, np.sign(amplitude), 0).astype(int)
    sign = np.where(amplitude < 0, -1, 1)
    latency, time_to_peak, peak = response_timing(
        _nanmean(trials.dff[:, ~is_sham], axis=1),
        trials.time_s,
        trials.params.response_s,
        sign,
        params.latency_fraction,
        method="fraction" if params.latency_method == "model" else params.latency_method,
        baseline_s=trials.params.baseline_s,
        z=params.latency_z,
    )
    fit_r2 = np.full(n_rois, np.nan)
    if params.latency_method == "model":
        latency, fit_r2 = model_latency(trials, is_sham, sign, responsive, params, sample_times_s)
    return pd.DataFrame(
        {
            "roi_id": roi_ids,
            "amplitude": amplitude,
            "latency_s": latency,
            "p_value": p,
            "q_value": q,
            "responsive": responsive,
            "direction": direction,
            "time_to_peak_s": time_to_peak,
            "peak_dff": peak,
            "effect_size": effect,
            "n_trials": n_valid,
            "latency_fit_r2": fit_r2,
        }
    )


def model_latency(
    trials: TrialResponses,
    is_sham: np.ndarray,
    sign: np.ndarray,
    responsive: np.ndarray,
    params: StatsParams,
    sample_times_s: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Latency of ``latency_method="model"`` (:func:`imagingkit.stim.latency.fit_model_latency`).

    NaN unless the ROI is responsive, the fit explains at least
    ``params.latency_min_r2`` of the trial average and the best latency lies
    inside ``params.latency_range_s`` (not at its end).

    Returns
    -------
    latency_s, r2 : ndarray
        (n_rois,) each; ``r2`` of every ROI with a fit, responsive or not.
    """
    period = None
    if sample_times_s is not None:
        times = np.asarray(sample_times_s, dtype=float)
        row = times if times.ndim == 1 else times[0]
        period = float(np.median(np.diff(row))) if row.size > 1 else None
    latency, _, r2 = fit_model_latency(
        trials.dff[:, ~is_sham],
        trials.time_s,
        trials.events[~is_sham],
        sign,
        rise_s=params.kernel_rise_s,
        decay_s=params.kernel_decay_s,
        latency_range_s=params.latency_range_s,
        step_s=params.latency_step_ms / 1e3,
        sample_period_s=period,
        per_pulse=params.latency_transients == "per_pulse",
    )
    inside = latency < params.latency_range_s[1] - 0.5e-3 * params.latency_step_ms
    good = responsive & (r2 >= params.latency_min_r2) & inside
    return np.where(good, latency, np.nan), r2


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q); NaN p-values stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(np.clip(p[finite], 0, 1), method="bh")
    return q


def _wilcoxon(delta: np.ndarray, min_trials: int) -> np.ndarray:
    p = np.full(delta.shape[0], np.nan)
    complete = np.isfinite(delta).all(axis=1)
    nonzero = np.any(delta != 0, axis=1)
    rows = complete & nonzero
    if rows.any() and delta.shape[1] >= min_trials:
        p[rows] = stats.wilcoxon(delta[rows], axis=1).pvalue
    for i in np.flatnonzero(~complete):
        d = delta[i][np.isfinite(delta[i])]
        if len(d) >= min_trials and np.any(d != 0):
            p[i] = stats.wilcoxon(d).pvalue
    return p


def _sign_flip(delta: np.ndarray, params: StatsParams) -> np.ndarray:
    """Paired sign-flip permutation test of the mean delta, all ROIs at once.

    The same test as :func:`scipy.stats.permutation_test` with
    ``permutation_type="samples"`` on one sample (tests check they agree), but
    the null sums of every ROI come from one matrix product (delta @ signs),
    so 1,000 ROIs x 200 trials x 999 resamples take a fraction of a second
    instead of materialising a (resamples, ROIs, trials) array. Missing trials
    (NaN) count as zero, which a sign flip leaves unchanged. Two-sided p as in
    scipy: ``min(1, 2 * min(P(null >= obs), P(null <= obs)))`` with the
    observed statistic counted in the null.
    """
    filled = np.where(np.isfinite(delta), delta, 0.0)
    rng = np.random.default_rng(params.seed)
    signs = rng.integers(0, 2, size=(filled.shape[1], params.n_permutations), dtype=np.int8) * 2 - 1
    observed = filled.sum(axis=1)
    null = filled @ signs.astype(np.float64)  # (n_rois, n_permutations)
    return _two_sided_p(observed, null)


def _sham_permutation(stim: np.ndarray, sham: np.ndarray, params: StatsParams) -> np.ndarray:
    def statistic(a, b, axis=-1):
        with np.errstate(invalid="ignore"):
            return np.nanmean(a, axis=axis) - np.nanmean(b, axis=axis)

    result = stats.permutation_test(
        (stim, sham),
        statistic,
        permutation_type="independent",
        vectorized=True,
        axis=1,
        n_resamples=params.n_permutations,
        rng=np.random.default_rng(params.seed),
        batch=max(1, 20_000_000 // max(stim.size + sham.size, 1)),
    )
    return np.asarray(result.pvalue, dtype=float)


def shuffled_events_test(
    traces: np.ndarray,
    sample_times_s: np.ndarray,
    events: pd.DataFrame,
    window: WindowParams,
    params: StatsParams = StatsParams(),
    *,
    trial_time_s: np.ndarray | None = None,
    block_rois: int = 32,
) -> np.ndarray:
    """Two-sided permutation test of every ROI against shuffled event times.

    The statistic is the mean over events of the trial ``delta`` (response-
    window mean minus baseline-window mean, re-referenced to the baseline as in
    :func:`imagingkit.stim.responses.trial_responses`), with each onset moved
    to the ROI's nearest sample. The null distribution draws the same number
    of onsets uniformly (with replacement) among all samples whose window fits
    in the recording, ``params.n_permutations`` times; the same draws serve
    every ROI. (Circular shifts of the real onsets would keep their spacing but
    fail on strictly periodic protocols, where a shift by a multiple of the
    period realigns the responses. Random onsets may fall close together; with
    autocorrelated traces this makes the test slightly conservative: 2 % of
    p < 0.05 under a random-walk null in the tests.) Window means at every possible onset come from
    cumulative sums, and the null means of all ROIs from one sparse matrix
    product (delta at every sample x onset counts), so the cost is
    O(n_rois x (T + n_permutations x n_events)).

    Parameters
    ----------
    traces : ndarray
        (n_rois, T) dF/F or fluorescence (``window.input_kind``); NaN = masked.
    sample_times_s : ndarray
        (n_rois, T) or (T,) sample times.
    events : DataFrame
        The events to test (stim trials only).
    window : WindowParams
    params : StatsParams
        ``n_permutations``, ``seed``.
    trial_time_s : ndarray or None
        Time axis of the cut trials; its step defines the sample period (default:
        the median sample interval).
    block_rois : int
        ROIs per block (bounds memory to a few (block, T) arrays).

    Returns
    -------
    ndarray
        (n_rois,) p-values (NaN for ROIs without a usable trial).
    """
    from scipy import sparse

    traces = np.asarray(traces)
    times = np.asarray(sample_times_s, dtype=np.float64)
    if times.ndim == 1:
        times = np.broadcast_to(times, traces.shape)
    n_rois, n_frames = traces.shape
    if times.shape != traces.shape:
        raise DataError(f"sample times {times.shape} do not match traces {traces.shape}")
    onset = events["onset_s"].to_numpy(dtype=float)
    if onset.size == 0:
        raise DataError("the shuffle test needs at least one stimulation event")
    dt = (
        float(np.median(np.diff(times[0])))
        if trial_time_s is None
        else float(np.median(np.diff(trial_time_s)))
    )
    (b0, b1), (r0, r1) = window.baseline_s, window.response_s
    jb = (int(np.ceil(b0 / dt - 1e-6)), int(np.ceil(b1 / dt - 1e-6)))  # baseline samples [jb0, jb1)
    jr = (int(np.ceil(r0 / dt - 1e-6)), int(np.floor(r1 / dt + 1e-6)) + 1)  # response samples [jr0, jr1)
    f_lo, f_hi = max(0, -jb[0]), n_frames - jr[1]  # onsets whose window fits: f_lo <= f <= f_hi
    if f_hi < f_lo or jb[1] <= jb[0] or jr[1] <= jr[0]:
        raise DataError(f"the recording ({n_frames} samples) is shorter than the window {window.span_s} s")
    rng = np.random.default_rng(params.seed)
    n_valid = f_hi - f_lo + 1
    draws = rng.integers(0, n_valid, size=(params.n_permutations, onset.size))
    counts = sparse.csr_matrix(
        (
            np.ones(draws.size, dtype=np.float32),
            (np.repeat(np.arange(params.n_permutations), onset.size), draws.ravel()),
        ),
        shape=(params.n_permutations, n_valid),
    )
    counts.sum_duplicates()
    p = np.full(n_rois, np.nan)
    for a in range(0, n_rois, block_rois):
        rows = slice(a, min(a + block_rois, n_rois))
        # (n_onsets, block): delta for an onset at every sample f_lo..f_hi, NaN where unusable
        delta = _delta_at_every_onset(traces[rows], (f_lo, f_hi), jb, jr, window)
        finite = np.isfinite(delta)
        obs_idx = np.stack([_nearest(times[i], onset) for i in range(rows.start, rows.stop)], axis=1) - f_lo
        inside = (obs_idx >= 0) & (obs_idx <= f_hi - f_lo)
        obs = np.take_along_axis(delta, np.clip(obs_idx, 0, f_hi - f_lo), axis=0)
        obs = np.where(inside, obs, np.nan)
        n_obs = np.isfinite(obs).sum(axis=0)
        observed = np.nansum(obs, axis=0) / np.maximum(n_obs, 1)
        if finite.all():
            null = (counts @ delta) / np.float32(onset.size)  # (n_permutations, block)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                null = (counts @ np.where(finite, delta, 0.0)) / (counts @ finite.astype(np.float32))
        p[rows] = np.where(n_obs >= params.min_trials, _two_sided_p(observed, null.T), np.nan)
    return p


def _nearest(times: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Index of the sample nearest to each onset."""
    k = np.clip(np.searchsorted(times, onset), 1, len(times) - 1)
    return np.where(np.abs(times[k - 1] - onset) <= np.abs(times[k] - onset), k - 1, k)


def _delta_at_every_onset(
    traces: np.ndarray,
    onsets: tuple[int, int],
    jb: tuple[int, int],
    jr: tuple[int, int],
    window: WindowParams,
) -> np.ndarray:
    """(f_hi - f_lo + 1, n) trial delta for an onset at every sample f_lo..f_hi (NaN where masked)."""
    f_lo, f_hi = onsets
    x = np.ascontiguousarray(np.asarray(traces, dtype=np.float32).T)  # (T, n)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    # cumulative sums of the mean-removed trace in float32: partial sums stay small, error ~1e-6
    offset = np.nanmean(x, axis=0) if not all_finite else x.mean(axis=0)
    x = np.where(finite, x - offset, 0.0) if not all_finite else x - offset
    csum = np.zeros((x.shape[0] + 1, x.shape[1]), dtype=np.float32)
    np.cumsum(x, axis=0, out=csum[1:])
    if not all_finite:
        ccnt = np.zeros(csum.shape, dtype=np.float32)
        np.cumsum(finite, axis=0, out=ccnt[1:])

    def window_mean(j0: int, j1: int) -> tuple[np.ndarray, np.ndarray | float]:
        lo, hi = slice(f_lo + j0, f_hi + j0 + 1), slice(f_lo + j1, f_hi + j1 + 1)
        count = float(j1 - j0) if all_finite else ccnt[hi] - ccnt[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (csum[hi] - csum[lo]) / count + offset, count

    base, n_base = window_mean(*jb)
    resp, n_resp = window_mean(*jr)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = (resp - base) / base if window.input_kind == "raw" else (resp - base) / (1.0 + base)
    if all_finite:
        return delta
    ok = (n_base >= window.min_baseline_fraction * (jb[1] - jb[0])) & (n_resp > 0)
    return np.where(ok, delta, np.nan).astype(np.float32)


def _two_sided_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided Monte-Carlo p (observed counted in the null), as scipy.stats.permutation_test."""
    n = null.shape[1]
    eps = 1e-12 * np.maximum(np.abs(observed), 1.0)
    greater = (np.sum(null >= (observed - eps)[:, None], axis=1) + 1) / (n + 1)
    less = (np.sum(null <= (observed + eps)[:, None], axis=1) + 1) / (n + 1)
    return np.where(np.isfinite(observed), np.minimum(1.0, 2 * np.minimum(greater, less)), np.nan)


def response_timing(
    trial_mean: np.ndarray,
    time_s: np.ndarray,
    response_s: tuple[float, float],
    sign: np.ndarray,
    fraction: float = 0.1,
    *,
    method: Literal["departure", "fraction"] = "fraction",
    baseline_s: tuple[float, float] | None = None,
    z: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset latency, time to peak and peak value of trial-averaged responses.

    Parameters
    ----------
    trial_mean : ndarray
        (n_rois, n_samples) trial-averaged dF/F.
    time_s : ndarray
        (n_samples,) peri-stimulus time axis.
    response_s : (float, float)
        Response window searched for the peak.
    sign : ndarray
        (n_rois,) +1 to find a peak, -1 a trough (inhibited ROIs).
    fraction : float
        ``method="fraction"``: onset = last time before the peak where the
        response is below ``fraction * peak``, interpolated to the crossing
        (searched back to the window start).
    method : {"departure", "fraction"}
        ``"departure"``: the first sample from which the response stays above
        ``baseline mean + z * baseline SD`` (SD of the trial-averaged trace
        over the baseline window) for two samples marks the rising edge; the
        onset is where the line through that sample and the next meets the
        baseline mean, kept between the previous sample and the crossing.
        A threshold set by the noise, not by the peak, so a response that
        builds up over a pulse train is timed from its first rise. ROIs whose
        response never leaves the noise band fall back to ``"fraction"``.
    baseline_s : (float, float) or None
        Baseline window (needed by ``"departure"``).
    z : float
        Threshold of ``"departure"`` in baseline SDs.

    Returns
    -------
    latency_s, time_to_peak_s, peak : ndarray
        (n_rois,) each; NaN where the peak is not above zero.
    """
    sign = np.asarray(sign, dtype=float)
    x = np.asarray(trial_mean, dtype=np.float64) * sign[:, None]
    time_s = np.asarray(time_s, dtype=float)
    window = np.flatnonzero((time_s >= response_s[0] - 1e-9) & (time_s <= response_s[1] + 1e-9))
    if window.size == 0:
        raise ParameterError(f"response window {response_s} holds no sample of the time axis")
    in_window = np.where(np.isfinite(x[:, window]), x[:, window], -np.inf)
    k_peak = window[np.argmax(in_window, axis=1)]
    rows = np.arange(x.shape[0])
    peak = x[rows, k_peak]
    start = int(window[0])
    latency = _fraction_onset(x, time_s, k_peak, peak, start, fraction)
    if method == "departure":
        if baseline_s is None:
            raise ParameterError("latency method 'departure' needs the baseline window")
        base = (time_s >= baseline_s[0] - 1e-9) & (time_s < baseline_s[1] - 1e-9)
        onset = _departure_onset(x, time_s, base, k_peak, start, z)
        latency = np.where(np.isfinite(onset), onset, latency)
    elif method != "fraction":
        raise ParameterError(f"latency method must be 'departure' or 'fraction', got {method!r}")
    ok = np.isfinite(peak) & (peak > 0)
    return (
        np.where(ok, latency, np.nan),
        np.where(ok, time_s[k_peak], np.nan),
        np.where(ok, peak * sign, np.nan),
    )


def _fraction_onset(x, time_s, k_peak, peak, start, fraction) -> np.ndarray:
    """Crossing of ``fraction * peak`` searched backwards from the peak."""
    rows = np.arange(x.shape[0])
    level = fraction * peak
    below = (x < level[:, None]) | ~np.isfinite(x)
    idx = np.arange(x.shape[1])[None, :]
    candidates = below & (idx < k_peak[:, None]) & (idx >= start - 1)
    k_below = np.where(candidates.any(axis=1), x.shape[1] - 1 - np.argmax(candidates[:, ::-1], axis=1), start)
    k_above = np.minimum(k_below + 1, k_peak)
    v0, v1 = x[rows, k_below], x[rows, k_above]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.where(v1 > v0, (level - v0) / (v1 - v0), 0.0), 0.0, 1.0)
    frac = np.nan_to_num(frac)
    latency = time_s[k_below] + frac * (time_s[k_above] - time_s[k_below])
    return np.maximum(latency, time_s[start])


def _departure_onset(x, time_s, base, k_peak, start, z) -> np.ndarray:
    """Onset from the first sustained departure from the baseline band (NaN where there is none)."""
    n_rois, n = x.shape
    rows = np.arange(n_rois)
    xb = np.where(base[None, :], x, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(xb, axis=1)
        sd = np.nanstd(xb, axis=1, ddof=1)
    level = mu + z * sd
    above = x > level[:, None]
    sustained = above.copy()
    sustained[:, :-1] &= above[:, 1:]
    idx = np.arange(n)[None, :]
    # the peak sample itself counts, so a response peaking on its first sample is timed too
    candidates = (sustained | (idx == k_peak[:, None])) & above & (idx >= start) & (idx <= k_peak[:, None])
    found = candidates.any(axis=1) & np.isfinite(level)
    k = np.where(found, np.argmax(candidates, axis=1), start)
    k_next = np.minimum(k + 1, n - 1)
    k_prev = np.maximum(k - 1, 0)
    t_k, t_next, t_prev = time_s[k], time_s[k_next], time_s[k_prev]
    v_k, v_next = x[rows, k], x[rows, k_next]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (v_next - v_k) / (t_next - t_k)
        back = t_k - (v_k - mu) / slope
        # rising edge too flat to extrapolate: linear crossing of the threshold instead
        v_prev = x[rows, k_prev]
        cross = t_prev + (level - v_prev) / (v_k - v_prev) * (t_k - t_prev)
    onset = np.where(np.isfinite(back) & (slope > 0), back, cross)
    # the first supra-threshold sample may already be well into the rise: allow two samples back
    t_floor = np.maximum(time_s[np.maximum(k - 2, 0)], time_s[start])
    onset = np.clip(np.nan_to_num(onset, nan=t_k), t_floor, t_k)
    return np.where(found, onset, np.nan)


def dose_response(trials: TrialResponses, by: str = "power_mw") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Response amplitude as a function of light power or pulse count.

    Parameters
    ----------
    trials : TrialResponses
    by : str
        Events column giving the dose (``"power_mw"``, ``"n_pulses"``...).

    Returns
    -------
    levels : DataFrame
        Long table ``roi_id, level, mean, sem, n_trials`` (stim trials only).
    trend : DataFrame
        Per ROI: ``roi_id, spearman_rho, p_value`` of delta vs dose across trials.
    """
    if by not in trials.events.columns:
        raise ParameterError(f"events have no column {by!r} for a dose-response")
    dose = pd.to_numeric(trials.events[by], errors="coerce").to_numpy(dtype=float)
    stim = (trials.events["condition"].to_numpy() != SHAM) & np.isfinite(dose)
    if len(np.unique(dose[stim])) < 2:
        raise DataError(
            f"dose-response by {by!r} needs at least two levels, got {np.unique(dose[stim]).tolist()}"
        )
    delta = trial_deltas(trials)[:, stim].astype(np.float64)
    dose = dose[stim]
    rows = []
    for level in np.unique(dose):
        d = delta[:, dose == level]
        n = np.isfinite(d).sum(axis=1)
        rows.append(
            pd.DataFrame(
                {
                    "roi_id": np.arange(delta.shape[0]),
                    "level": level,
                    "mean": np.nanmean(d, axis=1),
                    "sem": np.nanstd(d, axis=1, ddof=1) / np.sqrt(np.maximum(n, 1)),
                    "n_trials": n,
                }
            )
        )
    rho = np.full(delta.shape[0], np.nan)
    pval = np.full(delta.shape[0], np.nan)
    for i in range(delta.shape[0]):
        ok = np.isfinite(delta[i])
        if ok.sum() >= 3:
            res = stats.spearmanr(dose[ok], delta[i, ok])
            rho[i], pval[i] = res.statistic, res.pvalue
    trend = pd.DataFrame({"roi_id": np.arange(delta.shape[0]), "spearman_rho": rho, "p_value": pval})
    return pd.concat(rows, ignore_index=True), trend
