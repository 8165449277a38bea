"""Fixtures of the napari plugin tests: small simulated recordings and structural sessions on disk.

Every test module here starts with ``pytest.importorskip("napari")`` so the folder
skips cleanly without the napari extra; the viewer runs under Xvfb (pytest-xvfb).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("napari") is None:  # nothing below is needed without napari
    collect_ignore_glob = ["test_*.py"]


def wait_for(qtbot, widget, timeout_ms: int = 60_000) -> None:
    """Wait until the widget's worker thread finished, then fail on any error it reported."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout_ms)
    assert widget.last_error is None, widget.last_error


@pytest.fixture(scope="session")
def functional_sim():
    """600 frames (20 s at 30 Hz) of 96x96 px of 1.5 µm, 12 cells, brain motion (std ~2 px)."""
    from imagingkit.synth import MotionSpec, simulate_functional

    return simulate_functional(
        n_frames=600,
        shape_yx=(96, 96),
        n_cells=12,
        seed=3,
        pixel_size_um=1.5,
        frame_rate_hz=30.0,
        motion=MotionSpec(random_walk_sigma_px=0.5, restoring=0.05, jump_probability=0.005),
    )


@pytest.fixture(scope="session")
def functional_tiff(functional_sim, tmp_path_factory):
    """The moving movie as an ImageJ TIFF with its pixel size (µm) and frame interval."""
    import tifffile

    path = tmp_path_factory.mktemp("functional") / "func_00001.tif"
    tifffile.imwrite(
        path,
        functional_sim.movie[:, 0, 0],
        imagej=True,
        resolution=(1 / 1.5, 1 / 1.5),
        metadata={"axes": "TYX", "unit": "um", "finterval": 1 / 30.0},
    )
    return path


@pytest.fixture(scope="session")
def stim_sim():
    """1200 frames (40 s at 30 Hz) of 96x96 px, 12 still cells, ~15 optogenetic trials (3 sham)."""
    from imagingkit.synth import StimProtocol, simulate_functional

    return simulate_functional(
        n_frames=1200,
        shape_yx=(96, 96),
        n_cells=12,
        seed=3,
        pixel_size_um=1.5,
        frame_rate_hz=30.0,
        response_amplitude_dff=1.0,
        stim=StimProtocol(inter_trial_interval_s=2.5, iti_jitter_s=0.2),
    )


@pytest.fixture(scope="session")
def stim_files(stim_sim, tmp_path_factory):
    """The stimulation movie as a ScanImage 2016 TIFF (line period, bidirectional) plus its truth files.

    Returns a dict: ``movie`` (first TIFF), ``events`` (events CSV), ``triggers`` (an ``.npz`` with
    ``traces``, ``rate_hz``, ``channels``: the layout :func:`imagingkit.stim.read_trigger_file` reads).
    """
    from imagingkit.synth.writers import write_functional_truth, write_scanimage_tiff_series

    folder = tmp_path_factory.mktemp("stim")
    files = write_scanimage_tiff_series(stim_sim.recording, folder, "stim", frames_per_file=2000)
    truth = write_functional_truth(stim_sim.truth, folder, "stim")
    triggers = folder / "triggers.npz"
    t = stim_sim.truth
    np.savez(triggers, traces=t.triggers, rate_hz=t.trigger_rate_hz, channels=np.array(t.trigger_channels))
    return {"movie": files[0], "events": truth["events"], "triggers": triggers}


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, float).ravel() - np.mean(a)
    b = np.asarray(b, float).ravel() - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="session")
def dendrite_sim():
    """Three 2-D sessions (0, 1, 6 h) of 128x128 px at 0.2 µm of one dendrite with spine turnover."""
    from imagingkit.synth import simulate_dendrite_sessions

    return simulate_dendrite_sessions(
        n_sessions=3, times_h=(0, 1, 6), shape=(128, 128), n_dendrites=1, ndim=2, pixel_size_um=0.2, seed=0
    )
