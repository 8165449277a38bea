"""HTML report of a run: the figures people look at, as PNG beside one page.

The report reads only the documented step files of a run folder (so it can be
re-made for any run): motion trace, mean image with ROIs, trial-averaged
response heatmap, responder map, spine fate map, turnover and survival
curves, and response change across sessions.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from matplotlib.figure import Figure

from imagingkit._atomic import atomic_path

FATE_COLOURS = {
    "stable": "#4c72b0",
    "formed": "#55a868",
    "eliminated": "#c44e52",
    "transient": "#dd8452",
    "uncertain": "#8c8c8c",
}


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def motion_figure(shifts_csv: Path, out_png: Path) -> Path:
    """Rigid shifts (dy, dx) over frames with bad frames marked."""
    shifts = pd.read_csv(shifts_csv)
    fig = Figure(figsize=(7, 2.5))
    ax = fig.subplots()
    ax.plot(shifts["frame"], shifts["dy"], lw=0.8, label="dy")
    ax.plot(shifts["frame"], shifts["dx"], lw=0.8, label="dx")
    bad = shifts[shifts["bad"].astype(bool)]
    if len(bad):
        ax.plot(bad["frame"], bad["dy"], "rx", ms=4, label="bad frame")
    ax.set(xlabel="frame", ylabel="shift (px)", title="Motion")
    ax.legend(loc="upper right", fontsize=7)
    return _save(fig, out_png)


def rois_figure(reference_tif: Path, labels_tif: Path, out_png: Path) -> Path:
    """Mean image with ROI outlines."""
    image = tifffile.imread(reference_tif).astype(float)
    labels = tifffile.imread(labels_tif)
    while image.ndim > 2:
        image = image[0]
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    lo, hi = np.percentile(image, [1, 99.5])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
    if labels.max() > 0:
        ax.contour(labels > 0, levels=[0.5], colors="yellow", linewidths=0.6)
    ax.set(title=f"Mean image, {len(np.unique(labels)) - 1} ROIs")
    ax.axis("off")
    return _save(fig, out_png)


def heatmap_figure(trial_npz: Path, responses_csv: Path, out_png: Path) -> Path:
    """Trial-averaged dF/F of every ROI, sorted by response amplitude."""
    with np.load(trial_npz) as data:
        trials = data["dff"] if "dff" in data else data[data.files[0]]
        time_s = data["time_s"] if "time_s" in data else np.arange(trials.shape[-1])
    responses = pd.read_csv(responses_csv)
    mean = np.nanmean(trials, axis=1) if trials.size else np.zeros((0, len(time_s)))
    order = np.argsort(-responses["amplitude"].to_numpy()) if len(responses) == len(mean) else slice(None)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    extent = (time_s[0], time_s[-1], len(mean), 0) if len(time_s) else None
    vmax = np.nanpercentile(np.abs(mean), 99) if mean.size else 1.0
    image = ax.imshow(mean[order], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, extent=extent)
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel="time from stimulus (s)", ylabel="ROI (sorted)", title="Trial-averaged dF/F")
    fig.colorbar(image, ax=ax, label="dF/F")
    return _save(fig, out_png)


def responder_figure(labels_tif: Path, responses_csv: Path, out_png: Path) -> Path:
    """ROIs coloured by response amplitude, responsive ones outlined."""
    labels = tifffile.imread(labels_tif)
    responses = pd.read_csv(responses_csv)
    amplitude = np.full(int(labels.max()) + 1, np.nan)
    responsive = np.zeros(int(labels.max()) + 1, dtype=bool)
    for row in responses.itertuples():
        if 0 < row.roi_id < len(amplitude):
            amplitude[row.roi_id] = row.amplitude
            responsive[row.roi_id] = bool(row.responsive)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    vmax = np.nanmax(np.abs(amplitude)) if np.isfinite(amplitude).any() else 1.0
    image = ax.imshow(np.where(labels > 0, amplitude[labels], np.nan), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    if responsive.any():
        ax.contour(responsive[labels], levels=[0.5], colors="k", linewidths=0.8)
    ax.set(title=f"Responders: {int(responsive.sum())} of {len(responses)}")
    ax.axis("off")
    fig.colorbar(image, ax=ax, label="amplitude (dF/F)")
    return _save(fig, out_png)


def fate_figure(tracks_csv: Path, out_png: Path) -> Path:
    """Spine positions coloured by fate, and presence per session."""
    tracks = pd.read_csv(tracks_csv)
    first = tracks.sort_values("session").groupby("track_id").first()
    fig = Figure(figsize=(9, 4))
    (ax_map, ax_presence) = fig.subplots(1, 2)
    for fate, colour in FATE_COLOURS.items():
        sel = first[first["fate"] == fate]
        ax_map.scatter(sel["x"], sel["y"], s=10, c=colour, label=f"{fate} ({len(sel)})")
    ax_map.invert_yaxis()
    ax_map.set(title="Spine fates", xlabel="x (px)", ylabel="y (px)")
    ax_map.legend(fontsize=7)
    presence = tracks.pivot_table(index="track_id", columns="session", values="present", aggfunc="max")
    ax_presence.imshow(
        presence.fillna(0).to_numpy(dtype=float), aspect="auto", cmap="Greys", interpolation="nearest"
    )
    ax_presence.set(title="Presence per session", xlabel="session", ylabel="track")
    return _save(fig, out_png)


def turnover_figure(turnover_csvs: dict[str, Path], out_png: Path) -> Path:
    """Survival of baseline spines and turnover ratio over time, one line per animal."""
    fig = Figure(figsize=(9, 3.2))
    (ax_survival, ax_tor) = fig.subplots(1, 2)
    for animal, path in turnover_csvs.items():
        table = pd.read_csv(path)
        ax_survival.plot(table["time_h"], table["survival_baseline"], "o-", label=animal)
        ax_tor.plot(table["time_h"], table["turnover_ratio"], "o-", label=animal)
    ax_survival.set(xlabel="time (h)", ylabel="fraction of baseline spines", title="Survival", ylim=(0, 1.05))
    ax_tor.set(xlabel="time (h)", ylabel="TOR", title="Turnover ratio")
    ax_survival.legend(fontsize=7)
    return _save(fig, out_png)


def response_change_figure(summary_csvs: dict[str, Path], out_png: Path) -> Path:
    """Mean response amplitude and fraction responsive per session."""
    fig = Figure(figsize=(9, 3.2))
    (ax_amp, ax_frac) = fig.subplots(1, 2)
    for animal, path in summary_csvs.items():
        table = pd.read_csv(path)
        ax_amp.plot(table["time_h"], table["mean_amplitude"], "o-", label=animal)
        ax_frac.plot(table["time_h"], table["fraction_responsive"], "o-", label=animal)
    ax_amp.set(xlabel="time (h)", ylabel="mean amplitude (dF/F)", title="Response amplitude")
    ax_frac.set(xlabel="time (h)", ylabel="fraction responsive", title="Responsive ROIs", ylim=(0, 1.05))
    ax_amp.legend(fontsize=7)
    return _save(fig, out_png)


def session_figures(session_dir: Path, out_dir: Path, prefix: str) -> list[tuple[str, Path]]:
    """Make every figure one session's files allow; return (caption, png) pairs."""
    figures: list[tuple[str, Path]] = []
    reg, neu, stim = session_dir / "register", session_dir / "neurons", session_dir / "stim"
    if (reg / "shifts.csv").is_file():
        figures.append(("Motion trace", motion_figure(reg / "shifts.csv", out_dir / f"{prefix}_motion.png")))
    if (reg / "reference.tif").is_file() and (neu / "roi_labels.tif").is_file():
        figures.append(
            (
                "Mean image with ROIs",
                rois_figure(reg / "reference.tif", neu / "roi_labels.tif", out_dir / f"{prefix}_rois.png"),
            )
        )
    if (stim / "trial_responses.npz").is_file() and (stim / "responses.csv").is_file():
        figures.append(
            (
                "Trial-averaged responses",
                heatmap_figure(
                    stim / "trial_responses.npz", stim / "responses.csv", out_dir / f"{prefix}_heatmap.png"
                ),
            )
        )
        if (neu / "roi_labels.tif").is_file():
            figures.append(
                (
                    "Responder map",
                    responder_figure(
                        neu / "roi_labels.tif", stim / "responses.csv", out_dir / f"{prefix}_responders.png"
                    ),
                )
            )
    return figures


