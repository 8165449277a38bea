"""Figures of stimulus responses (matplotlib figures without pyplot: no display, no backend switch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def plot_responses(
    trial_mean: np.ndarray,
    time_s: np.ndarray,
    responses: pd.DataFrame,
    roi_yx: np.ndarray,
    path: str | Path,
    *,
    order: np.ndarray | None = None,
    frame_shape: tuple[int, int] | None = None,
    title: str = "",
) -> Path:
    """Save a two-panel PNG: trial-averaged heatmap (ROIs sorted) and a map of responsive ROIs.

    Parameters
    ----------
    trial_mean : ndarray
        (n_rois, n_samples) trial-averaged dF/F.
    time_s : ndarray
        (n_samples,) peri-stimulus time.
    responses : DataFrame
        ``responses.csv`` table (``direction`` used for colours).
    roi_yx : ndarray
        (n_rois, 2) ROI centroids (pixels).
    path : str or Path
        Output PNG.
    order : ndarray or None
        Row order of the heatmap (default: as given).
    frame_shape : (int, int) or None
        Field of view (Y, X) for the map's limits.
    """
    from matplotlib.figure import Figure

    order = np.arange(len(trial_mean)) if order is None else np.asarray(order)
    data = trial_mean[order]
    finite = data[np.isfinite(data)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    fig = Figure(figsize=(11, 4.5))
    (ax_heat, ax_map) = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    image = ax_heat.imshow(
        np.ma.masked_invalid(data),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-vmax or -1,
        vmax=vmax or 1,
        extent=(time_s[0], time_s[-1], len(data), 0),
        interpolation="nearest",
    )
    ax_heat.axvline(0, color="k", lw=0.8)
    ax_heat.set_xlabel("time from stimulus onset (s)")
    ax_heat.set_ylabel("ROI (sorted by response)")
    ax_heat.set_title("trial-averaged dF/F")
    fig.colorbar(image, ax=ax_heat, label="dF/F")
    direction = responses["direction"].to_numpy()
    colours = np.where(direction > 0, "tab:red", np.where(direction < 0, "tab:blue", "0.75"))
    yx = np.asarray(roi_yx, dtype=float)
    ax_map.scatter(yx[:, 1], yx[:, 0], c=colours, s=18, edgecolors="none")
    if frame_shape is not None:
        ax_map.set_xlim(0, frame_shape[1])
        ax_map.set_ylim(frame_shape[0], 0)
    else:
        ax_map.invert_yaxis()
    ax_map.set_aspect("equal")
    n_exc, n_inh = int((direction > 0).sum()), int((direction < 0).sum())
    ax_map.set_title(f"responsive ROIs: {n_exc} excited (red), {n_inh} inhibited (blue) of {len(direction)}")
    ax_map.set_xlabel("x (px)")
    ax_map.set_ylabel("y (px)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, format="png")
    return path
