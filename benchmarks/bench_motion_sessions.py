"""Cross-session point-mapping accuracy over many simulated seeds (imagingkit.motion.register_sessions).

For each seed, ``simulate_dendrite_sessions`` makes sessions with drift, rotation
and a smooth warp; every session is registered to session 0 and the spine
positions of session 0 are mapped into each session and back, compared with the
simulator's true tissue transform. Reported per session: RMS error (px) both
ways; summary: median, 95th percentile and max over all sessions, for 2-D images
and 3-D stacks. Saves ``benchmarks/results/bench_motion_sessions.json``.

Stacks are run at two field sizes, 16 x 128 x 128 and 16 x 256 x 256, and 2-D images also at
128 x 128: a smaller field holds fewer dendrites to constrain the warp, and that (not the third
dimension) is what put 4 of 12 stacks over 0.5 px at 128 x 128.

    python benchmarks/bench_motion_sessions.py              # 12 seeds 2-D (3 sessions each) + 4 seeds 3-D
    python benchmarks/bench_motion_sessions.py --quick      # 4 seeds 2-D, 1 seed 3-D
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def truth_points(sim, session: int, margin_px: float = 8.0):
    """Spine positions in session 0 and where the true transform puts them in ``session`` (inside the field)."""
    cols = ["y", "x", "z"] if sim.images[0].ndim == 3 else ["y", "x"]
    p0 = sim.truth.loc[sim.truth.session == 0, cols].to_numpy()
    true = sim.transforms[session](sim.transforms[0].inverse(p0))
    size = np.array(sim.images[0].shape[-2:])
    inside = ((p0[:, :2] > margin_px) & (p0[:, :2] < size - margin_px)).all(axis=1)
    inside &= ((true[:, :2] > margin_px) & (true[:, :2] < size - margin_px)).all(axis=1)
    return p0[inside], true[inside]


def evaluate_seed(
    seed: int, ndim: int, params, n_sessions: int = 4, lateral_px: int | None = None
) -> list[dict]:
    from imagingkit.motion.sessions import register_sessions
    from imagingkit.synth import simulate_dendrite_sessions

    lateral_px = lateral_px or (256 if ndim == 2 else 128)
    shape = (lateral_px, lateral_px) if ndim == 2 else (16, lateral_px, lateral_px)
    sim = simulate_dendrite_sessions(
        n_sessions=n_sessions,
        times_h=(0, 24, 48, 96, 120, 144)[:n_sessions],
        shape=shape,
        ndim=ndim,
        seed=seed,
        drift_px=6.0,
        rotation_deg=6.0 if ndim == 2 else 5.0,
        warp_px=1.0,
    )
    start = time.process_time()
    transforms = register_sessions(sim.images, params=params)
    cpu_s = time.process_time() - start
    rows = []
    for s in range(1, n_sessions):
        p0, true = truth_points(sim, s)
        fwd = transforms[s].map_points(p0, to="session") - true
        bwd = transforms[s].map_points(true, to="reference") - p0
        rigid = transforms[s].__class__(**{**transforms[s].__dict__, "flow": None}).map_points(p0) - true
        rows.append(
            {
                "seed": seed,
                "ndim": ndim,
                "session": s,
                "true_rotation_deg": float(sim.transforms[s].rotation_deg),
                "est_rotation_deg": float(transforms[s].rotation_deg),
                "n_points": int(len(p0)),
                "rms_forward_px": float(np.sqrt(np.mean(np.sum(fwd[:, :2] ** 2, axis=1)))),
                "rms_backward_px": float(np.sqrt(np.mean(np.sum(bwd[:, :2] ** 2, axis=1)))),
                "p95_point_px": float(np.percentile(np.linalg.norm(fwd[:, :2], axis=1), 95)),
                "rms_similarity_only_px": float(np.sqrt(np.mean(np.sum(rigid[:, :2] ** 2, axis=1)))),
                "rms_z_px": float(np.sqrt(np.mean(fwd[:, 2] ** 2))) if ndim == 3 else None,
                "correlation": float(transforms[s].correlation),
                "cpu_s_per_session": cpu_s / (n_sessions - 1),
            }
        )
    return rows


def summarise(rows: list[dict], key: str) -> dict:
    v = np.array([r[key] for r in rows])
    return {
        "n_sessions": int(len(v)),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
        "fraction_le_0_5": float(np.mean(v <= 0.5)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds-2d", type=int, default=12)
    parser.add_argument("--seeds-3d", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS / "bench_motion_sessions.json"))
    args = parser.parse_args()
    if args.quick:
        args.seeds_2d, args.seeds_3d = 4, 1
    from imagingkit.motion.sessions import SessionParams

    params = SessionParams()
    report = {"params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.__dict__.items()}}
    cases = ((2, args.seeds_2d, 256, "2d"), (3, args.seeds_3d, 128, "3d"), (3, args.seeds_3d, 256, "3d_256"))
    if not args.quick:  # 2-D fields of the 3-D stacks' size: how much of the 3-D error is the smaller field
        cases += ((2, args.seeds_3d, 128, "2d_128"),)
    for ndim, n_seeds, lateral_px, key in cases:
        rows = []
        for seed in range(n_seeds):
            for r in evaluate_seed(seed, ndim, params, lateral_px=lateral_px):
                rows.append(r)
                print(
                    f"{key} seed {seed:>2} session {r['session']}: rot {r['true_rotation_deg']:6.2f} deg "
                    f"rms fwd {r['rms_forward_px']:.3f} bwd {r['rms_backward_px']:.3f} px "
                    f"(similarity only {r['rms_similarity_only_px']:.3f}) cpu {r['cpu_s_per_session']:.1f}s",
                    flush=True,
                )
        if rows:
            report[key] = {
                "rows": rows,
                "forward": summarise(rows, "rms_forward_px"),
                "backward": summarise(rows, "rms_backward_px"),
                "similarity_only": summarise(rows, "rms_similarity_only_px"),
            }
            f = report[key]["forward"]
            print(
                f"{key} ({lateral_px} px field): {f['n_sessions']} sessions, RMS forward median {f['median']:.3f} p95 {f['p95']:.3f} "
                f"max {f['max']:.3f} px; {100 * f['fraction_le_0_5']:.0f}% <= 0.5 px"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
