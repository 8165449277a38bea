"""The learned presence model: its trees, its features and its verdict on absences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import DataError
from imagingkit.tracking.fates import FateParams, classify_fates
from imagingkit.tracking.presence import (
    FEATURES,
    PresenceModel,
    candidate_rows,
    decide_presence,
    default_model,
    presence_features,
)
from imagingkit.tracking.recheck import confirm_absences, measure_evidence
from tests.tracking.tables import track_table

PIXEL_UM = 0.2


def one_split_model(threshold=1.0, missing_left=False, feature="peak_evidence"):
    """Raw score -2 where ``feature <= threshold`` (or missing and ``missing_left``), +2 otherwise."""
    tree = {
        "feature": np.array([FEATURES.index(feature), 0, 0]),
        "threshold": np.array([threshold, 0.0, 0.0]),
        "left": np.array([1, 0, 0]),
        "right": np.array([2, 0, 0]),
        "is_leaf": np.array([False, True, True]),
        "value": np.array([0.0, -2.0, 2.0]),
        "missing_left": np.array([missing_left, False, False]),
    }
    return PresenceModel(features=FEATURES, baseline=0.0, trees=(tree,))


def constant_model(raw):
    leaf = {
        "feature": np.array([0]),
        "threshold": np.array([0.0]),
        "left": np.array([0]),
        "right": np.array([0]),
        "is_leaf": np.array([True]),
        "value": np.array([0.0]),
        "missing_left": np.array([False]),
    }
    return PresenceModel(features=FEATURES, baseline=raw, trees=(leaf,))


def feature_rows(**values):
    frame = pd.DataFrame({name: np.full(len(next(iter(values.values()))), np.nan) for name in FEATURES})
    for name, column in values.items():
        frame[name] = column
    return frame


def test_a_tree_sends_a_value_at_or_below_its_threshold_left_and_a_missing_one_as_it_was_fitted():
    x = feature_rows(peak_evidence=[0.5, 1.0, 1.5, np.nan])
    low, high = 1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(one_split_model().probability(x), [low, low, high, high])
    np.testing.assert_allclose(one_split_model(missing_left=True).probability(x), [low, low, high, low])


def test_the_exported_trees_give_scikit_learns_probabilities():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(FEATURES)))
    y = x[:, 0] + 0.5 * x[:, 3] * x[:, 5] + rng.normal(scale=0.5, size=600) > 0
    x[rng.random(x.shape) < 0.1] = np.nan  # missing readings take the side the fit chose
    classifier = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=7, random_state=0).fit(x, y)
    model = PresenceModel.from_classifier(classifier)
    frame = pd.DataFrame(x, columns=FEATURES)
    np.testing.assert_allclose(model.probability(frame), classifier.predict_proba(x)[:, 1], atol=1e-12)
    again = PresenceModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.probability(frame), model.probability(frame))


def test_a_file_that_holds_no_model_is_refused_with_its_name(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"features": ["peak_evidence"]}')
    with pytest.raises(DataError, match="model.json"):
        PresenceModel.from_json(path)
    with pytest.raises(DataError, match="missing.json"):
        PresenceModel.from_json(tmp_path / "missing.json")


def test_the_shipped_model_reads_the_trackers_features_and_weighs_them_as_a_scorer_would():
    model = default_model()
    assert model.features == FEATURES and len(model.trees) > 10
    common = {
        "level_peak": [4.0, 4.0],
        "level_place": [3.0, 3.0],
        "level_light": [4.0, 4.0],
        "n_detected": [4.0, 4.0],
        "n_refound_other": [0.0, 0.0],
        "n_discovered": [0.0, 0.0],
        "first_session": [0.0, 0.0],
        "last_session": [0.0, 1.0],
        "crowd_um": [5.0, 5.0],
        "refound_fraction": [0.2, 0.2],
        "candidate_um": [0.1, 5.0],
        "input_on_candidates": [0.85, 0.85],
    }
    rows = feature_rows(
        # a bright spine missed once between detections, its peak as bright as ever; the same spine
        # after its last detection, in the last session, its place dark. The tracker measures the
        # patch likeness wherever the model runs (2D, tables that miss spines): the place looks like
        # the spine in the first row, not in the second
        likeness=[0.95, 0.05],
        image_likeness=[0.95, 0.4],
        image_contrast=[0.95, 0.2],
        likeness_level=[0.95, 0.95],
        image_likeness_level=[0.93, 0.93],
        peak_evidence=[4.0, 0.0],
        evidence=[4.0, 0.1],
        place_evidence=[3.0, 0.0],
        peak_relative=[1.0, 0.0],
        place_relative=[1.0, 0.0],
        present_before=[1.0, 1.0],
        present_after=[1.0, 0.0],
        present_previous=[1.0, 1.0],
        present_next=[1.0, 0.0],
        rule_refound=[1.0, 0.0],
        rule_confirmed=[0.0, 1.0],
        **common,
    )
    there, gone = model.probability(rows)
    assert there > 0.9 and gone < 0.1


def test_the_shipped_model_weighs_whether_a_dim_place_looks_like_the_spine():
    # a spine detected in three sessions, missed in the last, its readings there at a third of its level: is it lost?
    # Its place looks like the spine where it was detected, or does not (patch likeness, imagingkit.tracking.likeness)
    dim = {
        name: [value] * 2
        for name, value in {
            "peak_evidence": 0.9,
            "evidence": 0.9,
            "place_evidence": 0.75,
            "level_peak": 3.0,
            "level_place": 2.5,
            "level_light": 3.0,
            "peak_relative": 0.3,
            "place_relative": 0.3,
            "n_detected": 3.0,
            "n_refound_other": 0.0,
            "n_discovered": 0.0,
            "present_before": 1.0,
            "present_after": 0.0,
            "present_previous": 1.0,
            "present_next": 0.0,
            "first_session": 0.0,
            "last_session": 1.0,
            "rule_refound": 0.0,
            "rule_confirmed": 0.0,
            "crowd_um": 5.0,
            "refound_fraction": 0.2,
            "candidate_um": 5.0,
            "input_on_candidates": 0.85,
            "likeness_level": 0.95,
            "image_likeness_level": 0.95,
        }.items()
    }
    rows = feature_rows(likeness=[0.9, 0.05], image_likeness=[0.93, 0.4], image_contrast=[0.9, 0.25], **dim)
    alike, unlike = default_model().probability(rows)
    assert unlike < 0.25 and alike - unlike > 0.25


def test_features_of_a_track_table():
    positions = [[(20.0, 20.0)] * 5, [(20.0, 30.0)] * 5]  # 2 µm apart
    tracks = measure_evidence(
        classify_fates(track_table(["11011", "11100"], positions)), lambda s, p: np.full(len(p), 2.0)
    )
    tracks["place_evidence"] = 1.0
    tracks["refound"] = False
    tracks["absence_confirmed"] = False
    candidates = [np.array([[20.0, 20.0, np.nan]])] * 4 + [np.array([[20.0, 31.0, np.nan]])]
    features = presence_features(tracks, PIXEL_UM, 0.25, candidates, search_um=0.4)
    assert list(features.columns) == list(FEATURES)
    row = features[(tracks["track_id"] == 0) & (tracks["session"] == 2)].iloc[0]
    assert row["n_detected"] == 4 and row["present_before"] and row["present_after"]
    assert row["present_previous"] and row["present_next"] and not row["first_session"]
    assert row["crowd_um"] == pytest.approx(2.0)  # track 1 is present in session 2
    assert row["peak_relative"] == pytest.approx(1.0) and row["refound_fraction"] == 0.25
    assert row["candidate_um"] == pytest.approx(0.0)
    last = features[(tracks["track_id"] == 1) & (tracks["session"] == 4)].iloc[0]
    assert last["present_before"] and not last["present_after"] and not last["present_previous"]
    assert last["last_session"] and last["n_detected"] == 3
    assert last["crowd_um"] == pytest.approx(2.0)
    assert last["candidate_um"] == pytest.approx(0.2)  # the detector's spine 1 px away
    # detections on a detector spine: track 0 in sessions 0, 1, 3 (3 of the 7 detections)
    assert row["input_on_candidates"] == pytest.approx(3 / 7)


def checked(patterns, positions=None, evidence_by_session=(0.5,) * 5):
    """Tracks after the rules, on images that show neither a spine nor an empty place (a dim spine),
    unless ``evidence_by_session`` says otherwise."""
    tracks = measure_evidence(
        classify_fates(track_table(patterns, positions)),
        lambda s, p: np.full(len(p), evidence_by_session[s]),
    )
    tracks["place_evidence"] = 0.1
    return confirm_absences(tracks, PIXEL_UM)


class PeakAsProbability:
    """A stand-in model: the probability of presence is the row's peak evidence."""

    def probability(self, features):
        return features["peak_evidence"].to_numpy(float)


