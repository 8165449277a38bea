"""Figures of a tracking result: fate map and survival curves (matplotlib figures without pyplot: no display, no backend switch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FATE_COLOURS = {
    "stable": "#4d4d4d",
    "formed": "#1a9850",
    "eliminated": "#d73027",
    "transient": "#fdae61",
    "uncertain": "#74add1",
    "rejected": "#d9d9d9",
}


def plot_tracking(
    tracks: pd.DataFrame, turnover: pd.DataFrame, cohorts: pd.DataFrame, path: str | Path, title: str = ""
) -> Path:
    """Save a two-panel PNG: fate map (track positions in the reference frame, coloured by
    fate) and survival curves (baseline spines and new-spine cohorts over time).

    Parameters
    ----------
    tracks, turnover, cohorts : DataFrame
        From :class:`~imagingkit.tracking.session.TrackingResult`.
    path : str or Path
        Output PNG file (written as given; wrap in ``atomic_path`` for atomicity).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5))

    (ax_map, ax_surv) = fig.subplots(1, 2)
    per_track = tracks.groupby("track_id").agg(y=("y", "mean"), x=("x", "mean"), fate=("fate", "first"))
    for fate, colour in FATE_COLOURS.items():
        sel = per_track[per_track["fate"] == fate]
        if len(sel):
            ax_map.scatter(
                sel["x"], sel["y"], s=12, c=colour, label=f"{fate} ({len(sel)})", edgecolors="none"
            )
    ax_map.invert_yaxis()
    ax_map.set_aspect("equal")
    ax_map.set_xlabel("x (px, reference frame)")
    ax_map.set_ylabel("y (px, reference frame)")
    ax_map.set_title("spine fates")
    ax_map.legend(fontsize=8, loc="best", markerscale=1.5)
    ax_surv.plot(turnover["time_h"], turnover["survival_baseline"], "o-", color="k", label="baseline spines")
    for k, block in cohorts.groupby("cohort_session"):
        if block["n_cohort"].iloc[0] > 0:
            ax_surv.plot(block["time_h"], block["survival"], "s--", alpha=0.8, label=f"formed in session {k}")
    ax_surv.set_xlabel("time (h)")
    ax_surv.set_ylabel("surviving fraction")
    ax_surv.set_ylim(0, 1.05)
    times = turnover["time_h"].to_numpy(float)
    if np.all(times > 0) or (len(times) > 2 and times[-1] / max(times[1], 1e-9) > 20):
        ax_surv.set_xscale("symlog", linthresh=1.0)
    ax_surv.set_title("survival")
    ax_surv.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120, format="png")
    return path
