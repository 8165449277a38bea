"""Bootstrap confidence intervals of turnover statistics across dendrites or animals.

The unit of resampling is the group (dendrite, or animal when the track table has such a
column), not the spine: spines of one dendrite are not independent. Each bootstrap replicate
draws ``n_groups`` groups with replacement (:class:`numpy.random.Generator`), sums their count
components and recomputes every ratio statistic of :data:`imagingkit.tracking.turnover.RATIOS`
(a ratio-of-sums estimator, the same as the pooled estimate). Intervals are percentile
intervals; with fewer than 2 groups they are missing.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from imagingkit.errors import ParameterError
from imagingkit.tracking.turnover import RATIOS, group_counts, pooled_counts, ratio


@dataclasses.dataclass(frozen=True)
class BootstrapParams:
    """Parameters of the group bootstrap.

    Attributes
    ----------
    n_boot : int
        Number of bootstrap replicates.
    ci : float
        Confidence level of the percentile interval (0.95 -> 2.5th to 97.5th percentile).
    group_col : str
        Track-table column whose values are the resampled units.
    seed : int
        Seed of the generator.
    """

    n_boot: int = 2000
    ci: float = 0.95
    group_col: str = "dendrite_id"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_boot < 1:
            raise ParameterError(f"n_boot must be >= 1, got {self.n_boot}")
        if not 0 < self.ci < 1:
            raise ParameterError(f"ci must be in (0, 1), got {self.ci}")


def bootstrap_turnover(
    tracks: pd.DataFrame,
    params: BootstrapParams = BootstrapParams(),
    dendrite_length_um: dict | None = None,
) -> pd.DataFrame:
    """Pooled estimate and bootstrap interval of every turnover statistic, per session.

    Parameters
    ----------
    tracks : DataFrame
        Track table with ``state``/``counted`` and ``params.group_col``.
    params : BootstrapParams
    dendrite_length_um : dict, optional
        Dendrite id -> length, µm (for ``density_per_um``).

    Returns
    -------
    DataFrame
        Long table: ``statistic, cohort_session, session, time_h, estimate, ci_low, ci_high,
        n_groups``; ``cohort_session`` is set only for ``cohort_survival``.
    """
    groups, components = group_counts(tracks, params.group_col, dendrite_length_um)
    pooled = pooled_counts(components)
    n_groups = len(groups)
    rng = np.random.default_rng(params.seed)
    draws = rng.integers(0, n_groups, size=(params.n_boot, n_groups))
    # resampled sums: (n_boot, ...) per component; NaN-aware like the pooled estimate
    resampled = {}
    for key, value in components.items():
        picked = value[draws]  # (n_boot, n_groups, ...)
        total = np.nansum(picked, axis=1)
        resampled[key] = np.where(np.all(np.isnan(picked), axis=1), np.nan, total)
    alpha = (1 - params.ci) / 2
    times = (
        tracks.groupby("session")["time_h"].first().sort_index().to_numpy() if "time_h" in tracks else None
    )
    rows = []
    for name in RATIOS:
        estimate = ratio(pooled, name)
        replicates = ratio(resampled, name)
        with warnings.catch_warnings():  # undefined statistics (e.g. session-0 rates) are all-NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanpercentile(replicates, 100 * alpha, axis=0)
            high = np.nanpercentile(replicates, 100 * (1 - alpha), axis=0)
        if n_groups < 2:
            low, high = np.full_like(estimate, np.nan), np.full_like(estimate, np.nan)
        if estimate.ndim == 1:
            index = [(None, s) for s in range(len(estimate))]
        else:
            index = [(k, s) for k in range(1, estimate.shape[0]) for s in range(k, estimate.shape[1])]
        for cohort, s in index:
            key = (s,) if cohort is None else (cohort, s)
            rows.append(
                {
                    "statistic": name,
                    "cohort_session": cohort,
                    "session": s,
                    "time_h": np.nan if times is None else float(times[s]),
                    "estimate": float(estimate[key]),
                    "ci_low": float(low[key]),
                    "ci_high": float(high[key]),
                    "n_groups": n_groups,
                }
            )
    table = pd.DataFrame(rows)
    table["cohort_session"] = table["cohort_session"].astype("Int64")
    return table
