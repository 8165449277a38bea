"""Reference image built from the movie itself, iteratively and robust to artifact frames.

Start from the mean of the frames most correlated with each other (bright or
corrupt frames correlate poorly with everything and are never picked), then
alternate: register the sample to the reference, keep the best-correlated
frames, average them after shifting, and re-centre on their mean position.
"""

from __future__ import annotations

import numpy as np

from imagingkit.errors import DataError
from imagingkit.motion.rigid import estimate_rigid_shifts, prepare_reference, shift_frames


def _zscore_rows(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each row; returns the scores and a mask of rows with non-zero finite spread."""
    flat = flat - flat.mean(axis=1, keepdims=True)
    std = flat.std(axis=1)
    ok = np.isfinite(std) & (std > 0)
    flat[ok] /= std[ok, None]
    flat[~ok] = 0.0
    return flat, ok


def _downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downsampling of (T, Y, X) by ``factor`` (edges cropped)."""
    t, ny, nx = frames.shape
    ny, nx = ny // factor * factor, nx // factor * factor
    return frames[:, :ny, :nx].reshape(t, ny // factor, factor, nx // factor, factor).mean(axis=(2, 4))


def pick_initial_reference(frames: np.ndarray, n_best: int = 20) -> np.ndarray:
    """Mean of the ``n_best`` frames most correlated with the most typical frame.

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) float32 frames (finite, not constant).
    """
    factor = max(1, min(frames.shape[1:]) // 64)
    small = _downsample(frames, factor).reshape(len(frames), -1)
    z, ok = _zscore_rows(small.astype(np.float64))
    corr = (z @ z.T) / z.shape[1]
    corr[~ok] = -1.0
    corr[:, ~ok] = -1.0
    n_best = int(min(n_best, ok.sum()))
    top = -np.sort(-corr, axis=1)[:, 1 : n_best + 1]
    seed = int(np.argmax(top.mean(axis=1)))
    best = np.argsort(-corr[seed])[:n_best]
    return frames[best].mean(axis=0)


def frame_correlation(frames: np.ndarray, reference: np.ndarray, margin_px: int = 0) -> np.ndarray:
    """(T,) Pearson correlation of each frame with the reference, ignoring a border of ``margin_px``."""
    sl = (
        slice(None),
        slice(margin_px, frames.shape[1] - margin_px),
        slice(margin_px, frames.shape[2] - margin_px),
    )
    f = np.asarray(frames[sl], dtype=np.float32).reshape(len(frames), -1)
    r = np.asarray(reference[sl[1:]], dtype=np.float32).ravel()
    r = r - r.mean()
    f = f - f.mean(axis=1, keepdims=True)
    num = f @ r
    den = np.sqrt(np.einsum("ij,ij->i", f, f) * float(r @ r))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / den, 0.0)
    return np.nan_to_num(out).astype(np.float32)


def compute_reference(
    frames: np.ndarray,
    max_shift_px: int,
    n_iterations: int = 6,
    smooth_sigma_px: float = 1.15,
    taper_slope_px: float = 3.45,
    method: str = "fourier",
    workers: int = 1,
) -> np.ndarray:
    """Iterative reference image from a sample of frames.

    Parameters
    ----------
    frames : ndarray
        (T, Y, X) sample of frames (e.g. a few hundred spread over the recording).
    max_shift_px : int
        Search radius of the registration.
    n_iterations : int
        Refinement rounds; the kept fraction grows from 20 % to 50 %.

    Returns
    -------
    ndarray
        (Y, X) float32 reference, centred on the mean position of its frames.

    Raises
    ------
    DataError
        Fewer than 2 usable (finite, non-constant) frames.
    """
    frames = np.asarray(frames, dtype=np.float32)
    flat = frames.reshape(len(frames), -1)
    usable = np.isfinite(flat).all(axis=1) & (flat.std(axis=1) > 0)
    if usable.sum() < 2:
        raise DataError(
            f"cannot build a reference image: only {int(usable.sum())} of {len(frames)} sampled frames "
            "are finite and non-constant (all-zero or NaN frames?)"
        )
    frames = frames[usable]
    ref = pick_initial_reference(frames)
    for it in range(n_iterations):
        prepared = prepare_reference(ref, max_shift_px, smooth_sigma_px, taper_slope_px)
        dy, dx, peak = estimate_rigid_shifts(frames, prepared, workers=workers)
        keep_fraction = 0.2 + 0.3 * it / max(1, n_iterations - 1)
        n_keep = max(2, int(round(keep_fraction * len(frames))))
        best = np.argsort(-peak)[:n_keep]
        ref = shift_frames(frames[best], dy[best], dx[best], method=method, workers=workers).mean(axis=0)
        centre_y, centre_x = float(np.mean(dy[best])), float(np.mean(dx[best]))
        ref = shift_frames(ref[None], np.array([-centre_y]), np.array([-centre_x]), method=method)[0]
    return ref.astype(np.float32)
