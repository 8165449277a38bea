"""Registration across imaging sessions: similarity transform, then a smooth non-rigid flow.

Images (or z-stacks) of the same field taken days apart differ by drift,
rotation, a little scale, tissue warp, brightness changes and structures that
appear or vanish. Each session is registered to a chosen reference session:

1. both images are normalised for local contrast (robust to brightness changes);
2. rotation and scale come from phase correlation of the log-polar resampled
   Fourier magnitudes (translation-invariant), with a grid of rotations every
   ``rotation_step_deg`` as a safety net (the correlation peak of thin dendrites
   reaches only about 1.3 degrees either side, and the log-polar estimate can miss
   it by more: 2.3 degrees once in 560 simulated sessions); each start gets its translation
   from phase correlation and is scored by the normalised cross-correlation on
   images reduced to at most ``coarse_size_px`` (cheap); the best few are scored
   again at full resolution and the best is refined in all four parameters by
   maximising the normalised cross-correlation (Powell);
3. a smooth non-rigid residual (a cubic B-spline displacement field, coarse to
   fine) is fitted by maximising the correlation over the whole overlap (L-BFGS,
   analytic gradient) and kept only when it improves the match.

A :class:`SessionTransform` maps points both ways (the flow is inverted by
fixed-point iteration) and warps session images onto the reference grid.
Registration that leaves a low correlation raises :class:`RegistrationError`
(e.g. a different field of view).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from scipy import optimize
from scipy.interpolate import BSpline
from skimage.measure import block_reduce
from skimage.registration import phase_cross_correlation
from skimage.transform import warp_polar

from imagingkit._atomic import atomic_path
from imagingkit.errors import FileFormatError, MissingFileError, ParameterError, RegistrationError


@dataclasses.dataclass(frozen=True)
class SessionParams:
    """Parameters of cross-session registration.

    Attributes
    ----------
    normalise_sigma_px : float
        Scale of the local contrast normalisation (background and local s.d.).
    max_rotation_deg : float
        Largest rotation searched.
    rotation_step_deg : float
        Spacing of the grid of rotations tried besides the log-polar estimates: well
        inside the width of the correlation peak (on simulated dendrites the correlation
        stays above that of any wrong start within about 1.3 degrees of the true rotation).
    coarse_size_px : int
        The starts (log-polar estimates and the rotation grid) are ranked on images
        reduced to at most this many pixels a side; the best ``n_starts`` are scored at
        full resolution.
    n_starts : int
        Starts scored at full resolution.
    nonrigid : bool
        Estimate the dense non-rigid residual after the similarity transform.
    flow_spacing_px : tuple of float
        Control-point spacing (pixels) of the cubic B-spline warp, coarse to fine.
    flow_stretch_penalty : float
        Weight of the mean squared first difference of neighbouring control points (px^2)
        against the correlation: the warp levels off, rather than extrapolates, where no
        structure constrains it (field edges, long straight dendrites).
    flow_bending_penalty : float
        Weight of the mean squared second difference of the control points (px^2)
        against the correlation: keeps the warp smooth where no structure constrains it.
    flow_penalty : float
        Weight of the mean squared flow (px^2): keeps the warp small.
    min_correlation : float
        Registration fails when the normalised correlation after registration is below this
        (simulated dendrite images: same field 0.93-0.98, another field 0.34-0.60).
    """

    normalise_sigma_px: float = 8.0
    max_rotation_deg: float = 15.0
    rotation_step_deg: float = 1.0
    coarse_size_px: int = 128
    n_starts: int = 3
    nonrigid: bool = True
    flow_spacing_px: tuple[float, ...] = (64.0, 32.0)
    flow_stretch_penalty: float = 0.002
    flow_bending_penalty: float = 0.01
    flow_penalty: float = 0.0005
    min_correlation: float = 0.75

    def __post_init__(self):
        if self.normalise_sigma_px <= 0:
            raise ParameterError(f"normalise_sigma_px must be > 0, got {self.normalise_sigma_px}")
        if not self.flow_spacing_px or min(self.flow_spacing_px) < 8:
            raise ParameterError(
                f"flow_spacing_px must be one or more spacings >= 8 px, got {self.flow_spacing_px}"
            )
        if min(self.flow_stretch_penalty, self.flow_bending_penalty, self.flow_penalty) < 0:
            raise ParameterError("flow_stretch_penalty, flow_bending_penalty and flow_penalty must be >= 0")
        if not 0 < self.max_rotation_deg <= 90:
            raise ParameterError(f"max_rotation_deg must be in (0, 90], got {self.max_rotation_deg}")
        if not 0 < self.rotation_step_deg <= self.max_rotation_deg:
            raise ParameterError(
                f"rotation_step_deg must be in (0, max_rotation_deg], got {self.rotation_step_deg}"
            )
        if self.coarse_size_px < 32 or self.n_starts < 1:
            raise ParameterError(
                f"coarse_size_px must be >= 32 and n_starts >= 1, got {self.coarse_size_px} and {self.n_starts}"
            )


@dataclasses.dataclass(frozen=True)
class SessionTransform:
    """Maps reference-session coordinates to one session's coordinates and back.

    ``session = A(reference + flow(reference))`` in (y, x), where ``A(p) =
    scale * R(rotation) (p - centre) + centre + shift``; for stacks z maps by
    ``z + shift_z``. ``flow`` is a (2, Y, X) field on the reference grid (or None).

    Attributes
    ----------
    shift_yx : tuple of float
    rotation_deg : float
    scale : float
    centre_yx : tuple of float
    shift_z : float
    flow : ndarray or None
    correlation : float
        Normalised cross-correlation of the registered session with the reference.
    """

    shift_yx: tuple[float, float]
    rotation_deg: float
    scale: float
    centre_yx: tuple[float, float]
    shift_z: float = 0.0
    flow: np.ndarray | None = None
    correlation: float = float("nan")

    # -- affine part -----------------------------------------------------------------
    def _matrix(self) -> np.ndarray:
        a = np.deg2rad(self.rotation_deg)
        return self.scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def _affine(self, p: np.ndarray) -> np.ndarray:
        c = np.asarray(self.centre_yx)
        return (p - c) @ self._matrix().T + c + np.asarray(self.shift_yx)

    def _affine_inverse(self, s: np.ndarray) -> np.ndarray:
        c = np.asarray(self.centre_yx)
        return (s - c - np.asarray(self.shift_yx)) @ np.linalg.inv(self._matrix()).T + c

    def _flow_at(self, p: np.ndarray) -> np.ndarray:
        if self.flow is None:
            return np.zeros_like(p)
        coords = [p[:, 0], p[:, 1]]
        return np.stack([ndi.map_coordinates(f, coords, order=1, mode="nearest") for f in self.flow], axis=1)

    # -- public ----------------------------------------------------------------------
    def map_points(self, points_yx: np.ndarray, to: str = "session") -> np.ndarray:
        """Map (N, 2) (y, x) or (N, 3) (y, x, z) pixel coordinates.

        Parameters
        ----------
        points_yx : array_like
            Points in the other frame.
        to : {"session", "reference"}
            ``"session"`` maps reference points into this session, ``"reference"`` the reverse.
        """
        pts = np.atleast_2d(np.asarray(points_yx, dtype=float))
        if pts.shape[1] not in (2, 3):
            raise ParameterError(f"points must be (N, 2) (y, x) or (N, 3) (y, x, z), got shape {pts.shape}")
        out = pts.copy()
        yx = pts[:, :2]
        if to == "session":
            out[:, :2] = self._affine(yx + self._flow_at(yx))
            if pts.shape[1] == 3:
                out[:, 2] = pts[:, 2] + self.shift_z
        elif to == "reference":
            target = self._affine_inverse(yx)  # = p + flow(p); solve for p by fixed-point iteration
            p = target.copy()
            for _ in range(100):
                new = target - self._flow_at(p)
                converged = np.max(np.abs(new - p), initial=0.0) < 1e-4
                p = new
                if converged:
                    break
            out[:, :2] = p
            if pts.shape[1] == 3:
                out[:, 2] = pts[:, 2] - self.shift_z
        else:
            raise ParameterError(f"to must be 'session' or 'reference', got {to!r}")
        return out

    def warp_image(self, image: np.ndarray, order: int = 1) -> np.ndarray:
        """Resample a session image (Y, X) or stack (Z, Y, X) onto the reference grid (float32)."""
        img = np.asarray(image, dtype=np.float32)
        ny, nx = img.shape[-2:]
        yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
        grid = np.stack([yy.ravel(), xx.ravel()], axis=1)
        src = self.map_points(grid, to="session").reshape(ny, nx, 2)
        if img.ndim == 2:
            return ndi.map_coordinates(
                img, [src[..., 0], src[..., 1]], order=order, mode="constant", cval=0.0
            )
        zz = np.arange(img.shape[0], dtype=float)[:, None, None] + self.shift_z
        coords = [
            np.broadcast_to(zz, img.shape),
            *(np.broadcast_to(src[..., k], img.shape) for k in range(2)),
        ]
        return ndi.map_coordinates(img, coords, order=order, mode="constant", cval=0.0)

    def save(self, path: str | Path) -> None:
        """Write the transform to an ``.npz`` file (atomically)."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    shift_yx=np.asarray(self.shift_yx),
                    rotation_deg=self.rotation_deg,
                    scale=self.scale,
                    centre_yx=np.asarray(self.centre_yx),
                    shift_z=self.shift_z,
                    flow=np.zeros((0,)) if self.flow is None else self.flow,
                    correlation=self.correlation,
                )

    @classmethod
    def load(cls, path: str | Path) -> SessionTransform:
        """Read a transform written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"{path}: no such transform file")
        try:
            with np.load(path) as z:
                flow = z["flow"]
                return cls(
                    shift_yx=tuple(float(v) for v in z["shift_yx"]),
                    rotation_deg=float(z["rotation_deg"]),
                    scale=float(z["scale"]),
                    centre_yx=tuple(float(v) for v in z["centre_yx"]),
                    shift_z=float(z["shift_z"]),
                    flow=None if flow.size == 0 else flow.astype(np.float32),
                    correlation=float(z["correlation"]),
                )
        except (KeyError, ValueError, OSError) as exc:
            raise FileFormatError(f"{path}: not a session transform file ({exc})") from exc


def identity_transform(shape_yx: tuple[int, int]) -> SessionTransform:
    """The transform of the reference session onto itself."""
    centre = ((shape_yx[0] - 1) / 2.0, (shape_yx[1] - 1) / 2.0)
    return SessionTransform((0.0, 0.0), 0.0, 1.0, centre, correlation=1.0)


# ----------------------------------------------------------------------------- helpers
def normalise_image(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Brightness-robust version of an image: background removed, scaled by its bright structures.

    The background (Gaussian of ``4 * sigma_px``) is subtracted, the result divided
    by its 99.5th percentile and clipped to [-0.5, 1.5], then lightly smoothed, so a
    session-wide gain change or a few very bright spines do not dominate the match.
    """
    img = np.asarray(image, dtype=np.float64)
    img = img - ndi.gaussian_filter(img, 4.0 * sigma_px)
    scale = np.percentile(img, 99.5)
    if not scale > 0:
        scale = np.abs(img).max() or 1.0
    out = np.clip(img / scale, -0.5, 1.5)
    return ndi.gaussian_filter(out, 1.0).astype(np.float32)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def _resample(image: np.ndarray, transform: SessionTransform) -> tuple[np.ndarray, np.ndarray]:
    """Session image on the reference grid and a mask of pixels that came from inside the session image."""
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    src = transform.map_points(np.stack([yy.ravel(), xx.ravel()], axis=1), to="session").reshape(ny, nx, 2)
    warped = ndi.map_coordinates(image, [src[..., 0], src[..., 1]], order=1, mode="constant", cval=0.0)
    margin = 8
    inside = (
        (src[..., 0] >= margin)
        & (src[..., 0] <= ny - 1 - margin)
        & (src[..., 1] >= margin)
        & (src[..., 1] <= nx - 1 - margin)
    )
    return warped, inside