def test_an_absence_between_presences_the_model_calls_absent_splits_the_track():
    tracks = checked(["11011"])
    assert set(tracks["state"]) == {"present", "gap"}  # the rules cannot tell: a gap
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(-5.0))
    assert out["track_id"].nunique() == 2
    assert sorted(out.groupby("track_id")["fate"].first()) == ["eliminated", "formed"]
    assert out["p_present"].notna().sum() >= 1 and (out["p_present"].dropna() < 0.5).all()


def test_an_absence_the_model_calls_present_is_refound():
    tracks = checked(["01111", "11100"])
    assert sorted(tracks.groupby("track_id")["fate"].first()) == ["eliminated", "formed"]
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(5.0))
    assert out["counted"].all() and out["fate"].eq("stable").all()
    assert out.loc[out["spine_id"].isna(), "refound"].all()


def test_reviewed_and_out_of_view_rows_are_left_as_they_are():
    tracks = checked(["110o1"])
    tracks.loc[(tracks["session"] == 2), "reviewed"] = True
    rows = candidate_rows(tracks)
    assert not rows.any()
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(-5.0))
    pd.testing.assert_frame_equal(out, tracks)


def test_the_detectors_own_tables_are_left_to_the_rules():
    tracks = checked(["11011"])
    on_every_detection = [
        tracks.loc[tracks["session"] == s, ["y", "x", "z"]].to_numpy(float) for s in range(5)
    ]
    out = decide_presence(
        tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(-5.0), candidates=on_every_detection
    )
    pd.testing.assert_frame_equal(out, tracks)
    elsewhere = [points + [0.0, 50.0, 0.0] for points in on_every_detection]
    out = decide_presence(
        tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(-5.0), candidates=elsewhere
    )
    assert out["track_id"].nunique() == 2


