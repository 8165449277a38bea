"""Cross-session registration: point mapping both ways against simulator truth, failures, files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imagingkit.errors import ParameterError, RegistrationError
from imagingkit.motion import sessions
from imagingkit.motion.sessions import SessionParams, SessionTransform, register_sessions
from imagingkit.synth import simulate_dendrite_sessions

SEEDS = (0, 1, 2)  # the first seeds, not picked: benchmarks/bench_motion_sessions.py covers 12 + 4 more


def _simulate(seed: int):
    # drift 6 px s.d., rotation 6 degrees s.d. (seeds 0-2: 0.9 to 11.8 degrees), smooth warp, spine turnover
    return simulate_dendrite_sessions(
        n_sessions=3,
        times_h=(0, 24, 48),
        shape=(256, 256),
        seed=seed,
        drift_px=6.0,
        rotation_deg=6.0,
        warp_px=1.0,
    )


@pytest.fixture(scope="module")
def seeded_runs():
    return [(sim := _simulate(seed), register_sessions(sim.images)) for seed in SEEDS]


@pytest.fixture(scope="module")
def dendrite_sessions(seeded_runs):
    return seeded_runs[0][0]


@pytest.fixture(scope="module")
def transforms(seeded_runs):
    return seeded_runs[0][1]


def _truth_points(sim, session: int, margin_px: float = 8.0):
    """Spine positions in session 0 and where the true tissue transform puts them in ``session``."""
    p0 = sim.truth.loc[sim.truth.session == 0, ["y", "x"]].to_numpy()
    true = sim.transforms[session](sim.transforms[0].inverse(p0))
    size = sim.images[0].shape[0]
    inside = (
        (p0 > margin_px) & (p0 < size - margin_px) & (true > margin_px) & (true < size - margin_px)
    ).all(axis=1)
    return p0[inside], true[inside]


def test_point_mapping_both_ways_over_seeds(seeded_runs):
    rotations, errors = [], []
    for sim, transforms in seeded_runs:
        assert transforms[0].flow is None and transforms[0].rotation_deg == 0.0
        for s in range(1, len(sim.images)):
            p0, true = _truth_points(sim, s)
            assert len(p0) > 20
            forward = np.linalg.norm(transforms[s].map_points(p0, to="session") - true, axis=1)
            backward = np.linalg.norm(transforms[s].map_points(true, to="reference") - p0, axis=1)
            errors.append((np.sqrt(np.mean(forward**2)), np.sqrt(np.mean(backward**2))))
            rotations.append(sim.transforms[s].rotation_deg)
            assert abs(transforms[s].rotation_deg - rotations[-1]) < 1.0
    errors = np.array(errors)
    assert max(np.abs(rotations)) > 10.0  # the seeds cover rotations beyond 10 degrees
    # goal <= 0.5 px in every session; measured (simulator of this commit): median 0.25, max 0.33 px
    assert errors.max() <= 0.5, errors
    assert np.median(errors) <= 0.35, errors


def _rms_error_px(sim, transform, session: int) -> float:
    p0, true = _truth_points(sim, session)
    return float(np.sqrt(np.mean(np.sum((transform.map_points(p0) - true) ** 2, axis=1))))


def test_a_rotation_the_log_polar_estimate_misses_is_found():
    # seed 139 at the simulator's defaults (the tracking benchmark's sessions): session 1 is rotated by
    # 9.6 degrees, the log-polar estimate says 11.9, outside the correlation peak of the thin dendrites
    # (about 1.3 degrees either side); registered from there it was 10 px off
    sim = simulate_dendrite_sessions(n_sessions=5, times_h=(0, 1, 6, 24, 48), shape=(256, 256), seed=139)
    assert abs(sim.transforms[1].rotation_deg + 9.6) < 0.1
    t = register_sessions(sim.images[:2])[1]
    assert abs(t.rotation_deg - sim.transforms[1].rotation_deg) < 0.3
    assert _rms_error_px(sim, t, 1) < 0.5


def test_the_rotation_grid_recovers_a_wrong_estimate(dendrite_sessions, monkeypatch):
    sim = dendrite_sessions
    session = int(np.argmax(np.abs([t.rotation_deg for t in sim.transforms])))
    assert abs(sim.transforms[session].rotation_deg) > 4.0  # far from the 0-degree start
    estimate = sessions._rotation_scale_candidates
    monkeypatch.setattr(  # every log-polar estimate 4 degrees off
        sessions, "_rotation_scale_candidates", lambda ref, mov: [(a + 4.0, s) for a, s in estimate(ref, mov)]
    )
    images = [sim.images[0], sim.images[session]]
    t = register_sessions(images, params=SessionParams(nonrigid=False))[1]
    assert abs(t.rotation_deg - sim.transforms[session].rotation_deg) < 0.5
    assert _rms_error_px(sim, t, session) < 0.8
    # without the grid (its step beyond the search range) the fit, started 4 degrees off, fails
    coarse = SessionParams(nonrigid=False, max_rotation_deg=90, rotation_step_deg=90)
    with pytest.raises(RegistrationError, match="correlation"):
        register_sessions(images, params=coarse)


def test_nonrigid_step_helps(dendrite_sessions, transforms):
    sim = dendrite_sessions
    gains = []
    for s in range(1, len(sim.images)):
        p0, true = _truth_points(sim, s)
        rigid = dataclasses.replace(transforms[s], flow=None)
        err = lambda t, p0=p0, true=true: np.sqrt(np.mean(np.sum((t.map_points(p0) - true) ** 2, axis=1)))  # noqa: E731
        gains.append(err(rigid) - err(transforms[s]))
    assert np.mean(gains) > 0.05


def test_round_trip_and_warp_image(dendrite_sessions, transforms):
    pts = np.array([[30.0, 40.0], [128.0, 128.0], [200.0, 90.5]])
    t = transforms[2]
    np.testing.assert_allclose(t.map_points(t.map_points(pts), to="reference"), pts, atol=1e-3)
    ref = dendrite_sessions.images[0].astype(float)
    raw = dendrite_sessions.images[2].astype(float)
    warped = t.warp_image(raw)
    inner = (slice(30, -30), slice(30, -30))

    def corr(a, b):
        return np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1]

    assert corr(warped, ref) > corr(raw, ref) + 0.2


def test_save_load(tmp_path, transforms):
    path = tmp_path / "t.npz"
    transforms[1].save(path)
    loaded = SessionTransform.load(path)
    pts = np.array([[50.0, 60.0], [100.0, 20.0]])
    np.testing.assert_allclose(loaded.map_points(pts), transforms[1].map_points(pts), atol=1e-4)
    assert loaded.correlation == pytest.approx(transforms[1].correlation)


def test_brightness_change_is_tolerated(dendrite_sessions, transforms):
    images = dendrite_sessions.images
    dimmer = images[1].astype(np.float32) * 0.4 + 300.0  # different gain and offset
    t = register_sessions([images[0], dimmer], params=SessionParams(nonrigid=False))[1]
    p0, true = _truth_points(dendrite_sessions, 1)
    rigid = dataclasses.replace(transforms[1], flow=None)
    np.testing.assert_allclose(t.map_points(p0), rigid.map_points(p0), atol=0.3)


def test_different_field_of_view_fails(dendrite_sessions):
    other = simulate_dendrite_sessions(n_sessions=1, times_h=(0,), shape=(256, 256), seed=99).images[0]
    with pytest.raises(RegistrationError, match="session 1"):
        register_sessions([dendrite_sessions.images[0], other], params=SessionParams(nonrigid=False))


def test_bad_input():
    img = np.random.default_rng(0).random((64, 64))
    with pytest.raises(ParameterError, match="at least 2"):
        register_sessions([img])
    with pytest.raises(ParameterError, match="shape"):
        register_sessions([img, img[:32]])
    with pytest.raises(ParameterError, match="constant or has NaN"):
        register_sessions([img, np.zeros_like(img)])


def test_stacks_map_z():
    sim = simulate_dendrite_sessions(
        n_sessions=2, times_h=(0, 24), shape=(16, 128, 128), ndim=3, seed=3, drift_px=4.0, rotation_deg=5.0
    )
    t = register_sessions(sim.images)[1]
    p0 = sim.truth.loc[sim.truth.session == 0, ["y", "x", "z"]].to_numpy()
    true = sim.transforms[1](sim.transforms[0].inverse(p0))
    inside = ((p0[:, :2] > 8) & (p0[:, :2] < 120) & (true[:, :2] > 8) & (true[:, :2] < 120)).all(axis=1)
    err = t.map_points(p0[inside]) - true[inside]
    assert np.sqrt(np.mean(err[:, 2] ** 2)) < 0.3
    assert np.sqrt(np.mean(np.sum(err[:, :2] ** 2, axis=1))) < 0.75
    assert t.warp_image(sim.images[1]).shape == sim.images[1].shape