def _rotation_scale_candidates(ref: np.ndarray, mov: np.ndarray) -> list[tuple[float, float]]:
    """(rotation_deg, scale) candidates from log-polar phase correlation of Fourier magnitudes."""
    window = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1]))
    mags = [np.abs(np.fft.fftshift(np.fft.fft2(im * window))) for im in (ref, mov)]
    shape = (360, 256)
    radius = min(ref.shape) // 2
    polar = [warp_polar(m, radius=radius, output_shape=shape, scaling="log", order=1)[:180] for m in mags]
    polar = [np.log1p(p) for p in polar]
    shifts, _, _ = phase_cross_correlation(polar[0], polar[1], upsample_factor=10, normalization=None)
    angle = shifts[0] * 360.0 / shape[0]
    klog = shape[1] / np.log(radius)
    scale = float(np.exp(shifts[1] / klog))
    scale = scale if 0.8 < scale < 1.25 else 1.0
    return [(a, s) for a in (angle, -angle) for s in (scale, 1.0 / scale)]


def _shifted_start(
    ref_n: np.ndarray, mov_n: np.ndarray, angle: float, scale: float
) -> tuple[float, SessionTransform]:
    """A rotation and scale completed with the translation from phase correlation, and its correlation."""
    shape = ref_n.shape
    centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    trial = SessionTransform((0.0, 0.0), angle, scale, centre)
    rotated, _ = _resample(mov_n, trial)
    shift, _, _ = phase_cross_correlation(ref_n, rotated, upsample_factor=10, normalization=None)
    # rotated(q) = mov(A0(q)); ref(p) ~ rotated(p - shift) -> session = A0(p - shift)
    offset = -np.asarray(shift) @ trial._matrix().T
    trial = SessionTransform(tuple(offset), angle, scale, centre)
    warped, inside = _resample(mov_n, trial)
    return _ncc(ref_n, warped, inside), trial


