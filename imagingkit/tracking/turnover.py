"""Turnover statistics from a track table: density, formation, elimination, TOR, survival, size.

All statistics use the ``counted`` presence of :func:`imagingkit.tracking.fates.classify_fates`
(detected, or missed in fewer than K sessions between two presences) and leave out a track in
any session where it is ``out_of_view``. For session s (s >= 1), with N(s) the spines counted
in session s among tracks observable in both s-1 and s:

- ``n_spines[s]``: spines counted in session s (tracks observable in s);
- ``n_gained[s]``: counted in s, not in s-1; ``n_lost[s]``: counted in s-1, not in s;
- ``formation_rate[s] = 100 * n_gained[s] / N(s-1)`` and
  ``elimination_rate[s] = 100 * n_lost[s] / N(s-1)``: % of the spines of the earlier session;
- ``turnover_ratio[s] = (n_gained[s] + n_lost[s]) / (2 * N(s-1))``: TOR between s-1 and s,
  N_total taken as the number of spines in the earlier session (Holtmaat et al. 2005, 2009;
  Xu et al. 2009); a fraction (0.1 = 10 %), not a percentage;
- ``formation_vs_baseline[s] = 100 * (counted in s, not in 0) / N_0`` and
  ``elimination_vs_baseline[s] = 100 * (counted in 0, not in s) / N_0``, N_0 the baseline
  spines (session 0) observable in s: cumulative gains and losses relative to baseline, in %;
- ``survival_baseline[s]``: fraction of baseline spines counted in every session 0..s
  (uninterrupted survival), among baseline spines observable in 0..s;
- ``density_per_um[s] = n_spines[s] / dendrite length`` (spines per µm; length given per
  dendrite, or estimated as the arc-length extent of the dendrite's tracks);
- ``size_change[s]``: mean over persistent spines (counted in every session) of
  ``intensity_ratio[s] / intensity_ratio[0]`` (spine brightness relative to the shaft, a size
  proxy), where detected in both sessions;
- cohort survival: spines formed in session k (counted in k, not in k-1) that are counted in
  every session k..s, as a fraction of the cohort (observable through s).

Every statistic is a ratio of counts summed over tracks, so per-dendrite counts add up to
the pooled statistic and a bootstrap over dendrites (or animals) resamples those counts
(:mod:`imagingkit.tracking.bootstrap`). Row 0 has no previous session: its between-session
values are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from imagingkit.errors import DataError

#: statistic name -> (numerator component, denominator component, scale)
RATIOS: dict[str, tuple[str, str, float]] = {
    "formation_rate": ("n_gained", "n_prev", 100.0),
    "elimination_rate": ("n_lost", "n_prev", 100.0),
    "turnover_ratio": ("n_changed", "n_prev2", 1.0),
    "survival_baseline": ("n_base_surviving", "n_base_tracked", 1.0),
    "formation_vs_baseline": ("n_new_vs_base", "n_base", 100.0),
    "elimination_vs_baseline": ("n_lost_vs_base", "n_base", 100.0),
    "density_per_um": ("n_spines", "length_um", 1.0),
    "size_change": ("sum_rel_size", "n_rel_size", 1.0),
    "cohort_survival": ("cohort_surviving", "cohort_tracked", 1.0),
}
TURNOVER_COLUMNS = (
    "session",
    "time_h",
    "n_spines",
    "n_gained",
    "n_lost",
    "formation_rate",
    "elimination_rate",
    "turnover_ratio",
    "survival_baseline",
    "density_per_um",
)
_NEEDED = ("track_id", "session", "counted", "state", "intensity_ratio", "dendrite_id")


def _matrices(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    missing = [c for c in _NEEDED if c not in tracks.columns]
    if missing:
        raise DataError(f"track table: missing column(s) {', '.join(missing)}; run classify_fates first")
    n_sessions = int(tracks["session"].max()) + 1 if len(tracks) else 0
    ids = np.unique(tracks["track_id"].to_numpy())
    row = np.searchsorted(ids, tracks["track_id"].to_numpy())
    col = tracks["session"].to_numpy(int)
    counted = np.zeros((len(ids), n_sessions), bool)
    observable = np.zeros((len(ids), n_sessions), bool)
    intensity = np.full((len(ids), n_sessions), np.nan)
    counted[row, col] = tracks["counted"].to_numpy(bool)
    observable[row, col] = tracks["state"].to_numpy() != "out_of_view"
    present = tracks["state"].to_numpy() == "present"
    intensity[row[present], col[present]] = tracks["intensity_ratio"].to_numpy(float)[present]
    return ids, counted, observable, intensity, n_sessions


def turnover_counts(
    counted: np.ndarray, observable: np.ndarray, intensity: np.ndarray, length_um: float
) -> dict:
    """Count components of every statistic for one set of tracks.

    Parameters
    ----------
    counted, observable : ndarray of bool, shape (n_tracks, n_sessions)
    intensity : ndarray, shape (n_tracks, n_sessions)
        ``intensity_ratio`` where detected, NaN elsewhere.
    length_um : float
        Dendrite length of these tracks, µm (NaN if unknown).

    Returns
    -------
    dict
        Component name -> array of shape (n_sessions,) or, for cohorts, (n_sessions, n_sessions)
        indexed [cohort session k, session s]. See :data:`RATIOS`.
    """
    n_sessions = counted.shape[1]
    c, o = counted & observable, observable
    nan = np.full(n_sessions, np.nan)
    out = {"n_spines": c.sum(0).astype(float), "length_um": np.full(n_sessions, float(length_um))}
    for key in ("n_gained", "n_lost", "n_prev", "n_changed", "n_prev2"):
        out[key] = nan.copy()
    pair = o[:, :-1] & o[:, 1:]
    out["n_gained"][1:] = (~c[:, :-1] & c[:, 1:] & pair).sum(0)
    out["n_lost"][1:] = (c[:, :-1] & ~c[:, 1:] & pair).sum(0)
    out["n_prev"][1:] = (c[:, :-1] & pair).sum(0)
    out["n_changed"][1:] = out["n_gained"][1:] + out["n_lost"][1:]
    out["n_prev2"][1:] = 2 * out["n_prev"][1:]
    base_pair = o[:, :1] & o
    out["n_base"] = (c[:, :1] & base_pair).sum(0).astype(float)
    out["n_new_vs_base"] = (~c[:, :1] & c & base_pair).sum(0).astype(float)
    out["n_lost_vs_base"] = (c[:, :1] & ~c & base_pair).sum(0).astype(float)
    seen_through = np.logical_and.accumulate(o, axis=1)
    alive_through = np.logical_and.accumulate(c, axis=1)
    out["n_base_tracked"] = (c[:, :1] & seen_through).sum(0).astype(float)
    out["n_base_surviving"] = (alive_through & seen_through).sum(0).astype(float)
    persistent = c.all(1) & o.all(1)
    rel = intensity[persistent] / intensity[persistent, :1]
    out["sum_rel_size"] = np.nansum(rel, axis=0) if len(rel) else np.zeros(n_sessions)
    out["n_rel_size"] = np.isfinite(rel).sum(0).astype(float)
    cohort_tracked = np.full((n_sessions, n_sessions), np.nan)
    cohort_surviving = np.full((n_sessions, n_sessions), np.nan)
    for k in range(1, n_sessions):
        born = ~c[:, k - 1] & c[:, k] & o[:, k - 1] & o[:, k]
        seen = np.logical_and.accumulate(o[:, k:], axis=1)
        alive = np.logical_and.accumulate(c[:, k:], axis=1) & seen
        cohort_tracked[k, k:] = (born[:, None] & seen).sum(0)
        cohort_surviving[k, k:] = (born[:, None] & alive).sum(0)
    out["cohort_tracked"], out["cohort_surviving"] = cohort_tracked, cohort_surviving
    return out


def ratio(components: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """One statistic of :data:`RATIOS` from (possibly summed or resampled) components."""
    num, den, scale = RATIOS[name]
    with np.errstate(invalid="ignore", divide="ignore"):
        return scale * np.asarray(components[num], float) / np.asarray(components[den], float)


def dendrite_lengths(
    tracks: pd.DataFrame, dendrite_length_um: Mapping[int, float] | None = None
) -> pd.Series:
    """Length (µm) per dendrite: given, or the arc-length extent of its tracks (NaN without arcs)."""
    per_track = tracks.groupby("track_id")[["dendrite_id", "arc_um"]].first()
    estimated = per_track.groupby("dendrite_id")["arc_um"].agg(
        lambda a: np.nanmax(a) - np.nanmin(a) if a.notna().any() else np.nan
    )
    if dendrite_length_um is not None:
        given = pd.Series(dendrite_length_um, dtype=float)
        estimated = given.reindex(estimated.index).fillna(estimated)
    return estimated.astype(float)


def group_counts(
    tracks: pd.DataFrame,
    group_col: str = "dendrite_id",
    dendrite_length_um: Mapping[int, float] | None = None,
) -> tuple[np.ndarray, dict]:
    """Count components per group of tracks (dendrite, animal...).

    Returns
    -------
    groups : ndarray
        Group labels.
    components : dict
        Name -> array (n_groups, ...) stacked from :func:`turnover_counts` per group.
    """
    if group_col not in tracks.columns:
        raise DataError(f"track table: no column {group_col!r} to group by")
    ids, counted, observable, intensity, _ = _matrices(tracks)
    per_track = tracks.groupby("track_id")[list(dict.fromkeys([group_col, "dendrite_id"]))].first().loc[ids]
    lengths = dendrite_lengths(tracks, dendrite_length_um)
    groups = np.unique(per_track[group_col].to_numpy())
    stacked: dict[str, list] = {}
    for group in groups:
        mask = per_track[group_col].to_numpy() == group
        dendrites = np.unique(per_track["dendrite_id"].to_numpy()[mask])
        length = float(lengths.reindex(dendrites).sum(min_count=1))
        counts = turnover_counts(counted[mask], observable[mask], intensity[mask], length)
        for key, value in counts.items():
            stacked.setdefault(key, []).append(value)
    return groups, {key: np.stack(values) for key, values in stacked.items()}


def _table(components: Mapping[str, np.ndarray], times_h: Sequence[float] | None) -> pd.DataFrame:
    n_sessions = len(components["n_spines"])
    table = pd.DataFrame({"session": np.arange(n_sessions)})
    table["time_h"] = np.nan if times_h is None else np.asarray(times_h, float)[:n_sessions]
    for key in ("n_spines", "n_gained", "n_lost"):
        table[key] = pd.array(components[key], dtype="Float64").astype("Int64")
    for name in (
        "formation_rate",
        "elimination_rate",
        "turnover_ratio",
        "survival_baseline",
        "density_per_um",
    ):
        table[name] = ratio(components, name)
    for name in ("formation_vs_baseline", "elimination_vs_baseline", "size_change"):
        table[name] = ratio(components, name)
    return table


def compute_turnover(
    tracks: pd.DataFrame,
    times_h: Sequence[float] | None = None,
    dendrite_length_um: Mapping[int, float] | None = None,
    group_col: str | None = None,
) -> pd.DataFrame:
    """Turnover table, pooled over all tracks or one block per group.

    Parameters
    ----------
    tracks : DataFrame
        Track table with ``state``/``counted`` (from :func:`classify_fates`).
    times_h : sequence of float, optional
        Session times, hours; default: the ``time_h`` column of ``tracks``.
    dendrite_length_um : mapping, optional
        Dendrite id -> length in µm, for densities.
    group_col : str, optional
        If given (e.g. ``"dendrite_id"``), one block of rows per group with that column first.

    Returns
    -------
    DataFrame
        Columns :data:`TURNOVER_COLUMNS` then ``formation_vs_baseline, elimination_vs_baseline,
        size_change``; definitions in the module docstring.
    """
    if times_h is None and "time_h" in tracks.columns:
        times_h = tracks.groupby("session")["time_h"].first().sort_index().to_numpy()
    groups, components = group_counts(tracks, group_col or "dendrite_id", dendrite_length_um)
    if group_col is None:
        return _table(pooled_counts(components), times_h)
    blocks = []
    for g, group in enumerate(groups):
        block = _table({key: value[g] for key, value in components.items()}, times_h)
        block.insert(0, group_col, group)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def _nan_sum(value: np.ndarray) -> np.ndarray:
    """Sum over groups; NaN where every group is NaN (undefined), else the sum of the defined."""
    total = np.nansum(value, axis=0)
    return np.where(np.all(np.isnan(value), axis=0), np.nan, total)


def pooled_counts(components: Mapping[str, np.ndarray]) -> dict:
    """Sum per-group components (axis 0) into pooled components."""
    return {key: _nan_sum(value) for key, value in components.items()}


def cohort_survival(tracks: pd.DataFrame, times_h: Sequence[float] | None = None) -> pd.DataFrame:
    """Survival of new spines by cohort (formed in session k), pooled over all tracks.

    Returns
    -------
    DataFrame
        ``cohort_session, session, time_h, n_cohort, n_surviving, survival`` for every
        cohort k >= 1 and session s >= k.
    """
    if times_h is None and "time_h" in tracks.columns:
        times_h = tracks.groupby("session")["time_h"].first().sort_index().to_numpy()
    _, components = group_counts(tracks, "dendrite_id")
    pooled = pooled_counts(components)
    surv = ratio(pooled, "cohort_survival")
    rows = []
    n_sessions = surv.shape[0]
    for k in range(1, n_sessions):
        for s in range(k, n_sessions):
            rows.append(
                {
                    "cohort_session": k,
                    "session": s,
                    "time_h": np.nan if times_h is None else float(times_h[s]),
                    "n_cohort": int(pooled["cohort_tracked"][k, s]),
                    "n_surviving": int(pooled["cohort_surviving"][k, s]),
                    "survival": surv[k, s],
                }
            )
    columns = ["cohort_session", "session", "time_h", "n_cohort", "n_surviving", "survival"]
    return pd.DataFrame(rows, columns=columns)
