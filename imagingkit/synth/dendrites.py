"""Simulated structural imaging of dendrites and spines over repeated sessions.

:func:`simulate_dendrite_sessions` draws curved dendrite tubes carrying spines
(heads at the end of necks, both sides, in 3-D some pointing up or down), lets
spines form, survive and vanish between sessions with known rates (new spines
less stable than old ones), and images each session through a different
tissue transform (drift, rotation, smooth warp), brightness and noise.
Scenes are defined in micrometres in the reference frame and rendered per
session by sampling them at the reference position of every session pixel.

Realism (values checked against in-vivo two-photon structural imaging; changes made after
the spine-detection review, issue 6):

- PSF: Gaussian, lateral FWHM 0.4 um, axial FWHM 1.8 um (two-photon, NA ~1.0).
- Photon budget: at ``noise=1`` a shaft peaks at ~40 photons per pixel over ~2 photons of
  background (per-pixel SNR ~6, an averaged in-vivo structural image); ``noise=2`` is
  four times fewer photons (a single noisy frame).
- Spine heads: radius lognormal around 0.35 um (0.22-0.7 um; real heads 0.25-0.6 um) with
  a ``dim_fraction`` of sub-resolution heads (0.12-0.2 um, 35-60 % of shaft brightness)
  that stay in the truth table as the hard cases (column ``dim``).
- Density: default 0.4 spines per um, the density of spines visible in vivo on L5 tufts
  (0.3-0.6 per um); real counts reach 0.5-1.5 per um (EM, L2/3 basal dendrites): pass
  ``spine_density_per_um`` up to ~1 for crowded dendrites (the spine benchmark does).
- Spines do not overlap: a spine whose head (ball of its largest radius over sessions)
  would come within 0.1 um of another head present in the same session is moved along
  its dendrite (was: uniform arc positions, so ~9 % of heads had another head centre within
  0.5 um, interpenetrating, which real spines cannot do). New positions come from a separate
  random stream, so every other draw (spine sizes, turnover, transforms, brightness, noise)
  is unchanged.
  Close neighbours (heads 0.1-0.5 um apart) remain. Spines never present together are not
  kept apart: a new spine may form where a spine was lost before (positions are uniform
  along the dendrite), a loss and a gain in the truth that a scorer identifying spines by
  their place, and any image-based tracker, sees as one spine staying.
- 3-D stacks are rendered on sub-planes 0.25 um apart, blurred axially and sampled at
  the plane positions (was: rendered on the integer planes only, so a head lying between
  two planes was missed by both and ~40 % of 3-D heads were invisible even noiseless),
  and scaled so shaft centres peak at the same ~40 photons as in 2-D at ``noise=1`` (the
  axial blur had halved them, so ``noise`` meant twice the noise in 3-D).
- Border spines: ``base_in_fov`` says whether the shaft point a spine grows from is in the
  image. A spine whose head is in view but whose base is not has no defined contrast
  (``intensity_ratio`` NaN; it was head over the edge pixel, 3-40): the shaft it belongs
  to is not imaged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, spatial

from imagingkit.errors import ParameterError
from imagingkit.synth import noise as detector_noise

TRUTH_COLUMNS = [
    "spine_id",
    "session",
    "time_h",
    "present",
    "y",
    "x",
    "z",
    "y_ref",
    "x_ref",
    "z_ref",
    "dendrite_id",
    "arc_um",
    "head_radius_um",
    "neck_length_um",
    "intensity_ratio",
    "side",
    "elevation_deg",
    "in_fov",
    "base_in_fov",
    "formed_session",
    "is_new",
    "dim",
]


@dataclasses.dataclass(frozen=True)
class DendriteTruth:
    """One dendrite in reference pixel coordinates.

    Attributes
    ----------
    dendrite_id : int
    centreline : ndarray
        (N, ndim) points (y, x[, z]) in reference pixels, 0.1 um apart.
    arc_um : ndarray
        (N,) arc length from the first point (um).
    radius_um : ndarray
        (N,) shaft radius (um).
    """

    dendrite_id: int
    centreline: np.ndarray
    arc_um: np.ndarray
    radius_um: np.ndarray

    @property
    def length_um(self) -> float:
        return float(self.arc_um[-1])


@dataclasses.dataclass(frozen=True)
class SessionTransform:
    """Tissue transform of one session: reference pixels -> session pixels.

    ``inverse(p) = c + R(-theta) (p - c - shift) + warp(p)`` maps session
    pixels to reference pixels (in-plane rotation about the image centre ``c``,
    a smooth sinusoidal warp in y and x); ``__call__`` inverts it by
    fixed-point iteration (exact to < 1e-6 px for the small warps used).
    Points are (N, 2) (y, x) or (N, 3) (y, x, z) in pixels.
    """

    shift_px: tuple
    rotation_deg: float
    centre_yx: tuple[float, float]
    warp_amplitude_px: float = 0.0
    warp_wavevectors: tuple = ()
    warp_phases: tuple = ()

    def _warp(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros((p.shape[0], 2))
        if self.warp_amplitude_px == 0 or not self.warp_wavevectors:
            return out
        k = np.asarray(self.warp_wavevectors)  # (M, 2 axes, 2) wavevector per output axis
        ph = np.asarray(self.warp_phases)  # (M, 2)
        for m in range(k.shape[0]):
            for axis in range(2):
                out[:, axis] += np.sin(p[:, :2] @ k[m, axis] + ph[m, axis])
        return self.warp_amplitude_px * out / k.shape[0]

    def _rot(self, sign: float) -> np.ndarray:
        a = np.deg2rad(sign * self.rotation_deg)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def inverse(self, points: np.ndarray) -> np.ndarray:
        """Session pixel coordinates -> reference pixel coordinates."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        c = np.asarray(self.centre_yx)
        shift = np.asarray(self.shift_px, dtype=float)
        out = p.copy()
        out[:, :2] = c + (p[:, :2] - c - shift[:2]) @ self._rot(-1.0).T + self._warp(p)
        if p.shape[1] > 2:
            out[:, 2] = p[:, 2] - (shift[2] if shift.size > 2 else 0.0)
        return out

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Reference pixel coordinates -> session pixel coordinates."""
        ref = np.atleast_2d(np.asarray(points, dtype=float))
        c = np.asarray(self.centre_yx)
        shift = np.asarray(self.shift_px, dtype=float)
        p = ref.copy()
        rot = self._rot(1.0)
        for _ in range(50):
            new = c + shift[:2] + (ref[:, :2] - self._warp(p) - c) @ rot.T
            done = np.abs(new - p[:, :2]).max() < 1e-9 if len(p) else True
            p[:, :2] = new
            if done:
                break
        if ref.shape[1] > 2:
            p[:, 2] = ref[:, 2] + (shift[2] if shift.size > 2 else 0.0)
        return p


@dataclasses.dataclass
class DendriteSim:
    """Simulated structural sessions.

    Attributes
    ----------
    images : list of ndarray
        One (Y, X) or (Z, Y, X) uint16 image per session.
    noiseless : list of ndarray
        The same without noise, float32 photons (before detector gain).
    truth : DataFrame
        One row per spine per session (columns :data:`TRUTH_COLUMNS`); rows with
        ``present=False`` give where an absent spine would be.
    dendrites : list of DendriteTruth
    transforms : list of SessionTransform
        ``transforms[s](points_ref)`` -> session coordinates; ``.inverse`` back.
    times_h : tuple of float
    pixel_size_um, z_step_um : float
    params : dict
    """

    images: list
    noiseless: list
    truth: pd.DataFrame
    dendrites: list
    transforms: list
    times_h: tuple
    pixel_size_um: float
    z_step_um: float | None
    params: dict

    def turnover(self) -> pd.DataFrame:
        """Per session: n_present, n_formed, n_eliminated, n_stable (vs the previous session) from the truth."""
        t = self.truth
        pres = t.pivot(index="spine_id", columns="session", values="present").fillna(False).astype(bool)
        rows = []
        for s in pres.columns:
            if s == pres.columns[0]:
                rows.append((s, int(pres[s].sum()), 0, 0, int(pres[s].sum())))
                continue
            prev = pres[s - 1]
            rows.append(
                (
                    s,
                    int(pres[s].sum()),
                    int((pres[s] & ~prev).sum()),
                    int((~pres[s] & prev).sum()),
                    int((pres[s] & prev).sum()),
                )
            )
        return pd.DataFrame(rows, columns=["session", "n_present", "n_formed", "n_eliminated", "n_stable"])


def _as_rates(value: float | Sequence[float], n: int, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n or np.any((arr < 0) | (arr > 1)):
        raise ParameterError(
            f"{name} must be one rate in [0, 1] or {n} rates (one per session after the first)"
        )
    return arr


def _smooth_curve(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    x = ndimage.gaussian_filter1d(rng.normal(size=n + int(6 * scale)), scale)[:n]
    return x / max(np.abs(x).max(), 1e-12)


def simulate_dendrite_sessions(
    n_sessions: int = 6,
    times_h: Sequence[float] = (0, 1, 6, 24, 48, 96),
    shape: tuple[int, ...] = (256, 256),
    n_dendrites: int = 2,
    ndim: int = 2,
    pixel_size_um: float = 0.2,
    z_step_um: float = 1.0,
    seed: int = 0,
    drift_px: float = 6.0,
    rotation_deg: float = 3.0,
    warp_px: float = 1.0,
    noise: float = 1.0,
    spine_density_per_um: float = 0.4,
    formation_rate: float | Sequence[float] = 0.08,
    elimination_rate_old: float | Sequence[float] = 0.06,
    elimination_rate_new: float | Sequence[float] = 0.35,
    dim_fraction: float = 0.15,
    brightness_cv: float = 0.15,
    peak_photons: float = 40.0,
    psf_fwhm_um: tuple[float, float] = (0.4, 1.8),
    photon_gain_adu: float = 50.0,
    offset_adu: float = 100.0,
    read_noise_adu: float = 15.0,
) -> DendriteSim:
    """Simulate dendrites with spine turnover imaged over several sessions.

    Parameters
    ----------
    n_sessions : int
        Number of sessions (the first is the reference: identity transform).
    times_h : sequence of float
        Session times in hours, at least ``n_sessions`` long.
    shape : tuple of int
        (Y, X) for ``ndim=2`` or (Z, Y, X) for ``ndim=3`` (a 2-tuple gets 21 planes).
    n_dendrites : int
    ndim : int
        2 (single optical section) or 3 (z-stack, anisotropic PSF).
    pixel_size_um, z_step_um : float
        Lateral pixel size and z step (3-D).
    seed : int
    drift_px, rotation_deg, warp_px : float
        Typical between-session drift (s.d. per axis, pixels), rotation (s.d.,
        degrees) and peak smooth-warp amplitude (pixels).
    noise : float
        Noise scale: 1 = default photon budget, 2 = four times fewer photons.
    spine_density_per_um : float
        Initial spine density along dendrites.
    formation_rate, elimination_rate_old, elimination_rate_new : float or sequence
        Per-session probabilities: new spines per present spine, loss of a
        spine present at baseline, loss of a spine formed later.
    dim_fraction : float
        Fraction of spines that are small and dim (near the detection limit).

    Returns
    -------
    DendriteSim
    """
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim}")
    if n_sessions < 1 or len(times_h) < n_sessions:
        raise ParameterError(f"times_h needs at least n_sessions={n_sessions} values, got {list(times_h)}")
    shape = tuple(int(v) for v in shape)
    if ndim == 3 and len(shape) == 2:
        shape = (21, *shape)
    if len(shape) != ndim or min(shape[-2:]) < 32:
        raise ParameterError(
            f"shape must be (Y, X) for ndim=2 or (Z, Y, X) for ndim=3 with Y, X >= 32, got {shape}"
        )
    if noise <= 0:
        raise ParameterError(f"noise must be > 0, got {noise}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 44]))
    form = _as_rates(formation_rate, max(n_sessions - 1, 1), "formation_rate")
    elim_old = _as_rates(elimination_rate_old, max(n_sessions - 1, 1), "elimination_rate_old")
    elim_new = _as_rates(elimination_rate_new, max(n_sessions - 1, 1), "elimination_rate_new")
    ny, nx = shape[-2:]
    nz = shape[0] if ndim == 3 else 1
    scale = np.array([pixel_size_um, pixel_size_um, z_step_um])  # um per pixel along (y, x, z)

    dendrites = [_make_dendrite(i, (ny, nx, nz), scale, ndim, rng) for i in range(n_dendrites)]
    spines = _initial_spines(dendrites, spine_density_per_um, dim_fraction, ndim, rng)
    presence, head_scale = _turnover(
        spines, dendrites, n_sessions, form, elim_old, elim_new, dim_fraction, ndim, rng
    )
    _separate_heads(spines, presence, dendrites, np.random.default_rng(np.random.SeedSequence([seed, 46])))

    transforms = [SessionTransform(tuple([0.0] * ndim), 0.0, ((ny - 1) / 2, (nx - 1) / 2))]
    for _ in range(1, n_sessions):
        shift = list(rng.normal(0, drift_px, 2))
        if ndim == 3:
            shift.append(rng.normal(0, 1.0))
        k = rng.normal(0, 2 * np.pi / (0.8 * max(ny, nx)), (3, 2, 2))
        transforms.append(
            SessionTransform(
                tuple(float(v) for v in shift),
                float(rng.normal(0, rotation_deg)),
                ((ny - 1) / 2, (nx - 1) / 2),
                float(warp_px),
                tuple(map(tuple, k.reshape(3, 2, 2).tolist())),
                tuple(map(tuple, rng.uniform(0, 2 * np.pi, (3, 2)).tolist())),
            )
        )

    sigma_um = np.array([psf_fwhm_um[0], psf_fwhm_um[0], psf_fwhm_um[1]]) / 2.355
    images, clean, rows = [], [], []
    for s in range(n_sessions):
        gain_s = float(rng.lognormal(0, brightness_cv)) if s else 1.0
        img = _render_session(
            dendrites, spines, presence[:, s], head_scale[:, s], transforms[s], shape, scale, sigma_um, ndim
        )
        photons = img * peak_photons * gain_s / noise**2
        photons += 0.05 * peak_photons / noise**2  # autofluorescence
        clean.append(photons.astype(np.float32))
        key = detector_noise.frame_key(seed, 55, s)
        images.append(
            detector_noise.photons_to_adu(photons, key, photon_gain_adu, offset_adu, read_noise_adu, 0.4)
        )
        rows.append(
            _truth_rows(
                spines,
                dendrites,
                presence[:, s],
                head_scale[:, s],
                transforms[s],
                s,
                float(times_h[s]),
                shape,
                ndim,
                img,
                scale,
                sigma_um,
            )
        )
    truth = pd.concat(rows, ignore_index=True)[TRUTH_COLUMNS]
    params = dict(
        seed=seed,
        drift_px=drift_px,
        rotation_deg=rotation_deg,
        warp_px=warp_px,
        noise=noise,
        spine_density_per_um=spine_density_per_um,
        formation_rate=form.tolist(),
        elimination_rate_old=elim_old.tolist(),
        elimination_rate_new=elim_new.tolist(),
        dim_fraction=dim_fraction,
        psf_fwhm_um=list(psf_fwhm_um),
        ndim=ndim,
        shape=list(shape),
    )
    return DendriteSim(
        images,
        clean,
        truth,
        [d[0] for d in dendrites],
        transforms,
        tuple(float(t) for t in times_h[:n_sessions]),
        pixel_size_um,
        z_step_um if ndim == 3 else None,
        params,
    )


# ----------------------------------------------------------------------------- geometry
def _make_dendrite(
    i: int, size: tuple[int, int, int], scale: np.ndarray, ndim: int, rng: np.random.Generator
):
    """A curved dendrite crossing the field: (DendriteTruth, points_um (N, 3), radius_um, brightness)."""
    ny, nx, nz = size
    ext = np.array([ny, nx, nz]) * scale
    step = 0.1
    margin = 0.1 * ext[:2]
    start = rng.uniform(margin, ext[:2] - margin)
    heading = rng.uniform(0, 2 * np.pi)
    length = 2.0 * max(ext[:2])
    n = int(length / step)
    turn = _smooth_curve(rng, n, 150) * rng.uniform(0.3, 1.0)
    theta = heading + np.cumsum(turn) * step / 15.0
    half = n // 2
    y = start[0] + np.cumsum(np.sin(theta)) * step
    x = start[1] + np.cumsum(np.cos(theta)) * step
    y -= y[half] - start[0]
    x -= x[half] - start[1]
    z = np.full(n, (ext[2] - scale[2]) / 2) if ndim == 3 else np.zeros(n)
    if ndim == 3:
        z += _smooth_curve(rng, n, 300) * 0.25 * ext[2] * 0.5
    inside = (y > -2) & (y < ext[0] + 2) & (x > -2) & (x < ext[1] + 2)
    idx = np.flatnonzero(inside)
    seg = slice(idx.min(), idx.max() + 1) if idx.size else slice(0, 2)
    pts = np.stack([y[seg], x[seg], z[seg]], axis=1)
    m = pts.shape[0]
    radius = rng.uniform(0.35, 0.6) * (1 + 0.2 * _smooth_curve(rng, m, 100))
    bright = 1.0 + 0.25 * _smooth_curve(rng, m, 200)
    arc = np.arange(m) * step
    centre_px = pts / scale
    centre_px = centre_px[:, :ndim] if ndim == 3 else centre_px[:, :2]
    return DendriteTruth(i, centre_px, arc, radius), pts, radius, bright


def _local_frame(pts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = pts[max(k - 5, 0)], pts[min(k + 5, len(pts) - 1)]
    tangent = (b - a) / max(np.linalg.norm(b - a), 1e-12)
    normal = np.array([-tangent[1], tangent[0], 0.0])
    return tangent, normal / max(np.linalg.norm(normal), 1e-12)


def _new_spine(d: int, arc: float, dend, dim_fraction: float, ndim: int, rng: np.random.Generator) -> dict:
    dim = rng.random() < dim_fraction
    if ndim == 3 and rng.random() < 0.2:
        elevation = float(rng.choice([-1, 1]) * rng.uniform(50, 90))
    else:
        elevation = float(rng.normal(0, 15)) if ndim == 3 else 0.0
    return dict(
        dendrite_id=d,
        arc_um=float(arc),
        side=int(rng.choice([-1, 1])),
        elevation_deg=elevation,
        neck_length_um=float(np.clip(rng.gamma(2.0, 0.45), 0.1, 2.5)),
        head_radius_um=float(
            rng.uniform(0.12, 0.2) if dim else np.clip(rng.lognormal(np.log(0.35), 0.25), 0.22, 0.7)
        ),
        brightness=float(rng.uniform(0.35, 0.6) if dim else rng.uniform(0.8, 1.4)),
        dim=bool(dim),
    )


def _head_ball(sp: dict, dendrites) -> tuple[np.ndarray, float]:
    """Head centre (reference um) and the largest radius it takes over the sessions."""
    _, neck_end, direction, _ = _spine_geometry(sp, dendrites)
    radius = sp["head_radius_um"]
    return neck_end + direction * radius * 0.8, 1.25 * radius


def _is_clear(sp: dict, dendrites, heads: list, gap_um: float = 0.1) -> bool:
    """True when the head of ``sp`` stays ``gap_um`` clear of every head in ``heads``."""
    centre, radius = _head_ball(sp, dendrites)
    return all(np.linalg.norm(centre - c) >= radius + r + gap_um for c, r in heads)


def _initial_spines(dendrites, density: float, dim_fraction: float, ndim: int, rng) -> list[dict]:
    spines = []
    for d, (dt, *_) in enumerate(dendrites):
        n = rng.poisson(density * dt.length_um)
        arcs = np.sort(rng.uniform(1.0, max(dt.length_um - 1.0, 1.0), n))
        for a in arcs:
            sp = _new_spine(d, a, dendrites[d], dim_fraction, ndim, rng)
            sp["formed_session"] = 0
            spines.append(sp)
    return spines


def _separate_heads(spines: list[dict], presence: np.ndarray, dendrites, rng, tries: int = 50) -> None:
    """Move spines whose head overlaps an earlier spine's head in a shared session (in place).

    Real heads cannot interpenetrate. A spine overlapping one listed before it (both
    present in some session) gets new arc positions drawn from ``rng`` until its head is
    clear; it keeps its other properties. A separate generator keeps every other random
    draw of the simulation (transforms, brightness, noise) unchanged.
    """
    balls = [_head_ball(sp, dendrites) for sp in spines]
    for i, sp in enumerate(spines):
        others = [balls[j] for j in range(i) if np.any(presence[i] & presence[j])]
        length = dendrites[sp["dendrite_id"]][0].length_um
        for _ in range(tries):
            if _is_clear(sp, dendrites, others):
                break
            sp["arc_um"] = float(rng.uniform(1.0, max(length - 1.0, 1.0)))
        balls[i] = _head_ball(sp, dendrites)


def _turnover(spines, dendrites, n_sessions, form, elim_old, elim_new, dim_fraction, ndim, rng):
    """Presence (n_spines, n_sessions) and per-session head-size factor; appends formed spines."""
    present = [[True] for _ in spines]
    for s in range(1, n_sessions):
        n_prev = sum(p[-1] for p in present)
        for sp, p in zip(spines, present, strict=True):
            if len(p) < s:
                p.extend([False] * (s - len(p)))
            if p[-1]:
                rate = elim_old[s - 1] if sp["formed_session"] == 0 else elim_new[s - 1]
                p.append(bool(rng.random() >= rate))
            else:
                p.append(False)
        n_new = rng.poisson(form[s - 1] * n_prev)
        for _ in range(n_new):
            d = int(rng.integers(len(dendrites)))
            length = dendrites[d][0].length_um
            sp = _new_spine(
                d, rng.uniform(1.0, max(length - 1.0, 1.0)), dendrites[d], dim_fraction, ndim, rng
            )
            sp["formed_session"] = s
            spines.append(sp)
            present.append([False] * s + [True])
    presence = np.array([p + [False] * (n_sessions - len(p)) for p in present], dtype=bool)
    head_scale = np.exp(rng.normal(0, 0.08, presence.shape))
    for i, sp in enumerate(spines):
        if sp["formed_session"] > 0:
            head_scale[i, sp["formed_session"]] *= 0.8  # new spines start small
    return presence, head_scale


def _spine_geometry(sp: dict, dendrites) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(base_um, neck_end_um, head_centre_um, shaft_radius) of a spine in reference micrometres."""
    dt, pts, radius, _ = dendrites[sp["dendrite_id"]]
    k = int(np.clip(round(sp["arc_um"] / 0.1), 0, len(pts) - 1))
    _, normal = _local_frame(pts, k)
    el = np.deg2rad(sp["elevation_deg"])
    direction = sp["side"] * np.cos(el) * normal + np.array([0, 0, np.sin(el)])
    base = pts[k] + direction * radius[k]
    neck_end = base + direction * sp["neck_length_um"]
    return base, neck_end, direction, float(radius[k])


