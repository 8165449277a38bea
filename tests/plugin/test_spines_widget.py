"""Spines widget driven like a user: detect, add / delete / move points, measurements follow, save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import wait_for  # noqa: E402


def wait_measured(qtbot, widget, count: int) -> None:
    qtbot.waitUntil(
        lambda: widget.n_measurements >= count and not widget.busy and not widget._dirty, timeout=30_000
    )
    assert widget.last_error is None, widget.last_error


def test_spines_widget_detect_edit_measure_save(make_napari_viewer, qtbot, dendrite_sim, tmp_path):
    from napari_imagingkit._spines_widget import SpinesWidget

    viewer = make_napari_viewer()
    viewer.add_image(dendrite_sim.images[0], name="session 0", scale=(0.2, 0.2))
    widget = SpinesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.detect_button.click()
    wait_for(qtbot, widget)

    points = viewer.layers["spines"]
    detected = widget.result.spines
    n = len(detected)
    assert n >= 3
    np.testing.assert_allclose(points.data, detected[["y", "x"]].to_numpy())
    assert tuple(points.scale) == pytest.approx((0.2, 0.2))
    np.testing.assert_allclose(points.features["arc_um"], detected["arc_um"])
    # detections lie on the simulated spines: most truth spines of session 0 have one within 1 µm
    truth = dendrite_sim.truth.query("session == 0 and present")
    dist = np.hypot(
        truth["y"].to_numpy()[:, None] - detected["y"].to_numpy(),
        truth["x"].to_numpy()[:, None] - detected["x"].to_numpy(),
    )
    assert (dist.min(axis=1) * 0.2 < 1.0).mean() >= 0.3

    # add a point by hand on the (inside) truth spine farthest from any detection
    inside = ((truth[["y", "x"]] >= 5) & (truth[["y", "x"]] <= 122)).all(axis=1).to_numpy()
    target = truth[["y", "x"]].to_numpy()[inside][np.argmax(dist.min(axis=1)[inside])]
    points.add(target)
    wait_measured(qtbot, widget, 1)
    assert len(points.data) == n + 1
    added = points.features.iloc[-1]
    assert added["spine_id"] == detected["spine_id"].max() + 1  # numbered by measure_spines
    assert np.isfinite(added["arc_um"]) and np.isfinite(added["intensity_ratio"])

    # delete the first point
    first_id = points.features["spine_id"].iloc[0]
    points.selected_data = {0}
    points.remove_selected()
    wait_measured(qtbot, widget, 2)
    assert len(points.data) == n and first_id not in set(points.features["spine_id"])

    # move a point 2 px along x: its table position follows
    moved = np.asarray(points.data).copy()
    moved[0, 1] += 2.0
    moved_id = points.features["spine_id"].iloc[0]
    points.data = moved
    wait_measured(qtbot, widget, 3)
    row = points.features.set_index("spine_id").loc[moved_id]
    assert row["x"] == pytest.approx(moved[0, 1]) and row["x_um"] == pytest.approx(moved[0, 1] * 0.2)

    widget.output_path.value = tmp_path / "spines.csv"
    widget.save_button.click()
    saved = pd.read_csv(tmp_path / "spines.csv")
    assert len(saved) == n
    assert set(saved["spine_id"]) == set(points.features["spine_id"])
    np.testing.assert_allclose(saved.set_index("spine_id").loc[moved_id, "x"], moved[0, 1], atol=1e-3)
    assert (tmp_path / "dendrites.csv").is_file()
