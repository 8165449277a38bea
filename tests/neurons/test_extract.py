"""Extraction, neuropil, dF/F, NaN handling and deconvolution on hand-made footprints."""

import numpy as np
import pytest

from imagingkit.errors import DataError, ParameterError
from imagingkit.neurons import ExtractionParams, RoiSet, extract_traces, neuropil_masks
from imagingkit.neurons.deconvolve import deconvolve_traces
from imagingkit.neurons.dff import compute_dff, running_baseline
from imagingkit.neurons.extract import estimate_neuropil_coefficient
from tests.neurons.fixtures import disk_footprints, small_movie


def test_weighted_fluorescence_is_exact():
    rng = np.random.default_rng(1)
    movie = rng.normal(100, 10, (50, 20, 30)).astype(np.float32)
    ys, xs = np.array([3, 3, 4]), np.array([5, 6, 5])
    lam = np.array([1.0, 2.0, 1.0])
    rois = RoiSet.from_pixels((20, 30), [ys], [xs], [lam])
    traces = extract_traces(movie, rois, ExtractionParams(deconvolve=False), frame_rate_hz=10.0)
    expected = (movie[:, ys, xs] * lam).sum(axis=1) / lam.sum()
    np.testing.assert_allclose(traces.F[0], expected, rtol=1e-5)
    assert traces.F.dtype == np.float32 and traces.F.shape == (1, 50)
    np.testing.assert_allclose(traces.time_s, np.arange(50) / 10.0)


def test_neuropil_annulus_excludes_rois_and_gap():
    fp = disk_footprints((80, 80), [(40, 40), (40, 52)], 5)
    rois = RoiSet.from_masks(fp)
    params = ExtractionParams(neuropil_gap_px=2, neuropil_min_pixels=300)
    npil = neuropil_masks(rois, params).toarray().reshape(2, 80, 80)
    occupied = fp.sum(0) > 0
    for i in range(2):
        ring = npil[i] > 0
        assert not (ring & occupied).any()
        assert ring.sum() >= 300
        np.testing.assert_allclose(npil[i].sum(), 1.0, rtol=1e-5)
        yy, xx = np.nonzero(ring)
        from scipy import ndimage

        dist = ndimage.distance_transform_edt(fp[i] == 0)
        assert dist[yy, xx].min() > 2


def test_neuropil_subtraction_recovers_calcium():
    movie, fp, calcium, neuropil = small_movie(n_frames=900, noise_sd=2.0)
    rois = RoiSet.from_masks(fp)
    traces = extract_traces(movie, rois, ExtractionParams(neuropil_coefficient=1.0), frame_rate_hz=30.0)
    # neuropil is added to every pixel: Fneu tracks it, and F - Fneu - baseline tracks 100 * calcium
    for i in range(len(fp)):
        assert np.corrcoef(traces.Fneu[i], neuropil)[0, 1] > 0.95
        assert np.corrcoef(traces.dff[i], calcium[i])[0, 1] > 0.9


def test_bad_frames_are_nan_and_kept_out_of_baseline():
    movie, fp, calcium, _ = small_movie(n_frames=900, noise_sd=2.0)
    bad = np.zeros(900, bool)
    bad[100:130] = True
    movie[100:130] += 5000.0  # a huge artifact that must not leak into the baseline
    rois = RoiSet.from_masks(fp)
    traces = extract_traces(movie, rois, bad_frames=bad, frame_rate_hz=30.0)
    for arr in (traces.F, traces.Fneu, traces.dff, traces.spikes):
        assert np.isnan(arr[:, bad]).all()
        assert np.isfinite(arr[:, ~bad]).all()
    clean = extract_traces(
        np.where(bad[:, None, None], movie - 5000.0, movie), rois, bad_frames=bad, frame_rate_hz=30.0
    )
    np.testing.assert_allclose(traces.dff[:, ~bad], clean.dff[:, ~bad], atol=1e-4)
    np.testing.assert_allclose(traces.spikes[:, ~bad], clean.spikes[:, ~bad], atol=1e-3)


