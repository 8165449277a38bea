"""``imagingkit simulate functional|dendrites``: write simulated data with ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imagingkit.errors import ParameterError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated recording or dendrite sessions with their ground truth",
        description="Simulate data whose truth is known, in real file formats (deterministic for a seed).",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    func = kinds.add_parser("functional", help="functional movie with neurons, motion, optogenetics")
    func.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    func.add_argument("--seed", type=int, default=0)
    func.add_argument("--name", default="sim", help="base name of the files (default sim)")
    func.add_argument("--format", choices=("scanimage", "tiff", "sbx"), default="scanimage")
    func.add_argument("--n-frames", type=int, default=1000)
    func.add_argument("--shape", type=int, nargs=2, default=(128, 128), metavar=("Y", "X"))
    func.add_argument("--n-cells", type=int, default=30)
    func.add_argument("--n-planes", type=int, default=1)
    func.add_argument("--n-channels", type=int, default=1)
    func.add_argument("--frame-rate-hz", type=float, default=30.0)
    func.add_argument("--pixel-size-um", type=float, default=1.0)
    func.add_argument("--indicator", default="GCaMP6f", help="GCaMP6s, GCaMP6f or GCaMP8m")
    func.add_argument("--spike-rate-hz", type=float, default=0.5)
    func.add_argument("--snr", type=float, default=None)
    func.add_argument("--no-motion", action="store_true", help="no brain motion")
    func.add_argument("--nonrigid-px", type=float, default=0.0, help="non-rigid warp amplitude (px)")
    func.add_argument("--corrupt-fraction", type=float, default=0.0, help="fraction of corrupt frames")
    func.add_argument("--stim", action="store_true", help="add optogenetic stimulation")
    func.add_argument("--n-pulses", type=int, default=5)
    func.add_argument("--pulse-rate-hz", type=float, default=20.0)
    func.add_argument("--iti-s", type=float, default=4.0)
    func.add_argument("--iti-jitter-s", type=float, default=0.5)
    func.add_argument("--power-mw", type=float, nargs="+", default=(5.0, 10.0))
    func.add_argument("--sham-fraction", type=float, default=0.2)
    func.add_argument("--learning-gain", type=float, default=1.0)
    func.add_argument("--frames-per-file", type=int, default=1000)
    func.add_argument("--chunk-frames", type=int, default=32)
    func.add_argument("--threads", type=int, default=2)
    func.set_defaults(func=run_functional)

    dend = kinds.add_parser("dendrites", help="dendrite z-stacks or images over sessions with spine turnover")
    dend.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    dend.add_argument("--seed", type=int, default=0)
    dend.add_argument("--n-sessions", type=int, default=6)
    dend.add_argument("--times-h", type=float, nargs="+", default=(0, 1, 6, 24, 48, 96))
    dend.add_argument("--shape", type=int, nargs="+", default=(256, 256), help="Y X or Z Y X")
    dend.add_argument("--n-dendrites", type=int, default=2)
    dend.add_argument("--pixel-size-um", type=float, default=0.2)
    dend.add_argument("--z-step-um", type=float, default=1.0)
    dend.add_argument("--formation-rate", type=float, default=0.08)
    dend.add_argument("--elimination-rate-old", type=float, default=0.06)
    dend.add_argument("--elimination-rate-new", type=float, default=0.35)
    dend.add_argument("--noise", type=float, default=1.0)
    dend.set_defaults(func=run_dendrites)


def run_functional(args: argparse.Namespace) -> int:
    from imagingkit.synth import MotionSpec, StimProtocol
    from imagingkit.synth.writers import write_functional

    if args.n_frames < 1:
        raise ParameterError(f"--n-frames must be >= 1, got {args.n_frames}")
    motion = (
        None
        if args.no_motion
        else MotionSpec(nonrigid_amplitude_px=args.nonrigid_px, corrupt_frame_fraction=args.corrupt_fraction)
    )
    stim = None
    if args.stim:
        stim = StimProtocol(
            n_pulses=args.n_pulses,
            frequency_hz=args.pulse_rate_hz,
            inter_trial_interval_s=args.iti_s,
            iti_jitter_s=args.iti_jitter_s,
            power_levels_mw=tuple(args.power_mw),
            sham_fraction=args.sham_fraction,
        )
    files, truth = write_functional(
        args.output,
        name=args.name,
        format=args.format,
        chunk_frames=args.chunk_frames,
        frames_per_file=args.frames_per_file,
        n_threads=args.threads,
        n_frames=args.n_frames,
        shape_yx=tuple(args.shape),
        n_cells=args.n_cells,
        n_planes=args.n_planes,
        n_channels=args.n_channels,
        frame_rate_hz=args.frame_rate_hz,
        pixel_size_um=args.pixel_size_um,
        indicator=args.indicator,
        spike_rate_hz=args.spike_rate_hz,
        snr=args.snr,
        seed=args.seed,
        motion=motion,
        stim=stim,
        learning_gain=args.learning_gain,
    )
    print(
        json.dumps(
            {
                "files": [str(f) for f in files],
                "n_rois": truth.n_rois,
                "n_events": len(truth.events),
                "output": str(args.output),
            }
        )
    )
    return 0


def run_dendrites(args: argparse.Namespace) -> int:
    from imagingkit.synth import simulate_dendrite_sessions
    from imagingkit.synth.writers import write_dendrite_sessions

    shape = tuple(args.shape)
    dsim = simulate_dendrite_sessions(
        n_sessions=args.n_sessions,
        times_h=tuple(args.times_h),
        shape=shape,
        n_dendrites=args.n_dendrites,
        ndim=len(shape),
        pixel_size_um=args.pixel_size_um,
        z_step_um=args.z_step_um,
        seed=args.seed,
        noise=args.noise,
        formation_rate=args.formation_rate,
        elimination_rate_old=args.elimination_rate_old,
        elimination_rate_new=args.elimination_rate_new,
    )
    out = write_dendrite_sessions(dsim, args.output)
    present = dsim.truth[dsim.truth.present]
    print(
        json.dumps(
            {
                "images": [str(p) for p in out["images"]],
                "truth": str(out["truth"]),
                "n_spines_per_session": present.groupby("session").size().tolist(),
            }
        )
    )
    return 0
