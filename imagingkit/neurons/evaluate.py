"""Score detected ROIs against ground truth (simulator footprints): matching, P/R/F1, trace correlation."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment

from imagingkit.neurons.roiset import RoiSet


@dataclasses.dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of detected to true ROIs.

    Attributes
    ----------
    pairs : ndarray
        (n_matched, 2) (detected index, true index).
    precision, recall, f1 : float
    n_detected, n_true : int
    """

    pairs: np.ndarray
    precision: float
    recall: float
    f1: float
    n_detected: int
    n_true: int


def truth_masks(footprints: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """(n, Y, X) bool: pixels above ``fraction`` of each true footprint's peak."""
    footprints = np.asarray(footprints, dtype=np.float32)
    peak = footprints.reshape(len(footprints), -1).max(axis=1)
    return footprints > fraction * peak[:, None, None]


def match_rois(
    detected: RoiSet, true_masks: np.ndarray, iou_min: float = 0.3, centroid_max_px: float = 4.0
) -> MatchResult:
    """Match detected ROIs to true masks one-to-one (Hungarian assignment).

    A pair is admissible when IoU >= ``iou_min`` or the centroid distance is
    <= ``centroid_max_px``; among admissible pairs the assignment maximises
    IoU (ties broken by closeness).
    """
    true_masks = np.asarray(true_masks, bool)
    n_det, n_true = detected.n_rois, len(true_masks)
    if n_det == 0 or n_true == 0:
        return MatchResult(np.zeros((0, 2), int), float(n_det == 0), float(n_true == 0), 0.0, n_det, n_true)
    det = detected.masks().reshape(n_det, -1).astype(np.float32)
    tru = true_masks.reshape(n_true, -1).astype(np.float32)
    inter = det @ tru.T
    union = det.sum(1)[:, None] + tru.sum(1)[None, :] - inter
    iou = inter / np.maximum(union, 1)
    c_det = detected.centroids_yx
    c_true = np.array([np.argwhere(m).mean(axis=0) for m in true_masks])
    dist = np.linalg.norm(c_det[:, None, :] - c_true[None, :, :], axis=2)
    admissible = (iou >= iou_min) | (dist <= centroid_max_px)
    score = np.where(admissible, 1.0 + iou + 1.0 / (1.0 + dist), 0.0)
    rows, cols = linear_sum_assignment(-score)
    keep = admissible[rows, cols]
    pairs = np.column_stack([rows[keep], cols[keep]])
    n_match = len(pairs)
    precision = n_match / n_det
    recall = n_match / n_true
    f1 = 2 * precision * recall / (precision + recall) if n_match else 0.0
    return MatchResult(pairs, precision, recall, f1, n_det, n_true)


def trace_correlations(estimated: np.ndarray, truth: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Pearson correlation per matched pair between estimated (n_det, T) and true (n_true, T) traces.

    Frames where the estimate is NaN are left out.
    """
    out = np.full(len(pairs), np.nan)
    for k, (i, j) in enumerate(pairs):
        a, b = np.asarray(estimated[i], float), np.asarray(truth[j], float)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
            out[k] = np.corrcoef(a[ok], b[ok])[0, 1]
    return out
