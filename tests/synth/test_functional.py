"""The functional simulator produces what was asked, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import ParameterError
from imagingkit.synth import MotionSpec, StimProtocol, simulate_functional, simulate_functional_sessions
from imagingkit.synth.indicators import INDICATORS, spikes_to_calcium
from imagingkit.synth.noise import frame_key, photons_to_adu, poisson


@pytest.fixture(scope="module")
def sim():
    return simulate_functional(
        n_frames=900,
        shape_yx=(96, 96),
        n_cells=25,
        seed=3,
        spike_rate_hz=0.8,
        motion=MotionSpec(random_walk_sigma_px=0.3, jump_probability=0.01, corrupt_frame_fraction=0.01),
        stim=StimProtocol(n_pulses=5, frequency_hz=20, inter_trial_interval_s=3.0, sham_fraction=0.25),
        n_dendrites=3,
        n_boutons=4,
    )


def test_shapes_and_recording_metadata(sim):
    t = sim.truth
    assert sim.movie.shape == (900, 1, 1, 96, 96) and sim.movie.dtype == np.uint16
    assert t.footprints.shape == (32, 96, 96) and t.calcium.shape == (32, 900)
    assert list(t.roi_kind).count("soma") == 25 and list(t.roi_kind).count("bouton") == 4
    rec = sim.recording
    assert rec.shape == sim.movie.shape and rec.frame_rate_hz == 30.0
    assert rec.pixel_size_um == (1.0, 1.0) and rec.line_period_s == pytest.approx(t.line_period_s)
    assert np.array_equal(rec.data[5], sim.movie[5])


def test_drift_and_brightness_bounded_for_short_movies():
    """Slow drift is a small modulation whatever the movie length (regression: it was normalised per movie)."""
    for n in (20, 2000):
        sim = simulate_functional(n_frames=n, shape_yx=(32, 32), n_cells=3, seed=0)
        assert 0.85 < sim.truth.drift.min() and sim.truth.drift.max() < 1.1
        assert np.mean(sim.movie == 65535) < 0.001


def test_spike_rate_matches_request(sim):
    rates = sim.truth.spike_rates_hz
    duration = 900 / 30.0
    total = sum(len(s) for s in sim.truth.spike_times_s)
    assert total / (duration * len(rates)) == pytest.approx(0.8, rel=0.25)
    assert all(np.all((s >= 0) & (s < duration)) for s in sim.truth.spike_times_s)


def test_calcium_kernel_is_exact_at_subframe_times():
    ind = INDICATORS["GCaMP6f"]
    times = np.arange(100) / 30.0 + 0.0123
    c = spikes_to_calcium(np.array([0.5, 1.2]), times, ind)
    expected = ind.kernel(times - 0.5) + ind.kernel(times - 1.2)
    np.testing.assert_allclose(c, expected, atol=1e-9)
    assert c.max() <= 2 * ind.peak_dff_per_spike


def test_shift_sign_convention():
    """Content at (y, x) in the reference appears at (y + dy, x + dx) in the frame."""
    sim = simulate_functional(
        n_frames=200,
        shape_yx=(64, 64),
        n_cells=12,
        seed=1,
        soma_photons=40,
        motion=MotionSpec(random_walk_sigma_px=0.6, max_shift_px=5),
        spike_rate_hz=0.01,
    )
    from scipy.ndimage import center_of_mass

    t = sim.truth
    ref = t.mean_image[0, 0]
    for f in np.argsort(np.abs(t.shifts_yx).sum(1))[-5:]:
        frame = sim.movie[f, 0, 0].astype(float)
        # cross-correlation peak in Fourier space
        spec = np.fft.fft2(frame - frame.mean()) * np.conj(np.fft.fft2(ref - ref.mean()))
        xc = np.fft.fftshift(np.real(np.fft.ifft2(spec)))
        peak = np.array(np.unravel_index(np.argmax(xc), xc.shape)) - 32
        assert np.all(np.abs(peak - t.shifts_yx[f]) <= 1.0), (peak, t.shifts_yx[f])
    assert center_of_mass(t.labels > 0) is not None


def test_stim_truth(sim):
    t = sim.truth
    ev = t.events
    assert list(ev.columns[:9]) == [
        "event_id",
        "trial",
        "onset_s",
        "duration_s",
        "n_pulses",
        "frequency_hz",
        "power_mw",
        "site",
        "condition",
    ]
    assert (ev.condition == "sham").mean() == pytest.approx(0.25, abs=0.06)
    assert np.all(ev.loc[ev.condition == "sham", "power_mw"] == 0)
    assert np.allclose(ev.duration_s, 4 / 20 + 0.005)
    # artifact lines only during pulses: total artifact line time ~ pulses x pulse duration
    n_pulses_on = (ev.condition == "stim").sum() * 5
    lines_hit = t.artifact_mask.sum()
    assert lines_hit == pytest.approx(n_pulses_on * 0.005 / t.line_period_s, rel=0.05)
    # excited ROIs respond in stim trials, not in sham trials
    exc = np.flatnonzero(t.responsive == 1)
    assert exc.size >= 5 and np.all(t.latency_s[exc] > 0)
    stim_cols = np.flatnonzero(ev.condition == "stim")
    sham_cols = np.flatnonzero(ev.condition == "sham")
    assert np.all(t.trial_amplitudes[:, sham_cols] == 0)
    assert np.mean(t.trial_amplitudes[exc][:, stim_cols] > 0) > 0.8
    assert np.all(t.trial_amplitudes[t.responsive == -1][:, stim_cols] <= 0)


def test_trigger_trace_matches_frames_and_pulses(sim):
    t = sim.truth
    rate = t.trigger_rate_hz
    clock = t.triggers[:, t.trigger_channels.index("frame_clock")] > 2.5
    rising = np.flatnonzero(clock[1:] & ~clock[:-1]) + 1
    first = 1 if clock[0] else 0
    assert rising.size + first == 900
    np.testing.assert_allclose(rising / rate, t.frame_times_s[first:, 0], atol=1.5 / rate)
    stim = t.triggers[:, t.trigger_channels.index("stim")] > 0.5
    onsets = np.flatnonzero(stim[1:] & ~stim[:-1]) + 1
    np.testing.assert_allclose(onsets / rate, t.pulses.start_s.to_numpy(), atol=1.5 / rate)


def test_response_visible_in_movie():
    sim = simulate_functional(
        n_frames=600,
        shape_yx=(64, 64),
        n_cells=10,
        seed=5,
        spike_rate_hz=0.05,
        soma_photons=30,
        excited_fraction=0.5,
        response_amplitude_dff=1.0,
        stim=StimProtocol(inter_trial_interval_s=2.5, sham_fraction=0.0),
    )
    t = sim.truth
    k = int(np.flatnonzero(t.responsive == 1)[0])
    trace = sim.movie[:, 0, 0][:, t.labels == k + 1].mean(axis=1)
    peaks = [int(np.searchsorted(t.frame_times_s[:, 0], on + 0.2)) for on in t.events.onset_s]
    before = [int(np.searchsorted(t.frame_times_s[:, 0], on - 0.2)) for on in t.events.onset_s]
    assert trace[peaks].mean() > 1.3 * trace[before].mean()


def test_learning_sessions_share_cells_and_scale_amplitude():
    sims = simulate_functional_sessions(
        3,
        1.5,
        seed=2,
        n_frames=300,
        shape_yx=(64, 64),
        n_cells=10,
        stim=StimProtocol(inter_trial_interval_s=2.5),
    )
    a0, a2 = sims[0].truth, sims[2].truth
    np.testing.assert_array_equal(a0.labels, a2.labels)
    np.testing.assert_array_equal(a0.responsive, a2.responsive)
    resp = a0.responsive != 0
    np.testing.assert_allclose(a2.response_amplitude[resp] / a0.response_amplitude[resp], 2.25)
    assert a2.learning_factor == pytest.approx(2.25)
    assert not np.array_equal(sims[0].movie, sims[1].movie)


def test_determinism_and_seed():
    kw = dict(
        n_frames=50, shape_yx=(48, 48), n_cells=5, motion=MotionSpec(), stim=StimProtocol(first_onset_s=0.3)
    )
    a, b = simulate_functional(seed=7, **kw), simulate_functional(seed=7, **kw)
    c = simulate_functional(seed=8, **kw)
    np.testing.assert_array_equal(a.movie, b.movie)
    assert not np.array_equal(a.movie, c.movie)
    threaded = simulate_functional(seed=7, n_threads=2, **kw)
    np.testing.assert_array_equal(a.movie, threaded.movie)


def test_multiplane_multichannel_int16():
    sim = simulate_functional(
        n_frames=20,
        shape_yx=(48, 48),
        n_cells=8,
        n_planes=3,
        n_channels=2,
        dtype="int16",
        offset_adu=-50,
        seed=0,
    )
    assert sim.movie.shape == (20, 3, 2, 48, 48) and sim.movie.dtype == np.int16
    assert sim.movie.min() < 0
    assert sim.recording.volume_rate_hz == pytest.approx(10.0)
    assert set(np.unique(sim.truth.roi_plane)) <= {0, 1, 2}


def test_nonrigid_field_and_bad_frames():
    sim = simulate_functional(
        n_frames=100,
        shape_yx=(64, 64),
        n_cells=5,
        seed=0,
        motion=MotionSpec(nonrigid_amplitude_px=2.0, corrupt_frame_fraction=0.05),
    )
    t = sim.truth
    field = t.displacement_field(10)
    assert field.shape == (2, 64, 64)
    nonrigid = field - t.shifts_yx[10][:, None, None]
    assert 0 < np.abs(nonrigid).max() <= 2.0 + 1e-6
    assert t.bad_frames.sum() == 5 and set(t.corrupt_kind[t.bad_frames]) <= {"dropout", "tear", "flash"}


def test_poisson_sampler_moments():
    for i, lam in enumerate((0.2, 3.3, 17.0, 60.0)):
        x = poisson(np.full(200_000, lam, np.float32), frame_key(i))
        assert x.mean() == pytest.approx(lam, rel=0.01)
        assert x.var() == pytest.approx(lam, rel=0.03)
        assert np.mean(x == 0) == pytest.approx(np.exp(-lam), abs=0.005)


def test_detector_noise_model_and_numpy_fallback():
    photons = np.full((256, 256), 4.0, np.float32)
    key = frame_key(5)
    adu = photons_to_adu(photons, key, 50.0, 100.0, 10.0, 0.5).astype(float)
    assert adu.mean() == pytest.approx(100 + 50 * 4, rel=0.01)
    assert adu.var() == pytest.approx(50**2 * 1.25 * 4 + 10**2, rel=0.05)
    same = photons_to_adu(photons, key, 50.0, 100.0, 10.0, 0.5, use_numba=False)
    np.testing.assert_array_equal(adu, same)


def test_bad_parameters_raise():
    with pytest.raises(ParameterError, match="unknown simulate_functional option"):
        simulate_functional(n_frames=10, not_a_field=1)
    with pytest.raises(ParameterError, match="indicator"):
        simulate_functional(n_frames=10, indicator="GCaMP99")
    with pytest.raises(ParameterError, match="pulse_duration_s"):
        StimProtocol(pulse_duration_s=0.1, frequency_hz=20)


def test_responses_follow_each_rois_subframe_time():
    """Evoked dF/F equals the train response evaluated at frame start + centroid row x line period."""
    from imagingkit.synth.indicators import get_indicator

    stim = StimProtocol(
        n_pulses=3,
        frequency_hz=10.0,
        inter_trial_interval_s=2.0,
        iti_jitter_s=0.1,
        sham_fraction=0.0,
        power_levels_mw=(8.0,),
    )
    sim = simulate_functional(
        n_frames=200,
        shape_yx=(128, 64),
        n_cells=12,
        seed=3,
        spike_rate_hz=0.0,
        frame_rate_hz=10.0,
        response_cv=0.0,
        response_failure_probability=0.0,
        excited_fraction=1.0,
        inhibited_fraction=0.0,
        stim=stim,
        indicator="GCaMP8m",
    )
    t = sim.truth
    ind = get_indicator("GCaMP8m")
    fine = np.arange(0, 3.0, 1e-4)
    pulses = np.arange(3) / 10.0
    g = ind.kernel(fine[:, None] - pulses[None]).sum(1)
    g /= g.max()
    times = t.roi_sample_times_s()
    for k in np.argsort(t.centroids_yx[:, 0])[[0, -1]]:  # top-most and bottom-most ROI
        expected = np.zeros(200)
        for onset in t.events.onset_s:
            expected += t.response_amplitude[k] * np.interp(
                times[k] - onset - t.latency_s[k], fine, g, left=0, right=0
            )
        np.testing.assert_allclose(t.calcium[k], expected, atol=2e-3 * t.response_amplitude[k])
    # the bottom ROI is sampled later within each frame than the top one
    top, bottom = np.argsort(t.centroids_yx[:, 0])[[0, -1]]
    assert t.roi_time_offset_s[bottom] - t.roi_time_offset_s[top] == pytest.approx(
        (t.centroids_yx[bottom, 0] - t.centroids_yx[top, 0]) * t.line_period_s
    )