def test_a_track_of_discovered_spines_only_is_left_to_discovery():
    tracks = checked(["11011", "00100"])
    discovered = (tracks["track_id"] == 1) & tracks["present"]
    tracks["discovered"] = discovered
    tracks.loc[discovered, "spine_id"] = pd.NA
    rows = candidate_rows(tracks)
    assert rows[tracks["track_id"].to_numpy() == 0].sum() == 1  # the other track's absence is judged
    assert not rows[tracks["track_id"].to_numpy() == 1].any()


def test_before_its_first_detection_a_spine_is_present_over_one_stretch_next_to_it():
    # called one by one, session 0 (p 0.6) would be present and session 1 (p 0.2) absent: a spine
    # present, lost and formed again before it was ever detected
    tracks = checked(["00111"], evidence_by_session=(0.6, 0.2, 0.5, 0.5, 0.5))
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=PeakAsProbability())
    assert out["track_id"].nunique() == 1
    assert out.sort_values("session")["present"].tolist() == [False, False, True, True, True]
    # the model's reading is kept
    assert out.loc[out["session"] == 0, "p_present"].item() == pytest.approx(0.6)
    # a likely presence farther away carries a less likely one next to the detection
    tracks = checked(["00111"], evidence_by_session=(0.9, 0.3, 0.5, 0.5, 0.5))
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=PeakAsProbability())
    assert out["present"].all() and out["fate"].eq("stable").all()


def test_after_its_last_detection_a_spine_is_present_over_one_stretch_next_to_it():
    tracks = checked(["11100"], evidence_by_session=(0.5, 0.5, 0.5, 0.45, 0.7))
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=PeakAsProbability())
    assert out["track_id"].nunique() == 1
    assert out.sort_values("session")["present"].tolist() == [True] * 5  # 0.45 x 0.7 beats 0.55 x 0.3


def test_one_place_holds_one_spine():
    # two fragments of one spine's track at one place (0.1 µm apart): the model calls every absence
    # present, which would count the spine twice in every session
    positions = [[(20.0, 20.0)] * 5, [(20.0, 20.5)] * 5]
    tracks = checked(["11100", "00011"], positions)
    out = decide_presence(tracks, PIXEL_UM, 0.2, FateParams(), model=constant_model(5.0))
    per_session = out[out["present"]].groupby("session")["track_id"].nunique()
    assert per_session.tolist() == [1] * 5
    assert out["track_id"].nunique() == 2 and out["p_present"].notna().sum() == 5
    # farther apart than search_um they are two spines, both present
    positions = [[(20.0, 20.0)] * 5, [(20.0, 25.0)] * 5]
    out = decide_presence(
        checked(["11100", "00011"], positions), PIXEL_UM, 0.2, FateParams(), model=constant_model(5.0)
    )
    assert out["present"].all()
