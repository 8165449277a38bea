"""Sample data contributions: the functional and structural recordings of ``sample_data/``.

The files are made by ``sample_data/make_sample_data.py`` (imagingkit.synth writers): a
ScanImage-style functional TIFF series with optogenetic stimulation, and a structural series
of dendrite sessions (``sessions.csv`` lists them with their times). They open through the same
readers as real files. Where the folder is not shipped (an installed wheel), the same
simulators make a small version in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.io import open_recording

from ._reader import recording_layers

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


def _functional_file(root: Path) -> Path | None:
    """The first TIFF of the functional sample (path mentions 'func'), if present."""
    if not root.is_dir():
        return None
    hits = sorted(p for p in root.rglob("*.tif") if "func" in p.relative_to(root).as_posix().lower())
    return hits[0] if hits else None


def _structural_sessions(root: Path) -> pd.DataFrame | None:
    """``sessions.csv`` of the structural sample (columns session, time_h, file), with absolute paths."""
    if not root.is_dir():
        return None
    for table_path in sorted(root.rglob("sessions.csv")):
        table = pd.read_csv(table_path)
        if {"session", "time_h", "file"} <= set(table.columns):
            table["path"] = [table_path.parent / f for f in table["file"]]
            return table.sort_values("session").reset_index(drop=True)
    return None


def sample_functional() -> list[tuple]:
    """The functional sample recording, lazily, with its micrometre scale."""
    path = _functional_file(SAMPLE_DIR)
    if path is not None:
        return recording_layers(open_recording(path), "sample functional")
    from imagingkit.synth import StimProtocol, simulate_functional

    sim = simulate_functional(n_frames=600, shape_yx=(128, 128), n_cells=20, seed=0, stim=StimProtocol())
    return recording_layers(sim.recording, "sample functional (simulated)")


def sample_structural() -> list[tuple]:
    """One image layer per structural session, named with its time in hours."""
    sessions = _structural_sessions(SAMPLE_DIR)
    layers = []
    if sessions is not None:
        for row in sessions.itertuples():
            rec = open_recording(row.path)
            image = np.asarray(rec.data[0, :, 0])  # (Z, Y, X): one time point, first channel
            image = image[0] if image.shape[0] == 1 else image
            py, px = rec.pixel_size_um or (1.0, 1.0)
            scale = (py, px) if image.ndim == 2 else (rec.z_step_um or 1.0, py, px)
            layers.append(
                (image, {"name": f"session {row.session} ({row.time_h:g} h)", "scale": scale}, "image")
            )
        return layers
    from imagingkit.synth import simulate_dendrite_sessions

    dsim = simulate_dendrite_sessions(n_sessions=4, times_h=(0, 1, 6, 24), shape=(192, 192), seed=0)
    for s, image in enumerate(dsim.images):
        layers.append(
            (
                image,
                {
                    "name": f"session {s} ({dsim.times_h[s]:g} h, simulated)",
                    "scale": (dsim.pixel_size_um,) * 2,
                },
                "image",
            )
        )
    return layers