def test_running_baseline_ignores_nan():
    t = np.arange(3000)
    trace = 100 + 0.001 * t + np.where(t % 300 < 20, 50.0, 0.0)
    trace = trace[None].astype(float)
    trace[0, 1000:1100] = np.nan
    base = running_baseline(trace, 30.0, "maximin", window_s=20, smooth_s=0.1)
    assert np.isfinite(base).all()
    np.testing.assert_allclose(base[0, 1500], 101.5, atol=1.0)
    pct = running_baseline(trace, 30.0, "percentile", window_s=20, percentile=10)
    np.testing.assert_allclose(pct[0, 1500], 101.5, atol=1.0)
    dff, _ = compute_dff(trace, 30.0)
    assert np.isnan(dff[0, 1000:1100]).all()


def test_deconvolution_finds_spikes_and_keeps_nan():
    fs, tau = 30.0, 0.5
    g = np.exp(-1 / (tau * fs))
    spikes = np.zeros(600)
    spikes[[50, 200, 201, 400]] = 1.0
    c = np.zeros(600)
    for t in range(600):
        c[t] = (c[t - 1] * g if t else 0) + spikes[t]
    y = c + np.random.default_rng(0).normal(0, 0.05, 600)
    y[300:310] = np.nan
    s = deconvolve_traces(y[None], fs, tau)[0]
    assert np.isnan(s[300:310]).all()
    for t in (50, 200, 400):
        assert np.nansum(s[t - 1 : t + 3]) > 0.5
    quiet = np.r_[0:45, 60:195, 210:300, 320:395, 410:600]
    assert np.nansum(s[quiet]) < 0.5


def test_estimated_neuropil_coefficient():
    rng = np.random.default_rng(3)
    n = rng.normal(0, 10, 5000).cumsum() / 10 + 200
    activity = np.where(rng.random(5000) < 0.05, rng.exponential(40, 5000), 0.0)
    f = 50 + 0.8 * n + np.convolve(activity, np.exp(-np.arange(30) / 8))[:5000] + rng.normal(0, 1, 5000)
    coef = estimate_neuropil_coefficient(f[None], n[None])
    assert abs(coef[0] - 0.8) < 0.1


def test_empty_roi_set_and_shape_mismatch():
    movie = np.zeros((20, 10, 10), np.float32)
    traces = extract_traces(movie, RoiSet.from_pixels((10, 10), [], []), frame_rate_hz=5.0)
    assert traces.F.shape == (0, 20) and traces.spikes.shape == (0, 20)
    with pytest.raises(DataError, match="ROIs were defined on a"):
        extract_traces(movie, RoiSet.from_pixels((12, 10), [[1]], [[1]]))
    with pytest.raises(ParameterError, match="bad_frames"):
        extract_traces(movie, RoiSet.from_pixels((10, 10), [[1]], [[1]]), bad_frames=np.zeros(3, bool))


def test_roi_blocks_and_frame_sub_blocks_give_the_same_traces(monkeypatch):
    import imagingkit.neurons.extract as extract_module

    movie, fp, _, _ = small_movie(n_frames=300, noise_sd=5.0)
    rois = RoiSet.from_masks(fp)
    whole = extract_traces(movie, rois, ExtractionParams(chunk_frames=300), frame_rate_hz=30.0)
    monkeypatch.setattr(extract_module, "ROI_BLOCK", 1)
    monkeypatch.setattr(extract_module, "SUB_BLOCK_FRAMES", 7)
    blocked = extract_traces(movie, rois, ExtractionParams(chunk_frames=50), frame_rate_hz=30.0)
    for name in ("F", "Fneu", "dff", "spikes", "baseline"):
        np.testing.assert_allclose(getattr(blocked, name), getattr(whole, name), rtol=1e-5, atol=1e-5)


