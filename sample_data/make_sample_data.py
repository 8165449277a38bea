"""Make the committed sample data: a functional recording with optogenetics and a spine series.

Run from the repository root: ``python sample_data/make_sample_data.py``. The
output is deterministic (fixed seeds) and small (< 5 MB); see README.md here.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from imagingkit.synth import MotionSpec, StimProtocol, simulate_dendrite_sessions
from imagingkit.synth.writers import write_dendrite_sessions, write_functional

HERE = Path(__file__).resolve().parent

FUNCTIONAL = dict(
    n_frames=600,
    shape_yx=(64, 64),
    n_cells=16,
    frame_rate_hz=10.0,
    pixel_size_um=1.5,
    indicator="GCaMP6f",
    seed=2026,
    spike_rate_hz=0.3,
    soma_photons=4.0,
    excited_fraction=0.3,
    inhibited_fraction=0.1,
    response_amplitude_dff=0.8,
    trigger_noise_v=0.0,
    motion=MotionSpec(
        random_walk_sigma_px=0.15,
        jump_probability=0.005,
        jump_size_px=2.0,
        max_shift_px=4.0,
        corrupt_frame_fraction=0.005,
    ),
    stim=StimProtocol(
        n_pulses=5,
        frequency_hz=20.0,
        pulse_duration_s=0.005,
        inter_trial_interval_s=2.5,
        iti_jitter_s=0.3,
        first_onset_s=1.5,
        power_levels_mw=(5.0, 10.0),
        sham_fraction=0.25,
    ),
)

STRUCTURAL = dict(
    n_sessions=5,
    times_h=(0, 1, 6, 24, 48),
    shape=(160, 160),
    n_dendrites=2,
    ndim=2,
    pixel_size_um=0.2,
    seed=2026,
)


def make(out: Path) -> None:
    functional = out / "functional_opto"
    structural = out / "spine_sessions"
    for folder in (functional, structural):
        shutil.rmtree(folder, ignore_errors=True)
    write_functional(
        functional, name="opto", format="scanimage", frames_per_file=300, zoom=2.0, n_threads=1, **FUNCTIONAL
    )
    write_dendrite_sessions(simulate_dendrite_sessions(**STRUCTURAL), structural, basename="session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-o", "--output", type=Path, default=HERE, help="output folder (default: sample_data/)"
    )
    make(parser.parse_args().output)


if __name__ == "__main__":
    main()
