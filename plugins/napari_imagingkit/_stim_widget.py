"""Stimulation widget: load events or triggers, trial-averaged response of the selected ROI, responder map.

The analysis is the stim library's, shared with ``imagingkit stim responses`` and the pipeline:
:func:`imagingkit.stim.analysis.events_for_session` and
:func:`imagingkit.stim.analysis.analyse_responses` (events inside the recording, sub-frame sample
times, light-artifact masking, trial responses, per-ROI statistics). ROIs and traces come from the
Neurons widget's Labels layer (or a neurons output folder opened with the imagingkit reader).
"""

from __future__ import annotations

from pathlib import Path

import napari.layers
import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit

from imagingkit._atomic import atomic_path
from imagingkit.stim import RESPONSE_COLUMNS, ArtifactParams, StatsParams, WindowParams
from imagingkit.stim import analysis as stim_analysis
from imagingkit.stim import clock as stim_clock
from imagingkit.stim.analysis import EventSource, events_for_session
from imagingkit.stim.artifacts import NEUROPIL_MARGIN_PX
from imagingkit.stim.sources import read_event_table

from ._base import (
    ROIS_KEY,
    TRACES_KEY,
    LayerChoice,
    ParamsForm,
    PlotCanvas,
    StepWidget,
    recording_and_channel,
)

MAP_NAME = "response map"


def parse_window(text: str, name: str) -> tuple[float, float]:
    try:
        start, stop = (float(v) for v in text.replace(";", ",").split(","))
    except ValueError as exc:
        raise ValueError(f"{name} must be two numbers 'start, end' in seconds, got {text!r}") from exc
    return start, stop


def events_from_trigger_file(
    path: Path, stim_channel: str, frame_channel: str, frame_times_s: np.ndarray
) -> pd.DataFrame:
    """Events from a trigger file's stimulation channel, on the imaging clock via its frame clock."""
    source = EventSource("triggers", path, stim_channel=stim_channel, frame_channel=frame_channel or None)
    events, _ = events_for_session(source, frame_times_s)
    return events


def analyse_responses(
    traces_dff, rois: pd.DataFrame, events, frame_times_s, recording, window: WindowParams, stats: StatsParams
):
    """Trials and per-ROI statistics, exactly as ``imagingkit stim responses`` computes them."""
    result = stim_analysis.analyse_responses(
        traces_dff,
        frame_times_s,
        rois,
        events,
        recording=recording,
        window=window,
        stats=stats,
        artifacts=ArtifactParams(margin_px=NEUROPIL_MARGIN_PX),
    )
    return result.trials, result.table


