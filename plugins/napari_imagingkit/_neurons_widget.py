"""Neurons widget: ROI detection, curation in a Labels layer, traces of the selected ROI.

Detection and trace extraction are :func:`imagingkit.neurons.detect_rois` and
:func:`imagingkit.neurons.extract_traces`; curation edits the :class:`RoiSet`
(toggle cell / not cell, delete, add ROIs painted with the labels brush) and
re-extracts the traces in a worker thread.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import napari.layers
import numpy as np
from magicgui.widgets import FileEdit
from napari.utils.colormaps import DirectLabelColormap

from imagingkit.neurons import (
    DetectionParams,
    ExtractionParams,
    RoiSet,
    detect_rois,
    extract_traces,
    write_results,
)

from ._base import (
    ROIS_KEY,
    TRACES_KEY,
    LayerChoice,
    ParamsForm,
    PlotCanvas,
    StepWidget,
    recording_and_channel,
)

NOT_CELL_RGBA = (0.55, 0.55, 0.55, 0.45)


def roi_colormap(roi_set: RoiSet) -> DirectLabelColormap:
    """Cells in distinct colours, ROIs classified 'not cell' in translucent grey."""
    rng = np.random.default_rng(7)
    colors: dict = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    for i, is_cell in enumerate(np.asarray(roi_set.is_cell, bool)):
        if is_cell:
            hue = rng.random(3) * 0.7 + 0.3
            colors[i + 1] = (*hue, 0.8)
        else:
            colors[i + 1] = NOT_CELL_RGBA
    return DirectLabelColormap(color_dict=colors)


def merge_roisets(base: RoiSet, extra: RoiSet) -> RoiSet:
    """ROIs of ``base`` followed by those of ``extra`` (drawn by hand: probability 1, cells)."""
    return RoiSet.from_pixels(
        base.shape_yx,
        [*base.ypix, *extra.ypix],
        [*base.xpix, *extra.xpix],
        [*base.lam, *extra.lam],
        cell_prob=np.concatenate([base.cell_prob, extra.cell_prob]),
        is_cell=np.concatenate([base.is_cell, extra.is_cell]),
        trace_skew=np.concatenate([base.trace_skew, extra.trace_skew]),
        engine=base.engine,
    )


class NeuronsWidget(StepWidget):
    """Detect ROIs on a movie layer, curate them and plot the selected ROI's traces."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.movie_choice = self.add(LayerChoice(napari_viewer, napari.layers.Image, "movie"))
        self.detect_form = self.add(ParamsForm(DetectionParams, hide=("channel",), diameter_px=12.0))
        self.extract_form = ParamsForm(ExtractionParams, hide=("plane", "channel", "chunk_frames"))
        self.add(self.extract_form)
        self.detect_button = self.add_button("Detect ROIs", self.run_detection)
        self.toggle_button = self.add_button(
            "Toggle cell / not cell", self.toggle_selected, long_running=False
        )
        self.delete_button = self.add_button("Delete selected ROI", self.delete_selected, long_running=False)
        self.draw_button = self.add_button(
            "Draw new ROI (labels brush)", self.start_drawing, long_running=False
        )
        self.apply_button = self.add_button("Apply drawn ROIs and update traces", self.apply_drawn)
        self.output_dir = self.add(FileEdit(mode="d", label="output folder"))
        self.save_button = self.add_button("Save rois.csv, roi_labels.tif, traces.npz", self.save)
        self.trace_plot = self.add(PlotCanvas(height_in=2.4))
        self.finish_layout()
        self.roi_set: RoiSet | None = None
        self.traces = None
        self.labels_layer: napari.layers.Labels | None = None
        self._recording = None

    # -- detection ----------------------------------------------------------------------------------------
    def run_detection(self) -> None:
        layer = self.movie_choice.value
        if layer is None:
            self.report_error("choose a movie layer first")
            return
        try:
            self._recording, channel = recording_and_channel(layer)  # the layer is the channel choice
            detect_params = self.detect_form.params(channel=channel)
            extract_params = self.extract_form.params(
                plane=detect_params.plane, channel=detect_params.channel
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(exc)
            return
        self._extract_params = extract_params

        def work():
            roi_set = detect_rois(self._recording, detect_params)
            return roi_set, extract_traces(self._recording, roi_set, extract_params)

        self.run_in_thread(work, on_done=self._on_rois, desc="Detecting ROIs")

    def _on_rois(self, outcome) -> None:
        roi_set, traces = outcome
        self.set_rois(roi_set, traces)
        self.set_status(f"{roi_set.n_rois} ROIs ({int(np.sum(roi_set.is_cell))} cells)")

    def set_rois(self, roi_set: RoiSet, traces) -> None:
        """Show ``roi_set`` as the 'ROIs' Labels layer (created on first use) and keep the traces."""
        self.roi_set, self.traces = roi_set, traces
        labels = roi_set.to_label_image()
        features = roi_set.to_dataframe().rename(columns={"roi_id": "index"})
        movie = self.movie_choice.value
        scale = tuple(movie.scale[-2:]) if movie is not None else (1.0, 1.0)
        if self.labels_layer is None or self.labels_layer not in self.viewer.layers:
            self.labels_layer = self.viewer.add_labels(labels, name="ROIs", scale=scale, opacity=0.6)
            self.labels_layer.events.selected_label.connect(self._on_selected)
            self.labels_layer.mouse_drag_callbacks.append(self._on_click)
        else:
            self.labels_layer.data = labels
        self.labels_layer.features = features
        self.labels_layer.colormap = roi_colormap(roi_set)
        self.labels_layer.metadata[ROIS_KEY] = roi_set
        self.labels_layer.metadata[TRACES_KEY] = traces
        self.plot_selected()

    # -- selection and traces ------------------------------------------------------------------------------
    @property
    def selected_roi(self) -> int | None:
        """0-based index of the selected ROI, or None."""
        if self.labels_layer is None or self.roi_set is None:
            return None
        label = int(self.labels_layer.selected_label)
        return label - 1 if 1 <= label <= self.roi_set.n_rois else None

    def select(self, roi_index: int) -> None:
        self.labels_layer.selected_label = int(roi_index) + 1

    def _on_click(self, layer, event) -> None:
        if layer.mode not in ("pan_zoom", "pick"):
            return
        value = layer.get_value(event.position, world=True)
        if value:
            layer.selected_label = int(value)

    def _on_selected(self, *_) -> None:
        self.plot_selected()

    def plot_selected(self) -> None:
        """Plot dF/F (and deconvolved spikes) of the selected ROI."""
        self.trace_plot.clear()
        roi = self.selected_roi
        ax = self.trace_plot.ax
        if roi is None or self.traces is None:
            ax.set_title("select an ROI", fontsize=8)
            self.trace_plot.draw_idle()
            return
        time_s = np.asarray(self.traces.time_s)
        ax.plot(time_s, self.traces.dff[roi], lw=0.8, color="C0", label="dF/F")
        spikes = getattr(self.traces, "spikes", None)
        if spikes is not None and len(spikes):
            ax.plot(time_s, np.asarray(spikes[roi]) * 0.2, lw=0.6, color="C3", label="spikes (scaled)")
        kind = "cell" if self.roi_set.is_cell[roi] else "not cell"
        ax.set_title(f"ROI {roi + 1} ({kind})", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("dF/F")
        ax.legend(fontsize=6, loc="upper right")
        self.trace_plot.draw_idle()

    # -- curation -----------------------------------------------------------------------------------------------
    def toggle_selected(self) -> None:
        roi = self.selected_roi
        if roi is None:
            self.report_error("select an ROI first (click it)")
            return
        is_cell = np.array(self.roi_set.is_cell, bool)
        is_cell[roi] = not is_cell[roi]
        self.set_rois(dataclasses.replace(self.roi_set, is_cell=is_cell), self.traces)
        self.select(roi)
        self.set_status(f"ROI {roi + 1} is now {'a cell' if is_cell[roi] else 'not a cell'}")

    def delete_selected(self) -> None:
        roi = self.selected_roi
        if roi is None:
            self.report_error("select an ROI first (click it)")
            return
        keep = np.arange(self.roi_set.n_rois) != roi
        self.set_rois(self.roi_set.subset(keep), None)
        self.update_traces()  # neighbours' neuropil annuli change too: re-extract every trace

    def start_drawing(self) -> None:
        """Select a new label value and the paint brush: paint the new ROI, then apply."""
        if self.labels_layer is None:
            self.report_error("detect ROIs first")
            return
        self.labels_layer.selected_label = int(self.labels_layer.data.max()) + 1
        self.labels_layer.mode = "paint"
        self.viewer.layers.selection.active = self.labels_layer

    def apply_drawn(self) -> None:
        """Turn labels painted beyond the known ROIs into new ROIs and re-extract every trace."""
        labels = np.asarray(self.labels_layer.data)
        new = np.where(labels > self.roi_set.n_rois, labels, 0)
        if not new.any():
            self.report_error("no new ROI painted (paint with a label above the existing ones)")
            return
        drawn = RoiSet.from_label_image(new, engine="drawn")
        self.set_rois(merge_roisets(self.roi_set, drawn), None)
        self.update_traces()

    def update_traces(self) -> None:
        """Re-extract the traces of the current ROI set in a worker thread."""
        recording, roi_set = self._recording, self.roi_set
        params = self._extract_params
        self.run_in_thread(
            extract_traces,
            recording,
            roi_set,
            params,
            on_done=lambda tr: self._on_traces(roi_set, tr),
            desc="Extracting traces",
        )

    def _on_traces(self, roi_set: RoiSet, traces) -> None:
        self.set_rois(roi_set, traces)
        self.set_status(f"traces updated for {roi_set.n_rois} ROIs")

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self) -> None:
        if self.roi_set is None:
            self.report_error("nothing to save: detect ROIs first")
            return
        out_dir = Path(self.output_dir.value)
        if self.busy:
            self.report_error("wait for the running computation to finish")
            return
        self.run_in_thread(
            write_results,
            self.roi_set,
            self.traces,
            out_dir,
            on_done=lambda *_: self.set_status(f"saved to {out_dir}"),
            desc="Saving",
        )
