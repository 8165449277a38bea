"""Checking absences on the images: rules on hand-made tables, then against simulated truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import ParameterError
from imagingkit.synth import simulate_dendrite_sessions
from imagingkit.tracking import BootstrapParams, RecheckParams, TrackingParams, track_spines
from imagingkit.tracking.evaluate import match_to_truth, score_tracking, track_identity
from imagingkit.tracking.fates import FateParams, classify_fates
from imagingkit.tracking.recheck import (
    confirm_absences,
    detach_outliers,
    discover_spines,
    evidence_at,
    evidence_here,
    evidence_map,
    join_fragments,
    judge_absences,
    measure_evidence,
    missed_spines,
    peaks_only,
    place_map,
    refinding_pays,
    refound_fraction,
    split_jumps,
)
from imagingkit.tracking.testing import synth_truth_tables, synth_truth_with_detection
from tests.spines.fake_dendrite import dendrite_end_image
from tests.tracking.tables import track_table

PIXEL_UM = 0.2


def tracks_of(patterns, positions=None):
    """Classified tracks from pattern strings (see :func:`tests.tracking.tables.track_table`)."""
    return classify_fates(track_table(patterns, positions))


def constant_evidence(values):
    """evidence(session, points) returning ``values[session]`` for every point."""
    return lambda session, points: np.full(len(points), values[session], float)


def states(tracks, track_id=0):
    return "".join(tracks[tracks["track_id"] == track_id].sort_values("session")["state"].str[0])


def test_a_missed_spine_that_the_image_shows_is_present():
    tracks = measure_evidence(tracks_of(["11011"]), constant_evidence([3.0, 3.0, 2.0, 3.0, 3.0]))
    out = confirm_absences(tracks, PIXEL_UM)
    assert states(out) == "ppppp"
    assert out.loc[out["session"] == 2, "refound"].item()
    assert out["fate"].eq("stable").all()


def test_a_confirmed_absence_splits_a_gap_closed_track():
    # with K=2 the single absence would be a gap; the image shows nothing there: a loss and a new spine
    tracks = measure_evidence(tracks_of(["11011"]), constant_evidence([3.0, 3.0, 0.2, 3.0, 3.0]))
    assert states(tracks) == "ppgpp"
    out = confirm_absences(tracks, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert out["track_id"].nunique() == 2
    assert sorted(out.groupby("track_id")["fate"].first()) == ["eliminated", "formed"]
    assert out["absence_confirmed"].sum() >= 1


def test_a_dim_spine_dipping_below_the_threshold_is_not_confirmed_absent():
    # a spine near the detector's threshold (level 1.5) shows 0.5 in one session: noise, not an empty place
    tracks = measure_evidence(tracks_of(["11011"]), constant_evidence([1.5, 1.5, 0.5, 1.5, 1.5]))
    out = confirm_absences(tracks, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp" and out["track_id"].nunique() == 1
    assert not out["absence_confirmed"].any()


def test_evidence_between_noise_and_the_spine_leaves_the_decision_to_k():
    # 1.0 >= min_evidence 0.6 but < half of the spine's own evidence 3.0: not found, not confirmed
    tracks = measure_evidence(tracks_of(["11011"]), constant_evidence([3.0, 3.0, 1.0, 3.0, 3.0]))
    out = confirm_absences(tracks, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp"
    assert not out["refound"].any() and not out["absence_confirmed"].any()


def test_a_bright_spine_is_not_kept_alive_by_noise_after_its_loss():
    tracks = measure_evidence(tracks_of(["11000"]), constant_evidence([8.0, 8.0, 0.9, 0.9, 0.9]))
    out = confirm_absences(tracks, PIXEL_UM)
    assert states(out) == "ppaaa"
    # a dim spine with the same residual is re-found: 0.9 is more than half of its 1.2
    dim = measure_evidence(tracks_of(["11000"]), constant_evidence([1.2, 1.2, 0.9, 0.9, 0.9]))
    assert states(confirm_absences(dim, PIXEL_UM)) == "ppppp"


def test_no_evidence_where_the_image_cannot_judge():
    nan = np.nan
    tracks = measure_evidence(tracks_of(["11011"]), constant_evidence([3.0, 3.0, nan, 3.0, 3.0]))
    out = confirm_absences(tracks, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp" and not out["refound"].any()


def test_no_refinding_next_to_another_detected_spine():
    # track 1 sits 0.4 um from track 0 and is detected in session 2, where track 0 is missed
    positions = [[(20.0, 20.0)] * 5, [(20.0, 22.0)] * 5]
    tracks = tracks_of(["11011", "00100"], positions)
    judged = judge_absences(measure_evidence(tracks, constant_evidence([3.0] * 5)), PIXEL_UM, RecheckParams())
    row = judged[(judged["track_id"] == 0) & (judged["session"] == 2)]
    assert not row["found"].item() and not row["confirmed"].item()


def test_in_stacks_only_a_neighbour_at_the_same_depth_is_in_the_way():
    # track 1 lies 0.4 um beside track 0 laterally; in a stack 3 planes (3 um) deeper it is another
    # dendrite's spine, outside the +-1 plane window the evidence is measured over: track 0's absence is judged
    positions = [[(20.0, 20.0)] * 5, [(20.0, 22.0)] * 5]
    tracks = tracks_of(["11011", "00100"], positions)
    tracks.loc[tracks["track_id"] == 1, "z"] = 3.0
    measured = measure_evidence(tracks, constant_evidence([3.0] * 5))
    row = (measured["track_id"] == 0) & (measured["session"] == 2)
    assert judge_absences(measured, PIXEL_UM, RecheckParams(), z_step_um=1.0).loc[row, "found"].item()
    assert (
        not judge_absences(measured, PIXEL_UM, RecheckParams()).loc[row, "judged"].item()
    )  # laterally: crowded
    # 1 um deeper (within join_depth_um, 1.5 um) it still is in the way
    tracks.loc[tracks["track_id"] == 1, "z"] = 1.0
    measured = measure_evidence(tracks, constant_evidence([3.0] * 5))
    assert not judge_absences(measured, PIXEL_UM, RecheckParams(), z_step_um=1.0).loc[row, "judged"].item()
    # at 0.5 um planes the same 3 planes are 1.5 um: in the way, 4 planes (2 um) are not
    tracks.loc[tracks["track_id"] == 1, "z"] = 3.0
    measured = measure_evidence(tracks, constant_evidence([3.0] * 5))
    assert not judge_absences(measured, PIXEL_UM, RecheckParams(), z_step_um=0.5).loc[row, "judged"].item()
    tracks.loc[tracks["track_id"] == 1, "z"] = 4.0
    measured = measure_evidence(tracks, constant_evidence([3.0] * 5))
    assert judge_absences(measured, PIXEL_UM, RecheckParams(), z_step_um=0.5).loc[row, "judged"].item()


def test_a_neighbours_detection_taken_by_a_track_is_detached():
    positions = [[(20.0, 20.0), (20.0, 20.1), (20.0, 25.0), (20.1, 20.0), (20.0, 19.9)]]
    out = detach_outliers(tracks_of(["11111"], positions), PIXEL_UM, max_um=0.6)
    assert out["track_id"].nunique() == 2
    detached = out[(out["track_id"] == 1) & out["present"]]
    assert detached["session"].tolist() == [2] and detached["x"].item() == 25.0
    assert not out[(out["track_id"] == 0) & (out["session"] == 2)]["present"].item()
    assert detach_outliers(tracks_of(["11111"], positions), PIXEL_UM, max_um=0).equals(
        tracks_of(["11111"], positions)
    )


def test_one_refound_place_per_spine_and_session():
    positions = [[(20.0, 20.0)] * 3, [(20.0, 20.5)] * 3]  # two fragments of one spine, 0.1 um apart
    tracks = measure_evidence(tracks_of(["100", "001"], positions), constant_evidence([3.0, 3.0, 3.0]))
    missed = missed_spines(judge_absences(tracks, PIXEL_UM, RecheckParams()), PIXEL_UM, RecheckParams())
    assert missed.groupby("session").size().max() == 1


def test_in_stacks_spines_at_two_depths_are_two_refound_places():
    # two tracks at one lateral place, 3 um apart in depth (spines of two dendrites crossing), both
    # missed in session 1 where the image shows both: one re-found place each
    positions = [[(20.0, 20.0)] * 3, [(20.0, 20.5)] * 3]
    tracks = tracks_of(["101", "101"], positions)
    tracks.loc[tracks["track_id"] == 1, "z"] = 3.0
    judged = judge_absences(
        measure_evidence(tracks, constant_evidence([3.0] * 3)), PIXEL_UM, RecheckParams(), 1.0
    )
    assert len(missed_spines(judged, PIXEL_UM, RecheckParams(), z_step_um=1.0)) == 2
    assert len(missed_spines(judged, PIXEL_UM, RecheckParams())) == 1  # laterally one place


def test_the_final_check_refinds_one_spine_per_place():
    # two fragments of one spine 0.1 um apart, neither detected in session 1, where the image shows it
    positions = [[(20.0, 20.0)] * 3, [(20.0, 20.5)] * 3]
    tracks = measure_evidence(tracks_of(["100", "001"], positions), constant_evidence([3.0, 3.0, 3.0]))
    out = confirm_absences(tracks, PIXEL_UM)
    assert out[out["session"] == 1]["present"].sum() == 1
    # one fragment already re-found there (when linking again): the other is not re-found beside it
    tracks = tracks.assign(refound=False)
    tracks.loc[(tracks["track_id"] == 1) & (tracks["session"] == 1), ["present", "refound"]] = True
    out = confirm_absences(tracks, PIXEL_UM)
    row = out[(out["track_id"] == 0) & (out["session"] == 1)]
    assert not row["present"].item() and not row["absence_confirmed"].item()


def fragments(patterns, evidence, dendrites=(0, 0), planes=(0.0, 0.0)):
    """Two tracks 0.1 um apart (one place) with the given evidence per session, dendrite and plane."""
    positions = [[(20.0, 20.0)] * len(patterns[0]), [(20.0, 20.5)] * len(patterns[0])]
    tracks = tracks_of(patterns, positions).assign(
        dendrite_id=lambda t: np.take(dendrites, t["track_id"]), z=lambda t: np.take(planes, t["track_id"])
    )
    return measure_evidence(tracks, constant_evidence(evidence))


def test_fragments_of_one_spine_are_joined():
    # the linker left one spine in two tracks; the image shows it in session 2, between them
    joined = join_fragments(fragments(["11000", "00011"], [3.0] * 5), PIXEL_UM, RecheckParams())
    assert joined["track_id"].nunique() == 1
    assert "".join(joined.sort_values("session")["present"].map("{:d}".format)) == "11011"


def test_fragments_on_two_traced_dendrites_are_joined_at_one_depth():
    # near a junction, one session's tracing gave the spine to the other dendrite (2D, or one depth)
    other_dendrite = fragments(["11011", "00100"], [3.0] * 5, dendrites=(0, 1))
    joined = join_fragments(other_dendrite, PIXEL_UM, RecheckParams())
    assert joined["track_id"].nunique() == 1 and joined["present"].all()
    in_stack = fragments(["11011", "00100"], [3.0] * 5, dendrites=(0, 1), planes=(5.0, 6.0))
    assert join_fragments(in_stack, PIXEL_UM, RecheckParams(), z_step_um=1.0)["track_id"].nunique() == 1


def test_a_loss_and_a_new_spine_at_its_place_are_not_joined():
    # the image shows the place empty in session 2: the spine was lost, a new one formed there
    empty_between = fragments(["11000", "00011"], [3.0, 3.0, 0.0, 3.0, 3.0])
    assert join_fragments(empty_between, PIXEL_UM, RecheckParams())["track_id"].nunique() == 2
    # spines of two dendrites crossing at that place at different depths (a stack), or both present at once
    crossing = fragments(["11000", "00011"], [3.0] * 5, dendrites=(0, 1), planes=(5.0, 9.0))
    assert join_fragments(crossing, PIXEL_UM, RecheckParams(), z_step_um=1.0)["track_id"].nunique() == 2
    together = fragments(["11100", "00111"], [3.0] * 5)
    assert join_fragments(together, PIXEL_UM, RecheckParams())["track_id"].nunique() == 2


def test_a_flank_is_no_peak():
    # a spine's residual (Gaussian, sigma 2 px) at (20, 20); a place 0.6 um away sees its flank only
    yy, xx = np.mgrid[:41, :41]
    ratio = 5.0 * np.exp(-((yy - 20.0) ** 2 + (xx - 20.0) ** 2) / (2 * 2.0**2))
    ratio[:, :5] = np.nan
    spacing = (PIXEL_UM, PIXEL_UM)
    flank, near = np.array([[20.0, 23.0]]), np.array([[20.0, 21.0]])
    assert evidence_at(ratio, spacing, flank, 0.4)[0] > 4.0
    peaks = peaks_only(ratio)
    assert evidence_at(peaks, spacing, flank, 0.4)[0] == 0.0
    assert evidence_at(peaks, spacing, near, 0.4)[0] == pytest.approx(5.0)
    assert np.isnan(peaks[:, :5]).all() and np.count_nonzero(peaks[:, 5:]) == 1


def test_light_without_a_peak_neither_refinds_nor_confirms():
    # session 2: a neighbour's flank reaches the place (light 3.0) but no peak of its own
    light = constant_evidence([3.0] * 5)
    tracks = measure_evidence(tracks_of(["11011"]), light, constant_evidence([3.0, 3.0, 0.0, 3.0, 3.0]))
    out = confirm_absences(tracks, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp"
    assert not out["refound"].any() and not out["absence_confirmed"].any()
    with_peak = measure_evidence(tracks_of(["11011"]), light, light)
    assert states(confirm_absences(with_peak, PIXEL_UM)) == "ppppp"


def measured_with_place(pattern, light, peak, place):
    """A one-track table measured with per-session light, peak and place evidence."""
    return measure_evidence(
        tracks_of([pattern]), constant_evidence(light), constant_evidence(peak), constant_evidence(place)
    )


def test_at_the_first_and_last_session_the_light_at_the_place_refinds_a_spine_without_a_peak():
    # a spine whose residual never peaks near its place (peak 0 where missed): light 1.5 around it,
    # 1.0 at the place itself when detected, the same where missed
    light, place = [1.5] * 5, [1.0] * 5
    first = confirm_absences(measured_with_place("01111", light, [0.0, 1.5, 1.5, 1.5, 1.5], place), PIXEL_UM)
    assert states(first) == "ppppp" and first.loc[first["session"] == 0, "refound"].item()
    assert first["fate"].eq("stable").all()
    last = confirm_absences(measured_with_place("11110", light, [1.5, 1.5, 1.5, 1.5, 0.0], place), PIXEL_UM)
    assert states(last) == "ppppp"
    # in the middle of the series the peak rule alone decides: the absence stays a gap
    middle = measured_with_place("11011", light, [1.5, 1.5, 0.0, 1.5, 1.5], place)
    out = confirm_absences(middle, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp" and not out["refound"].any()
    # nor where the end session is not next to a presence (the track starts at session 2)
    later = confirm_absences(measured_with_place("00111", light, [0.0, 0.0, 1.5, 1.5, 1.5], place), PIXEL_UM)
    assert states(later) == "aappp" and not later["refound"].any()
    # switched off
    off = confirm_absences(
        measured_with_place("01111", light, [0.0, 1.5, 1.5, 1.5, 1.5], place),
        PIXEL_UM,
        RecheckParams(min_place_evidence=None),
    )
    assert states(off) == "apppp"


def test_the_light_at_the_place_must_reach_half_the_spines_own_and_the_floor():
    light, peak = [1.5] * 5, [0.0, 1.5, 1.5, 1.5, 1.5]
    half = confirm_absences(measured_with_place("01111", light, peak, [0.45, 1.0, 1.0, 1.0, 1.0]), PIXEL_UM)
    assert states(half) == "apppp"  # below half of 1.0
    # a faint spine (0.3 at its place when detected): 0.18 is above half its own but below the floor 0.2
    faint = confirm_absences(measured_with_place("01111", light, peak, [0.18, 0.3, 0.3, 0.3, 0.3]), PIXEL_UM)
    assert states(faint) == "apppp"
    assert (
        states(confirm_absences(measured_with_place("01111", light, peak, [0.22] + [0.3] * 4), PIXEL_UM))
        == "ppppp"
    )


def test_a_peak_beside_a_dark_place_refinds_no_spine():
    # session 2: a clear peak within the search window (2.0, the spine's own level 3.0) but no light at the
    # place itself (0.1, the spine reads 1.0 there when detected): a neighbour's or noise at the window's edge
    light, peak = [3.0, 3.0, 2.0, 3.0, 3.0], [3.0, 3.0, 2.0, 3.0, 3.0]
    dark = measured_with_place("11011", light, peak, [1.0, 1.0, 0.1, 1.0, 1.0])
    out = confirm_absences(dark, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp" and not out["refound"].any()
    at_end = [3.0, 3.0, 3.0, 3.0, 2.0]
    last = confirm_absences(measured_with_place("11110", at_end, at_end, [1.0] * 4 + [0.1]), PIXEL_UM)
    assert states(last) == "ppppa" and not last["refound"].any()  # a loss, not a spine kept alive
    lit = measured_with_place("11011", light, peak, [1.0, 1.0, 0.25, 1.0, 1.0])
    assert states(confirm_absences(lit, PIXEL_UM)) == "ppppp"
    # switched off with the place rule
    assert states(confirm_absences(dark, PIXEL_UM, RecheckParams(min_place_evidence=None))) == "ppppp"


def test_an_absence_the_image_confirms_is_not_refound_from_the_place():
    # a bright spine (peak 3.0) with no light reaching 0.6 near its place in session 0: confirmed
    # absent, although the place reads more than half of the spine's own (0.45 against 0.8)
    out = confirm_absences(
        measured_with_place("01111", [0.5] + [3.0] * 4, [0.0] + [3.0] * 4, [0.45] + [0.8] * 4), PIXEL_UM
    )
    assert states(out) == "apppp"
    assert out.loc[out["session"] == 0, "absence_confirmed"].item()


def test_the_place_map_reads_the_light_at_a_point():
    ratio = np.zeros((9, 9), np.float32)
    ratio[4, 4] = 9.0
    ratio[0, :] = np.nan  # outside the band: counts as nothing
    place = place_map(ratio)
    assert place[4, 4] == pytest.approx(1.0) and place[4, 6] == 0.0
    assert evidence_here(place, np.array([[4.0, 4.0], [4.0, 5.0], [4.0, 4.5]])) == pytest.approx(
        [1.0, 1.0, 1.0]
    )
    assert evidence_here(place, np.array([[4.0, 6.0]]))[0] == 0.0
    assert np.isnan(evidence_here(place, np.array([[np.nan, 4.0]]))[0])
    assert evidence_here(place, np.zeros((0, 2))).shape == (0,)
    # in stacks the point's depth is read (z as the third coordinate), the best plane within ±1 of it (a
    # track's depth is known to about a plane); a missing depth reads the middle plane
    stack = np.zeros((7, 9, 9), np.float32)
    stack[3, 4, 4] = 9.0
    place3 = place_map(stack)
    assert evidence_here(place3, np.array([[4.0, 4.0, 3.0], [4.0, 4.0, np.nan]])) == pytest.approx([1.0, 1.0])
    assert evidence_here(place3, np.array([[4.0, 4.0, 2.0], [4.0, 4.0, 4.0]])) == pytest.approx([1.0, 1.0])
    assert evidence_here(place3, np.array([[4.0, 4.0, 1.0], [4.0, 4.0, 5.0]])) == pytest.approx([0.0, 0.0])


def test_a_spine_missed_twice_running_that_no_image_shows_gone_is_kept():
    # absent from two tables; the image shows light there (no peak strong enough to re-find)
    faint = measure_evidence(tracks_of(["10011"]), constant_evidence([3.0, 1.0, 1.0, 3.0, 3.0]))
    assert states(faint) == "paapp"  # the loss rule K=2 alone: a loss and a gain
    out = confirm_absences(faint, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "pggpp" and out["track_id"].nunique() == 1
    assert not out["refound"].any() and out["fate"].eq("uncertain").all()
    # re-classified after review edits, the rule holds (it reads absence_confirmed)
    assert states(classify_fates(out, FateParams(loss_min_sessions=2))) == "pggpp"
    # one of the two sessions shows the place empty: lost there, a new spine later
    empty = measure_evidence(tracks_of(["10011"]), constant_evidence([3.0, 0.2, 1.0, 3.0, 3.0]))
    out = confirm_absences(empty, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert out["track_id"].nunique() == 2 and states(out, 0) == "paaaa"
    # an absence to the last session stays a loss
    last = measure_evidence(tracks_of(["11100"]), constant_evidence([3.0, 3.0, 3.0, 1.0, 1.0]))
    assert states(confirm_absences(last, PIXEL_UM)) == "pppaa"


def test_the_absence_of_a_spine_the_image_never_showed_is_not_confirmed():
    # a sub-resolution spine: half the detector's threshold where listed, nothing where missed
    dim = measure_evidence(tracks_of(["11011"]), constant_evidence([0.5, 0.5, 0.0, 0.5, 0.5]))
    out = confirm_absences(dim, PIXEL_UM, fates=FateParams(loss_min_sessions=2))
    assert states(out) == "ppgpp" and not out["absence_confirmed"].any()
    bright = measure_evidence(tracks_of(["11011"]), constant_evidence([3.0, 3.0, 0.0, 3.0, 3.0]))
    assert confirm_absences(bright, PIXEL_UM)["absence_confirmed"].any()


def test_refinding_is_used_only_where_the_image_finds_missed_spines_beyond_chance():
    # 20 tracks lost after session 1; the image shows a chance peak at one lost place (1 in 60)
    def image(n_seen):  # evidence 3.0 where detected, 2.0 at the first n_seen places in session 2
        return lambda s, p: np.where((np.arange(len(p)) < n_seen) & (s == 2), 2.0, 3.0 if s < 2 else 0.0)

    lost = measure_evidence(tracks_of(["11000"] * 20), image(1))
    judged = judge_absences(lost, PIXEL_UM, RecheckParams())
    assert judged["judged"].sum() == 60 and judged["found"].sum() == 1
    assert refound_fraction(judged) == pytest.approx(1 / 60)
    assert not refinding_pays(judged, RecheckParams())
    assert refinding_pays(judged, RecheckParams(min_refound_fraction=0))
    # without re-finding the chance peak does not move the loss; absences are still confirmed
    out = confirm_absences(lost, PIXEL_UM, refind=False)
    assert states(out, 0) == "ppaaa" and not out["refound"].any()
    assert out[~out["present"] & (out["track_id"] > 0)]["absence_confirmed"].all()
    # five more are missed in session 2 (present, the image shows them): 6 of 60 found
    missed = measure_evidence(tracks_of(["11000"] * 20), image(6))
    assert refinding_pays(judge_absences(missed, PIXEL_UM, RecheckParams()), RecheckParams())


def spines_at(places):
    """Peak evidence 3.0 within 1 px of a spine present in that session (``places[s]``), else 0."""

    def evidence(session, points):
        spines = np.asarray(places[session], float).reshape(-1, 2)
        dist = np.linalg.norm(points[:, None, :2] - spines[None], axis=2).min(axis=1)
        return np.where(dist <= 1.0, 3.0, 0.0)

    return evidence


def jumping_tracks(jump_px):
    """Ten spines 10 px apart, localised within 0.2 px; track 0 moves by ``jump_px`` after session 1."""
    positions = [[(20.0, 20.0 + 10 * t + 0.2 * (s % 2)) for s in range(4)] for t in range(10)]
    positions[0] = [(20.0, 20.0), (20.0, 20.0), (20.0 + jump_px, 20.0), (20.0 + jump_px, 20.0)]
    return tracks_of(["1111"] * 10, positions), positions


def test_a_lost_spine_and_a_new_one_close_by_are_split():
    tracks, positions = jumping_tracks(4.0)  # 0.8 um
    others = [p[0] for p in positions[1:]]
    lost_then_new = spines_at([[(20, 20), *others]] * 2 + [[(24, 20), *others]] * 2)
    out = split_jumps(tracks, lost_then_new, PIXEL_UM, RecheckParams(), FateParams())
    assert out["track_id"].nunique() == 11
    assert states(out, 0) == "ppaa" and states(out, 10) == "aapp"
    assert sorted(out[out["track_id"].isin([0, 10])].groupby("track_id")["fate"].first()) == [
        "eliminated",
        "formed",
    ]
    # both places show a spine in both sessions: the image cannot tell, the link stays
    both = spines_at([[(20, 20), (24, 20), *others]] * 4)
    assert split_jumps(tracks, both, PIXEL_UM, RecheckParams(), FateParams())["track_id"].nunique() == 10
    # a step within the search radius is not a jump; jump_factor=0 turns the check off
    short, _ = jumping_tracks(1.5)  # 0.3 um
    assert (
        split_jumps(short, lost_then_new, PIXEL_UM, RecheckParams(), FateParams())["track_id"].nunique() == 10
    )
    off = RecheckParams(jump_factor=0)
    assert split_jumps(tracks, lost_then_new, PIXEL_UM, off, FateParams())["track_id"].nunique() == 10


def test_spines_are_discovered_only_far_from_every_track_and_with_a_clear_peak():
    tracks = tracks_of(["11", "11"])  # at (20, 20) and (20, 30) px
    candidates = [
        np.zeros((0, 3)),
        np.array([[20.0, 21.0, np.nan], [20.0, 45.0, np.nan], [20.0, 60.0, np.nan]]),
    ]
    peaks = spines_at([[], [(20, 45), (20, 60)]])  # 3.0 at the two far candidates
    found = discover_spines(candidates, tracks, peaks, PIXEL_UM, RecheckParams())
    # (20, 21) is 0.2 um from track 0: that spine is tracked already
    assert found[["session", "y", "x"]].to_numpy().tolist() == [[1, 20.0, 45.0], [1, 20.0, 60.0]]
    assert (found["peak_evidence"] == 3.0).all()
    # a peak below discover_min_evidence is no discovery; 0 turns discovery off
    assert (
        len(discover_spines(candidates, tracks, peaks, PIXEL_UM, RecheckParams(discover_min_evidence=4))) == 0
    )
    assert (
        len(discover_spines(candidates, tracks, peaks, PIXEL_UM, RecheckParams(discover_min_evidence=0))) == 0
    )


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="min_evidence"):
        RecheckParams(min_evidence=0)
    with pytest.raises(ParameterError, match="search_um"):
        RecheckParams(search_um=-1)
    with pytest.raises(ParameterError, match="jump_factor"):
        RecheckParams(jump_factor=-1)
    with pytest.raises(ParameterError, match="min_seen_evidence"):
        RecheckParams(min_seen_evidence=-1)
    with pytest.raises(ParameterError, match="min_refound_fraction"):
        RecheckParams(min_refound_fraction=1.5)
    with pytest.raises(ParameterError, match="discover_min_evidence"):
        RecheckParams(discover_min_evidence=-1)
    with pytest.raises(ParameterError, match="discover_min_refound_fraction"):
        RecheckParams(discover_min_refound_fraction=2)
    with pytest.raises(ParameterError, match="join_depth_um"):
        RecheckParams(join_depth_um=-1)


@pytest.fixture(scope="module")
def sim():
    return simulate_dendrite_sessions(n_sessions=4, times_h=(0, 1, 24, 48), shape=(192, 192), seed=5)


def test_evidence_is_high_at_spines_and_undefined_off_the_dendrites(sim):
    image = sim.images[0]
    ratio, spacing = evidence_map(image, PIXEL_UM, None)
    assert ratio.shape == image.shape and spacing == (PIXEL_UM, PIXEL_UM)
    assert np.isnan(ratio).mean() > 0.3  # most of the field is not near a dendrite
    truth = sim.truth[(sim.truth["session"] == 0) & sim.truth["present"] & sim.truth["in_fov"]]
    bright = truth[(truth["intensity_ratio"] > 0.5) & (truth["head_radius_um"] > 0.25)]
    at_spines = evidence_at(ratio, spacing, bright[["y", "x"]].to_numpy(), 0.4)
    assert np.mean(at_spines >= 1.0) > 0.8  # the detector's threshold is reached at visible spines


@pytest.fixture(scope="module")
def transforms(sim):
    from imagingkit.motion.sessions import register_sessions

    return register_sessions(sim.images)


def track_and_score(sim, transforms, tables, check):
    """Track true-position tables with or without the image check; the result and its scores."""
    ids = [t["spine_id"].to_numpy() for t in tables]
    truth = synth_truth_with_detection(sim, ids)
    shapes = [im.shape for im in sim.images]
    params = TrackingParams(
        pixel_size_um=PIXEL_UM, bootstrap=BootstrapParams(n_boot=20), recheck=RecheckParams(enabled=check)
    )
    result = track_spines(tables, sim.times_h, params, transforms, shapes, images=sim.images)
    det = result.detections
    true_id = np.concatenate([ids[s][det.loc[det["session"] == s, "det_index"]] for s in range(len(ids))])
    return result, truth, score_tracking(result, truth, true_id, shapes, 1.0 / PIXEL_UM)


def test_missed_detections_are_recovered_on_the_images(sim, transforms):
    """True positions with 15 % of them dropped (missed detections): the image check recovers most."""
    rng = np.random.default_rng(0)
    tables = [t[rng.random(len(t)) >= 0.15].reset_index(drop=True) for t in synth_truth_tables(sim)]
    scores = {}
    for check in (False, True):
        result, truth, scores[check] = track_and_score(sim, transforms, tables, check)
        if check:
            det = result.detections
            refound = result.tracks[result.tracks["refound"]]
            assert len(refound) > 5
            # a re-found presence is a real spine: its track's spine is present there in the truth
            present = truth.set_index(["spine_id", "session"])["present"]
            # (a track of spines no table holds, discovered on the images, by its position)
            identity = track_identity(det, det["spine_id"].to_numpy(), result.tracks, truth, 0.6 / PIXEL_UM)
            keys = list(zip(identity.loc[refound["track_id"]], refound["session"], strict=True))
            assert present.reindex(keys).fillna(False).mean() >= 0.9
    assert scores[True]["event_f1"] >= 0.9 > scores[False]["event_f1"]
    assert scores[True]["survival_baseline_max_err_pp"] < scores[False]["survival_baseline_max_err_pp"]


def test_where_the_tables_miss_spines_every_place_is_compared_with_its_spine(sim, transforms):
    """15 % missed: the missed places of spines that are there look like their spine where it was detected,
    the places of spines that are gone do not (patch likeness, the presence model's readings)."""
    rng = np.random.default_rng(0)
    tables = [t[rng.random(len(t)) >= 0.15].reset_index(drop=True) for t in synth_truth_tables(sim)]
    result, truth, _ = track_and_score(sim, transforms, tables, True)
    tracks, det = result.tracks, result.detections
    detected = tracks["spine_id"].notna() & tracks["in_view"]
    missed = tracks["spine_id"].isna() & tracks["in_view"] & tracks["likeness"].notna()
    identity = track_identity(det, det["spine_id"].to_numpy(), tracks, truth, 0.6 / PIXEL_UM)
    keys = list(zip(identity.loc[tracks.loc[missed, "track_id"]], tracks.loc[missed, "session"], strict=True))
    there = truth.set_index(["spine_id", "session"])["present"].reindex(keys).fillna(False).to_numpy(bool)
    assert there.sum() >= 10 and (~there).sum() >= 10
    likeness = tracks.loc[missed, "likeness"].to_numpy()
    assert tracks.loc[detected, "likeness"].median() > 0.9
    assert np.median(likeness[there]) > np.median(likeness[~there]) + 0.5
    assert tracks.loc[detected, "likeness_level"].median() > 0.8


def test_complete_true_positions_lose_no_event_to_the_check(sim, transforms):
    """Nothing missed: a lost spine's place lit by a neighbour's flank is not re-found, and a lost
    spine and a new one formed close by are not linked as one (both cost events before)."""
    tables = synth_truth_tables(sim)
    _, _, plain = track_and_score(sim, transforms, tables, False)
    result, _, checked = track_and_score(sim, transforms, tables, True)
    assert not result.tracks["discovered"].any()  # a complete table never gets spines added
    assert checked["n_true_gain"] + checked["n_true_loss"] >= 20
    assert checked["gain_f1"] == checked["loss_f1"] == 1.0
    assert checked["survival_baseline_max_err_pp"] <= plain["survival_baseline_max_err_pp"]


def test_a_spine_in_no_table_is_discovered_on_the_images(sim, transforms, monkeypatch):
    """Incomplete tables (10 % missed) and one bright spine in no table at all: the detector finds it
    on the images, and it is tracked as a spine of its own (the old tracker never saw it). Each image
    is traced once, for the image check and the detector alike."""
    import imagingkit.spines.dendrite
    import imagingkit.spines.detect

    traced = []
    real_trace = imagingkit.spines.dendrite.trace_dendrites
    counting = lambda *a, **k: traced.append(1) or real_trace(*a, **k)  # noqa: E731
    monkeypatch.setattr(imagingkit.spines.dendrite, "trace_dendrites", counting)
    monkeypatch.setattr(imagingkit.spines.detect, "trace_dendrites", counting)
    truth = sim.truth[sim.truth["in_fov"]]
    session1 = truth[truth["session"] == 1]
    present = session1[session1["present"]]
    xy = present[["y", "x"]].to_numpy(float)
    alone = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1] * PIXEL_UM > 2.0
    bright = (present["intensity_ratio"] > 0.8) & (present["head_radius_um"] > 0.3) & alone
    spine = present[bright.to_numpy()].iloc[0]
    rng = np.random.default_rng(1)
    tables = [
        t[(rng.random(len(t)) >= 0.1) & (t["spine_id"] != spine["spine_id"])].reset_index(drop=True)
        for t in synth_truth_tables(sim)
    ]
    place = np.array([spine["y_ref"], spine["x_ref"]])
    for discover in (0.0, RecheckParams().discover_min_evidence):
        params = TrackingParams(
            pixel_size_um=PIXEL_UM,
            bootstrap=BootstrapParams(n_boot=5),
            recheck=RecheckParams(discover_min_evidence=discover),
        )
        shapes = [im.shape for im in sim.images]
        traced.clear()
        result = track_spines(tables, sim.times_h, params, transforms, shapes, images=sim.images)
        assert len(traced) == len(sim.images)
        tracks = result.tracks
        here = tracks[(tracks["session"] == 1) & tracks["present"]]
        near = np.linalg.norm(here[["y", "x"]].to_numpy(float) - place, axis=1) * PIXEL_UM <= 0.6
        if not discover:
            assert not tracks["discovered"].any() and not near.any()
            continue
        assert near.sum() == 1 and here["discovered"].to_numpy()[near].all()
        assert here["spine_id"].isna().to_numpy()[near].all()
        # scored by position, the discovered track is that spine
        det = result.detections
        identity = track_identity(det, np.zeros(len(det), int), tracks, sim.truth, 0.6 / PIXEL_UM)
        assert identity.loc[int(here["track_id"].to_numpy()[near][0])] == spine["spine_id"]
        # most discovered places are real spines (within 0.6 um of a true spine present there)
        found = tracks[tracks["discovered"]]
        true_ref = sim.truth.drop(columns=["y", "x"]).rename(columns={"y_ref": "y", "x_ref": "x"})
        real = match_to_truth(found[["session", "y", "x"]], true_ref, 0.6 / PIXEL_UM) >= 0
        assert real.mean() >= 0.75


