"""Scoring rules: identities of tracks, including tracks that hold no input detection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imagingkit.tracking.evaluate import (
    event_scores,
    same_site_identity,
    site_truth,
    track_identity,
    truth_tracks,
)
from imagingkit.tracking.fates import classify_fates
from tests.tracking.tables import track_table


def truth_of(spines):
    """Truth rows (``spine_id, session, present, y, x, y_ref, x_ref``) from ``{id: (pattern, (y, x))}``."""
    rows = []
    for spine_id, (pattern, (y, x)) in spines.items():
        for s, ch in enumerate(pattern):
            rows.append(
                {
                    "spine_id": spine_id,
                    "session": s,
                    "present": ch == "1",
                    "y": y,
                    "x": x,
                    "y_ref": y,
                    "x_ref": x,
                    "in_fov": True,
                }
            )
    return pd.DataFrame(rows)


def found_on_images(tracks, track_ids):
    """Mark the present rows of ``track_ids`` as found on the images: no input detection (spine_id NA)."""
    out = tracks.copy()
    out["spine_id"] = out["spine_id"].mask(out["track_id"].isin(track_ids))
    return out


def detections_of(tracks):
    rows = tracks[tracks["spine_id"].notna()]
    return rows[["track_id", "session"]].reset_index(drop=True)


def three_tracks():
    """Track 0 detected (true spine 7); track 1 found on the images only, 0.4 px from true spine 9;
    track 2 found on the images only where no true spine is. Returns tracks, truth, detections, true_id."""
    positions = [[(20.0, 20.0)] * 3, [(20.4, 30.0)] * 3, [(20.0, 60.0)] * 3]
    tracks = found_on_images(classify_fates(track_table(["111", "010", "001"], positions)), [1, 2])
    truth = truth_of({7: ("111", (20.0, 20.0)), 9: ("010", (20.0, 30.0))})
    detections = detections_of(tracks)
    return tracks, truth, detections, np.full(len(detections), 7)


def test_a_track_without_detections_takes_the_identity_of_the_true_spine_at_its_place():
    # track 0 detected (true spine 7); track 1 found on the images only, 0.4 px from true spine 9;
    # track 2 found on the images only where no true spine is: a false discovery
    tracks, truth, detections, true_id = three_tracks()
    identity = track_identity(detections, true_id, tracks, truth, tolerance_px=3.0)
    assert identity.loc[0] == 7 and identity.loc[1] == 9 and identity.loc[2] < 0
    # beyond the tolerance, the track at spine 9's place is a false discovery too
    far = track_identity(detections, true_id, tracks, truth, tolerance_px=0.3)
    assert far.loc[1] < 0 and far.loc[2] < 0 and far.loc[1] != far.loc[2]
    # without the tracks (the old rule), such tracks are not scored at all
    assert list(track_identity(detections, true_id).index) == [0]


def test_discovered_spines_count_as_true_and_false_events():
    tracks, truth, detections, true_id = three_tracks()
    reference = truth_tracks(truth)
    scores = event_scores(tracks, detections, true_id, reference, truth, tolerance_px=3.0)
    # spine 9's gain (session 1) and loss (session 2) are found; track 2's gain is false
    assert scores["n_true_gain"] == 1 and scores["n_true_loss"] == 1
    assert scores["gain_recall"] == 1.0 and scores["gain_precision"] == 0.5
    assert (scores["n_pred_gain"], scores["n_matched_gain"], scores["n_pred_loss"]) == (2, 1, 1)
    assert scores["loss_recall"] == 1.0 and scores["loss_precision"] == 1.0
    # a reference leaving spine 9 out (the seen_ scores): its events are neither true nor false
    seen = truth_tracks(truth[truth["spine_id"] == 7])
    scores = event_scores(tracks, detections, true_id, seen, truth, tolerance_px=3.0)
    assert scores["n_true_gain"] == 0 and scores["gain_precision"] == 0.0
    assert np.isnan(scores["loss_precision"])


def test_one_true_spine_identifies_one_track_per_session():
    # two tracks found on the images next to one true spine in session 0: the nearer one is that spine
    positions = [[(20.0, 20.0)] * 2, [(20.0, 30.2)] * 2, [(20.0, 31.0)] * 2]
    tracks = found_on_images(classify_fates(track_table(["11", "10", "10"], positions)), [1, 2])
    truth = truth_of({7: ("11", (20.0, 20.0)), 9: ("10", (20.0, 30.0))})
    detections = detections_of(tracks)
    identity = track_identity(detections, np.full(len(detections), 7), tracks, truth, tolerance_px=3.0)
    assert identity.loc[1] == 9 and identity.loc[2] < 0


def test_visible_scores_leave_out_spines_below_the_visibility_limit():
    from types import SimpleNamespace

    from imagingkit.tracking import TrackingParams
    from imagingkit.tracking.evaluate import score_tracking, visible_throughout
    from imagingkit.tracking.turnover import compute_turnover

    # spine 7 (visible) and spine 9 (a sub-resolution head) both form in session 1; the tracker sees 7 only
    truth = truth_of({7: ("011", (20.0, 20.0)), 9: ("011", (20.0, 40.0)), 5: ("000", (20.0, 60.0))})
    truth["intensity_ratio"] = np.where(truth["present"], 0.8, np.nan)
    truth["head_radius_um"] = np.where(truth["spine_id"] == 9, 0.15, 0.35)
    truth["base_in_fov"] = True
    truth["dendrite_id"], truth["arc_um"] = 0, truth["x"] * 0.2
    assert visible_throughout(truth).tolist() == [True] * 3 + [False] * 6
    dimmed = truth.assign(intensity_ratio=np.where(truth["session"] == 2, 0.2, truth["intensity_ratio"]))
    assert not visible_throughout(dimmed)[truth["spine_id"] == 7].any()  # below the limit in one session

    tracks = classify_fates(track_table(["011"], [[(20.0, 20.0)] * 3]))
    detections = detections_of(tracks).assign(track_id=0)
    times = np.array([0.0, 1.0, 24.0])
    result = SimpleNamespace(
        tracks=tracks,
        detections=detections,
        turnover=compute_turnover(tracks, times),
        times_h=times,
        params=TrackingParams(pixel_size_um=0.2),
    )
    scores = score_tracking(result, truth, np.full(len(detections), 7), None, 0.0, 3.0)
    assert scores["n_true_gain"] == 2 and scores["gain_f1"] == 2 / 3
    assert scores["visible_n_true_gain"] == 1 and scores["visible_gain_f1"] == 1.0


def test_review_counts_the_wrong_events_among_those_to_check():
    # true spine 7 is lost in session 2 and the image confirmed it; true spine 8 stays, but its track
    # shows a loss in session 2 that no image confirmed: the one wrong event, and it is to check
    tracks = classify_fates(track_table(["110", "110"]))
    tracks["absence_confirmed"] = (tracks["track_id"] == 0) & (tracks["session"] == 2)
    truth = truth_of({7: ("110", (20.0, 20.0)), 8: ("111", (20.0, 30.0))})
    detections = detections_of(tracks)
    true_id = np.where(detections["track_id"] == 0, 7, 8)
    scores = event_scores(tracks, detections, true_id, truth_tracks(truth), truth, tolerance_px=3.0)
    assert (scores["n_pred_loss"], scores["n_matched_loss"]) == (2, 1)
    assert scores["n_check_loss"] == 1 and scores["n_wrong_check_loss"] == 1
    assert scores["loss_f1"] == 2 / 3 and scores["loss_f1_reviewed"] == 1.0
    # had the image confirmed the wrong one instead, review would not reach it
    tracks["absence_confirmed"] = (tracks["track_id"] == 1) & (tracks["session"] == 2)
    scores = event_scores(tracks, detections, true_id, truth_tracks(truth), truth, tolerance_px=3.0)
    assert scores["n_check_loss"] == 1 and scores["n_wrong_check_loss"] == 0
    assert scores["loss_f1_reviewed"] == scores["loss_f1"] == 2 / 3


def test_a_spine_replaced_at_its_place_in_the_next_session_is_one_site():
    truth = truth_of(
        {
            1: ("11000", (20.0, 20.0)),  # lost in session 2 ...
            2: ("00110", (20.5, 20.0)),  # ... replaced 0.5 px away in session 2 ...
            3: ("00001", (20.0, 20.5)),  # ... and again in session 4: one site 1-2-3
            4: ("10000", (40.0, 40.0)),  # lost in session 1 ...
            5: ("00100", (40.0, 40.5)),  # ... a new spine at its place a session later: two spines
            6: ("11000", (60.0, 60.0)),  # lost in session 2 ...
            7: ("00111", (60.0, 64.0)),  # ... a new spine 4 px away: two spines
        }
    )
    site = same_site_identity(truth, tolerance_px=3.0)
    assert site.to_dict() == {1: 1, 2: 1, 3: 1, 4: 4, 5: 5, 6: 6, 7: 7}
    assert same_site_identity(truth, tolerance_px=0.4).to_dict() == {i: i for i in range(1, 8)}
    merged, true_id = site_truth(truth, np.array([2, 3, 5, -1, 7]), tolerance_px=3.0)
    assert list(true_id) == [1, 1, 5, -1, 7]
    one_site = merged[merged["spine_id"] == 1].sort_values("session")
    assert one_site["present"].tolist() == [True] * 5 and len(merged) == 5 * 5  # 7 spines, 5 sites
    # the site has no events; the tracker that linked the replacement into one track scores
    # a stable spine, while the spine identities count a loss and a gain it missed
    events = truth_tracks(merged)
    assert events.loc[events["track_id"] == 1, "fate"].iloc[0] == "stable"


def test_one_spine_replaces_at_most_one_lost_spine():
    # two spines lost in session 1 at the same place, one new one there: it takes the nearer site
    truth = truth_of({1: ("10", (20.0, 20.0)), 2: ("10", (20.0, 22.0)), 3: ("01", (20.0, 21.8))})
    assert same_site_identity(truth, tolerance_px=3.0).to_dict() == {1: 1, 2: 2, 3: 2}
