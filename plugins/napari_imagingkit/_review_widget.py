"""Multi-session spine review: sessions in reference coordinates, spines coloured by fate, review edits.

Sessions are registered to the reference with :func:`imagingkit.motion.register_sessions`
and shown as one (session, Y, X) stack; tracks come from
:func:`imagingkit.tracking.track_sessions` or a ``tracks.csv``. Every track row is a point
(session, y, x) keeping its ``track_id`` as text and coloured by fate; absences are rings.
"Next event to check" steps through the gains and losses that neither the image confirmed nor a
reviewer decided (:func:`imagingkit.tracking.events.list_events`), the third of the events that
holds most of the tracker's wrong ones. Edits are the tracking room's review functions
(:func:`~imagingkit.tracking.mark_event`, :func:`~imagingkit.tracking.relink`,
:func:`~imagingkit.tracking.split_track`, :func:`~imagingkit.tracking.reject_track`); statistics are recomputed with
:func:`~imagingkit.tracking.compute_turnover` after each edit and saved with the tracks.
"""

from __future__ import annotations

from pathlib import Path

import napari.layers
import numpy as np
import pandas as pd
from magicgui.widgets import Container, FileEdit, LineEdit
from matplotlib.colors import to_rgba
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidget, QListWidgetItem

from imagingkit._atomic import atomic_path
from imagingkit.tracking import (
    TRACK_COLUMNS,
    TURNOVER_COLUMNS,
    TrackingParams,
    compute_turnover,
    mark_event,
    reject_track,
    relink,
    split_track,
    track_sessions,
)
from imagingkit.tracking.events import found_on_image, list_events
from imagingkit.tracking.files import read_tracks_csv

from ._base import PlotCanvas, StepWidget

#: Fate colours (the same palette as the run report's fate map).
FATE_COLOURS = {
    "stable": "#4c72b0",
    "formed": "#55a868",
    "eliminated": "#c44e52",
    "transient": "#dd8452",
    "uncertain": "#e5c33b",
    "rejected": "#5a5a5a",
}


def parse_times_h(text: str, n_sessions: int) -> list[float]:
    """Session times from "0, 1, 6" (hours); empty means 0, 1, 2..."""
    text = text.strip()
    if not text:
        return [float(i) for i in range(n_sessions)]
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"session times must be numbers of hours separated by commas, got {text!r}") from exc


def register_to_reference(images: list[np.ndarray], reference_index: int) -> np.ndarray:
    """(S, Y, X) stack of the sessions warped into the reference session's frame."""
    from imagingkit.motion import register_sessions

    planes = [np.asarray(img).max(axis=0) if np.ndim(img) == 3 else np.asarray(img) for img in images]
    transforms = register_sessions(planes, reference_index)
    return np.stack([t.warp_image(p) for t, p in zip(transforms, planes, strict=True)]).astype(np.float32)