def test_stacks_discover_no_spines_unless_asked(monkeypatch):
    """In z-stacks about half of the detector's spines far from every track are false: discovery
    is off there by default (``discover_in_stacks``) and the detector is not even run for it."""
    from imagingkit.tracking import session as session_module

    stacks = simulate_dendrite_sessions(n_sessions=3, times_h=(0, 1, 24), shape=(9, 128, 128), ndim=3, seed=2)
    rng = np.random.default_rng(0)
    tables = [t[rng.random(len(t)) >= 0.3].reset_index(drop=True) for t in synth_truth_tables(stacks)]
    calls = []
    real = session_module._detector_tables
    monkeypatch.setattr(session_module, "_detector_tables", lambda *a, **k: calls.append(1) or real(*a, **k))
    from imagingkit.motion.sessions import register_sessions

    registered = register_sessions(stacks.images)
    shapes = [im.shape for im in stacks.images]
    for in_stacks in (False, True):
        params = TrackingParams(
            pixel_size_um=PIXEL_UM,
            z_step_um=1.0,
            bootstrap=BootstrapParams(n_boot=5),
            recheck=RecheckParams(discover_in_stacks=in_stacks, discover_min_refound_fraction=0.0),
        )
        result = track_spines(tables, stacks.times_h, params, registered, shapes, images=stacks.images)
        assert len(calls) == int(in_stacks)
        if not in_stacks:
            assert not result.tracks["discovered"].any()


