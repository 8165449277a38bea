"""Fixtures of the spines tests: small rendered dendrites (fake_dendrite) and synth sessions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_dendrite import make_fake_dendrites  # noqa: E402


@pytest.fixture(scope="session")
def fake2d():
    return make_fake_dendrites(shape=(160, 160), kind="curved", seed=1)


@pytest.fixture(scope="session")
def fake_branch():
    return make_fake_dendrites(shape=(192, 192), kind="branch", seed=0)


@pytest.fixture(scope="session")
def fake3d():
    return make_fake_dendrites(shape=(128, 128), ndim=3, n_z=10, seed=0, up_down_fraction=0.4)


@pytest.fixture(scope="session")
def synth2d():
    from imagingkit.synth import simulate_dendrite_sessions

    return simulate_dendrite_sessions(n_sessions=1, times_h=(0,), shape=(256, 256), ndim=2, seed=2)


@pytest.fixture(scope="session")
def synth3d():
    from imagingkit.synth import simulate_dendrite_sessions

    return simulate_dendrite_sessions(n_sessions=1, times_h=(0,), shape=(21, 256, 256), ndim=3, seed=1)
