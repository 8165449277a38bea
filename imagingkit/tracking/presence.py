"""Final verdict on every absence of a track: a learned model of presence from image and track evidence.

The image check (:mod:`imagingkit.tracking.recheck`) decides each absence of a track from one
reading at a time, with hand-set bars: a peak of the residual near the spine's place, the light
at the place itself, each against the track's own level where it was detected. Where the input
tables miss spines, what an absence means also depends on the track around it: a spine
detected in four sessions and missed in one is there far more often than one seen once; an
absence right before a track's first detection is a gain only if the spine was not simply
missed at its birth; a dark place next to a neighbour that is present says less; a place that
looks like the spine did where it was seen says more than any one reading
(:mod:`imagingkit.tracking.likeness`). A human scorer weighs all of that at once.
:func:`presence_features` gathers these readings for every absence (the rule's own verdicts
among them), and a gradient-boosted tree model
(:class:`PresenceModel`, fitted offline with scikit-learn's ``HistGradientBoostingClassifier``
on simulated session series with known truth, ``benchmarks/fit_presence_model.py``; stored as
plain JSON trees in ``presence_model.json`` and evaluated here with numpy, so the tracker needs
no scikit-learn) gives the probability that the spine is there. :func:`decide_presence` makes
that the verdict: present (re-found) at ``>= 0.5``, else absent; an absence between two
presences that the model calls absent splits the track there (a spine lost and a new one
formed at its place), as an absence the image confirmed does; ``absence_confirmed`` keeps
meaning that the image showed the place empty, so such events stay on the review list
(:func:`imagingkit.tracking.events.list_events`). Two constraints hold the verdicts together,
as they hold a scorer's: one place holds one spine in a session (two fragments of a spine's
track are not both called present there), and before a track's first detection, and after its
last, the spine is there over one unbroken stretch (the most probable birth or loss session,
not a spine present, absent and present again before it was ever detected).

Only where the tables are incomplete (the image re-finds clearly more than chance, see
:func:`imagingkit.tracking.recheck.refinding_pays`): the model was fitted on tables missing
spines, and in a complete table a track's absence is the table's verdict. Not where the input
tables are the spine detector's own (at least :data:`DETECTOR_TABLE_FRACTION` of the input's
detections lie on spines the detector finds on the images; tables of true positions, curated or
from elsewhere, reach about 0.8): the detector's misses are not those of a table that drops
spines at random, its false spines make tracks of their own, and on simulated series (development
seeds 400-449) a model fitted with such tables among its training series cost gain / loss F1
0.781 / 0.827 -> 0.775 / 0.807 there, so the rules decide. 2D images only (the model was fitted on 2D series).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from imagingkit.errors import DataError
from imagingkit.tracking.events import bool_column
from imagingkit.tracking.fates import FateParams, classify_fates
from imagingkit.tracking.likeness import LIKENESS_COLUMNS
from imagingkit.tracking.review import split_track

#: the model shipped with imagingkit (see the module docstring)
MODEL_PATH = Path(__file__).with_name("presence_model.json")

#: features of one absence, in the model's order (see :func:`presence_features`)
FEATURES = (
    "peak_evidence",
    "evidence",
    "place_evidence",
    "level_peak",
    "level_place",
    "level_light",
    "peak_relative",
    "place_relative",
    "n_detected",
    "n_refound_other",
    "n_discovered",
    "present_before",
    "present_after",
    "present_previous",
    "present_next",
    "first_session",
    "last_session",
    "rule_refound",
    "rule_confirmed",
    "crowd_um",
    "refound_fraction",
    "candidate_um",
    "input_on_candidates",
    "likeness",
    "image_likeness",
    "image_contrast",
    "likeness_level",
    "image_likeness_level",
)

_TREE_KEYS = ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left")

#: from this fraction of the input's detections on the detector's spines, the input is the detector's own table
DETECTOR_TABLE_FRACTION = 0.95

#: probabilities are kept this far from 0 and 1 in log-odds
EPSILON = 1e-6

#: nearest-neighbour distances are capped here (µm): farther is "alone"
CROWD_CAP_UM = 5.0


def candidate_rows(tracks: pd.DataFrame) -> np.ndarray:
    """Rows the model judges: in view, not reviewed, not a detection of the input nor a discovered spine,
    of a track the input detected at least once (a track of discovered spines only is discovery's to judge)."""
    detected = tracks["present"].to_numpy(bool) & tracks["spine_id"].notna().to_numpy()
    discovered = bool_column(tracks, "discovered")
    return (
        tracks["in_view"].to_numpy(bool)
        & ~tracks["reviewed"].to_numpy(bool)
        & ~detected
        & ~(discovered & tracks["present"].to_numpy(bool))
        & (_per_track_count(detected, tracks["track_id"]) > 0)
    )


def _column_or_nan(tracks: pd.DataFrame, name: str) -> np.ndarray:
    return tracks[name].to_numpy(float) if name in tracks else np.full(len(tracks), np.nan)


def _per_track_median(values: pd.Series, where: np.ndarray, track_id: pd.Series) -> np.ndarray:
    """Per row: the median of ``values`` over its track's rows in ``where`` (NaN if none)."""
    return values.where(where).groupby(track_id).transform("median").to_numpy(float)


def _per_track_count(where: np.ndarray, track_id: pd.Series) -> np.ndarray:
    """Per row: how many of its track's rows are in ``where``."""
    return pd.Series(where, index=track_id.index).groupby(track_id).transform("sum").to_numpy(float)


def _presence_around(tracks: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per row: is its track present in an earlier / a later / the previous / the next session?"""
    present = tracks.pivot(index="track_id", columns="session", values="present").fillna(False).astype(bool)
    sessions = present.columns.to_numpy(int)
    matrix = present.to_numpy()
    earlier = np.cumsum(matrix, axis=1) - matrix > 0
    later = np.cumsum(matrix[:, ::-1], axis=1)[:, ::-1] - matrix > 0
    previous = np.zeros_like(matrix)
    previous[:, 1:] = matrix[:, :-1]
    following = np.zeros_like(matrix)
    following[:, :-1] = matrix[:, 1:]
    row = present.index.get_indexer(tracks["track_id"].to_numpy())
    column = np.searchsorted(sessions, tracks["session"].to_numpy(int))
    return {
        "present_before": earlier[row, column],
        "present_after": later[row, column],
        "present_previous": previous[row, column],
        "present_next": following[row, column],
    }


def _crowd_um(tracks: pd.DataFrame, pixel_size_um: float) -> np.ndarray:
    """Per row: distance (µm, capped) to the nearest other track present in its session."""
    out = np.full(len(tracks), CROWD_CAP_UM)
    sessions = tracks["session"].to_numpy(int)
    present = tracks["present"].to_numpy(bool)
    track = tracks["track_id"].to_numpy()
    points = tracks[["y", "x"]].to_numpy(float) * pixel_size_um
    for session in np.unique(sessions):
        here = np.flatnonzero(sessions == session)
        there = here[present[here]]
        if len(there) == 0:
            continue
        k = min(2, len(there))
        distance, index = cKDTree(points[there]).query(points[here], k=k)
        distance, index = distance.reshape(len(here), k), index.reshape(len(here), k)
        own = track[there][index[:, 0]] == track[here]
        nearest = np.where(own, distance[:, 1] if k == 2 else np.inf, distance[:, 0])
        out[here] = np.minimum(np.nan_to_num(nearest, nan=np.inf, posinf=np.inf), CROWD_CAP_UM)
    return out


def _candidate_um(
    tracks: pd.DataFrame, candidates: Sequence[np.ndarray] | None, pixel_size_um: float, search_um: float
) -> tuple[np.ndarray, float]:
    """Per row: distance (µm, capped) to the nearest detector spine in its session; and the fraction of
    the input's detections with a detector spine within ``search_um`` (1 where the input is the
    detector's own table). NaN without candidates."""
    if candidates is None:
        return np.full(len(tracks), np.nan), np.nan
    out = np.full(len(tracks), CROWD_CAP_UM)
    sessions = tracks["session"].to_numpy(int)
    points = tracks[["y", "x"]].to_numpy(float) * pixel_size_um
    detected = tracks["present"].to_numpy(bool) & tracks["spine_id"].notna().to_numpy()
    on = []
    for session, spines in enumerate(candidates):
        spines = np.asarray(spines, float).reshape(-1, 3)
        here = np.flatnonzero(sessions == session)
        if len(spines) == 0 or len(here) == 0:
            on.extend([False] * int(detected[here].sum()))
            continue
        distance = cKDTree(spines[:, :2] * pixel_size_um).query(points[here])[0]
        out[here] = np.minimum(distance, CROWD_CAP_UM)
        on.extend(distance[detected[here]] <= search_um)
    return out, float(np.mean(on)) if on else np.nan


def presence_features(
    tracks: pd.DataFrame,
    pixel_size_um: float,
    refound_fraction: float,
    candidates: Sequence[np.ndarray] | None = None,
    search_um: float = 0.4,
) -> pd.DataFrame:
    """Features of every row of a checked track table, in the order of :data:`FEATURES`.

    Parameters
    ----------
    tracks : DataFrame
        A track table after the image check (:func:`imagingkit.tracking.recheck.confirm_absences`):
        ``evidence, peak_evidence, place_evidence, refound, absence_confirmed`` (and ``discovered``).
    pixel_size_um : float
    refound_fraction : float
        Fraction of the judged absences the image re-found in the first check
        (:func:`imagingkit.tracking.recheck.refound_fraction`): how incomplete the tables are.
    candidates : sequence of ndarray, optional
        Per session, the spine detector's spines on that session's image, ``(n, 3)`` reference-frame
        pixels ``y, x, z`` (None: the two features that use them are NaN).
    search_um : float
        A detection with a detector spine this close is on a detector spine.

    Returns
    -------
    DataFrame
        Same index as ``tracks``. The evidence readings (fractions of the detector's threshold,
        see :func:`imagingkit.tracking.recheck.evidence_map`) at the row's place; the track's
        levels (median readings where its input detected it); the reading relative to the level;
        counts of the track's detections, other re-found rows and discovered rows; whether the
        track is present (detected, re-found or discovered) before, after, in the previous and in
        the next session; first and last session of the series; the rule's verdicts (re-found,
        absence confirmed); the distance to the nearest other present spine (µm, capped at
        :data:`CROWD_CAP_UM`); the series' re-found fraction; the distance to the nearest detector
        spine (µm, capped) and the fraction of the input's detections that lie on detector spines
        (where the input is the detector's own table, a detector spine near an absence is another
        spine); how much the row's place looks like the spine where the track was detected
        (:data:`~imagingkit.tracking.likeness.LIKENESS_COLUMNS`, when the table has them,
        :func:`imagingkit.tracking.likeness.measure_likeness`). NaN where not measured.
    """
    track_id = tracks["track_id"]
    present = tracks["present"].to_numpy(bool)
    detected = present & tracks["spine_id"].notna().to_numpy()
    refound = bool_column(tracks, "refound")
    discovered = bool_column(tracks, "discovered")
    confirmed = bool_column(tracks, "absence_confirmed")
    peak = tracks["peak_evidence"].to_numpy(float)
    place = _column_or_nan(tracks, "place_evidence")
    level_peak = _per_track_median(tracks["peak_evidence"], detected, track_id)
    level_place = _per_track_median(pd.Series(place, index=tracks.index), detected, track_id)
    sessions = tracks["session"].to_numpy(int)
    candidate_um, input_on_candidates = _candidate_um(tracks, candidates, pixel_size_um, search_um)
    with np.errstate(divide="ignore", invalid="ignore"):
        features = {
            "peak_evidence": peak,
            "evidence": tracks["evidence"].to_numpy(float),
            "place_evidence": place,
            "level_peak": level_peak,
            "level_place": level_place,
            "level_light": _per_track_median(tracks["evidence"], detected, track_id),
            "peak_relative": np.where(level_peak > 0, peak / level_peak, np.nan),
            "place_relative": np.where(level_place > 0, place / level_place, np.nan),
            "n_detected": _per_track_count(detected, track_id),
            "n_refound_other": _per_track_count(refound & present, track_id) - (refound & present),
            "n_discovered": _per_track_count(discovered & present, track_id),
            **_presence_around(tracks),
            "first_session": sessions == sessions.min(),
            "last_session": sessions == sessions.max(),
            "rule_refound": refound & present,
            "rule_confirmed": confirmed & ~present,
            "crowd_um": _crowd_um(tracks, pixel_size_um),
            "refound_fraction": np.full(len(tracks), float(refound_fraction)),
            "candidate_um": candidate_um,
            "input_on_candidates": np.full(len(tracks), input_on_candidates),
            **{name: _column_or_nan(tracks, name) for name in LIKENESS_COLUMNS},
        }
    return pd.DataFrame({name: np.asarray(features[name], float) for name in FEATURES}, index=tracks.index)


@dataclasses.dataclass(frozen=True)
class PresenceModel:
    """Gradient-boosted trees over :data:`FEATURES` (a binary classifier's raw score, then a logistic).

    Attributes
    ----------
    features : tuple of str
        Feature names, in column order.
    baseline : float
        Raw score before any tree.
    trees : tuple of dict
        Per tree, arrays ``feature, threshold, left, right, is_leaf, value, missing_left``
        (node-indexed; a sample goes left where its feature is ``<= threshold``, or is NaN and
        ``missing_left``).
    """

    features: tuple[str, ...]
    baseline: float
    trees: tuple[dict, ...]

    @classmethod
    def from_dict(cls, data: dict) -> PresenceModel:
        """A model from its :meth:`to_dict` form."""
        trees = tuple({key: np.asarray(tree[key]) for key in _TREE_KEYS} for tree in data["trees"])
        return cls(features=tuple(data["features"]), baseline=float(data["baseline"]), trees=trees)

    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON)."""
        return {
            "features": list(self.features),
            "baseline": self.baseline,
            "trees": [{key: tree[key].tolist() for key in _TREE_KEYS} for tree in self.trees],
        }

    @classmethod
    def from_json(cls, path: Path | str) -> PresenceModel:
        """Read a model written by ``benchmarks/fit_presence_model.py``.

        Raises
        ------
        DataError
            The file cannot be read or holds no model.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}: not a presence model ({type(err).__name__}: {err})") from err

    @classmethod
    def from_classifier(cls, classifier, features: Sequence[str] = FEATURES) -> PresenceModel:
        """The trees of a fitted binary scikit-learn ``HistGradientBoostingClassifier`` (numeric features).

        Reads the fitted predictors' node arrays, so that the tracker evaluates the same trees
        without scikit-learn and without pickles tied to its version.
        """
        trees = []
        for (predictor,) in classifier._predictors:
            nodes = predictor.nodes
            trees.append(
                {
                    "feature": nodes["feature_idx"].astype(int),
                    "threshold": nodes["num_threshold"].astype(float),
                    "left": nodes["left"].astype(int),
                    "right": nodes["right"].astype(int),
                    "is_leaf": nodes["is_leaf"].astype(bool),
                    "value": nodes["value"].astype(float),
                    "missing_left": nodes["missing_go_to_left"].astype(bool),
                }
            )
        baseline = float(np.ravel(classifier._baseline_prediction)[0])
        return cls(features=tuple(features), baseline=baseline, trees=tuple(trees))

    def probability(self, features: pd.DataFrame) -> np.ndarray:
        """Probability that the spine is present, per row of a :func:`presence_features` table."""
        x = features[list(self.features)].to_numpy(float)
        raw = np.full(len(x), self.baseline)
        rows = np.arange(len(x))
        for tree in self.trees:
            node = np.zeros(len(x), int)
            while True:
                inner = ~tree["is_leaf"][node]
                if not inner.any():
                    break
                value = x[rows[inner], tree["feature"][node[inner]]]
                left = np.where(
                    np.isnan(value),
                    tree["missing_left"][node[inner]],
                    value <= tree["threshold"][node[inner]],
                )
                node[inner] = np.where(left, tree["left"][node[inner]], tree["right"][node[inner]])
            raw += tree["value"][node]
        return 1.0 / (1.0 + np.exp(-raw))


