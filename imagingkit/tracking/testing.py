"""Synthetic spine point series with known identities, for tests and benchmarks of the linker.

This is not an image simulator (that is :func:`imagingkit.synth.simulate_dendrite_sessions`):
it makes spine *tables* directly, so linking, fates and statistics can be checked against a
known birth/death process without detection errors, and at sizes (10 sessions x 2,000 spines)
where rendering images would dominate the run time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class PointSeries:
    """A simulated session series of spine tables.

    Attributes
    ----------
    tables : list of DataFrame
        One spine table per session (``spine_id, y, x, z, dendrite_id, arc_um, intensity_ratio``),
        coordinates in pixels of that session's frame. ``spine_id`` is a per-session detection
        number, *not* the persistent identity.
    truth : DataFrame
        One row per spine per session: ``spine_id`` (persistent), ``session``, ``present``,
        ``detected``, ``in_fov`` (inside that session's image), ``det_index`` (row in
        ``tables[session]`` or -1), ``y, x`` (true position in that session's pixels),
        ``y_ref, x_ref`` (reference-frame pixels), ``dendrite_id``, ``arc_um``.
    to_reference : list of callables
        Per session, maps session (y, x) pixels to reference pixels. Only the rigid part of the
        session transform is inverted (like a rigid registration), so warp stays as residual error.
    to_session : list of callables
        Per session, the exact reference -> session mapping (rigid + warp).
    shape : tuple of int
        Image shape (Y, X) in pixels.
    pixel_size_um : float
    times_h : ndarray
    """

    tables: list[pd.DataFrame]
    truth: pd.DataFrame
    to_reference: list[Callable[[np.ndarray], np.ndarray]]
    to_session: list[Callable[[np.ndarray], np.ndarray]]
    shape: tuple[int, int]
    pixel_size_um: float
    times_h: np.ndarray


def _rigid(angle_deg: float, shift_yx: np.ndarray, centre_yx: np.ndarray):
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])

    def forward(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) - centre_yx) @ rot.T + centre_yx + shift_yx

    def inverse(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) - centre_yx - shift_yx) @ rot + centre_yx

    return forward, inverse


def _warp(amplitude_px: float, period_px: float, phase: np.ndarray):
    def warp(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        dy = amplitude_px * np.sin(2 * np.pi * p[:, 1] / period_px + phase[0])
        dx = amplitude_px * np.sin(2 * np.pi * p[:, 0] / period_px + phase[1])
        return p + np.column_stack([dy, dx])

    return warp


def simulate_point_series(
    n_sessions: int = 6,
    n_spines: int = 300,
    n_dendrites: int = 4,
    shape: tuple[int, int] = (512, 512),
    pixel_size_um: float = 0.2,
    spacing_min_um: float = 1.0,
    p_loss: float = 0.08,
    p_gain: float = 0.08,
    jitter_um: float = 0.15,
    arc_jitter_um: float = 0.2,
    drift_px: float = 8.0,
    rotation_deg: float = 2.0,
    warp_px: float = 0.0,
    p_miss: float = 0.0,
    times_h: tuple[float, ...] | None = None,
    seed: int = 0,
) -> PointSeries:
    """Simulate spines along straight dendrites with a birth/death process across sessions.

    Parameters
    ----------
    n_sessions : int
        Number of imaging sessions.
    n_spines : int
        Number of spines present at baseline (all dendrites together).
    n_dendrites : int
        Dendrites, straight lines across the field at well separated positions.
    shape : tuple of int
        Image shape (Y, X), pixels.
    pixel_size_um : float
        Pixel size, micrometres.
    spacing_min_um : float
        Minimum arc distance between two spines alive at the same time on a dendrite.
    p_loss, p_gain : float
        Per interval: probability that a present spine is eliminated; number of new spines
        formed as a fraction of the spines present.
    jitter_um : float
        Standard deviation of the position error of each detection (localisation noise).
    arc_jitter_um : float
        Standard deviation of the error of each measured arc length.
    drift_px, rotation_deg : float
        Standard deviation of the per-session translation (pixels) and rotation (degrees);
        session 0 is the reference and is not moved.
    warp_px : float
        Amplitude of a smooth sinusoidal tissue warp per session (pixels), not removed by the
        rigid ``to_reference`` mapping.
    p_miss : float
        Probability that a present spine is not detected in a session.
    times_h : tuple of float, optional
        Session times; default ``0, 1, 6, 24, 48, 96, ...`` (every 48 h after).
    seed : int
        Seed of the :class:`numpy.random.Generator`.

    Returns
    -------
    PointSeries
    """
    rng = np.random.default_rng(seed)
    if times_h is None:
        base = [0.0, 1.0, 6.0, 24.0, 48.0, 96.0]
        times_h = tuple(base[:n_sessions] + [96.0 + 48.0 * k for k in range(1, n_sessions - len(base) + 1)])
    height, width = shape
    margin = 0.1 * min(shape)
    # dendrites: horizontal-ish lines from left to right at evenly spaced rows, slight tilt
    rows = np.linspace(margin, height - margin, n_dendrites)
    tilt = rng.uniform(-0.15, 0.15, n_dendrites)
    length_px = (width - 2 * margin) / np.cos(np.arctan(tilt))
    length_um = length_px * pixel_size_um
    per_dendrite = np.full(n_dendrites, n_spines // n_dendrites)
    per_dendrite[: n_spines % n_dendrites] += 1

    spines: list[dict] = []  # id, dendrite, arc, side, born, died (session index, exclusive)

    def place(d: int, alive_arcs: list[float]) -> float | None:
        for _ in range(50):
            arc = rng.uniform(0.5, length_um[d] - 0.5)
            if all(abs(arc - a) >= spacing_min_um for a in alive_arcs):
                return float(arc)
        return None

    for d in range(n_dendrites):
        arcs: list[float] = []
        for _ in range(per_dendrite[d]):
            arc = place(d, arcs)
            if arc is not None:
                arcs.append(arc)
                spines.append({"dendrite": d, "arc": arc, "born": 0, "died": n_sessions})
    for s in range(1, n_sessions):
        alive = [sp for sp in spines if sp["born"] <= s - 1 < sp["died"]]
        for sp in alive:
            if rng.random() < p_loss:
                sp["died"] = s
        n_new = rng.binomial(len(alive), p_gain)
        for _ in range(n_new):
            d = int(rng.integers(n_dendrites))
            arcs = [sp["arc"] for sp in spines if sp["dendrite"] == d and sp["born"] <= s < sp["died"]]
            arcs += [sp["arc"] for sp in spines if sp["dendrite"] == d and sp["died"] == s]  # no re-use
            arc = place(d, arcs)
            if arc is not None:
                spines.append({"dendrite": d, "arc": arc, "born": s, "died": n_sessions})

    n_total = len(spines)
    dend = np.array([sp["dendrite"] for sp in spines])
    arc = np.array([sp["arc"] for sp in spines])
    side = rng.choice([-1.0, 1.0], n_total)
    offset_um = side * rng.uniform(0.8, 1.5, n_total)  # spine head beside the shaft
    arc_px = arc / pixel_size_um
    ux, uy = np.cos(np.arctan(tilt[dend])), np.sin(np.arctan(tilt[dend]))
    x_ref = margin + arc_px * ux - offset_um / pixel_size_um * uy
    y_ref = rows[dend] + arc_px * uy + offset_um / pixel_size_um * ux
    ref_yx = np.column_stack([y_ref, x_ref])
    base_size = rng.lognormal(0.0, 0.3, n_total)

    centre = np.array([height / 2, width / 2])
    to_reference, to_session, tables, truth_rows = [], [], [], []
    for s in range(n_sessions):
        if s == 0:
            fwd, inv = _rigid(0.0, np.zeros(2), centre)
            warp = _warp(0.0, 1.0, np.zeros(2))
        else:
            fwd, inv = _rigid(rng.normal(0, rotation_deg), rng.normal(0, drift_px, 2), centre)
            warp = _warp(warp_px, rng.uniform(0.4, 0.8) * min(shape), rng.uniform(0, 2 * np.pi, 2))

        def session_map(p, fwd=fwd, warp=warp):
            return fwd(warp(p))

        to_reference.append(inv)
        to_session.append(session_map)
        born = np.array([sp["born"] for sp in spines])
        died = np.array([sp["died"] for sp in spines])
        present = (born <= s) & (s < died)
        detected = present & (rng.random(n_total) >= p_miss)
        idx = np.flatnonzero(detected)
        noisy_ref = ref_yx[idx] + rng.normal(0, jitter_um / pixel_size_um, (len(idx), 2))
        yx = session_map(noisy_ref)
        inside = (yx[:, 0] >= 0) & (yx[:, 0] < height) & (yx[:, 1] >= 0) & (yx[:, 1] < width)
        idx, yx = idx[inside], yx[inside]
        all_yx = session_map(ref_yx)
        in_fov = (all_yx[:, 0] >= 0) & (all_yx[:, 0] < height) & (all_yx[:, 1] >= 0) & (all_yx[:, 1] < width)
        order = rng.permutation(len(idx))
        idx, yx = idx[order], yx[order]
        det_index = np.full(n_total, -1)
        det_index[idx] = np.arange(len(idx))
        tables.append(
            pd.DataFrame(
                {
                    "spine_id": np.arange(len(idx)),
                    "y": yx[:, 0],
                    "x": yx[:, 1],
                    "z": 0.0,
                    "dendrite_id": dend[idx],
                    "arc_um": arc[idx] + rng.normal(0, arc_jitter_um, len(idx)),
                    "intensity_ratio": base_size[idx] * rng.lognormal(0, 0.1, len(idx)),
                }
            )
        )
        truth_rows.append(
            pd.DataFrame(
                {
                    "spine_id": np.arange(n_total),
                    "session": s,
                    "time_h": float(times_h[s]),
                    "present": present,
                    "detected": det_index >= 0,
                    "in_fov": in_fov,
                    "det_index": det_index,
                    "y": all_yx[:, 0],
                    "x": all_yx[:, 1],
                    "y_ref": y_ref,
                    "x_ref": x_ref,
                    "dendrite_id": dend,
                    "arc_um": arc,
                }
            )
        )
    return PointSeries(
        tables=tables,
        truth=pd.concat(truth_rows, ignore_index=True),
        to_reference=to_reference,
        to_session=to_session,
        shape=(height, width),
        pixel_size_um=pixel_size_um,
        times_h=np.asarray(times_h[:n_sessions], float),
    )


def true_ids(series: PointSeries, detections: pd.DataFrame) -> np.ndarray:
    """True spine id of each row of ``detections`` (``session, det_index``), e.g. ``TrackingResult.detections``."""
    t = series.truth[series.truth["det_index"] >= 0]
    lookup = pd.Series(
        t["spine_id"].to_numpy(), index=pd.MultiIndex.from_arrays([t["session"], t["det_index"]])
    )
    keys = pd.MultiIndex.from_arrays([detections["session"], detections["det_index"]])
    return lookup.reindex(keys).fillna(-1).to_numpy(int)


def synth_truth_tables(sim, columns: tuple[str, ...] = ("dendrite_id", "arc_um", "intensity_ratio")) -> list:
    """Ground-truth spine tables of a :func:`imagingkit.synth.simulate_dendrite_sessions` result.

    One table per session with the spines present and inside the image: ``spine_id`` (the
    persistent true id), ``y, x, z`` (head centre in that session's pixels; z 0 for 2-D) and
    the truth's ``columns``. Tracking these tables measures tracking errors only.
    """
    tables = []
    for session in range(len(sim.images)):
        t = sim.truth[(sim.truth["session"] == session) & sim.truth["present"] & sim.truth["in_fov"]]
        table = t[["spine_id", "y", "x", "z", *columns]].copy()
        table["z"] = table["z"].fillna(0.0)
        tables.append(table.reset_index(drop=True))
    return tables


def synth_truth_with_detection(sim, true_ids_per_session: list[np.ndarray]) -> pd.DataFrame:
    """The synth truth table with a ``detected`` column: the spine has a detection in that session.

    ``true_ids_per_session[s]`` lists the true spine ids matched by session s's detections
    (-1 for false detections).
    """
    truth = sim.truth.copy()
    detected = np.zeros(len(truth), bool)
    for session, ids in enumerate(true_ids_per_session):
        rows = (truth["session"] == session).to_numpy() & truth["spine_id"].isin(ids).to_numpy()
        detected |= rows
    truth["detected"] = detected & truth["present"].to_numpy(bool)
    return truth
