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

p-values are corrected across ROIs with Benjamini-Hochberg
(:func:`scipy.stats.false_discovery_control`); a ROI is responsive when
``q <= alpha``, excited (+1) or inhibited (-1) by the sign of its amplitude.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from imagingkit.errors import DataError, ParameterError
from imagingkit.stim.events import SHAM
from imagingkit.stim.responses import TrialResponses, _nanmean

RESPONSE_COLUMNS = ("roi_id", "amplitude", "latency_s", "p_value", "q_value", "responsive", "direction")


@dataclasses.dataclass(frozen=True)
class StatsParams:
    """Response statistics.

    Attributes
    ----------
    test : {"wilcoxon", "sign_flip", "sham"}
        Significance test (module docstring).
    alpha : float
        False-discovery rate for Benjamini-Hochberg.
    n_permutations : int
        Resamples for the permutation tests.
    latency_fraction : float
        Onset latency = time the trial-averaged response first reaches this
        fraction of its peak, searched backwards from the peak and linearly
        interpolated between samples.
    min_trials : int
        ROIs with fewer usable trials get p = NaN (never responsive).
    seed : int
        Seed of the permutation tests.
    """

    test: Literal["wilcoxon", "sign_flip", "sham"] = "wilcoxon"
    alpha: float = 0.05
    n_permutations: int = 999
    latency_fraction: float = 0.1
    min_trials: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.test not in ("wilcoxon", "sign_flip", "sham"):
            raise ParameterError(f"test must be 'wilcoxon', 'sign_flip' or 'sham', got {self.test!r}")
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
    trials: TrialResponses, params: StatsParams = StatsParams(), *, roi_ids: np.ndarray | None = None
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

    Returns
    -------
    DataFrame
        One row per ROI: ``roi_id, amplitude, latency_s, p_value, q_value,
        responsive, direction, time_to_peak_s, peak_dff, effect_size, n_trials``.
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
    latency, time_to_peak, peak = response_timing(
        _nanmean(trials.dff[:, ~is_sham], axis=1),
        trials.time_s,
        trials.params.response_s,
        np.where(amplitude < 0, -1, 1),
        params.latency_fraction,
    )
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
        }
    )


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
    eps = 1e-12 * np.maximum(np.abs(observed), 1.0)
    greater = (np.sum(null >= (observed - eps)[:, None], axis=1) + 1) / (params.n_permutations + 1)
    less = (np.sum(null <= (observed + eps)[:, None], axis=1) + 1) / (params.n_permutations + 1)
    return np.minimum(1.0, 2 * np.minimum(greater, less))


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


def response_timing(
    trial_mean: np.ndarray,
    time_s: np.ndarray,
    response_s: tuple[float, float],
    sign: np.ndarray,
    fraction: float = 0.1,
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
        Onset = last time before the peak where the response is below
        ``fraction * peak``, interpolated to the crossing (searched back to onset 0).

    Returns
    -------
    latency_s, time_to_peak_s, peak : ndarray
        (n_rois,) each; NaN where the peak is not above zero.
    """
    x = np.asarray(trial_mean, dtype=np.float64) * np.asarray(sign, dtype=float)[:, None]
    window = np.flatnonzero((time_s >= response_s[0] - 1e-9) & (time_s <= response_s[1] + 1e-9))
    if window.size == 0:
        raise ParameterError(f"response window {response_s} holds no sample of the time axis")
    in_window = np.where(np.isfinite(x[:, window]), x[:, window], -np.inf)
    k_peak = window[np.argmax(in_window, axis=1)]
    rows = np.arange(x.shape[0])
    peak = x[rows, k_peak]
    level = fraction * peak
    start = int(window[0])
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
    latency = np.maximum(latency, time_s[start])
    ok = np.isfinite(peak) & (peak > 0)
    return (
        np.where(ok, latency, np.nan),
        np.where(ok, time_s[k_peak], np.nan),
        np.where(ok, peak * np.asarray(sign, dtype=float), np.nan),
    )


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
