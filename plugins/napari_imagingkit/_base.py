"""Shared pieces of the imagingkit widgets: worker runner, plot canvas, parameter forms, layer bridges.

Nothing here analyses data: it moves layers to imagingkit objects and back, runs
library calls in a worker thread and draws their results.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, create_widget
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from imagingkit.io.recording import Recording, make_recording

RECORDING_KEY = "imagingkit_recording"
ROIS_KEY = "imagingkit_rois"
TRACES_KEY = "imagingkit_traces"


# -- plotting --------------------------------------------------------------------------------------------
class PlotCanvas(FigureCanvasQTAgg):
    """A small matplotlib figure embedded in a widget (matplotlib's Qt backend, via qtpy)."""

    def __init__(self, height_in: float = 2.4, n_rows: int = 1):
        self.figure = Figure(figsize=(4.0, height_in), tight_layout=True)
        super().__init__(self.figure)
        self.axes = [self.figure.add_subplot(n_rows, 1, i + 1) for i in range(n_rows)]
        self.setMinimumHeight(int(height_in * 70))

    @property
    def ax(self):
        return self.axes[0]

    def clear(self) -> None:
        for ax in self.axes:
            ax.clear()

    def lines_drawn(self) -> int:
        """Number of data lines on all axes (used by tests to check something was plotted)."""
        return sum(len(ax.get_lines()) for ax in self.axes)


# -- parameter forms from frozen dataclasses ---------------------------------------------------------------
class ParamsForm(Container):
    """A magicgui form with one field per field of a parameter dataclass.

    Fields whose type magicgui cannot show (tuples, arrays, nested objects) keep
    their default value and are not shown.
    """

    def __init__(self, params_cls: type, *, hide: tuple[str, ...] = (), **defaults: Any):
        super().__init__(labels=True)
        self.params_cls = params_cls
        hints = typing.get_type_hints(params_cls)
        self._shown: list[str] = []
        for field in dataclasses.fields(params_cls):
            if field.name in hide or field.name.startswith("_"):
                continue
            default = defaults.get(field.name, _field_default(field))
            annotation = _widget_annotation(hints.get(field.name), default)
            if annotation is None:
                continue
            try:
                widget = create_widget(value=default, annotation=annotation, name=field.name)
            except (ValueError, TypeError):
                continue
            self.append(widget)
            self._shown.append(field.name)

    def params(self, **fixed: Any):
        """Build the parameter dataclass from the form (plus ``fixed`` values)."""
        values = {name: getattr(self, name).value for name in self._shown}
        values.update(fixed)
        return self.params_cls(**values)


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _widget_annotation(hint: Any, default: Any) -> Any:
    """The annotation magicgui should use, or None when the field is not editable in a form."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        if default is None:
            return None
        hint = args[0]
        if typing.get_origin(hint) is typing.Literal:
            return hint
    if hint in (bool, int, float, str, Path):
        return hint
    if isinstance(default, (bool, int, float, str)):
        return type(default)
    return None


# -- the base widget ---------------------------------------------------------------------------------------
class StepWidget(QWidget):
    """A dock widget that runs imagingkit calls in a worker thread and reports status.

    Subclasses add their controls with :meth:`add_button` and start work with
    :meth:`run_in_thread`; ``busy`` is True while a worker runs, ``last_error``
    keeps the message of the last failure.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.setLayout(QVBoxLayout())
        self.setMaximumWidth(520)  # long file paths must not squeeze the canvas
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._worker = None
        self._buttons: list[QPushButton] = []
        self.last_error: str | None = None

    # layout helpers
    def add(self, widget) -> Any:
        """Add a Qt or magicgui widget to the layout and return it."""
        self.layout().addWidget(getattr(widget, "native", widget))
        return widget

    def add_button(self, text: str, slot: Callable[[], Any], *, long_running: bool = True) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(lambda *_: slot())
        if long_running:
            self._buttons.append(button)
        self.layout().addWidget(button)
        return button

    def finish_layout(self) -> None:
        self.layout().addWidget(self.status)
        self.layout().addStretch(1)

    # worker
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def run_in_thread(
        self, func: Callable, *args: Any, on_done: Callable[[Any], Any], desc: str, **kwargs: Any
    ):
        """Run ``func(*args, **kwargs)`` in a napari worker thread with a progress bar.

        ``func`` may be a generator yielding progress steps; its return value goes to ``on_done``
        in the GUI thread. Buttons are disabled while it runs.
        """
        if self.busy:
            show_info("imagingkit: a computation is already running")
            return None
        self.last_error = None
        self.set_status(f"{desc}…")
        worker = create_worker(
            func,
            *args,
            _progress={"total": 0, "desc": desc},
            _connect={"returned": on_done, "errored": self._on_error, "finished": self._on_finished},
            _start_thread=False,
            **kwargs,
        )
        self._worker = worker
        for button in self._buttons:
            button.setEnabled(False)
        worker.start()
        return worker

    def _on_error(self, exc: BaseException) -> None:
        self.report_error(exc)

    def _on_finished(self) -> None:
        self._worker = None
        for button in self._buttons:
            button.setEnabled(True)

    def report_error(self, exc: BaseException | str) -> None:
        message = str(exc)
        self.last_error = message
        self.set_status(f"Error: {message}")
        show_error(f"imagingkit: {message}")

    def set_status(self, text: str) -> None:
        self.status.setText(text)


# -- layers <-> imagingkit -----------------------------------------------------------------------------------
class LayerSource:
    """A :class:`~imagingkit.io.recording.FrameSource` over an image layer's (T, [Z,] Y, X) data, read lazily."""

    def __init__(self, data, has_plane_axis: bool):
        self.data = data
        self.has_plane_axis = has_plane_axis
        shape = tuple(int(s) for s in data.shape)
        t, z = (shape[0], shape[1]) if has_plane_axis else (shape[0], 1)
        self.shape = (t, z, 1, shape[-2], shape[-1])
        self.dtype = np.dtype(data.dtype)

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        block = np.asarray(self.data[t_start:t_stop])
        if not self.has_plane_axis:
            block = block[:, None]
        return block[:, :, None]


def recording_and_channel(layer) -> tuple[Recording, int]:
    """The whole Recording behind a layer and the channel the layer shows (0 for plain layers)."""
    rec = layer.metadata.get(RECORDING_KEY)
    if rec is not None:
        return rec, int(layer.metadata.get("imagingkit_channel") or 0)
    return recording_from_layer(layer), 0


def recording_from_layer(layer) -> Recording:
    """A lazy Recording over a plain image layer's (T, Y, X) or (T, Z, Y, X) data.

    The pixel size (and z step) come from the layer scale, in micrometres.
    """
    data = layer.data
    if data.ndim not in (3, 4):
        raise ValueError(
            f"layer {layer.name!r} has {data.ndim} dimensions; a movie needs (T, Y, X) or (T, Z, Y, X)"
        )
    scale = tuple(float(s) for s in layer.scale)
    return make_recording(
        LayerSource(data, has_plane_axis=data.ndim == 4),
        "napari-layer",
        pixel_size_um=(scale[-2], scale[-1]),
        z_step_um=scale[1] if data.ndim == 4 else None,
    )


def current_image(layer, viewer) -> np.ndarray:
    """The 2-D (or 3-D for a z-stack) image of ``layer`` at the viewer's current slider position."""
    data = layer.data
    spatial = min(3 if viewer.dims.ndisplay == 3 else 2, data.ndim)
    if data.ndim == spatial:
        return np.asarray(data)
    world = viewer.dims.point
    index = layer.world_to_data(world)
    lead = data.ndim - spatial
    key = tuple(int(np.clip(round(index[i]), 0, data.shape[i] - 1)) for i in range(lead))
    return np.asarray(data[key])


def layer_pixel_size_um(layer) -> tuple[float, float]:
    return float(layer.scale[-2]), float(layer.scale[-1])


class LayerChoice:
    """A combo box of the viewer's layers of one type, kept in sync with the layer list."""

    def __init__(self, viewer, layer_type: type, label: str):
        from magicgui.widgets import ComboBox

        self.viewer = viewer
        self.layer_type = layer_type
        self.combo = ComboBox(label=label, choices=self._choices, nullable=True)
        self.container = Container(widgets=[self.combo], labels=True)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        self.refresh()

    def _choices(self, *_):
        return [layer for layer in self.viewer.layers if isinstance(layer, self.layer_type)]

    def refresh(self, *_) -> None:
        current = self.combo.value
        self.combo.reset_choices()
        choices = self._choices()
        if current in choices:
            self.combo.value = current
        elif choices:
            self.combo.value = choices[-1]

    @property
    def value(self):
        return self.combo.value

    @value.setter
    def value(self, layer) -> None:
        self.refresh()
        self.combo.value = layer

    @property
    def native(self):
        return self.container.native


def add_layer_tuple(viewer, layer_tuple: tuple):
    """Add a reader-style ``(data, kwargs, layer_type)`` tuple to the viewer and return the layer."""
    data, kwargs, kind = layer_tuple
    return getattr(viewer, f"add_{kind}")(data, **kwargs)