def _starts(ref_n: np.ndarray, mov_n: np.ndarray, params: SessionParams) -> list[tuple[float, float]]:
    """(rotation_deg, scale) starts of the similarity fit, best first (see the module docstring, step 2)."""
    limit = params.max_rotation_deg
    starts = [(a, s) for a, s in _rotation_scale_candidates(ref_n, mov_n) if abs(a) <= limit]
    n_grid = int(np.floor(limit / params.rotation_step_deg))
    starts += [(float(k * params.rotation_step_deg), 1.0) for k in range(-n_grid, n_grid + 1)]
    starts = list(dict.fromkeys((round(float(a), 6), round(float(s), 6)) for a, s in starts))
    factor = max(1, int(np.ceil(max(ref_n.shape) / params.coarse_size_px)))
    small = [block_reduce(im, (factor, factor), np.mean) for im in (ref_n, mov_n)]
    scores = [_shifted_start(*small, a, s)[0] for a, s in starts]
    order = np.argsort(scores)[::-1]
    return [starts[i] for i in order[: params.n_starts]]


def _fit_similarity(ref_n: np.ndarray, mov_n: np.ndarray, params: SessionParams) -> SessionTransform:
    """Similarity transform (reference -> session) maximising the normalised correlation."""
    shape = ref_n.shape
    centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    start = max(
        (_shifted_start(ref_n, mov_n, a, s) for a, s in _starts(ref_n, mov_n, params)), key=lambda t: t[0]
    )[1]

    yy, xx = np.mgrid[0 : shape[0] : 2, 0 : shape[1] : 2].astype(float)  # every other pixel: 4x cheaper
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1)
    ref_pts = ref_n[0 : shape[0] : 2, 0 : shape[1] : 2].ravel()

    def cost(x):
        t = SessionTransform((x[0], x[1]), x[2], float(np.exp(x[3])), centre)
        src = t._affine(grid)
        inside = ((src >= 8) & (src <= np.array(shape) - 9)).all(axis=1)
        if inside.mean() < 0.3:
            return 1.0
        warped = ndi.map_coordinates(mov_n, [src[:, 0], src[:, 1]], order=1, mode="constant")
        return -_ncc(ref_pts, warped, inside)

    x0 = np.array([start.shift_yx[0], start.shift_yx[1], start.rotation_deg, np.log(start.scale)])
    res = optimize.minimize(cost, x0, method="Powell", options={"xtol": 1e-2, "ftol": 1e-5, "maxfev": 400})
    x = res.x if res.fun <= cost(x0) else x0
    return SessionTransform((float(x[0]), float(x[1])), float(x[2]), float(np.exp(x[3])), centre)


