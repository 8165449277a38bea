"""Detection accuracy against simulator ground truth, small mode, blank movies, borders."""

import numpy as np
import pytest

from imagingkit.neurons import DetectionParams, classify_rois, detect_rois, extract_traces
from imagingkit.neurons.evaluate import match_rois, trace_correlations, truth_masks
from imagingkit.synth import simulate_functional
from tests.neurons.fixtures import small_movie


@pytest.fixture(scope="module")
def moderate_sim():
    return simulate_functional(n_frames=3000, shape_yx=(128, 128), n_cells=30, snr=8.0, seed=2)


@pytest.fixture(scope="module")
def moderate_result(moderate_sim):
    rois = detect_rois(moderate_sim.recording, DetectionParams(diameter_px=12))
    return rois


def test_builtin_f1_at_moderate_snr(moderate_sim, moderate_result):
    masks = truth_masks(moderate_sim.truth.footprints)
    cells = moderate_result.subset(moderate_result.is_cell)
    match = match_rois(cells, masks)
    assert match.f1 >= 0.9, (match.precision, match.recall)


def test_dff_correlates_with_true_calcium(moderate_sim, moderate_result):
    cells = moderate_result.subset(moderate_result.is_cell)
    match = match_rois(cells, truth_masks(moderate_sim.truth.footprints))
    traces = extract_traces(moderate_sim.recording, cells)
    corr = trace_correlations(traces.dff, moderate_sim.truth.calcium, match.pairs)
    assert np.nanmedian(corr) > 0.85
    assert np.nanpercentile(corr, 25) > 0.7


def test_roi_properties_are_consistent(moderate_result):
    rois = moderate_result
    table = rois.to_dataframe()
    assert list(table.columns) == ["roi_id", "y", "x", "npix", "radius_px", "cell_prob", "is_cell"]
    assert ((table.cell_prob >= 0) & (table.cell_prob <= 1)).all()
    labels = rois.to_label_image()
    assert set(np.unique(labels)) <= set(range(rois.n_rois + 1))
    cells = rois.subset(rois.is_cell)
    # soma radius near 12 / 2 px
    assert 4.0 < np.median(cells.radius_px) < 8.0


def test_threshold_is_user_adjustable(moderate_sim, moderate_result):
    strict = detect_rois(moderate_sim.recording, DetectionParams(diameter_px=12), cell_threshold=0.99)
    np.testing.assert_allclose(strict.cell_prob, moderate_result.cell_prob)
    np.testing.assert_array_equal(strict.is_cell, strict.cell_prob >= 0.99)
    assert strict.is_cell.sum() < moderate_result.is_cell.sum()
    loose = classify_rois(moderate_result, 12.0, threshold=0.0)
    assert loose.is_cell.all()


def test_blank_movie_gives_empty_result():
    blank = np.full((200, 48, 48), 100, np.uint16)
    rois = detect_rois(blank, DetectionParams(frame_rate_hz=30.0))
    assert rois.n_rois == 0
    assert rois.to_label_image().shape == (48, 48) and not rois.to_label_image().any()
    assert len(rois.to_dataframe()) == 0


def test_border_roi_is_found_and_valid():
    movie, fp, calcium, _ = small_movie(n_frames=1500, noise_sd=5.0, centres_yx=((0, 30), (30, 63), (40, 20)))
    rois = detect_rois(movie, DetectionParams(diameter_px=10, frame_rate_hz=30.0))
    match = match_rois(rois, fp > 0)
    assert match.recall == 1.0
    assert all(y.min() >= 0 and y.max() < 64 for y in rois.ypix)


def test_small_mode_finds_boutons_precisely():
    sim = simulate_functional(n_frames=2000, shape_yx=(96, 96), n_cells=0, n_boutons=25, snr=8.0, seed=4)
    truth = sim.truth
    rois = detect_rois(sim.recording, DetectionParams(mode="small", diameter_px=4))
    cells = rois.subset(rois.is_cell)
    match = match_rois(cells, truth_masks(truth.footprints))
    assert match.recall >= 0.85, (match.precision, match.recall, cells.n_rois, len(truth.footprints))
    # held-out SNR testing keeps noise from fitting itself into tiny ROIs (precision was ~0.2 without it)
    assert match.precision >= 0.75, (match.precision, match.recall, cells.n_rois, len(truth.footprints))
    matched = cells.subset(match.pairs[:, 0])
    assert np.median(matched.npix) < 40


def test_small_mode_on_pure_noise_finds_almost_nothing():
    rng = np.random.default_rng(1)
    noise = rng.poisson(2.0, size=(2000, 64, 64)).astype(np.float32) * 600 + 80
    rois = detect_rois(noise, DetectionParams(mode="small", diameter_px=4, frame_rate_hz=30.0))
    assert rois.n_rois <= 2, rois.n_rois


def test_noise_ignores_clipped_samples_and_drops_saturated_pixels():
    from imagingkit.io.recording import from_array
    from imagingkit.neurons.builtin import bin_movie

    rng = np.random.default_rng(3)
    movie = rng.normal(1000.0, 20.0, size=(600, 16, 16))
    movie[:, :4, :4] += 64545.0  # clipped at the uint16 ceiling in ~70 % of the frames: no signal left
    movie[::10, 8, 8] = 70000.0  # clipped in 10 % of the frames: usable, clipped samples left out
    movie = np.clip(movie, 0, 65535).astype(np.uint16)
    params = DetectionParams(frame_rate_hz=30.0, tau_s=0.1)  # 3 frames per bin
    binned, _, bin_frames, noise = bin_movie(from_array(movie, "TYX", frame_rate_hz=30.0), params, 30.0, None)
    assert bin_frames == 3 and binned.shape == (200, 16, 16)
    assert np.isinf(noise[:4, :4]).all()
    expected = 20.0 / np.sqrt(3)
    assert np.isfinite(noise[4:, 4:]).all()
    np.testing.assert_allclose(np.median(noise[4:, 4:]), expected, rtol=0.05)
    np.testing.assert_allclose(noise[8, 8], expected, rtol=0.15)


def test_bad_frames_are_ignored_by_detection():
    movie, fp, _, _ = small_movie(n_frames=1500, noise_sd=5.0)
    bad = np.zeros(1500, bool)
    bad[::50] = True
    movie[bad] = 60000.0  # saturated garbage frames
    rois = detect_rois(movie, DetectionParams(diameter_px=10, frame_rate_hz=30.0), bad_frames=bad)
    assert match_rois(rois.subset(rois.is_cell), fp > 0).f1 == 1.0


def test_binned_movie_is_capped_in_memory():
    params = DetectionParams(max_binned_frames=1000, max_binned_mb=600)
    assert params.n_bins_cap((128, 128)) == 1000
    assert params.n_bins_cap((512, 512)) == 600
    assert DetectionParams(max_binned_mb=1).n_bins_cap((512, 512)) == 3


def test_progress_is_reported_per_chunk():
    movie, _, _, _ = small_movie(n_frames=300, noise_sd=5.0)
    calls = []
    detect_rois(
        movie,
        DetectionParams(diameter_px=10, frame_rate_hz=30.0, chunk_frames=128),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(128, 300), (256, 300), (300, 300)]