class StimWidget(StepWidget):
    """Align ROI traces to stimulation events, test each ROI, map the responders."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.rois_choice = self.add(LayerChoice(napari_viewer, napari.layers.Labels, "ROIs"))
        self.movie_choice = self.add(LayerChoice(napari_viewer, napari.layers.Image, "movie (timing)"))
        self.events_file = FileEdit(mode="r", filter="*.csv *.tsv", label="events table")
        self.trigger_file = FileEdit(mode="r", filter="*.npz *.npy *.csv *.h5", label="trigger file")
        self.stim_channel = LineEdit(value="stim", label="stim channel")
        self.frame_channel = LineEdit(value="frame_clock", label="frame-clock channel")
        self.baseline = LineEdit(value="-1, 0", label="baseline window (s)")
        self.response = LineEdit(value="0, 1", label="response window (s)")
        self.colour_by = ComboBox(choices=["amplitude", "q_value"], value="amplitude", label="map colour")
        self.output_dir = FileEdit(mode="d", label="output folder")
        self.add(
            Container(
                widgets=[
                    self.events_file,
                    self.trigger_file,
                    self.stim_channel,
                    self.frame_channel,
                    self.baseline,
                    self.response,
                ],
                labels=True,
            )
        )
        self.stats_form = self.add(ParamsForm(StatsParams, hide=("seed", "latency_fraction")))
        self.events_button = self.add_button("Load events table", self.load_events)
        self.triggers_button = self.add_button("Load events from triggers", self.load_triggers)
        self.run_button = self.add_button("Compute trial responses", self.run_responses)
        self.add(Container(widgets=[self.colour_by, self.output_dir], labels=True))
        self.colour_by.changed.connect(self.show_map)
        self.save_button = self.add_button("Save responses.csv and events.csv", self.save, long_running=False)
        self.response_plot = self.add(PlotCanvas(height_in=2.4))
        self.finish_layout()
        self.events: pd.DataFrame | None = None
        self.trials = None
        self.table: pd.DataFrame | None = None
        self._labels_layer = None
        self._connected: set[int] = set()

    # -- inputs -------------------------------------------------------------------------------------------
    def _timing(self):
        """(frame_times_s (T, Z), recording or None) from the movie layer, else from the traces."""
        movie = self.movie_choice.value
        if movie is not None:
            recording, _ = recording_and_channel(movie)
            times = stim_clock.recording_frame_times(
                recording.frame_times_s, recording.n_frames, recording.frame_rate_hz
            )
            return times, recording
        traces = self._roi_inputs()[1]
        return np.asarray(traces.time_s, float)[:, None], None

    def _roi_inputs(self):
        layer = self.rois_choice.value
        if layer is None or ROIS_KEY not in layer.metadata or layer.metadata.get(TRACES_KEY) is None:
            raise ValueError(
                "choose an ROI layer made by the Neurons widget (or a neurons output folder) first"
            )
        return layer.metadata[ROIS_KEY], layer.metadata[TRACES_KEY]

    def load_events(self) -> None:
        try:
            self.events = read_event_table(Path(self.events_file.value))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(exc)
            return
        self.set_status(f"{len(self.events)} events from {Path(self.events_file.value).name}")

    def load_triggers(self) -> None:
        try:
            frame_times, _ = self._timing()
        except Exception as exc:  # noqa: BLE001
            self.report_error(exc)
            return
        path = Path(self.trigger_file.value)
        self.run_in_thread(
            events_from_trigger_file,
            path,
            self.stim_channel.value.strip(),
            self.frame_channel.value.strip(),
            frame_times,
            on_done=self._on_events,
            desc="Reading triggers",
        )

    def _on_events(self, events: pd.DataFrame) -> None:
        self.events = events
        self.set_status(f"{len(events)} events from the triggers")

    # -- responses -----------------------------------------------------------------------------------------------
    def run_responses(self) -> None:
        try:
            if self.events is None:
                raise ValueError("load an events table or triggers first")
            roi_set, traces = self._roi_inputs()
            frame_times, recording = self._timing()
            window = WindowParams(
                baseline_s=parse_window(self.baseline.value, "baseline"),
                response_s=parse_window(self.response.value, "response"),
            )
            stats = self.stats_form.params()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(exc)
            return
        self._labels_layer = self.rois_choice.value
        rois = roi_set.to_dataframe()
        self.run_in_thread(
            analyse_responses,
            traces.dff,
            rois,
            self.events,
            frame_times,
            recording,
            window,
            stats,
            on_done=self._on_responses,
            desc="Trial responses",
        )

    def _on_responses(self, outcome) -> None:
        self.trials, self.table = outcome
        layer = self._labels_layer
        if id(layer) not in self._connected:
            layer.events.selected_label.connect(self._on_selected)
            self._connected.add(id(layer))
        self.show_map()
        self.plot_selected()
        n = int(self.table["responsive"].sum())
        self.set_status(f"{len(self.trials.events)} trials; {n}/{len(self.table)} ROIs responsive")

    def _on_selected(self, *_) -> None:
        self.plot_selected()

    def selected_roi(self) -> int | None:
        if self._labels_layer is None or self.table is None:
            return None
        label = int(self._labels_layer.selected_label)
        return label - 1 if 1 <= label <= len(self.table) else None

    def plot_selected(self) -> None:
        """Trial-averaged dF/F (mean ± s.e.m. over stim trials, sham trials in grey) of the selected ROI."""
        self.response_plot.clear()
        ax = self.response_plot.ax
        roi = self.selected_roi()
        if roi is None:
            ax.set_title("select an ROI", fontsize=8)
            self.response_plot.draw_idle()
            return
        time_s = self.trials.time_s
        conditions = self.trials.events["condition"].to_numpy()
        for condition, colour in (("stim", "C3"), ("sham", "0.5")):
            dff = self.trials.dff[roi, conditions == condition]
            if len(dff) == 0:
                continue
            mean = np.nanmean(dff, axis=0)
            sem = np.nanstd(dff, axis=0) / np.sqrt(max(len(dff), 1))
            ax.plot(time_s, mean, color=colour, label=f"{condition} (n={len(dff)})")
            ax.fill_between(time_s, mean - sem, mean + sem, color=colour, alpha=0.25, lw=0)
        r0, r1 = self.trials.params.response_s
        ax.axvspan(r0, r1, color="C0", alpha=0.08)
        row = self.table.iloc[roi]
        ax.set_title(
            f"ROI {int(row['roi_id'])}: amplitude {row['amplitude']:.2f}, q {row['q_value']:.3g}", fontsize=8
        )
        ax.set_xlabel("time from onset (s)")
        ax.set_ylabel("dF/F")
        ax.legend(fontsize=6)
        self.response_plot.draw_idle()

    def response_map(self) -> np.ndarray:
        """(Y, X) float image: each responsive ROI's pixels hold its amplitude (or -log10 q); NaN elsewhere."""
        labels = np.asarray(self._labels_layer.data)
        responsive = self.table["responsive"].to_numpy(bool)
        if self.colour_by.value == "amplitude":
            values = self.table["amplitude"].to_numpy(float)
        else:
            values = -np.log10(np.clip(self.table["q_value"].to_numpy(float), 1e-12, 1))
        lookup = np.full(len(values) + 1, np.nan, np.float32)
        lookup[1:] = np.where(responsive, values, np.nan)
        return lookup[np.clip(labels, 0, len(values))]

    def show_map(self, *_) -> None:
        if self.table is None:
            return
        image = self.response_map()
        finite = image[np.isfinite(image)]
        if self.colour_by.value == "amplitude":
            peak = float(np.max(np.abs(finite))) if finite.size else 1.0
            limits, colormap = (-peak, peak), "coolwarm"
        else:
            limits, colormap = (0.0, float(finite.max()) if finite.size else 1.0), "magma"
        limits = limits if limits[1] > limits[0] else (limits[0], limits[0] + 1.0)
        if MAP_NAME in self.viewer.layers:
            layer = self.viewer.layers[MAP_NAME]
            layer.data = image
            layer.colormap, layer.contrast_limits = colormap, limits
        else:
            self.viewer.add_image(
                image,
                name=MAP_NAME,
                colormap=colormap,
                contrast_limits=limits,
                scale=tuple(self._labels_layer.scale),
                opacity=0.9,
            )

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        if self.table is None:
            self.report_error("nothing to save: compute responses first")
            return None
        out_dir = Path(self.output_dir.value)
        columns = list(RESPONSE_COLUMNS) + [c for c in self.table.columns if c not in RESPONSE_COLUMNS]
        with atomic_path(out_dir / "responses.csv") as tmp:
            self.table[columns].to_csv(tmp, index=False)
        with atomic_path(out_dir / "events.csv") as tmp:
            self.trials.events.to_csv(tmp, index=False)
        self.set_status(f"saved responses.csv and events.csv to {out_dir}")
        return out_dir