def bspline_basis(n_px: int, spacing_px: float, coords_px: np.ndarray) -> np.ndarray:
    """(len(coords), n_control) cubic B-spline basis on ``[0, n_px - 1]`` with knots every ~``spacing_px``."""
    n_intervals = max(1, int(np.ceil((n_px - 1) / spacing_px)))
    inner = np.linspace(0.0, n_px - 1.0, n_intervals + 1)
    knots = np.r_[[inner[0]] * 3, inner, [inner[-1]] * 3]
    coords = np.clip(np.asarray(coords_px, dtype=float), 0.0, n_px - 1.0)
    return BSpline.design_matrix(coords, knots, 3).toarray()


def _difference(n: int, order: int) -> np.ndarray:
    """(n - order, n) finite-difference operator of ``order`` (no rows when n <= order)."""
    if n <= order:
        return np.zeros((0, n))
    return np.diff(np.eye(n), order, axis=0)


class _BSplineFlow:
    """A smooth displacement field ``flow = By @ C @ Bx.T`` per axis on a regular grid of pixels.

    Parameters
    ----------
    shape_yx : tuple of int
        Image shape.
    spacing_px : float
        Control-point spacing.
    ys, xs : ndarray
        Pixel rows and columns where the field is evaluated.
    """

    def __init__(self, shape_yx, spacing_px, ys, xs):
        self.by = bspline_basis(shape_yx[0], spacing_px, ys)
        self.bx = bspline_basis(shape_yx[1], spacing_px, xs)
        self.n_ctrl = (self.by.shape[1], self.bx.shape[1])
        self.gram = {}
        for order in (1, 2):
            dy, dx = _difference(self.n_ctrl[0], order), _difference(self.n_ctrl[1], order)
            self.gram[order] = (dy.T @ dy, dx.T @ dx)

    @property
    def size(self) -> int:
        return 2 * self.n_ctrl[0] * self.n_ctrl[1]

    def field(self, coef_flat: np.ndarray) -> np.ndarray:
        """(2, len(ys), len(xs)) displacement."""
        c = coef_flat.reshape(2, *self.n_ctrl)
        return np.stack([self.by @ c[k] @ self.bx.T for k in range(2)])

    def back(self, grad_field: np.ndarray) -> np.ndarray:
        """Gradient with respect to the coefficients of a gradient with respect to the field."""
        return np.stack([self.by.T @ grad_field[k] @ self.bx for k in range(2)]).ravel()

    def roughness(self, coef_flat: np.ndarray, order: int) -> tuple[float, np.ndarray]:
        """Mean squared ``order``-th differences of the control points along y and x (px^2), and gradient."""
        c = coef_flat.reshape(2, *self.n_ctrl)
        ry, rx = self.gram[order]
        n = c[0].size
        value = sum(float(np.sum(c[k] * (ry @ c[k])) + np.sum(c[k] * (c[k] @ rx))) for k in range(2))
        grad = np.stack([ry @ c[k] + c[k] @ rx for k in range(2)])
        return value / n, (2.0 * grad / n).ravel()

    def fit_to(self, field: np.ndarray) -> np.ndarray:
        """Least-squares coefficients reproducing a (2, len(ys), len(xs)) field."""
        py, px = np.linalg.pinv(self.by), np.linalg.pinv(self.bx)
        return np.stack([py @ field[k] @ px.T for k in range(2)]).ravel()


