"""Fixtures for the motion tests: small simulated movies with ground truth (cached per session)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from imagingkit.synth import MotionSpec, simulate_functional


@pytest.fixture(scope="session")
def rigid_sim():
    """300 frames of 128x128 with a random walk, two jumps and ~3 % corrupt frames."""
    motion = MotionSpec(random_walk_sigma_px=0.3, jump_probability=0.01, corrupt_frame_fraction=0.03)
    return simulate_functional(n_frames=300, shape_yx=(128, 128), n_cells=30, seed=1, motion=motion)


@pytest.fixture(scope="session")
def warp_sim():
    """200 frames of 256x256 with rigid motion plus a smooth non-rigid warp."""
    motion = MotionSpec(
        random_walk_sigma_px=0.2,
        nonrigid_amplitude_px=6.0,
        nonrigid_scale_px=40.0,
        nonrigid_timescale_frames=10.0,
    )
    return simulate_functional(n_frames=200, shape_yx=(256, 256), n_cells=60, seed=2, motion=motion)


def fourier_shifted(image: np.ndarray, shifts_yx: np.ndarray, photons: float, seed: int = 0) -> np.ndarray:
    """(T, Y, X) copies of ``image`` moved by ``shifts_yx`` (house convention) with Poisson noise."""
    rng = np.random.default_rng(seed)
    spec = np.fft.fft2(image)
    frames = np.stack([np.real(np.fft.ifft2(ndi.fourier_shift(spec, s))) for s in shifts_yx])
    frames = np.clip(frames, 0, None) / image.max() * photons
    return rng.poisson(frames).astype(np.float32)


@pytest.fixture(scope="session")
def camera_image() -> np.ndarray:
    from skimage import data, transform

    return transform.resize(data.camera().astype(float), (128, 128), anti_aliasing=True) + 10.0


@pytest.fixture(scope="session")
def opto_sim():
    """The opto sample movie (sample_data/make_sample_data.py settings): 600 frames of 64x64 at 10 Hz,
    trains of 5 light pulses (artifact lines in ~50 frames) and 3 corrupt frames."""
    from imagingkit.synth import StimProtocol

    motion = MotionSpec(
        random_walk_sigma_px=0.15, jump_probability=0.005, jump_size_px=2.0, max_shift_px=4.0,
        corrupt_frame_fraction=0.005,
    )  # fmt: skip
    stim = StimProtocol(
        n_pulses=5, frequency_hz=20.0, pulse_duration_s=0.005, inter_trial_interval_s=2.5, iti_jitter_s=0.3,
        first_onset_s=1.5, power_levels_mw=(5.0, 10.0), sham_fraction=0.25,
    )  # fmt: skip
    return simulate_functional(
        n_frames=600, shape_yx=(64, 64), n_cells=16, frame_rate_hz=10.0, pixel_size_um=1.5, indicator="GCaMP6f",
        seed=2026, spike_rate_hz=0.3, soma_photons=4.0, excited_fraction=0.3, inhibited_fraction=0.1,
        response_amplitude_dff=0.8, trigger_noise_v=0.0, motion=motion, stim=stim,
    )  # fmt: skip