def write_report(run_dir: Path, config, summary: pd.DataFrame) -> Path:
    """Write ``run_dir/report/index.html`` (whole run) and one ``ANIMAL_SESSION.html`` page per session."""
    run_dir = Path(run_dir)
    out_dir = run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>imagingkit report: {html.escape(config.name)}</h1>",
        "<h2>Summary</h2>",
        summary.to_html(index=False, escape=True),
    ]
    turnover = {a: run_dir / a / "tracking" / "turnover.csv" for a in config.animals}
    turnover = {a: p for a, p in turnover.items() if p.is_file()}
    changes = {a: run_dir / a / "summary" / "responses_across_sessions.csv" for a in config.animals}
    changes = {a: p for a, p in changes.items() if p.is_file()}
    across: list[tuple[str, Path]] = []
    if turnover:
        across.append(("Spine survival and turnover", turnover_figure(turnover, out_dir / "turnover.png")))
    if changes:
        across.append(
            (
                "Response change across sessions",
                response_change_figure(changes, out_dir / "response_change.png"),
            )
        )
    for animal in config.animals:
        tracks = run_dir / animal / "tracking" / "tracks.csv"
        if tracks.is_file():
            across.append((f"{animal}: spine fates", fate_figure(tracks, out_dir / f"{animal}_fates.png")))
    if across:
        parts.append("<h2>Across sessions</h2>")
        parts.extend(_figure_html(caption, png) for caption, png in across)
    for session in config.sessions:
        prefix = session.key.replace("/", "_")
        figures = session_figures(run_dir / session.key, out_dir, prefix)
        title = f"Session {html.escape(session.key)} (t = {session.time_h:g} h)"
        section = [_figure_html(caption, png) for caption, png in figures]
        if not figures:
            section.append("<p>No figures: the session produced no outputs (see the summary).</p>")
        _write_page(
            out_dir / f"{prefix}.html",
            [f"<h1>{title}</h1>", "<p><a href='index.html'>run report</a></p>", *section],
        )
        parts.append(f"<h2><a href='{html.escape(prefix)}.html'>{title}</a></h2>")
        parts.extend(section)
    index = out_dir / "index.html"
    _write_page(index, parts)
    return index


def _write_page(path: Path, parts: list[str]) -> None:
    page = "<!doctype html><html><head><meta charset='utf-8'><title>imagingkit report</title></head><body>"
    with atomic_path(path) as tmp:
        tmp.write_text(page + "\n".join(parts) + "</body></html>")


def _figure_html(caption: str, png: Path) -> str:
    return f"<figure><img src='{html.escape(png.name)}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
