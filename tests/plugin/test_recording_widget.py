"""Recording widget driven like a user: pick the layer, read the summary, run motion correction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import correlation, wait_for  # noqa: E402


def test_recording_widget_summary_and_motion_correction(
    make_napari_viewer, qtbot, functional_tiff, functional_sim, tmp_path
):
    from napari_imagingkit._recording_widget import RecordingWidget

    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(functional_tiff), plugin="imagingkit")
    widget = RecordingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.layer_choice.value is layer
    summary = widget.summary_text.toPlainText()
    assert "frame_rate_hz: 30.0" in summary
    assert "pixel_size_um: [1.5, 1.5]" in summary

    widget.output_dir.value = tmp_path / "register"
    widget.params_form.reference_frames.value = 100
    widget.run_button.click()
    assert widget.busy and not widget.run_button.isEnabled()  # work runs in a thread, the button waits
    wait_for(qtbot, widget)

    shifts = pd.read_csv(tmp_path / "register" / "shifts.csv")
    assert len(shifts) == 600 and {"frame", "plane", "dy", "dx", "corr", "bad"} <= set(shifts.columns)
    truth = functional_sim.truth.shifts_yx
    assert correlation(shifts["dx"], truth[:, 1]) > 0.9  # the shifts are the real ones, not noise
    assert (tmp_path / "register" / "registered.tif").is_file()
    registered = viewer.layers[f"{layer.name} registered"]
    assert registered.data.shape == layer.data.shape
    assert tuple(registered.scale) == pytest.approx(tuple(layer.scale))
    assert widget.shift_plot.lines_drawn() >= 3  # dy, dx and the correlation
    # the registered movie moves less than the raw one
    raw = np.asarray(layer.data[:, 0], float)
    reg = np.asarray(registered.data[:, 0], float)
    assert reg.mean(0).std() > raw.mean(0).std()  # a sharper mean image after registration


def test_recording_widget_reports_errors_instead_of_raising(make_napari_viewer, qtbot, tmp_path):
    from napari_imagingkit._recording_widget import RecordingWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((1, 32, 32), np.uint16), name="one frame")
    widget = RecordingWidget(viewer)
    widget.run_button.click()  # no output folder chosen yet
    assert "output folder" in widget.last_error and not widget.busy

    widget.output_dir.value = tmp_path / "register"
    widget.run_button.click()  # the library refuses a one-frame movie inside the worker thread
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.last_error and "frame" in widget.last_error
    assert widget.status.text().startswith("Error:")
    assert widget.run_button.isEnabled()
    assert [layer.name for layer in viewer.layers] == ["one frame"]
