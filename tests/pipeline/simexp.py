"""Small simulated experiments written to disk in real formats, with their truth, for pipeline tests.

Each animal has functional sessions of the same cells (``simulate_functional_sessions``
semantics: ``cell_seed`` fixed, learning gain per session) written as ScanImage TIFF series
with raw trigger files, and structural sessions of the same dendrites
(``simulate_dendrite_sessions``) written as ImageJ TIFFs. :func:`write_experiment` returns
the config path and the truth per session.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.synth import MotionSpec, StimProtocol, simulate_dendrite_sessions
from imagingkit.synth.writers import write_dendrite_sessions, write_functional

#: Small sizes: the whole 2 x 3 experiment runs in well under a minute.
FUNCTIONAL = dict(
    n_frames=900,
    shape_yx=(128, 128),
    n_cells=25,
    frame_rate_hz=30.0,
    excited_fraction=0.4,
    inhibited_fraction=0.0,
    response_amplitude_dff=1.0,
    motion=MotionSpec(random_walk_sigma_px=0.1, max_shift_px=3.0),
    stim=StimProtocol(inter_trial_interval_s=2.3, iti_jitter_s=0.1, first_onset_s=1.2, sham_fraction=0.15),
)
STRUCTURAL = dict(shape=(256, 256), n_dendrites=2, drift_px=3.0, rotation_deg=1.0, warp_px=0.5)
GAIN_PER_SESSION = 1.3


@dataclasses.dataclass
class SessionTruth:
    animal: str
    session: str
    time_h: float
    responsive: np.ndarray  # +1 / 0 per cell
    centroids_yx: np.ndarray  # (n_cells, 2) pixels
    n_cells: int
    learning_factor: float
    spines: pd.DataFrame  # structural truth rows of this session


def _daq_file(synth_triggers: Path) -> Path:
    """The synth trigger file re-saved with the key ``traces`` that ``stim.read_trigger_file`` reads.

    (synth writes the (n_samples, n_channels) array as ``triggers``; the stim reader expects
    ``traces``: reported to both rooms.)
    """
    with np.load(synth_triggers) as data:
        arrays = {"traces": data["triggers"], "rate_hz": data["rate_hz"], "channels": data["channels"]}
    path = synth_triggers.with_name("daq.npz")
    np.savez(path, **arrays)
    return path


def write_experiment(
    root: Path,
    n_animals: int = 2,
    times_h: tuple[float, ...] = (0.0, 24.0, 48.0),
    structural: bool = True,
    functional: dict | None = None,
    seed: int = 0,
) -> tuple[Path, list[SessionTruth]]:
    """Write the files and ``experiment.toml`` under ``root``; return its path and the truth."""
    root = Path(root)
    spec = {**FUNCTIONAL, **(functional or {})}
    lines = ['[experiment]\nname = "simulated"\n']
    truths: list[SessionTruth] = []
    for a in range(n_animals):
        animal = f"m{a + 1:02d}"
        dsim = None
        if structural:
            dsim = simulate_dendrite_sessions(
                n_sessions=len(times_h), times_h=times_h, seed=seed + 100 + a, **STRUCTURAL
            )
            dfiles = write_dendrite_sessions(dsim, root / animal / "structural")
        for s, time_h in enumerate(times_h):
            sid = f"s{s}"
            folder = root / animal / sid
            gain = GAIN_PER_SESSION**s
            files, truth = write_functional(
                folder, name="func", format="scanimage", seed=seed + 10 * a + s, cell_seed=seed + a,
                session_index=s, learning_gain=gain, **spec,
            )  # fmt: skip
            entry = [
                "[[sessions]]",
                f'animal = "{animal}"',
                f'id = "{sid}"',
                f"time_h = {time_h}",
                f'functional = "{files[0].relative_to(root).as_posix()}"',
                f'triggers = "{_daq_file(folder / "func_triggers.npz").relative_to(root).as_posix()}"',
            ]
            spines = pd.DataFrame()
            if dsim is not None:
                entry.append(f'structural = "{dfiles["images"][s].relative_to(root).as_posix()}"')
                spines = dsim.truth[dsim.truth["session"] == s]
            lines.append("\n".join(entry) + "\n")
            truths.append(
                SessionTruth(
                    animal,
                    sid,
                    time_h,
                    truth.responsive,
                    truth.centroids_yx,
                    len(truth.responsive),
                    float(truth.learning_factor),
                    spines,
                )
            )
    for a in range(n_animals):
        lines.append(f'[subjects.m{a + 1:02d}]\nage = "P90D"\nsex = "F"\n')
    # the simulated light command is 5 V at the highest power, 10 mW
    lines.append("[parameters.stim]\npower_mw_per_unit = 2.0\n")
    config = root / "experiment.toml"
    config.write_text("\n".join(lines))
    return config, truths