class ReviewWidget(StepWidget):
    """Track spines across sessions, review fates and links, save the corrected tracks and statistics."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.session_list = QListWidget()
        self.session_list.setMinimumHeight(90)
        self.add(self.session_list)
        self.times_h = LineEdit(value="", label="session times (h)")
        self.tracks_file = FileEdit(mode="r", filter="*.csv", label="tracks.csv (optional)")
        self.output_dir = FileEdit(mode="d", label="output folder")
        self.add(Container(widgets=[self.times_h, self.tracks_file, self.output_dir], labels=True))
        self.track_button = self.add_button("Register sessions and track spines", self.run_tracking)
        self.load_button = self.add_button("Register sessions and load tracks.csv", self.load_tracks)
        self.next_event_button = self.add_button(
            "Next event to check", self.next_event_to_check, long_running=False
        )
        self.accept_button = self.add_button(
            "Accept gain/loss at selected point", lambda: self.mark(True), long_running=False
        )
        self.reject_button = self.add_button(
            "Reject gain/loss at selected point", lambda: self.mark(False), long_running=False
        )
        self.relink_button = self.add_button(
            "Relink the two selected tracks", self.relink_selected, long_running=False
        )
        self.split_button = self.add_button(
            "Split track at selected session", self.split_selected, long_running=False
        )
        self.not_spine_button = self.add_button(
            "Reject track (not a spine)", self.reject_selected, long_running=False
        )
        self.save_button = self.add_button(
            "Save tracks.csv, turnover.csv and spine_events.csv", self.save, long_running=False
        )
        self.stats_plot = self.add(PlotCanvas(height_in=2.2))
        self.finish_layout()
        self.tracks: pd.DataFrame | None = None
        self.turnover: pd.DataFrame | None = None
        self.times: list[float] = []
        self.points_layer: napari.layers.Points | None = None
        self.tracks_layer: napari.layers.Tracks | None = None
        self.n_edits = 0
        self._shown_events: set[tuple] = set()
        self._scale: tuple[float, float] = (1.0, 1.0)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.refresh_sessions)
        self.refresh_sessions()

    # -- session choice ------------------------------------------------------------------------------------
    def refresh_sessions(self, *_) -> None:
        checked = set(self.session_names())
        self.session_list.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, napari.layers.Image) and layer.name != "sessions (registered)":
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Checked if layer.name in checked else Qt.Unchecked)
                self.session_list.addItem(item)

    def session_names(self) -> list[str]:
        items = (self.session_list.item(i) for i in range(self.session_list.count()))
        return [item.text() for item in items if item.checkState() == Qt.Checked]

    def set_sessions(self, names: list[str]) -> None:
        """Check the given image layers as the sessions, in that order of the layer list."""
        for i in range(self.session_list.count()):
            item = self.session_list.item(i)
            item.setCheckState(Qt.Checked if item.text() in names else Qt.Unchecked)

    def _session_inputs(self):
        names = self.session_names()
        if len(names) < 2:
            raise ValueError("check at least two image layers (one per session, in session order)")
        layers = [self.viewer.layers[name] for name in names]
        images = [np.asarray(layer.data) for layer in layers]
        times = parse_times_h(self.times_h.value, len(images))
        return layers, images, times

    # -- tracking / loading ---------------------------------------------------------------------------------
    def run_tracking(self) -> None:
        try:
            layers, images, times = self._session_inputs()
        except ValueError as exc:
            self.report_error(exc)
            return
        params = TrackingParams(pixel_size_um=float(layers[0].scale[-1]))

        def work():
            result = track_sessions(images, times, params)
            return result.tracks, register_to_reference(images, params.reference_index), times

        self._scale = tuple(layers[0].scale[-2:])
        self.run_in_thread(work, on_done=self._on_tracks, desc="Tracking spines")

    def load_tracks(self) -> None:
        path = Path(self.tracks_file.value)
        try:
            layers, images, times = self._session_inputs()
            tracks = read_tracks_csv(path)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(exc)
            return
        if "time_h" in tracks and tracks["time_h"].notna().all() and not self.times_h.value.strip():
            times = tracks.groupby("session")["time_h"].first().sort_index().tolist()
        self._scale = tuple(layers[0].scale[-2:])
        self.run_in_thread(
            lambda: (tracks, register_to_reference(images, 0), times),
            on_done=self._on_tracks,
            desc="Registering sessions",
        )

    def _on_tracks(self, outcome) -> None:
        tracks, stack, times = outcome
        self.times = list(times)
        name = "sessions (registered)"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = stack
        else:
            self.viewer.add_image(
                stack,
                name=name,
                scale=(1.0, *self._scale),
                colormap="gray",
                axis_labels=("session", "y", "x"),
            )
        self.set_tracks(tracks)
        self.viewer.dims.set_point(0, 0)

    # -- display -------------------------------------------------------------------------------------------------
    def set_tracks(self, tracks: pd.DataFrame) -> None:
        """Show a track table: points coloured by fate (rings where absent, diamonds where found on the
        image but in no input table: re-found or discovered), tracks, statistics."""
        self.tracks = tracks.reset_index(drop=True)
        coords = self.tracks[["session", "y", "x"]].to_numpy(float)
        colours = np.array([to_rgba(FATE_COLOURS.get(f, "#ffffff")) for f in self.tracks["fate"]]).reshape(
            -1, 4
        )
        present = self.tracks["present"].to_numpy(bool)
        face = colours.copy()
        face[~present, 3] = 0.0  # absent: ring only
        # found on the image, in no input table (re-found at a track's place, or discovered): a diamond to verify
        refound = found_on_image(self.tracks)
        symbols = np.where(refound, "diamond", np.where(present, "disc", "ring"))
        scale = (1.0, *self._scale)
        features = self.tracks[["track_id", "session", "present", "fate"]].assign(refound=refound)
        if self.points_layer is None or self.points_layer not in self.viewer.layers:
            self.points_layer = self.viewer.add_points(
                coords,
                name="spine fates",
                features=features,
                scale=scale,
                size=7 * self._scale[-1],
                text={"string": "{track_id}", "size": 7, "color": "white", "translation": (0, -1.2, 0)},
                border_width=0.25,
            )
        else:
            self.points_layer.data = coords
            self.points_layer.features = features
        self.points_layer.face_color = face
        self.points_layer.border_color = colours
        self.points_layer.symbol = symbols
        seen = self.tracks[present]
        track_data = seen[["track_id", "session", "y", "x"]].to_numpy(float)
        if self.tracks_layer is None or self.tracks_layer not in self.viewer.layers:
            self.tracks_layer = self.viewer.add_tracks(
                track_data,
                name="spine identities",
                scale=scale,
                tail_length=3,
                blending="translucent",
                visible=False,
            )
        else:
            self.tracks_layer.data = track_data
        self.turnover = compute_turnover(self.tracks, self.times)
        self.plot_statistics()
        counts = self.tracks.groupby("track_id")["fate"].first().value_counts()
        legend = (
            f'<span style="color:{FATE_COLOURS.get(fate, "#ffffff")}">&#9679;</span>&nbsp;{fate}:&nbsp;{n}'
            for fate, n in counts.items()
        )
        self.set_status(" &nbsp;".join(legend))
        self.viewer.layers.selection.active = self.points_layer

    def plot_statistics(self) -> None:
        self.stats_plot.clear()
        ax = self.stats_plot.ax
        t = self.turnover
        ax.plot(t["time_h"], t["survival_baseline"], "o-", label="survival of baseline spines")
        ax.plot(t["time_h"], t["turnover_ratio"], "s-", label="turnover ratio")
        ax.set_xlabel("time (h)")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=6)
        self.stats_plot.draw_idle()

    # -- events to check -----------------------------------------------------------------------------------------
    def next_event_to_check(self) -> pd.Series | None:
        """Show the next gain or loss to check (not confirmed by the image, not reviewed) and select it.

        Events come in :func:`~imagingkit.tracking.events.list_events` order, each once until all
        have been shown; an event accepted or rejected leaves the list. Returns the event shown.
        """
        if self.tracks is None:
            self.report_error("no tracks yet: track or load sessions first")
            return None
        events = list_events(self.tracks)
        events = events[events["to_check"]]
        keys = list(zip(events["track_id"], events["session"], events["kind"], strict=True))
        fresh = [i for i, key in enumerate(keys) if key not in self._shown_events]
        if not fresh and keys:  # every one shown: start again
            self._shown_events.clear()
            fresh = list(range(len(keys)))
        if not fresh:
            self.set_status("no event left to check")
            return None
        event = events.iloc[fresh[0]]
        self._shown_events.add(keys[fresh[0]])
        track_id, session = int(event["track_id"]), int(event["session"])
        self.viewer.dims.set_point(0, session)
        self.viewer.camera.center = (event["y"] * self._scale[0], event["x"] * self._scale[1])
        rows = self.tracks.index[(self.tracks["track_id"] == track_id) & (self.tracks["session"] == session)]
        self.points_layer.selected_data = {int(i) for i in rows}
        why = (
            "the presence was found on the image"
            if event["presence_found"]
            else "no image confirmed the absence"
        )
        counted = f"{len(keys)} event{'s' if len(keys) != 1 else ''} to check"
        self.set_status(
            f"{counted}; this one: {event['kind']} of track {track_id} at session {session} ({why}). "
            "Accept or reject it."
        )
        return event

    # -- edits ----------------------------------------------------------------------------------------------------
    def selected_rows(self) -> list[pd.Series]:
        if self.points_layer is None:
            return []
        return [self.tracks.iloc[i] for i in sorted(self.points_layer.selected_data)]

    def _edit(self, func, *args) -> bool:
        """Apply one review function to the table; show the error and keep the table if it fails."""
        try:
            tracks = func(self.tracks, *args)
        except Exception as exc:  # noqa: BLE001 - an impossible edit is shown, not raised
            self.report_error(exc)
            return False
        self.last_error = None
        self.n_edits += 1
        self.points_layer.selected_data = set()
        self.set_tracks(tracks)
        return True

    def _one_selected(self) -> pd.Series | None:
        rows = self.selected_rows()
        if len(rows) != 1:
            self.report_error("select exactly one point (a track in one session)")
            return None
        return rows[0]

    def mark(self, real: bool) -> None:
        """Confirm (``real``) or reject the gain or loss at the selected point's session."""
        row = self._one_selected()
        if row is not None:
            self._edit(mark_event, int(row["track_id"]), int(row["session"]), real)

    def relink_selected(self) -> None:
        rows = self.selected_rows()
        ids = list(dict.fromkeys(int(r["track_id"]) for r in rows))
        if len(ids) != 2:
            self.report_error("select points of exactly two tracks to relink (the first selected is kept)")
            return
        self._edit(relink, ids[0], ids[1])

    def split_selected(self) -> None:
        row = self._one_selected()
        if row is not None:
            self._edit(split_track, int(row["track_id"]), int(row["session"]))

    def reject_selected(self) -> None:
        row = self._one_selected()
        if row is not None:
            self._edit(reject_track, int(row["track_id"]))

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write ``tracks.csv``, the recomputed ``turnover.csv`` and ``spine_events.csv`` into the output folder."""
        if self.tracks is None:
            self.report_error("nothing to save: track or load sessions first")
            return None
        out_dir = Path(self.output_dir.value)
        out_dir.mkdir(parents=True, exist_ok=True)
        tracks = self.tracks[list(TRACK_COLUMNS) + [c for c in self.tracks.columns if c not in TRACK_COLUMNS]]
        turnover = self.turnover[
            list(TURNOVER_COLUMNS) + [c for c in self.turnover.columns if c not in TURNOVER_COLUMNS]
        ]
        with atomic_path(out_dir / "tracks.csv") as tmp:
            tracks.to_csv(tmp, index=False)
        with atomic_path(out_dir / "turnover.csv") as tmp:
            turnover.to_csv(tmp, index=False)
        with atomic_path(out_dir / "spine_events.csv") as tmp:
            list_events(self.tracks).to_csv(tmp, index=False)
        self.set_status(f"saved tracks.csv, turnover.csv and spine_events.csv to {out_dir}")
        return out_dir