def test_a_spine_beside_a_dendrite_end_missed_in_one_session_is_refound():
    """The head beside the shaft's end (1.2 um beyond it) is missing from the first session's table: the image
    check models the place up to ``end_margin_um`` beyond the end and re-finds it; without the margin the place
    is unjudged (NaN evidence) and the spine counts as formed in session 1."""
    images = [dendrite_end_image(seed=0), dendrite_end_image(seed=1)]
    heads = pd.DataFrame({"spine_id": [0, 1, 2], "y": [33.0, 47.0, 33.0], "x": [40.0, 80.0, 126.0]})
    tables = [heads.iloc[:2], heads]
    for margin_um, refound in ((RecheckParams().end_margin_um, True), (0.0, False)):
        params = TrackingParams(pixel_size_um=PIXEL_UM, recheck=RecheckParams(end_margin_um=margin_um))
        tracks = track_spines(tables, [0.0, 1.0], params, images=images).tracks
        end = tracks[(tracks["x"] - 126).abs() < 2].sort_values("session")
        assert end["present"].tolist() == [refound, True]
        assert end["fate"].iloc[0] == ("stable" if refound else "formed")
        assert np.isfinite(end["evidence"].iloc[0]) == refound
    # where the head is really not there yet, the image now confirms its absence instead of staying silent
    images[0] = dendrite_end_image(seed=0, end_head=False)
    tracks = track_spines(tables, [0.0, 1.0], TrackingParams(pixel_size_um=PIXEL_UM), images=images).tracks
    end = tracks[(tracks["x"] - 126).abs() < 2].sort_values("session")
    assert end["present"].tolist() == [False, True] and end["absence_confirmed"].iloc[0]
    assert end["fate"].iloc[0] == "formed"
    assert RecheckParams().end_margin_um == 2.0
    with pytest.raises(ParameterError, match="end_margin_um"):
        RecheckParams(end_margin_um=-1.0)
