"""Stimulation widget driven like a user: open ROIs+traces, load events or triggers, compute, map, save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import wait_for  # noqa: E402


@pytest.fixture(scope="module")
def truth_neurons_folder(stim_sim, stim_files, tmp_path_factory):
    """A run folder whose neurons/ holds the simulator's true ROIs and their extracted traces."""
    from imagingkit import open_recording
    from imagingkit.neurons import RoiSet, extract_traces, write_results

    run = tmp_path_factory.mktemp("run") / "m01" / "day0"
    roi_set = RoiSet.from_label_image(stim_sim.truth.labels)
    traces = extract_traces(open_recording(stim_files["movie"]), roi_set)
    write_results(roi_set, traces, run / "neurons")
    return run


def test_stim_widget_events_responses_map_and_save(
    make_napari_viewer, qtbot, stim_sim, stim_files, truth_neurons_folder, tmp_path
):
    from napari_imagingkit._stim_widget import MAP_NAME, StimWidget

    viewer = make_napari_viewer()
    (movie,) = viewer.open(str(stim_files["movie"]), plugin="imagingkit")
    (rois,) = viewer.open(str(truth_neurons_folder), plugin="imagingkit")  # run-folder reader
    assert rois.name == "day0 ROIs" or rois.name.endswith("ROIs")
    widget = StimWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.rois_choice.value = rois
    widget.movie_choice.value = movie

    widget.events_file.value = stim_files["events"]
    widget.events_button.click()
    assert len(widget.events) == len(stim_sim.truth.events)
    widget.run_button.click()
    wait_for(qtbot, widget)

    table = widget.table
    truth = stim_sim.truth.responsive
    assert len(table) == len(truth)
    # every simulated responder is found, with the right sign; at most one false positive
    for kind in (1, -1):
        hit = table["responsive"].to_numpy() & (table["direction"].to_numpy() == kind)
        assert hit[truth == kind].mean() >= 0.75
    assert (table["responsive"].to_numpy() & (truth == 0)).sum() <= 1

    # the map: responsive ROIs carry their amplitude, the others are empty
    response_map = viewer.layers[MAP_NAME].data
    labels = rois.data
    for i, row in table.iterrows():
        values = response_map[labels == i + 1]
        if row["responsive"]:
            assert np.allclose(values, row["amplitude"])
        else:
            assert np.isnan(values).all()
    widget.colour_by.value = "q_value"
    best = int(table["q_value"].idxmin())
    assert np.nanmax(viewer.layers[MAP_NAME].data) == pytest.approx(
        -np.log10(table["q_value"][best]), rel=1e-5
    )

    # selecting an excited ROI plots its trial average, positive in the response window
    excited = int(np.flatnonzero(truth == 1)[0])
    rois.selected_label = excited + 1
    stim_line = widget.response_plot.ax.get_lines()[0]
    t, y = stim_line.get_xdata(), stim_line.get_ydata()
    assert np.nanmean(y[(t > 0) & (t < 1)]) > np.nanmean(y[t < 0]) + 0.05

    widget.output_dir.value = tmp_path / "stim"
    widget.save_button.click()
    saved = pd.read_csv(tmp_path / "stim" / "responses.csv")
    assert list(saved.columns[:7]) == [
        "roi_id",
        "amplitude",
        "latency_s",
        "p_value",
        "q_value",
        "responsive",
        "direction",
    ]
    assert (saved["responsive"].to_numpy() == table["responsive"].to_numpy()).all()
    assert len(pd.read_csv(tmp_path / "stim" / "events.csv")) == len(widget.trials.events)


def test_stim_widget_events_from_triggers(
    make_napari_viewer, qtbot, stim_sim, stim_files, truth_neurons_folder
):
    from napari_imagingkit._stim_widget import StimWidget

    viewer = make_napari_viewer()
    (movie,) = viewer.open(str(stim_files["movie"]), plugin="imagingkit")
    viewer.open(str(truth_neurons_folder), plugin="imagingkit")
    widget = StimWidget(viewer)
    widget.movie_choice.value = movie
    widget.trigger_file.value = stim_files["triggers"]
    widget.triggers_button.click()
    wait_for(qtbot, widget)
    truth = stim_sim.truth.events
    stim_onsets = truth.loc[truth["condition"] == "stim", "onset_s"].to_numpy()
    found = widget.events["onset_s"].to_numpy()
    assert len(found) == len(stim_onsets)  # sham trials have no light: no pulses
    assert np.abs(found - stim_onsets).max() < 1e-3  # on the imaging clock to the millisecond