def _overlapping_movie(n_frames=1200, seed=3):
    """Two Gaussian somata 7 px apart (overlapping footprints), independent calcium, uniform neuropil."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    fp = np.stack([np.exp(-((yy - 32) ** 2 + (xx - cx) ** 2) / (2 * 3.5**2)) for cx in (28, 35)])
    fp[fp < 0.1] = 0.0
    calcium = np.stack([np.convolve(rng.random(n_frames) < 0.01, np.exp(-np.arange(60) / 15))[:n_frames]] * 2)
    calcium[1] = np.convolve(rng.random(n_frames) < 0.01, np.exp(-np.arange(60) / 15))[:n_frames]
    neuropil = 20 + 5 * np.sin(np.arange(n_frames) / 30)
    movie = 100 + neuropil[:, None, None] + np.einsum("nt,nyx->tyx", 200 * calcium, fp)
    movie += rng.normal(0, 2.0, movie.shape)
    return movie.astype(np.float32), fp, calcium


def test_demix_separates_overlapping_rois():
    movie, fp, calcium = _overlapping_movie()
    rois = RoiSet.from_masks(fp)
    assert (rois.weight_matrix() @ rois.weight_matrix().T).toarray()[0, 1] > 0  # they share pixels
    common = dict(neuropil_coefficient=1.0, deconvolve=False)
    plain = extract_traces(movie, rois, ExtractionParams(demix=False, **common), frame_rate_hz=30.0)
    demixed = extract_traces(movie, rois, ExtractionParams(demix=True, **common), frame_rate_hz=30.0)
    design = np.column_stack([calcium[0], calcium[1], np.ones(calcium.shape[1])])
    for i, j in ((0, 1), (1, 0)):
        # share of the neighbour's calcium in ROI i's corrected trace, relative to its own
        mixed = np.linalg.lstsq(design, plain.F[i] - plain.Fneu[i], rcond=None)[0]
        clean = np.linalg.lstsq(design, demixed.F[i] - demixed.Fneu[i], rcond=None)[0]
        assert mixed[j] / mixed[i] > 0.2  # weighted means are contaminated ...
        assert abs(clean[j] / clean[i]) < 0.02  # ... demixed traces are not
        assert np.corrcoef(demixed.F[i] - demixed.Fneu[i], calcium[i])[0, 1] > 0.99
        assert np.corrcoef(plain.F[i] - plain.Fneu[i], calcium[i])[0, 1] < 0.99
    np.testing.assert_array_equal(demixed.Fneu, plain.Fneu)  # neuropil traces unchanged


def test_demix_equals_per_pixel_least_squares():
    from scipy import linalg

    movie, fp, _ = _overlapping_movie(n_frames=40)
    rois = RoiSet.from_masks(fp)
    traces = extract_traces(
        movie, rois, ExtractionParams(neuropil_coefficient=0.0, deconvolve=False), frame_rate_hz=30.0
    )
    w = rois.weight_matrix().toarray().astype(np.float64)
    union = (w > 0).any(axis=0)
    u = (w / (w**2).sum(axis=1, keepdims=True))[:, union]  # footprints with w_j . u_j = 1
    pixels = movie.reshape(len(movie), -1)[:, union].astype(np.float64)
    expected = linalg.lstsq(u.T, pixels.T)[0]
    np.testing.assert_allclose(traces.F, expected, rtol=1e-4)


def test_demix_leaves_non_overlapping_rois_identical():
    movie, fp, _, _ = small_movie(n_frames=300, noise_sd=2.0)
    rois = RoiSet.from_masks(fp)
    bad = np.zeros(300, bool)
    bad[50:60] = True
    on = extract_traces(movie, rois, ExtractionParams(demix=True), bad_frames=bad, frame_rate_hz=30.0)
    off = extract_traces(movie, rois, ExtractionParams(demix=False), bad_frames=bad, frame_rate_hz=30.0)
    for name in ("F", "Fneu", "dff", "spikes", "baseline"):
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))


def test_demix_keeps_bad_frames_nan():
    movie, fp, _ = _overlapping_movie(n_frames=300)
    bad = np.zeros(300, bool)
    bad[100:120] = True
    traces = extract_traces(movie, RoiSet.from_masks(fp), bad_frames=bad, frame_rate_hz=30.0)
    assert np.isnan(traces.F[:, bad]).all() and np.isfinite(traces.F[:, ~bad]).all()
    assert np.isnan(traces.dff[:, bad]).all() and np.isfinite(traces.dff[:, ~bad]).all()


def test_progress_is_reported_per_chunk():
    movie, fp, _, _ = small_movie(n_frames=120, noise_sd=5.0)
    calls = []
    extract_traces(
        movie,
        RoiSet.from_masks(fp),
        ExtractionParams(chunk_frames=50),
        frame_rate_hz=30.0,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(50, 120), (100, 120), (120, 120)]
