"""Across sessions and against behaviour: how responses change with practice.

Inputs are plain tables: per-ROI response statistics of each session joined
on a persistent cell identity (from cross-session registration), per-session
traces of two populations, and a behaviour table. Confidence intervals are
bootstrap intervals over cells (:func:`scipy.stats.bootstrap`, paired).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal, stats

from imagingkit.errors import DataError, ParameterError


def session_changes(
    per_cell: pd.DataFrame,
    *,
    sessions: list | None = None,
    responders_only: bool = True,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Change of response amplitude and of the fraction responsive between consecutive sessions.

    Parameters
    ----------
    per_cell : DataFrame
        Long table with columns ``cell_id`` (identity matched across sessions),
        ``session``, ``amplitude`` (dF/F) and ``responsive`` (bool), e.g. the
        ``responses.csv`` of each session with a ``cell_id`` and ``session`` column.
    sessions : list or None
        Session order (default: sorted unique values).
    responders_only : bool
        Amplitude change over cells responsive in either session of the pair
        (the fraction responsive always uses every matched cell).
    confidence_level, n_resamples, seed
        Bootstrap settings (BCa, resampling cells with their pair of sessions).

    Returns
    -------
    DataFrame
        One row per consecutive pair: ``session_from, session_to, n_cells,
        n_amplitude_cells, amplitude_change, amplitude_change_low,
        amplitude_change_high, amplitude_ratio, amplitude_ratio_low,
        amplitude_ratio_high, fraction_from, fraction_to, fraction_change,
        fraction_change_low, fraction_change_high``. Amplitudes are magnitudes
        (|amplitude|) so excited and inhibited cells add up.
    """
    needed = {"cell_id", "session", "amplitude", "responsive"}
    missing = needed - set(per_cell.columns)
    if missing:
        raise ParameterError(f"per-cell table lacks column(s) {sorted(missing)}")
    order = sorted(per_cell["session"].unique()) if sessions is None else list(sessions)
    if len(order) < 2:
        raise DataError(f"need at least two sessions, got {order}")
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in zip(order[:-1], order[1:], strict=True):
        pair = (
            per_cell[per_cell["session"].isin([a, b])]
            .pivot_table(
                index="cell_id", columns="session", values=["amplitude", "responsive"], aggfunc="first"
            )
            .dropna()
        )
        if len(pair) < 3:
            raise DataError(f"sessions {a!r} and {b!r} share {len(pair)} matched cells; need at least 3")
        amp_a = np.abs(pair[("amplitude", a)].to_numpy(dtype=float))
        amp_b = np.abs(pair[("amplitude", b)].to_numpy(dtype=float))
        resp_a = pair[("responsive", a)].to_numpy(dtype=float)
        resp_b = pair[("responsive", b)].to_numpy(dtype=float)
        use = (resp_a > 0) | (resp_b > 0) if responders_only else np.ones(len(pair), dtype=bool)
        row = {"session_from": a, "session_to": b, "n_cells": len(pair), "n_amplitude_cells": int(use.sum())}
        if use.sum() >= 3:
            kw = dict(paired=True, confidence_level=confidence_level, n_resamples=n_resamples, rng=rng)
            diff = stats.bootstrap(
                (amp_a[use], amp_b[use]), lambda x, y, axis=-1: np.mean(y - x, axis=axis), **kw
            )
            ratio = stats.bootstrap(
                (amp_a[use], amp_b[use]),
                lambda x, y, axis=-1: np.mean(y, axis=axis) / np.mean(x, axis=axis),
                **kw,
            )
            row.update(
                amplitude_change=float(np.mean(amp_b[use] - amp_a[use])),
                amplitude_change_low=float(diff.confidence_interval.low),
                amplitude_change_high=float(diff.confidence_interval.high),
                amplitude_ratio=float(np.mean(amp_b[use]) / np.mean(amp_a[use])),
                amplitude_ratio_low=float(ratio.confidence_interval.low),
                amplitude_ratio_high=float(ratio.confidence_interval.high),
            )
        frac = stats.bootstrap(
            (resp_a, resp_b),
            lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis),
            paired=True,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            method="percentile",
            rng=rng,
        )
        row.update(
            fraction_from=float(resp_a.mean()),
            fraction_to=float(resp_b.mean()),
            fraction_change=float(resp_b.mean() - resp_a.mean()),
            fraction_change_low=float(frac.confidence_interval.low),
            fraction_change_high=float(frac.confidence_interval.high),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def pairwise_correlation(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation between every row of ``a`` (Na, T) and of ``b`` (Nb, T).

    Frames where any trace is NaN (masked) are left out. With ``b=None``
    returns the (Na, Na) matrix of ``a`` with itself.
    """
    a = np.asarray(a, dtype=np.float64)
    b = a if b is None else np.asarray(b, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"populations have {a.shape[1]} and {b.shape[1]} frames; need the same frames")
    ok = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
    if ok.sum() < 3:
        raise DataError("fewer than 3 frames without masked samples; cannot correlate")
    za = stats.zscore(a[:, ok], axis=1)
    zb = stats.zscore(b[:, ok], axis=1)
    return np.nan_to_num(za @ zb.T / ok.sum())


def cross_correlation(
    a: np.ndarray, b: np.ndarray, *, frame_rate_hz: float, max_lag_s: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Normalised cross-correlation of two traces and its peak lag.

    A positive lag means ``b`` follows ``a`` (b(t + lag) resembles a(t)).
    NaN samples count as the trace's mean (zero after z-scoring).

    Returns
    -------
    lags_s : ndarray
    xcorr : ndarray
        Correlation coefficient at each lag.
    peak_lag_s, peak_r : float
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise DataError(f"traces have {x.size} and {y.size} samples")
    x = np.nan_to_num(stats.zscore(x, nan_policy="omit"))
    y = np.nan_to_num(stats.zscore(y, nan_policy="omit"))
    full = signal.correlate(y, x, mode="full", method="fft") / x.size
    lags = signal.correlation_lags(y.size, x.size, mode="full")
    max_lag = int(round(max_lag_s * frame_rate_hz))
    keep = np.abs(lags) <= max_lag
    lags, full = lags[keep], full[keep]
    k = int(np.argmax(full))
    return lags / frame_rate_hz, full, float(lags[k] / frame_rate_hz), float(full[k])


def population_synchrony(
    a: np.ndarray, b: np.ndarray, *, frame_rate_hz: float, max_lag_s: float = 1.0
) -> dict:
    """Synchrony between two populations imaged together (e.g. thalamic boutons and somata).

    Returns a dict with ``mean_pairwise_r`` (mean Pearson r over all a-b pairs),
    and ``lags_s``, ``xcorr``, ``peak_lag_s``, ``peak_r`` of the population-mean
    traces' cross-correlation (positive lag: ``b`` follows ``a``).
    """
    r = pairwise_correlation(a, b)
    lags, xcorr, peak_lag, peak_r = cross_correlation(
        np.nanmean(a, axis=0), np.nanmean(b, axis=0), frame_rate_hz=frame_rate_hz, max_lag_s=max_lag_s
    )
    return {
        "mean_pairwise_r": float(r.mean()),
        "lags_s": lags,
        "xcorr": xcorr,
        "peak_lag_s": peak_lag,
        "peak_r": peak_r,
    }


def correlate_with_behaviour(
    measures: pd.DataFrame,
    behaviour: pd.DataFrame,
    *,
    on: str = "session",
    method: str = "spearman",
) -> pd.DataFrame:
    """Correlate per-session (or per-trial) neural measures with behaviour.

    Parameters
    ----------
    measures : DataFrame
        Key column ``on`` plus numeric measures (e.g. fraction responsive,
        mean amplitude, synchrony).
    behaviour : DataFrame
        Key column ``on`` plus numeric behaviour (e.g. success_rate, precision).
    method : {"spearman", "pearson"}

    Returns
    -------
    DataFrame
        ``measure, behaviour, n, r, p_value`` for every pair of columns.
    """
    if method not in ("spearman", "pearson"):
        raise ParameterError(f"method must be 'spearman' or 'pearson', got {method!r}")
    for name, table in (("measures", measures), ("behaviour", behaviour)):
        if on not in table.columns:
            raise ParameterError(f"{name} table has no key column {on!r}")
    merged = measures.merge(behaviour, on=on, suffixes=("", "_behaviour"))
    test = stats.spearmanr if method == "spearman" else stats.pearsonr
    rows = []
    m_cols = [c for c in measures.select_dtypes("number").columns if c != on]
    b_cols = [c for c in behaviour.select_dtypes("number").columns if c != on]
    for m in m_cols:
        for bcol in b_cols:
            bname = bcol if bcol in merged.columns and bcol not in m_cols else f"{bcol}_behaviour"
            pair = merged[[m, bname]].dropna()
            if len(pair) < 3:
                rows.append({"measure": m, "behaviour": bcol, "n": len(pair), "r": np.nan, "p_value": np.nan})
                continue
            res = test(pair[m], pair[bname])
            rows.append(
                {
                    "measure": m,
                    "behaviour": bcol,
                    "n": len(pair),
                    "r": float(res.statistic),
                    "p_value": float(res.pvalue),
                }
            )
    return pd.DataFrame(rows, columns=["measure", "behaviour", "n", "r", "p_value"])
