"""Spines widget: detect spines on the current image, edit the points, re-measure, save spines.csv.

Detection is :func:`imagingkit.spines.detect_spines`; after points are added,
deleted or moved in the Points layer, :func:`imagingkit.spines.measure_spines`
re-measures the edited table (in a worker thread) and the layer's ``features``
show the new measurements.
"""

from __future__ import annotations

from pathlib import Path

import napari.layers
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox
from qtpy.QtCore import QTimer

from imagingkit.spines import SpineResult, detect_spines, measure_spines, write_tables

from ._base import LayerChoice, StepWidget, current_image

SPINES_KEY = "imagingkit_spines"
COORD_COLUMNS_2D = ("y", "x")
COORD_COLUMNS_3D = ("z", "y", "x")


class SpinesWidget(StepWidget):
    """Detect, edit, measure and save dendritic spines on a structural image."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.image_choice = self.add(LayerChoice(napari_viewer, napari.layers.Image, "image"))
        self.sensitivity = FloatSpinBox(value=1.0, min=0.1, max=10.0, step=0.1, label="sensitivity")
        self.use_stack = CheckBox(value=False, label="3-D: use the whole z-stack")
        self.auto_measure = CheckBox(value=True, label="re-measure after every edit")
        self.output_path = FileEdit(mode="w", filter="*.csv", label="spines.csv")
        self.add(
            Container(
                widgets=[self.sensitivity, self.use_stack, self.auto_measure, self.output_path], labels=True
            )
        )
        self.detect_button = self.add_button("Detect spines on current image", self.run_detection)
        self.measure_button = self.add_button("Re-measure edited spines", self.run_measure)
        self.save_button = self.add_button("Save spines.csv", self.save, long_running=False)
        self.finish_layout()
        self.points_layer: napari.layers.Points | None = None
        self.image: np.ndarray | None = None
        self.spacing_um: tuple[float, ...] = ()
        self.result: SpineResult | None = None
        self._edit_timer = QTimer()
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(400)
        self._edit_timer.timeout.connect(self._on_edit_timeout)
        self.n_measurements = 0
        self._dirty = False  # points edited since the last measurement

    # -- detection ---------------------------------------------------------------------------------------
    def _image_and_spacing(self):
        layer = self.image_choice.value
        if layer is None:
            raise ValueError("choose an image layer first")
        scale = tuple(float(s) for s in layer.scale)
        if self.use_stack.value and layer.data.ndim >= 3:
            data = layer.data
            if data.ndim > 3:  # a (.., Z, Y, X) stack at the current time/session
                index = layer.world_to_data(self.viewer.dims.point)
                key = tuple(int(np.clip(round(index[i]), 0, data.shape[i] - 1)) for i in range(data.ndim - 3))
                data = data[key]
            return np.asarray(data), scale[-3:]
        return current_image(layer, self.viewer), scale[-2:]

    def run_detection(self) -> None:
        try:
            image, spacing = self._image_and_spacing()
        except ValueError as exc:
            self.report_error(exc)
            return
        self.image, self.spacing_um = image, spacing
        z_step = spacing[0] if image.ndim == 3 else None
        self.run_in_thread(
            detect_spines,
            image,
            pixel_size_um=spacing[-2:],
            z_step_um=z_step,
            sensitivity=float(self.sensitivity.value),
            on_done=self._on_detected,
            desc="Detecting spines",
        )

    def _on_detected(self, result: SpineResult) -> None:
        self.result = result
        self.show_spines(result.spines)
        self.set_status(
            result.message or f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s)"
        )

    # -- the points layer ---------------------------------------------------------------------------------
    @property
    def coord_columns(self) -> tuple[str, ...]:
        return COORD_COLUMNS_3D if self.image is not None and self.image.ndim == 3 else COORD_COLUMNS_2D

    def show_spines(self, spines: pd.DataFrame) -> None:
        """Show a spine table as the 'spines' Points layer, measurements as features."""
        coords = (
            spines[list(self.coord_columns)].to_numpy(float)
            if len(spines)
            else np.zeros((0, len(self.coord_columns)))
        )
        features = spines.reset_index(drop=True)
        layer_name = "spines"
        if self.points_layer is None or self.points_layer not in self.viewer.layers:
            defaults = {c: np.nan for c in features.columns}  # new points: no id yet, measured later
            self.points_layer = self.viewer.add_points(
                coords,
                name=layer_name,
                features=features,
                feature_defaults=defaults,
                scale=self.spacing_um,
                size=6.0 * float(self.spacing_um[-1]),  # 6 px across
                face_color="transparent",
                border_color="yellow",
                border_width=0.2,
                symbol="ring",
                out_of_slice_display=self.image is not None and self.image.ndim == 3,
            )
            self.points_layer.events.data.connect(self._on_points_edited)
        else:
            with self.points_layer.events.data.blocker():
                self.points_layer.data = coords
            self.points_layer.features = features
        self.points_layer.metadata[SPINES_KEY] = spines

    def spine_table(self) -> pd.DataFrame:
        """The current points as an edited spine table: positions from the layer (moved points move),
        added points without ``spine_id`` (measure_spines numbers them)."""
        layer = self.points_layer
        table = layer.features.copy().reset_index(drop=True)
        coords = np.asarray(layer.data, dtype=float)
        for i, column in enumerate(self.coord_columns):
            table[column] = coords[:, i]
        return table

    def _on_points_edited(self, event=None) -> None:
        action = getattr(event, "action", None)
        if action is not None and str(action).endswith("ING"):  # adding/removing/changing: wait for the end
            return
        self._dirty = True
        if self.auto_measure.value:
            self._edit_timer.start()

    def _on_edit_timeout(self) -> None:
        if self.busy:
            self._edit_timer.start()
            return
        self.run_measure()

    # -- measuring ---------------------------------------------------------------------------------------------
    def run_measure(self) -> None:
        if self.points_layer is None or self.image is None:
            self.report_error("detect spines first")
            return
        table = self.spine_table()
        self._dirty = False
        z_step = self.spacing_um[0] if self.image.ndim == 3 else None
        self.run_in_thread(
            measure_spines,
            self.image,
            table,
            pixel_size_um=self.spacing_um[-2:],
            z_step_um=z_step,
            dendrites=self.result,
            on_done=self._on_measured,
            desc="Measuring spines",
        )

    def _on_measured(self, result: SpineResult) -> None:
        if self._dirty:  # edited while measuring: keep the user's points, measure again
            self._edit_timer.start()
            return
        self.result = result
        self.show_spines(result.spines)
        self.n_measurements += 1
        self.set_status(f"measured {len(result.spines)} spines")

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write the measured table to ``spines.csv`` and ``dendrites.csv`` beside it.

        Edits not yet re-measured are measured first (the file never holds stale measurements).
        """
        if self.points_layer is None or self.result is None:
            self.report_error("nothing to save: detect spines first")
            return None
        if self.busy or self._edit_timer.isActive() or self._dirty:
            self.report_error("points were edited: re-measure (or wait for the update) before saving")
            return None
        path = Path(self.output_path.value)
        if path.suffix.lower() != ".csv":
            path = path / "spines.csv"
        spines_path, dendrites_path = write_tables(self.result, path)
        self.set_status(f"saved {len(self.result.spines)} spines to {spines_path} and {dendrites_path.name}")
        return spines_path
