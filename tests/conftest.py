"""Shared fixtures: the real-data folder and the optional-engine skips."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def realdata_path() -> Path:
    """Folder of real files: ``IMAGINGKIT_REALDATA`` or ``../shared/realdata``."""
    return Path(os.environ.get("IMAGINGKIT_REALDATA", ROOT.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real-data folder; tests using it skip with a reason when it is absent."""
    path = realdata_path()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set IMAGINGKIT_REALDATA)")
    return path


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("suite2p") is None:
        skip = pytest.mark.skip(reason="suite2p extra not installed (make test-suite2p runs these)")
        for item in items:
            if "suite2p" in item.keywords:
                item.add_marker(skip)
