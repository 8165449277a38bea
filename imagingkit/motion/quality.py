"""Registration quality: bad-frame flags and per-recording metrics.

A frame is flagged bad (never silently smeared into the result) when it is not
finite or constant, when most of its lines carry stimulation-light artifact,
when its correlation to the reference is a robust outlier, when its shift jumps
away from its neighbours or hits the search limit, or when its mean intensity is
a robust outlier (flashes, blanking, saturation). Correlation and intensity of a
frame with a few artifact lines are measured on its clean lines, so such a frame
is bad only when its clean part cannot be aligned.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

_MAD_TO_SD = 1.4826


def robust_z(values: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(median-centred value) / (1.4826 * MAD), using ``valid`` entries for the statistics."""
    values = np.asarray(values, dtype=np.float64)
    ref = values if valid is None else values[valid]
    if ref.size == 0:
        return np.zeros_like(values)
    med = np.median(ref)
    mad = _MAD_TO_SD * np.median(np.abs(ref - med))
    scale = mad if mad > 0 else max(np.std(ref), 1e-12)
    return (values - med) / scale


def jump_size_px(dy: np.ndarray, dx: np.ndarray, window_frames: int = 11) -> np.ndarray:
    """(T,) distance of each frame's shift from the running median of its neighbours."""
    my = ndi.median_filter(np.asarray(dy, float), size=window_frames, mode="nearest")
    mx = ndi.median_filter(np.asarray(dx, float), size=window_frames, mode="nearest")
    return np.hypot(np.asarray(dy) - my, np.asarray(dx) - mx)


def flag_bad_frames(
    corr: np.ndarray,
    dy: np.ndarray,
    dx: np.ndarray,
    mean_intensity: np.ndarray,
    valid: np.ndarray,
    max_shift_px: float,
    corr_mad: float = 6.0,
    jump_px: float = 4.0,
    intensity_mad: float = 8.0,
    intensity_fraction: float = 0.1,
    corr_min_drop: float = 0.05,
    artifact_fraction: np.ndarray | None = None,
    max_artifact_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Flag frames that cannot be trusted.

    Parameters
    ----------
    corr : ndarray
        (T,) correlation of each registered frame with the reference.
    dy, dx : ndarray
        (T,) rigid shifts in pixels.
    mean_intensity : ndarray
        (T,) mean raw intensity of each frame.
    valid : ndarray
        (T,) bool, False for frames with NaN/inf or no contrast.
    max_shift_px : float
        Search radius; shifts at the limit are unreliable.
    corr_mad, jump_px, intensity_mad, intensity_fraction, corr_min_drop : float
        Thresholds: robust SDs below the median correlation; shift jump in
        pixels; robust SDs and relative deviation of the mean intensity;
        smallest correlation drop below the median that counts.
    artifact_fraction : ndarray, optional
        (T,) fraction of scan lines with light artifact; ``corr`` and
        ``mean_intensity`` should then be measured on the clean lines only.
    max_artifact_fraction : float
        Frames with a larger artifact fraction are bad (too few clean lines to align).

    Returns
    -------
    bad : ndarray
        (T,) bool.
    reason : ndarray
        (T,) str: "", "invalid", "artifact", "low_corr", "jump", "shift_limit", "intensity"
        (first that applies).
    """
    corr = np.asarray(corr, dtype=float)
    valid = np.asarray(valid, dtype=bool)
    reason = np.full(len(corr), "", dtype=object)
    artifact = np.zeros(len(corr)) if artifact_fraction is None else np.asarray(artifact_fraction, float)
    intensity = np.asarray(mean_intensity, dtype=float)
    med_corr = np.median(corr[valid]) if valid.any() else 0.0
    med_intensity = np.median(intensity[valid]) if valid.any() else 0.0
    z_int = robust_z(intensity, valid)
    rel = np.abs(intensity - med_intensity) / max(abs(med_intensity), 1e-12)
    checks = [
        ("intensity", valid & (np.abs(z_int) > intensity_mad) & (rel > intensity_fraction)),
        ("low_corr", valid & (robust_z(corr, valid) < -corr_mad) & (corr < med_corr - corr_min_drop)),
        ("shift_limit", valid & ((np.abs(dy) >= max_shift_px - 0.5) | (np.abs(dx) >= max_shift_px - 0.5))),
        ("jump", valid & (jump_size_px(dy, dx) > jump_px)),
        ("artifact", valid & (artifact > max_artifact_fraction)),
        ("invalid", ~valid),
    ]
    for name, hit in reversed(checks):
        reason[hit] = name
    bad = reason != ""
    return bad, reason.astype(str)


def crispness(image: np.ndarray, margin_px: int = 0, smooth_sigma_px: float = 1.0) -> float:
    """Mean gradient magnitude over the intensity standard deviation (higher = sharper), ignoring a border.

    The image is first smoothed by ``smooth_sigma_px`` so pixel noise does not count as sharpness.
    """
    img = ndi.gaussian_filter(np.asarray(image, dtype=np.float64), smooth_sigma_px)
    if margin_px:
        img = img[margin_px:-margin_px, margin_px:-margin_px]
    gy, gx = np.gradient(img)
    sd = img.std()
    return float(np.mean(np.hypot(gy, gx)) / sd) if sd > 0 else 0.0


def recording_metrics(
    corr: np.ndarray,
    dy: np.ndarray,
    dx: np.ndarray,
    bad: np.ndarray,
    mean_raw: np.ndarray,
    mean_registered: np.ndarray,
    margin_px: int,
    residual_dy: np.ndarray | None = None,
    residual_dx: np.ndarray | None = None,
) -> dict:
    """JSON-able per-recording summary of one plane's registration."""
    good = ~np.asarray(bad, dtype=bool)
    out = {
        "n_frames": int(len(corr)),
        "n_bad_frames": int((~good).sum()),
        "corr_median": float(np.median(corr[good])) if good.any() else None,
        "corr_p05": float(np.percentile(corr[good], 5)) if good.any() else None,
        "shift_sd_px": [float(np.std(dy[good])), float(np.std(dx[good]))] if good.any() else None,
        "shift_max_abs_px": float(max(np.abs(dy).max(), np.abs(dx).max())),
        "crispness_raw": crispness(mean_raw, margin_px),
        "crispness_registered": crispness(mean_registered, margin_px),
    }
    if residual_dy is not None:
        out["residual_motion_rms_px"] = float(np.sqrt(np.mean(residual_dy**2 + residual_dx**2)))
    return out