# ----------------------------------------------------------------------------- rendering
def _grid_points(shape: tuple[int, ...], ndim: int, supersample: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Session pixel coordinates (y, x[, z]) of a supersampled grid and its shape."""
    ny, nx = shape[-2:]
    f = supersample
    gy = (np.arange(ny * f) + 0.5) / f - 0.5
    gx = (np.arange(nx * f) + 0.5) / f - 0.5
    if ndim == 2:
        yy, xx = np.meshgrid(gy, gx, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1), (ny * f, nx * f)
    gz = np.arange(shape[0], dtype=float)
    zz, yy, xx = np.meshgrid(gz, gy, gx, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel(), zz.ravel()], axis=1), (shape[0], ny * f, nx * f)


def _render_session(
    dendrites, spines, present, head_scale, transform, shape, scale, sigma_um, ndim
) -> np.ndarray:
    """Noiseless PSF-blurred image (peak shaft ~1) of one session."""
    if ndim == 3:
        return _render_stack(dendrites, spines, present, head_scale, transform, shape, scale, sigma_um)
    f = 2
    pts_px, grid_shape = _grid_points(shape, ndim, f)
    ref_px = transform.inverse(pts_px)
    ref_um = np.zeros((ref_px.shape[0], 3))
    ref_um[:, :ndim] = ref_px[:, :ndim] * scale[:ndim]
    if ndim == 2:
        ref_um[:, 2] = 0.0
    values = np.zeros(ref_px.shape[0], dtype=np.float32)
    edge = 0.04
    reach_um = 5.0  # longest neck + largest head + margin: nothing is drawn farther from a shaft
    candidate = np.zeros(ref_px.shape[0], dtype=bool)
    for _, pts, radius, bright in dendrites:
        tree = spatial.cKDTree(pts)
        dist, idx = tree.query(ref_um, distance_upper_bound=float(radius.max()) + reach_um)
        near_shaft = np.isfinite(dist)
        candidate |= near_shaft
        ok = np.flatnonzero(near_shaft)
        ok = ok[dist[ok] < radius[idx[ok]] + 0.3]
        val = bright[idx[ok]] / (1.0 + np.exp((dist[ok] - radius[idx[ok]]) / edge))
        values[ok] = np.maximum(values[ok], val)
    cand = np.flatnonzero(candidate)
    point_tree = spatial.cKDTree(ref_um[cand]) if cand.size else None
    for i, sp in enumerate(spines):
        if not present[i] or point_tree is None:
            continue
        base, neck_end, direction, _ = _spine_geometry(sp, dendrites)
        head_r = sp["head_radius_um"] * head_scale[i]
        centre = neck_end + direction * head_r * 0.8
        reach = sp["neck_length_um"] + 2 * head_r + 0.3
        near = cand[
            np.asarray(point_tree.query_ball_point((base + centre) / 2, reach / 2 + head_r + 0.3), dtype=int)
        ]
        if near.size == 0:
            continue
        p = ref_um[near]
        d_head = np.linalg.norm(p - centre, axis=1)
        head = sp["brightness"] / (1.0 + np.exp((d_head - head_r) / edge))
        seg = neck_end - base
        tpar = np.clip(((p - base) @ seg) / max(seg @ seg, 1e-12), 0, 1)
        d_neck = np.linalg.norm(p - (base + tpar[:, None] * seg), axis=1)
        neck = 0.45 * np.exp(-0.5 * (d_neck / 0.09) ** 2)
        values[near] = np.maximum(values[near], np.maximum(head, neck).astype(np.float32))
    img = values.reshape(grid_shape)
    if ndim == 2:
        sig = (sigma_um[0] / scale[0] * f, sigma_um[1] / scale[1] * f)
        img = ndimage.gaussian_filter(img, sig)
        img = img.reshape(shape[0], f, shape[1], f).mean(axis=(1, 3))
    else:
        sig = (sigma_um[2] / scale[2], sigma_um[0] / scale[0] * f, sigma_um[1] / scale[1] * f)
        img = ndimage.gaussian_filter(img, sig)
        img = img.reshape(shape[0], shape[1], f, shape[2], f).mean(axis=(2, 4))
    return img.astype(np.float32)


def _shaft_value(dist: np.ndarray, radius: np.ndarray, bright: np.ndarray, edge: float) -> np.ndarray:
    return bright / (1.0 + np.exp((dist - radius) / edge))


def _spine_value(p: np.ndarray, sp: dict, head_r: float, dendrites, edge: float) -> np.ndarray:
    """Head (ball) and neck (thin Gaussian tube) of one spine at points ``p`` (reference um)."""
    base, neck_end, direction, _ = _spine_geometry(sp, dendrites)
    centre = neck_end + direction * head_r * 0.8
    head = sp["brightness"] / (1.0 + np.exp((np.linalg.norm(p - centre, axis=1) - head_r) / edge))
    seg = neck_end - base
    tpar = np.clip(((p - base) @ seg) / max(seg @ seg, 1e-12), 0, 1)
    d_neck = np.linalg.norm(p - (base + tpar[:, None] * seg), axis=1)
    neck = 0.45 * np.exp(-0.5 * (d_neck / 0.09) ** 2)
    return np.maximum(head, neck)


def _render_stack(dendrites, spines, present, head_scale, transform, shape, scale, sigma_um) -> np.ndarray:
    """Noiseless z-stack: rendered on sub-planes 0.25 um apart, blurred in 3-D, sampled at the planes.

    The transform moves planes laterally the same way (rotation, warp and shift in y, x;
    a shift in z), so the reference positions of the lateral grid are computed once.
    """
    f, edge = 2, 0.04
    nz = shape[0]
    fz = max(1, int(np.ceil(scale[2] / 0.25)))
    pad = int(np.ceil(3 * sigma_um[2] / scale[2]))
    z_planes = np.arange(-pad * fz, (nz - 1 + pad) * fz + 1) / fz  # session planes, fine
    lateral_px, lateral_shape = _grid_points(shape[-2:], 2, f)
    ref_yx = transform.inverse(lateral_px)[:, :2] * scale[:2]
    shift = np.asarray(transform.shift_px, float)
    ref_z = (z_planes - (shift[2] if shift.size > 2 else 0.0)) * scale[2]
    volume = np.zeros((len(z_planes), len(ref_yx)), np.float32)
    for _, pts, radius, bright in dendrites:
        reach = float(radius.max()) + 0.3
        lateral, _ = spatial.cKDTree(pts[:, :2]).query(ref_yx, distance_upper_bound=reach)
        cols = np.flatnonzero(np.isfinite(lateral))
        tree = spatial.cKDTree(pts)
        planes = np.flatnonzero((ref_z >= pts[:, 2].min() - reach) & (ref_z <= pts[:, 2].max() + reach))
        for k in planes:
            p = np.column_stack([ref_yx[cols], np.full(len(cols), ref_z[k])])
            dist, idx = tree.query(p, distance_upper_bound=reach)
            ok = np.isfinite(dist)
            val = _shaft_value(dist[ok], radius[idx[ok]], bright[idx[ok]], edge)
            volume[k, cols[ok]] = np.maximum(volume[k, cols[ok]], val)
    lateral_tree = spatial.cKDTree(ref_yx)
    for i, sp in enumerate(spines):
        if not present[i]:
            continue
        head_r = sp["head_radius_um"] * head_scale[i]
        base, neck_end, direction, _ = _spine_geometry(sp, dendrites)
        centre = neck_end + direction * head_r * 0.8
        lo = np.minimum(base, centre) - head_r - 0.3
        hi = np.maximum(base, centre) + head_r + 0.3
        cols = np.asarray(
            lateral_tree.query_ball_point((lo[:2] + hi[:2]) / 2, np.linalg.norm(hi[:2] - lo[:2]) / 2)
        )
        planes = np.flatnonzero((ref_z >= lo[2]) & (ref_z <= hi[2]))
        if cols.size == 0 or planes.size == 0:
            continue
        p = np.column_stack([np.tile(ref_yx[cols], (len(planes), 1)), np.repeat(ref_z[planes], len(cols))])
        val = _spine_value(p, sp, head_r, dendrites, edge).reshape(len(planes), len(cols))
        block = volume[np.ix_(planes, cols)]
        volume[np.ix_(planes, cols)] = np.maximum(block, val)
    volume = volume.reshape(len(z_planes), *lateral_shape)
    sig = (sigma_um[2] / scale[2] * fz, sigma_um[0] / scale[0] * f, sigma_um[1] / scale[1] * f)
    volume = ndimage.gaussian_filter(volume, sig, mode="constant")
    volume = volume[pad * fz :: fz][:nz]
    stack = volume.reshape(nz, shape[1], f, shape[2], f).mean(axis=(2, 4))
    # the axial PSF spreads a thin shaft over several planes: scale so that shaft centres peak
    # at their brightness (~1), the photon budget a 2-D image gets at the same ``noise``
    centres = np.concatenate([transform(pts / scale) for _, pts, _, _ in dendrites])
    brightness = np.concatenate([b for *_, b in dendrites])
    inside = np.all((centres >= 0) & (centres <= np.array([shape[1], shape[2], nz]) - 1), axis=1)
    if inside.sum() > 10:
        zyx = centres[inside][:, [2, 0, 1]].T
        peak = ndimage.map_coordinates(stack, zyx, order=1)
        stack = stack * float(np.median(brightness[inside]) / max(np.median(peak), 1e-6))
    return stack.astype(np.float32)


def _truth_rows(
    spines, dendrites, present, head_scale, transform, s, time_h, shape, ndim, img, scale, sigma_um
):
    rows = []
    for i, sp in enumerate(spines):
        base, neck_end, direction, _ = _spine_geometry(sp, dendrites)
        head_r = sp["head_radius_um"] * head_scale[i]
        centre_um = neck_end + direction * head_r * 0.8
        ref_px = centre_um / scale
        ref = ref_px[:ndim] if ndim == 3 else ref_px[:2]
        ses = transform(ref[None])[0]
        in_fov = _inside(ses, shape, ndim)
        # the shaft point the spine grows from, where its contrast is measured
        shaft = transform(((base - direction * 0.5) / scale)[None, : (3 if ndim == 3 else 2)])[0]
        base_in_fov = _inside(shaft, shape, ndim)
        ratio = np.nan
        if present[i] and in_fov and base_in_fov:
            ratio = _intensity_ratio(img, ses, shaft, ndim)
        rows.append(
            dict(
                spine_id=i,
                session=s,
                time_h=time_h,
                present=bool(present[i]),
                y=ses[0],
                x=ses[1],
                z=ses[2] if ndim == 3 else np.nan,
                y_ref=ref[0],
                x_ref=ref[1],
                z_ref=ref[2] if ndim == 3 else np.nan,
                dendrite_id=sp["dendrite_id"],
                arc_um=sp["arc_um"],
                head_radius_um=head_r,
                neck_length_um=sp["neck_length_um"],
                intensity_ratio=ratio,
                side=sp["side"],
                elevation_deg=sp["elevation_deg"],
                in_fov=in_fov,
                base_in_fov=base_in_fov,
                formed_session=sp["formed_session"],
                is_new=sp["formed_session"] > 0,
                dim=sp["dim"],
            )
        )
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)


def _inside(point: np.ndarray, shape: tuple[int, ...], ndim: int) -> bool:
    """Whether a session point (y, x[, z]) in pixels lies inside the image."""
    ny, nx = shape[-2:]
    return bool(
        0 <= point[0] <= ny - 1 and 0 <= point[1] <= nx - 1 and (ndim == 2 or 0 <= point[2] <= shape[0] - 1)
    )


def _intensity_ratio(img: np.ndarray, head_yx: np.ndarray, shaft_yx: np.ndarray, ndim: int) -> float:
    """Noiseless head peak over shaft peak near the spine base (bilinear samples)."""

    def sample(p):
        coords = [[p[2]], [p[0]], [p[1]]] if ndim == 3 else [[p[0]], [p[1]]]
        return float(ndimage.map_coordinates(img, coords, order=1, mode="nearest")[0])

    shaft = sample(shaft_yx)
    return sample(head_yx) / shaft if shaft > 1e-6 else np.nan
