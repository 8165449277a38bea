"""Light artifacts and the whole chain on a simulated recording (imagingkit.synth truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.stim.analysis import analyse_responses
from imagingkit.stim.artifacts import (
    ArtifactParams,
    apply_mask,
    detect_light_artifacts,
    line_brightness,
    line_brightness_from_movie,
    roi_artifact_mask,
)
from imagingkit.stim.responses import WindowParams
from imagingkit.stim.sources import label_sham_trials
from imagingkit.stim.stats import StatsParams
from imagingkit.stim.timing import line_times
from imagingkit.stim.triggers import PulseParams, events_from_triggers


def _events(truth):
    params = PulseParams(max_gap_s=0.1)
    stim = events_from_triggers(truth.triggers[:, 1], truth.trigger_rate_hz, params)
    trials = events_from_triggers(truth.triggers[:, 2], truth.trigger_rate_hz, params)
    return label_sham_trials(trials, stim)


def _artifact_mask(sim, events):
    rec = sim.recording
    brightness = line_brightness(rec, chunk_frames=500)
    lines = line_times(rec.frame_times_s, brightness.shape[1], rec.line_period_s)
    return detect_light_artifacts(brightness, events, lines, rec.line_period_s)


def test_events_from_synth_triggers_match_truth(synth_stim):
    sim, _ = synth_stim
    events = _events(sim.truth)
    truth = sim.truth.events
    assert len(events) == len(truth)
    assert (events["condition"].to_numpy() == truth["condition"].to_numpy()).all()
    assert np.abs(events["onset_s"].to_numpy() - truth["onset_s"].to_numpy()).max() < sim.truth.line_period_s


def test_light_artifact_lines_detected_from_the_movie(synth_stim):
    sim, _ = synth_stim
    mask = _artifact_mask(sim, _events(sim.truth))
    truth = sim.truth.artifact_mask
    power = sim.truth.artifact_power[:, 0]
    strong = truth & (power >= 0.5)  # lines lit for at least ~10 % of their dwell at the lowest power
    assert mask[strong].mean() >= 0.99
    assert (mask & ~truth).sum() <= 0.01 * truth.sum()
    # streamed and in-memory brightness agree
    movie = sim.movie[:, 0, 0]
    np.testing.assert_allclose(
        line_brightness(sim.recording, chunk_frames=128), line_brightness_from_movie(movie)
    )


def _rois(sim, extracted) -> pd.DataFrame:
    truth = sim.truth
    return pd.DataFrame(
        {
            "roi_id": np.arange(truth.n_rois),
            "y": truth.centroids_yx[:, 0],
            "x": truth.centroids_yx[:, 1],
            "radius_px": extracted.radius_px,
        }
    )


def _scores(pred, real):
    tp = np.sum((pred != 0) & (pred == real))
    fp = np.sum((pred != 0) & (real == 0))
    fn = np.sum((pred == 0) & (real != 0))
    wrong = np.sum((pred != 0) & (real != 0) & (pred != real))
    return 2 * tp / (2 * tp + fp + fn + wrong), fp / max(np.sum(real == 0), 1)


def check_masked_chain(sim, extracted):
    """Responders found through the artifact mask; without the mask onsets come out early.

    Responders: neuropil-corrected, demixed traces, shuffled-event-times permutation test. (This
    test used the sham test on raw F and was flaky: 31 stim vs ~8 sham trials leave the sham
    test too little power for the weak inhibited cells, 11-14 of 16 found across seeds, and raw
    F of overlapping somata gave wrong-sign hits in 2 of 8 seeds.)
    """
    truth = sim.truth
    events = _events(truth)
    rois, window = _rois(sim, extracted), WindowParams(input_kind="raw")
    kwargs = dict(recording=sim.recording, window=window, stats=StatsParams(test="shuffle"))
    result = analyse_responses(
        extracted.demixed, None, rois, events, artifacts=ArtifactParams(margin_px=20), **kwargs
    )
    assert result.roi_mask.any() and not result.roi_mask.all()
    assert np.isnan(result.trials.dff).any()
    pred, real = result.table["direction"].to_numpy(), truth.responsive
    hit = (pred != 0) & (real != 0)
    assert hit.sum() >= 0.8 * (real != 0).sum(), f"{hit.sum()} of {(real != 0).sum()} responders found"
    assert np.all(pred[hit] == real[hit])
    # raw F (the light enters only the ROI's own lines): unmasked, the artifact looks like an
    # excitation at onset and latencies come out early; masked, they are late (10 %-of-peak on a train)
    resp = real != 0
    err = {}
    for name, params in (("masked", ArtifactParams()), ("unmasked", None)):
        table = analyse_responses(extracted.F, None, rois, events, artifacts=params, **kwargs).table
        err[name] = np.nanmedian(table["latency_s"].to_numpy()[resp] - truth.latency_s[resp])
    assert err["unmasked"] < 0 < err["masked"], err


def check_synth_fdr(sim, extracted):
    """The accuracy claim on the synth recording: F1 >= 0.95, FPR among non-responders <= 5 % (nominal FDR)."""
    truth = sim.truth
    result = analyse_responses(
        extracted.demixed,
        None,
        _rois(sim, extracted),
        _events(truth),
        recording=sim.recording,
        window=WindowParams(input_kind="raw"),
        stats=StatsParams(test="wilcoxon", alpha=0.05),
        artifacts=ArtifactParams(margin_px=20),
    )
    assert result.report["n_trials"] - result.report["n_sham_trials"] >= 30
    f1, fpr = _scores(result.table["direction"].to_numpy(), truth.responsive)
    assert f1 >= 0.95 and fpr <= 0.05, (f1, fpr)


def test_masked_chain_recovers_responders(synth_stim, synth_extracted):
    check_masked_chain(synth_stim[0], synth_extracted)


def test_neuropil_corrected_synth_fdr_and_f1(synth_stim, synth_extracted):
    check_synth_fdr(synth_stim[0], synth_extracted)


def test_false_positives_without_demixing_come_from_overlapping_footprints(synth_stim, synth_extracted):
    """Neuropil-corrected but not demixed: non-responders overlapping a responder 'respond'.

    The synth packs 40 PSF-blurred somata into 96x96 px; a ROI's weighted mean then holds up to
    ~50 % of a neighbour's light. These are real changes in the ROI's pixels, not a failure of
    the statistics: the false positives sit on ROIs with cross-talk, with the neighbour's sign.
    """
    sim = synth_stim[0]
    truth = sim.truth
    result = analyse_responses(
        synth_extracted.corrected,
        None,
        _rois(sim, synth_extracted),
        _events(truth),
        recording=sim.recording,
        window=WindowParams(input_kind="raw"),
        artifacts=ArtifactParams(margin_px=20),
    )
    pred, real = result.table["direction"].to_numpy(), truth.responsive
    false_pos = (pred != 0) & (real == 0)
    assert false_pos.any()
    assert np.median(synth_extracted.crosstalk[false_pos]) > 0.2
    assert np.mean(synth_extracted.crosstalk[false_pos] > 0.05) >= 0.75


def test_roi_mask_from_frame_mask_and_lines():
    lines = np.zeros((4, 10), dtype=bool)
    lines[1, 2] = True
    lines[3, 8] = True
    m = roi_artifact_mask(lines, [0, 7], [3, 9])
    np.testing.assert_array_equal(m, [[False, True, False, False], [False, False, False, True]])
    frames = roi_artifact_mask(lines.any(axis=1), [0, 7], [3, 9])
    np.testing.assert_array_equal(frames, [[False, True, False, True]] * 2)
    traces = np.ones((2, 4), dtype=np.float32)
    out = apply_mask(traces, m)
    assert np.isnan(out).sum() == 2 and np.isfinite(traces).all()  # input untouched
    with pytest.raises(Exception, match="does not match"):
        apply_mask(traces, m[:, :3])


def test_the_simulators_events_table_has_the_stim_contract_columns():
    # synth may import nothing but io (its own copy of the list); the two must not drift apart:
    # the contract columns first, in order, then synth's extras (kept by events tables)
    from imagingkit.stim.events import EVENT_COLUMNS
    from imagingkit.synth import stimulation

    assert list(stimulation.EVENT_COLUMNS[: len(EVENT_COLUMNS)]) == list(EVENT_COLUMNS)
    assert stimulation.EVENT_COLUMNS[len(EVENT_COLUMNS) :] == ["pulse_duration_s"]
