"""Recording widget: metadata summary, motion correction (imagingkit.motion) and a plot of the shifts."""

from __future__ import annotations

from pathlib import Path

import napari.layers
import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit
from qtpy.QtWidgets import QPlainTextEdit

from imagingkit.motion import NonRigidParams, RigidParams, register_movie

from ._base import (
    LayerChoice,
    ParamsForm,
    PlotCanvas,
    StepWidget,
    add_layer_tuple,
    recording_and_channel,
)
from ._reader import recording_layers

SUMMARY_FIELDS = (
    "format",
    "shape",
    "dtype",
    "frame_rate_hz",
    "volume_rate_hz",
    "pixel_size_um",
    "z_step_um",
    "line_period_s",
    "bidirectional",
    "timestamps_from_file",
    "trigger_channels",
    "n_files",
)


def format_summary(summary: dict) -> str:
    """The recording summary as aligned ``key: value`` lines."""
    return "\n".join(f"{key:>20}: {summary.get(key)}" for key in SUMMARY_FIELDS)


class RecordingWidget(StepWidget):
    """Inspect a recording's metadata and register it (rigid or piecewise-rigid).

    The registered movie opens as a new lazy layer; ``shifts.csv`` and
    ``registered.tif`` are written to the output folder.
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.layer_choice = self.add(LayerChoice(napari_viewer, napari.layers.Image, "recording"))
        self.layer_choice.combo.changed.connect(self._on_layer_changed)
        self.summary_text = QPlainTextEdit()
        self.summary_text.setReadOnly(True)
        self.summary_text.setMinimumHeight(150)
        self.add(self.summary_text)
        self.nonrigid = CheckBox(value=False, label="piecewise-rigid (non-rigid)")
        self.channel = None
        self.output_dir = FileEdit(mode="d", label="output folder")
        self.add(Container(widgets=[self.nonrigid, self.output_dir], labels=True))
        self.params_form = self.add(ParamsForm(NonRigidParams, hide=("n_workers",)))
        self.run_button = self.add_button("Run motion correction", self.run_motion_correction)
        self.shift_plot = self.add(PlotCanvas(height_in=2.6, n_rows=2))
        self.finish_layout()
        self.result = None
        self._on_layer_changed()

    # -- metadata ---------------------------------------------------------------------------------------
    def _on_layer_changed(self, *_) -> None:
        layer = self.layer_choice.value
        if layer is None:
            self.summary_text.setPlainText("No image layer.")
            return
        try:
            summary = recording_and_channel(layer)[0].summary()
        except (ValueError, TypeError) as exc:
            self.summary_text.setPlainText(str(exc))
            return
        self.summary_text.setPlainText(format_summary(summary))
        files = summary.get("files") or []
        if files and str(self.output_dir.value) in ("", "."):
            self.output_dir.value = Path(files[0]).parent / f"{Path(files[0]).stem}_imagingkit" / "register"

    # -- motion correction ---------------------------------------------------------------------------------
    def _params(self):
        form = self.params_form
        values = {name: getattr(form, name).value for name in form._shown}
        if not self.nonrigid.value:
            rigid_fields = RigidParams.__dataclass_fields__
            return RigidParams(**{k: v for k, v in values.items() if k in rigid_fields})
        return NonRigidParams(**values)

    def run_motion_correction(self) -> None:
        layer = self.layer_choice.value
        if layer is None:
            self.report_error("choose a recording layer first")
            return
        out_dir = Path(self.output_dir.value)
        if str(self.output_dir.value) in ("", "."):
            self.report_error("choose an output folder")
            return
        try:
            recording, channel = recording_and_channel(layer)
            params = self._params()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(exc)
            return
        self.run_in_thread(
            _register, recording, out_dir, params, channel, on_done=self._on_registered, desc="Registering"
        )

    def _on_registered(self, outcome) -> None:
        result, registered_path, shifts_path = outcome
        self.result = result
        layer = self.layer_choice.value
        name = f"{layer.name} registered" if layer is not None else "registered"
        from imagingkit.io import open_recording

        registered = open_recording(registered_path)
        if layer is not None:  # same geometry as the input
            source, _ = recording_and_channel(layer)
            registered = registered.with_overrides(  # the timing of the movie it came from
                pixel_size_um=source.pixel_size_um,
                z_step_um=source.z_step_um,
                frame_rate_hz=source.frame_rate_hz,
                volume_rate_hz=source.volume_rate_hz,
                line_period_s=source.line_period_s,
                bidirectional=source.bidirectional,
            )
            if source.frame_times_s is not None:
                registered = registered.with_overrides(frame_times_s=source.frame_times_s)
        for layer_tuple in recording_layers(registered, name):
            add_layer_tuple(self.viewer, layer_tuple)
        self.plot_shifts(result.shifts)
        n_bad = int(result.shifts["bad"].sum()) if "bad" in result.shifts else 0
        self.set_status(
            f"Registered {len(result.shifts)} frames ({n_bad} flagged bad) -> {registered_path}; shifts in {shifts_path.name}"
        )

    def plot_shifts(self, shifts: pd.DataFrame) -> None:
        """Plot dy, dx (px) against frame, one line per plane, and the correlation to the reference."""
        self.shift_plot.clear()
        ax_shift, ax_corr = self.shift_plot.axes
        for plane, rows in shifts.groupby("plane"):
            ax_shift.plot(rows["frame"], rows["dy"], label=f"dy z{plane}")
            ax_shift.plot(rows["frame"], rows["dx"], label=f"dx z{plane}")
            if "corr" in rows:
                ax_corr.plot(rows["frame"], rows["corr"], color="k", lw=0.8)
            if "bad" in rows and rows["bad"].any():
                bad = rows[rows["bad"].astype(bool)]
                ax_shift.plot(bad["frame"], bad["dy"], "rx", ms=4, label="bad")
        ax_shift.set_ylabel("shift (px)")
        ax_shift.legend(fontsize=6, loc="upper right")
        ax_corr.set_ylabel("corr")
        ax_corr.set_xlabel("frame")
        self.shift_plot.draw_idle()


def _register(recording, out_dir: Path, params, channel: int):
    """Worker body: register the movie (all channels, shifts from ``channel``) into ``out_dir``."""
    result = register_movie(recording, out_dir, params=params, channel=channel)
    return result, Path(out_dir) / "registered.tif", Path(out_dir) / "shifts.csv"
