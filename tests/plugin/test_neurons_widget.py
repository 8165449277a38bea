"""Neurons widget driven like a user: detect, select, toggle, delete, paint a new ROI, save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import wait_for  # noqa: E402


def test_neurons_widget_detect_curate_and_save(make_napari_viewer, qtbot, stim_files, tmp_path):
    from napari_imagingkit._neurons_widget import NOT_CELL_RGBA, NeuronsWidget

    from imagingkit.neurons import read_traces

    viewer = make_napari_viewer()
    (movie,) = viewer.open(str(stim_files["movie"]), plugin="imagingkit")
    widget = NeuronsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.detect_form.diameter_px.value = 8.0
    widget.detect_button.click()
    wait_for(qtbot, widget)

    labels = viewer.layers["ROIs"]
    roi_set, traces = widget.roi_set, widget.traces
    n = roi_set.n_rois
    assert n >= 3
    np.testing.assert_array_equal(labels.data, roi_set.to_label_image())
    assert tuple(labels.scale) == pytest.approx((1.5, 1.5))  # on the movie's micrometre grid
    assert traces.dff.shape == (n, 1200)
    assert list(labels.features["index"]) == list(range(1, n + 1))

    # select ROI 2 as the pick tool would: the plot shows its dF/F
    labels.selected_label = 2
    line = widget.trace_plot.ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), traces.dff[1], equal_nan=True)

    # toggle it: classification flips and its colour turns grey
    was_cell = bool(roi_set.is_cell[1])
    widget.toggle_button.click()
    assert bool(widget.roi_set.is_cell[1]) is not was_cell
    grey = np.allclose(labels.colormap.map(2), NOT_CELL_RGBA, atol=0.01)
    assert grey is was_cell

    # delete it: one ROI less, traces re-extracted for the rest
    widget.delete_button.click()
    wait_for(qtbot, widget)
    assert widget.roi_set.n_rois == n - 1
    assert widget.traces.dff.shape == (n - 1, 1200)
    assert labels.data.max() == n - 1

    # paint a new ROI with the labels brush, then apply
    widget.draw_button.click()
    assert labels.mode == "paint" and labels.selected_label == n
    labels.brush_size = 7
    labels.paint((10, 80), labels.selected_label)  # what a brush stroke does (data coordinates)
    widget.apply_button.click()
    wait_for(qtbot, widget)
    assert widget.roi_set.n_rois == n
    assert widget.traces.dff.shape == (n, 1200)
    assert widget.roi_set.is_cell[-1]
    assert np.all(np.abs(widget.roi_set.centroids_yx[-1] - (10, 80)) < 1.0)
    assert np.isfinite(widget.traces.F[-1]).all() and widget.traces.F[-1].mean() > 0

    # save the curated set
    widget.output_dir.value = tmp_path / "neurons"
    widget.save_button.click()
    wait_for(qtbot, widget)
    rois = pd.read_csv(tmp_path / "neurons" / "rois.csv")
    assert len(rois) == n
    assert read_traces(tmp_path / "neurons" / "traces.npz")["dff"].shape == (n, 1200)
    import tifffile

    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "neurons" / "roi_labels.tif"), widget.roi_set.to_label_image()
    )