@lru_cache(maxsize=1)
def default_model() -> PresenceModel:
    """The model shipped with imagingkit (:data:`MODEL_PATH`)."""
    return PresenceModel.from_json(MODEL_PATH)


def decide_presence(
    tracks: pd.DataFrame,
    pixel_size_um: float,
    refound_fraction: float,
    fates: FateParams = FateParams(),
    model: PresenceModel | None = None,
    min_probability: float = 0.5,
    candidates: Sequence[np.ndarray] | None = None,
    search_um: float = 0.4,
) -> pd.DataFrame:
    """The model's verdict on every absence of a checked track table (see the module docstring).

    Rows of :func:`candidate_rows` get ``p_present`` (NaN elsewhere); those at
    ``>= min_probability`` become present (``refound``), the others absent, except a presence at
    a place another track holds in that session (within ``search_um``,
    :func:`_one_spine_per_place`), and before a track's first presence and after its last one
    unbroken stretch of presence (:func:`_one_stretch_at_the_ends`). An absence between two
    presences that the model calls absent splits the track where it is present again; states
    and fates are recomputed. ``candidates``: per session the detector's spines
    (reference-frame pixels ``y, x, z``), see :func:`presence_features`; where they show that
    the input is the detector's own table, the table is returned as it is.
    """
    rows = candidate_rows(tracks)
    features = presence_features(tracks, pixel_size_um, refound_fraction, candidates, search_um)
    if not rows.any() or features["input_on_candidates"].max() >= DETECTOR_TABLE_FRACTION:
        return tracks
    probability = (model or default_model()).probability(features[rows])
    out = tracks.assign(p_present=np.nan)
    index = out.index[rows]
    out.loc[index, "p_present"] = probability
    called = probability >= min_probability
    there = _one_spine_per_place(out, index, probability, called, search_um / pixel_size_um)
    score = np.where(called & ~there, -np.inf, _logit(probability) - _logit(min_probability))
    there = _one_stretch_at_the_ends(out, index, score, there)
    out.loc[index, "present"] = there
    out.loc[index, "refound"] = there
    out.loc[index[there], "absence_confirmed"] = False
    out["_there"] = False
    out.loc[index, "_there"] = there
    out = _split_at_absences(out, rows, fates)
    present = out["present"].to_numpy(bool)
    out["refound"] = out["refound"].to_numpy(bool) & present
    out.loc[out["_there"].to_numpy(bool) & ~present, "p_present"] = np.nan  # copies a split cleared
    return classify_fates(out.drop(columns="_there"), fates)


