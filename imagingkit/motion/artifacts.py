"""Stimulation-light artifact lines: find bright outlier scan lines so their frames stay alignable.

Light from an optogenetic stimulus leaks into the detectors while it is on, so
the scan lines recorded during a pulse are far brighter than usual; the other
lines of the frame are normal and carry the response. A frame with a few such
lines is aligned on its clean lines (the artifact lines are blended into the
frame's clean median before the shift is estimated) and marked ``artifact``;
only frames that still cannot be aligned are marked ``bad``.

Detection works per scan line (rows of the raw frame): the line's mean minus
its typical value (median over a sample of the recording), minus the frame's
median of that difference (so global brightness changes, bleaching or a flash
of the whole frame do not count), in units of the line's robust spread over the
sample. Lines above ``z_threshold`` are artifact lines, widened by
``dilate_lines`` on each side (partly lit lines at the edges of a pulse).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage as ndi

_MAD_TO_SD = 1.4826


@dataclasses.dataclass(frozen=True)
class LineBaseline:
    """Typical line brightness of one plane, from a sample of frames.

    Attributes
    ----------
    median : ndarray
        (Y,) median line mean over the sample.
    scale : ndarray
        (Y,) robust s.d. (1.4826 MAD) of the line residual over the sample.
    """

    median: np.ndarray
    scale: np.ndarray


def line_means(frames: np.ndarray) -> np.ndarray:
    """(n, Y) float64 mean of every scan line of (n, Y, X) frames."""
    return np.asarray(frames, dtype=np.float32).mean(axis=2, dtype=np.float64)


def _residual(means: np.ndarray, median: np.ndarray) -> np.ndarray:
    excess = means - median
    return excess - np.median(excess, axis=1, keepdims=True)


def line_baseline(sample: np.ndarray) -> LineBaseline:
    """Typical brightness and spread of every line from (N, Y, X) sample frames (artifact frames allowed)."""
    means = line_means(sample)
    median = np.median(means, axis=0)
    res = _residual(means, median)
    scale = _MAD_TO_SD * np.median(np.abs(res - np.median(res, axis=0)), axis=0)
    floor = max(0.1 * float(np.median(scale)), 1e-6)
    return LineBaseline(median, np.maximum(scale, floor))


def detect_artifact_lines(
    means: np.ndarray, baseline: LineBaseline, z_threshold: float = 8.0, dilate_lines: int = 1
) -> np.ndarray:
    """(n, Y) bool mask of scan lines far brighter than usual.

    Parameters
    ----------
    means : ndarray
        (n, Y) line means of the raw frames (:func:`line_means`).
    baseline : LineBaseline
    z_threshold : float
        Robust s.d. above the typical line residual that make a line an artifact line.
    dilate_lines : int
        Lines added on each side of every detected run.
    """
    z = _residual(np.asarray(means, dtype=np.float64), baseline.median) / baseline.scale
    mask = z > z_threshold
    if dilate_lines > 0 and mask.any():
        mask = ndi.binary_dilation(mask, structure=np.ones((1, 2 * dilate_lines + 1), bool))
    return mask


def clean_line_weights(mask: np.ndarray, ramp_lines: float = 3.0) -> np.ndarray:
    """(n, Y) float32 weights: 0 on artifact lines, rising smoothly to 1 over ``ramp_lines`` lines."""
    mask = np.asarray(mask, dtype=bool)
    weights = np.ones(mask.shape, dtype=np.float32)
    for i in np.flatnonzero(mask.any(axis=1)):
        if mask[i].all():
            weights[i] = 0.0
            continue
        dist = ndi.distance_transform_edt(~mask[i])  # lines to the nearest artifact line
        weights[i] = np.clip((dist - 0.5) / ramp_lines, 0.0, 1.0) ** 2 * (
            3 - 2 * np.clip((dist - 0.5) / ramp_lines, 0.0, 1.0)
        )
    return weights


def blend_artifact_lines(frames: np.ndarray, mask: np.ndarray, ramp_lines: float = 3.0) -> np.ndarray:
    """Copy of (n, Y, X) frames with artifact lines faded into each frame's clean median (for alignment only).

    Frames without artifact lines are returned unchanged (same values).
    """
    out = np.array(frames, dtype=np.float32, copy=True)
    weights = clean_line_weights(mask, ramp_lines)
    for i in np.flatnonzero(np.asarray(mask).any(axis=1)):
        clean = out[i][~mask[i]]
        fill = np.float32(np.median(clean)) if clean.size else np.float32(0.0)
        w = weights[i][:, None]
        out[i] = out[i] * w + fill * (1.0 - w)
    return out


def registered_row_mask(mask_lines: np.ndarray, dy: float) -> np.ndarray:
    """(Y,) bool rows of a registered frame that sample an artifact line (registered row r shows raw row r + dy)."""
    mask_lines = np.asarray(mask_lines, dtype=bool)
    ny = mask_lines.size
    source = np.arange(ny) + float(dy)
    lo = np.clip(np.floor(source).astype(int), 0, ny - 1)
    hi = np.clip(np.ceil(source).astype(int), 0, ny - 1)
    return mask_lines[lo] | mask_lines[hi]