def _fit_flow(
    ref_n: np.ndarray, mov_n: np.ndarray, affine: SessionTransform, params: SessionParams
) -> np.ndarray | None:
    """Smooth residual flow on the reference grid: ref(p) ~ session(A(p + flow(p))).

    The flow is a cubic B-spline field whose control points maximise the
    normalised cross-correlation over the whole overlap (L-BFGS with the
    analytic gradient), with a bending penalty on the control points. It is
    fitted coarse to fine (``params.flow_spacing_px``), each level starting from
    the previous one. Fitting the whole field at once avoids the aperture
    problem of local block matching on thin dendrites (the penalty carries the
    constraint of curved parts and spines along straight stretches), and
    structures that appear or vanish only lower the correlation locally.
    """
    ny, nx = ref_n.shape
    step = 2  # every other pixel: 4x cheaper, same optimum
    ys, xs = np.arange(0, ny, step, dtype=float), np.arange(0, nx, step, dtype=float)
    gy_, gx_ = np.meshgrid(ys, xs, indexing="ij")
    grid = np.stack([gy_, gx_])  # (2, ny', nx')
    matrix = affine._matrix()
    ref_pts = ref_n[::step, ::step]
    grad_y, grad_x = np.gradient(mov_n)
    field = np.zeros_like(grid)
    for spacing in params.flow_spacing_px:  # coarse to fine
        model = _BSplineFlow((ny, nx), spacing, ys, xs)
        coef0 = model.fit_to(field)

        def evaluate(coef_flat, model=model):
            disp = model.field(coef_flat)
            p = (grid + disp).reshape(2, -1).T
            src = affine._affine(p)
            coords = [src[:, 0], src[:, 1]]
            w = ndi.map_coordinates(mov_n, coords, order=1, mode="constant", cval=0.0)
            inside = (src[:, 0] >= 8) & (src[:, 0] <= ny - 9) & (src[:, 1] >= 8) & (src[:, 1] <= nx - 9)
            r, wi = ref_pts.ravel()[inside], w[inside]
            rc, wc = r - r.mean(), wi - wi.mean()
            nr, nw = np.sqrt(rc @ rc), np.sqrt(wc @ wc)
            if nr == 0 or nw == 0:
                return 1.0, np.zeros_like(coef_flat)
            ncc = (rc @ wc) / (nr * nw)
            dncc_dw = rc / (nr * nw) - ncc * wc / nw**2
            gy = ndi.map_coordinates(grad_y, coords, order=1, mode="constant")[inside]
            gx = ndi.map_coordinates(grad_x, coords, order=1, mode="constant")[inside]
            g_src = np.stack([gy, gx], axis=1) @ matrix  # d w / d p, chain rule through A
            g_field = np.zeros((2, p.shape[0]))
            g_field[:, inside] = (g_src * dncc_dw[:, None]).T
            stretch, grad_stretch = model.roughness(coef_flat, 1)
            bend, grad_bend = model.roughness(coef_flat, 2)
            size = float(np.mean(disp**2))
            value = (
                -ncc
                + params.flow_stretch_penalty * stretch
                + params.flow_bending_penalty * bend
                + params.flow_penalty * size
            )
            grad = (
                -model.back(g_field.reshape(disp.shape))
                + params.flow_stretch_penalty * grad_stretch
                + params.flow_bending_penalty * grad_bend
                + params.flow_penalty * model.back(2.0 * disp / disp[0].size)
            )
            return value, grad

        res = optimize.minimize(evaluate, coef0, jac=True, method="L-BFGS-B", options={"maxiter": 200})
        if np.isfinite(res.fun) and res.fun < evaluate(coef0)[0]:
            field = model.field(res.x)
    if not np.any(field):
        return None
    full = np.stack(
        [ndi.map_coordinates(f, np.mgrid[0:ny, 0:nx] / float(step), order=1, mode="nearest") for f in field]
    )
    return full.astype(np.float32)