def _one_spine_per_place(
    tracks: pd.DataFrame, rows: pd.Index, probability: np.ndarray, there: np.ndarray, radius_px: float
) -> np.ndarray:
    """``there`` (per row of ``rows``) without the presences at a place another track holds in that session.

    Two fragments of one spine's track can both be called present at its place, and would count
    the spine twice. A presence the model does not judge (a detection, a discovered spine) keeps
    its place, then the model's presences in order of probability: one within ``radius_px`` of a
    place already held by another track in its session is dropped.
    """
    keep = there.copy()
    sessions = tracks["session"].to_numpy(int)
    track = tracks["track_id"].to_numpy()
    points = tracks[["y", "x"]].to_numpy(float)
    judged = tracks.index.get_indexer(rows)
    held = tracks["present"].to_numpy(bool).copy()
    held[judged] = False
    for k in np.flatnonzero(there)[np.argsort(-probability[there], kind="stable")]:
        i = judged[k]
        others = np.flatnonzero(held & (sessions == sessions[i]) & (track != track[i]))
        if (np.hypot(*(points[others] - points[i]).T) <= radius_px).any():
            keep[k] = False
        else:
            held[i] = True
    return keep


def _one_stretch_at_the_ends(
    tracks: pd.DataFrame, rows: pd.Index, score: np.ndarray, there: np.ndarray
) -> np.ndarray:
    """``there`` (per row of ``rows``) with one unbroken stretch of presence before a track's first presence
    the model does not judge, and after its last.

    ``score`` is the log-odds of presence over those of the threshold (> 0: called present;
    -inf: not allowed). Of the judged rows running up to the first presence (down from the last),
    the stretch next to it with the largest summed score is present, the others absent: the most
    probable single birth (loss) session, where calling each row on its own can leave a spine
    present, absent and present again before its first detection (two false events). Rows between
    two presences keep ``there``.
    """
    there = there.copy()
    position = pd.Series(np.arange(len(rows)), index=rows)
    frame = tracks.assign(_judged=tracks.index.isin(rows)).sort_values(["track_id", "session"])
    for _, track in frame.groupby("track_id", sort=False):
        judged = track["_judged"].to_numpy(bool)
        anchors = np.flatnonzero(track["present"].to_numpy(bool) & ~judged)
        if len(anchors) == 0:
            continue
        for run in (_run_towards(judged, anchors[0], -1), _run_towards(judged, anchors[-1], 1)):
            if len(run):
                k = position.loc[track.index[run]].to_numpy()  # nearest the presence first
                total = np.concatenate([[0.0], np.cumsum(score[k])])
                there[k] = np.arange(len(k)) < int(np.argmax(total))
    return there


def _logit(probability: np.ndarray) -> np.ndarray:
    """Log-odds, with probabilities kept :data:`EPSILON` away from 0 and 1."""
    p = np.clip(np.asarray(probability, float), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def _run_towards(judged: np.ndarray, start: int, step: int) -> np.ndarray:
    """Positions of the judged rows running from next to ``start`` in direction ``step`` (nearest first)."""
    run = []
    i = start + step
    while 0 <= i < len(judged) and judged[i]:
        run.append(i)
        i += step
    return np.asarray(run, int)


def _split_at_absences(tracks: pd.DataFrame, judged: np.ndarray, fates: FateParams) -> pd.DataFrame:
    """Split every track where it is present again after an absence among ``judged`` rows (a spine
    lost, and a new one formed at its place), later splits first so that track ids stay valid."""
    around = _presence_around(tracks)
    between = judged & ~tracks["present"].to_numpy(bool) & around["present_before"] & around["present_after"]
    starts = tracks[between & around["present_next"]]
    for track_id, session in sorted(
        zip(starts["track_id"], starts["session"] + 1, strict=True), key=lambda cut: -cut[1]
    ):
        tracks = split_track(tracks, int(track_id), int(session), fates)
    return tracks
