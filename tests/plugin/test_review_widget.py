"""Multi-session spine review driven like a user: track, inspect fates, correct, save, reload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import correlation, wait_for  # noqa: E402


def _rows(tracks: pd.DataFrame, track_id: int) -> pd.DataFrame:
    return tracks[tracks["track_id"] == track_id].sort_values("session")


def _select(widget, track_id: int, session: int) -> None:
    index = widget.tracks.index[
        (widget.tracks["track_id"] == track_id) & (widget.tracks["session"] == session)
    ]
    widget.points_layer.selected_data = set(int(i) for i in index)


def test_review_widget_track_edit_save_and_reload(make_napari_viewer, qtbot, dendrite_sim, tmp_path):
    from matplotlib.colors import to_rgba
    from napari_imagingkit._review_widget import FATE_COLOURS, ReviewWidget

    from imagingkit.tracking import compute_turnover
    from imagingkit.tracking.files import read_tracks_csv

    viewer = make_napari_viewer()
    names = []
    for s, image in enumerate(dendrite_sim.images):
        names.append(viewer.add_image(image, name=f"session {s}", scale=(0.2, 0.2)).name)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_sessions(names)
    widget.times_h.value = "0, 1, 6"
    widget.track_button.click()
    wait_for(qtbot, widget, timeout_ms=90_000)

    # sessions in the reference frame along a slider axis: better aligned than the raw images
    stack = viewer.layers["sessions (registered)"].data
    assert stack.shape == (3, 128, 128)
    for s in (1, 2):
        raw = correlation(dendrite_sim.images[0], dendrite_sim.images[s])
        assert correlation(stack[0], stack[s]) > max(raw, 0.8)
    drifts = [np.hypot(*dendrite_sim.transforms[s].shift_px[:2]) for s in (1, 2)]
    moved = 1 + int(np.argmax(drifts))  # the session that drifted most (~10 px): clearly better aligned
    assert (
        correlation(stack[0], stack[moved])
        > correlation(dendrite_sim.images[0], dendrite_sim.images[moved]) + 0.2
    )

    tracks = widget.tracks
    points = widget.points_layer
    assert len(points.data) == len(tracks) == tracks["track_id"].nunique() * 3
    np.testing.assert_allclose(points.data, tracks[["session", "y", "x"]].to_numpy(float))
    for i in np.random.default_rng(0).choice(len(tracks), 10, replace=False):
        assert np.allclose(points.border_color[i], to_rgba(FATE_COLOURS[tracks["fate"].iloc[i]]))
        expected = "diamond" if tracks["refound"].iloc[i] else "disc" if tracks["present"].iloc[i] else "ring"
        assert points.symbol[i].value == expected
    assert list(points.text.values[:3]) == [str(t) for t in tracks["track_id"].iloc[:3]]

    # reject a gain: the spine was there before, missed -> present earlier, reviewed
    gains = tracks[(tracks["session"] > 0) & tracks["present"]]
    gains = gains[
        [
            not _rows(tracks, t).iloc[s - 1]["present"]
            for t, s in zip(gains["track_id"], gains["session"], strict=True)
        ]
    ]
    assert len(gains), "the simulation forms spines between sessions"
    track_id, session = int(gains["track_id"].iloc[0]), int(gains["session"].iloc[0])
    _select(widget, track_id, session)
    widget.reject_button.click()
    assert widget.last_error is None, widget.last_error
    edited = _rows(widget.tracks, track_id)
    assert edited.iloc[session - 1]["present"] and edited.iloc[session - 1]["reviewed"]
    pd.testing.assert_frame_equal(widget.turnover, compute_turnover(widget.tracks, [0.0, 1.0, 6.0]))

    # split a stable track at session 1, then relink the two halves: the spine is whole again
    n_tracks = widget.tracks["track_id"].nunique()
    stable = widget.tracks.groupby("track_id")["present"].all()
    split_id = int(stable[stable].index[0])
    _select(widget, split_id, 1)
    widget.split_button.click()
    assert widget.last_error is None, widget.last_error
    assert widget.tracks["track_id"].nunique() == n_tracks + 1
    assert not _rows(widget.tracks, split_id).iloc[1:]["present"].any()
    new_id = int(widget.tracks["track_id"].max())
    assert _rows(widget.tracks, new_id)["present"].tolist() == [False, True, True]
    _select(widget, split_id, 0)
    widget.points_layer.selected_data = widget.points_layer.selected_data | {
        int(widget.tracks.index[(widget.tracks["track_id"] == new_id) & (widget.tracks["session"] == 0)][0])
    }
    widget.relink_button.click()  # the first selected track is kept
    assert widget.last_error is None, widget.last_error
    assert widget.tracks["track_id"].nunique() == n_tracks and new_id not in set(widget.tracks["track_id"])
    assert _rows(widget.tracks, split_id)["present"].all()
    assert (_rows(widget.tracks, split_id)["fate"] == "stable").all()

    # an impossible edit is reported, not raised, and changes nothing
    before = widget.tracks.copy()
    _select(widget, split_id, 0)
    widget.split_button.click()  # there is nothing before session 0
    assert widget.last_error is not None
    pd.testing.assert_frame_equal(widget.tracks, before)

    widget.output_dir.value = tmp_path / "review"
    widget.save_button.click()
    saved = read_tracks_csv(tmp_path / "review" / "tracks.csv")
    assert list(saved.columns[:8]) == ["track_id", "session", "spine_id", "y", "x", "z", "present", "fate"]
    assert (saved["fate"].to_numpy() == widget.tracks["fate"].to_numpy()).all()
    turnover = pd.read_csv(tmp_path / "review" / "turnover.csv")
    np.testing.assert_allclose(turnover["n_gained"], compute_turnover(saved, [0.0, 1.0, 6.0])["n_gained"])

    # reload the corrected table in a fresh widget: same points and fates
    other = ReviewWidget(viewer)
    other.set_sessions(names)
    other.tracks_file.value = tmp_path / "review" / "tracks.csv"
    other.load_button.click()
    wait_for(qtbot, other, timeout_ms=60_000)
    assert len(other.tracks) == len(widget.tracks)
    assert (other.tracks["fate"].to_numpy() == widget.tracks["fate"].to_numpy()).all()

    # a spine discovered on the image (in no input table) is marked to verify like a re-found one
    table = other.tracks.copy()
    plain = np.flatnonzero(table["present"].to_numpy(bool) & ~table["refound"].to_numpy(bool))[0]
    table["discovered"] = False
    table.loc[plain, "discovered"] = True
    other.set_tracks(table)
    assert other.points_layer.symbol[plain].value == "diamond"

    # the next event to check: a loss no image confirmed is shown (its session, the point selected);
    # once accepted it is a reviewed loss, and no event is left to check
    from imagingkit.tracking import classify_fates, list_events

    table = widget.tracks.copy()
    stable = table.groupby("track_id")["fate"].first() == "stable"
    lost = int(stable[stable].index[0])
    last = (table["track_id"] == lost) & (table["session"] == 2)
    table.loc[last, "present"] = False
    table.loc[last, "spine_id"] = pd.NA
    table.loc[last, "absence_confirmed"] = False
    table = classify_fates(table)
    widget.set_tracks(table)
    events = list_events(widget.tracks)
    assert [tuple(e) for e in events.loc[events["to_check"], ["track_id", "session", "kind"]].to_numpy()] == [
        (lost, 2, "loss")
    ]
    widget.next_event_button.click()
    assert viewer.dims.point[0] == 2
    (selected,) = widget.points_layer.selected_data
    assert (widget.tracks["track_id"].iloc[selected], widget.tracks["session"].iloc[selected]) == (lost, 2)
    assert "1 event to check;" in widget.status.text() and f"loss of track {lost}" in widget.status.text()
    widget.accept_button.click()
    assert widget.last_error is None, widget.last_error
    assert not list_events(widget.tracks)["to_check"].any()
    widget.next_event_button.click()
    assert "no event left to check" in widget.status.text()
    widget.save_button.click()
    saved = pd.read_csv(tmp_path / "review" / "spine_events.csv")
    assert saved[["track_id", "session", "kind"]].values.tolist() == [[lost, 2, "loss"]]
    assert saved["reviewed"].all()