def _register_pair(
    ref_img: np.ndarray, mov_img: np.ndarray, params: SessionParams, index: int
) -> SessionTransform:
    ref_n = normalise_image(ref_img, params.normalise_sigma_px)
    mov_n = normalise_image(mov_img, params.normalise_sigma_px)
    affine = _fit_similarity(ref_n, mov_n, params)
    warped, inside = _resample(mov_n, affine)
    score = _ncc(ref_n, warped, inside)
    result = affine
    if params.nonrigid:
        flow = _fit_flow(ref_n, mov_n, affine, params)
        if flow is not None:
            candidate = dataclasses.replace(affine, flow=flow)
            warped, inside = _resample(mov_n, candidate)
            flow_score = _ncc(ref_n, warped, inside)
            if flow_score > score:
                result, score = candidate, flow_score
    if score < params.min_correlation:
        raise RegistrationError(
            f"session {index} could not be registered to the reference: correlation {score:.2f} after "
            f"registration is below {params.min_correlation} (different field of view or too little structure?)"
        )
    return dataclasses.replace(result, correlation=score)


def register_sessions(
    images: list[np.ndarray], reference_index: int = 0, params: SessionParams | None = None
) -> list[SessionTransform]:
    """Register images or z-stacks of the same field from several sessions to one of them.

    Parameters
    ----------
    images : list of ndarray
        (Y, X) images or (Z, Y, X) stacks, all the same shape.
    reference_index : int
        The session the others are registered to.
    params : SessionParams, optional

    Returns
    -------
    list of SessionTransform
        One per session (identity for the reference): ``map_points(p, to="session")``
        takes reference coordinates into that session.

    Raises
    ------
    ParameterError
        Fewer than 2 images, mismatched shapes, bad ``reference_index``.
    RegistrationError
        A session cannot be matched to the reference (correlation too low).
    """
    params = params or SessionParams()
    if len(images) < 2:
        raise ParameterError(f"register_sessions needs at least 2 images, got {len(images)}")
    if not 0 <= reference_index < len(images):
        raise ParameterError(f"reference_index {reference_index} out of range for {len(images)} images")
    images = [np.asarray(im, dtype=np.float32) for im in images]
    shape = images[reference_index].shape
    for i, im in enumerate(images):
        if im.shape != shape or im.ndim not in (2, 3):
            raise ParameterError(
                f"image {i} has shape {im.shape}; all images must be (Y, X) or (Z, Y, X) of shape {shape}"
            )
        if not np.isfinite(im).all() or np.ptp(im) == 0:
            raise ParameterError(f"image {i} is constant or has NaN values; nothing to register")
    ref = images[reference_index]
    out = []
    for i, im in enumerate(images):
        if i == reference_index:
            out.append(identity_transform(shape[-2:]))
            continue
        if im.ndim == 2:
            out.append(_register_pair(ref, im, params, i))
            continue
        transform = _register_pair(ref.max(axis=0), im.max(axis=0), params, i)
        out.append(dataclasses.replace(transform, shift_z=_z_shift(ref, im, transform)))
    return out


def _z_shift(ref: np.ndarray, stack: np.ndarray, transform: SessionTransform) -> float:
    """Axial shift of a stack after in-plane registration (phase correlation of the z profiles of planes)."""
    planes = np.stack([transform.warp_image(p) for p in stack])
    shift, _, _ = phase_cross_correlation(ref, planes, upsample_factor=10, normalization=None)
    return float(-shift[0])
