"""Scoring detected spines against ground truth: one-to-one matching, precision, recall, F1."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


def match_points(
    pred_um: np.ndarray, truth_um: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) within a tolerance.

    Parameters
    ----------
    pred_um, truth_um : ndarray
        (n, d) and (m, d) coordinates in the same units as ``tolerance``.
    tolerance : float
        Largest distance of a match.

    Returns
    -------
    pred_index, truth_index : ndarray of int
        Matched pairs.
    """
    if len(pred_um) == 0 or len(truth_um) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    cost = cdist(pred_um, truth_um)
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(cost <= tolerance, cost, big))
    ok = cost[rows, cols] <= tolerance
    return rows[ok], cols[ok]


def detection_scores(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    spacing_um: tuple[float, ...] | None,
    tolerance_um: float = 0.5,
    tolerance_px: float = 3.0,
) -> dict:
    """Precision, recall and F1 of ``pred`` against ``truth`` (both with ``y, x`` and ``z`` for stacks).

    Matching is within ``tolerance_um`` in micrometres (3D distance for stacks) when
    ``spacing_um`` is given, else within ``tolerance_px`` pixels.
    """
    cols = ["z", "y", "x"] if spacing_um is not None and len(spacing_um) == 3 else ["y", "x"]
    scale = np.asarray(spacing_um, float) if spacing_um is not None else np.ones(len(cols))
    tol = tolerance_um if spacing_um is not None else tolerance_px
    p = pred[cols].to_numpy(float) * scale if len(pred) else np.zeros((0, len(cols)))
    t = truth[cols].to_numpy(float) * scale if len(truth) else np.zeros((0, len(cols)))
    pi, ti = match_points(p, t, tol)
    tp = len(pi)
    precision = tp / len(p) if len(p) else (1.0 if len(t) == 0 else 0.0)
    recall = tp / len(t) if len(t) else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "n_pred": int(len(p)),
        "n_truth": int(len(t)),
        "tp": int(tp),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "pred_index": pi,
        "truth_index": ti,
    }


def arc_errors(
    pred_arc_um: np.ndarray, truth_arc_um: np.ndarray, pred_dendrite: np.ndarray, truth_dendrite: np.ndarray
) -> np.ndarray:
    """Absolute arc-length errors of matched spines, after aligning each dendrite's arc origin.

    Arc origins and directions are conventions (where tracing starts), so for each
    (detected dendrite, true dendrite) pair the direction (sign) and one offset are fitted
    (median) over all its matched spines; the errors are the residuals. Pairs with a
    single spine carry no information and are skipped.
    """
    frame = pd.DataFrame({"p": pred_arc_um, "t": truth_arc_um, "pd": pred_dendrite, "td": truth_dendrite})
    errors = []
    for _, group in frame.groupby(["pd", "td"]):
        if len(group) < 2:
            continue
        best = None
        for sign in (1.0, -1.0):
            diff = group["p"].to_numpy() - sign * group["t"].to_numpy()
            err = np.abs(diff - np.median(diff))
            if best is None or np.median(err) < np.median(best):
                best = err
        errors.append(best)
    return np.concatenate(errors) if errors else np.zeros(0)


#: Visibility limit of a simulated spine (:mod:`imagingkit.synth`): noiseless head peak / shaft
#: peak (synth's ``intensity_ratio``) ...
VISIBLE_CONTRAST = 0.3
#: ... and head radius (µm; smaller heads are below the two-photon resolution, PSF sigma 0.17 µm).
VISIBLE_HEAD_RADIUS_UM = 0.2


def visible_spines(truth: pd.DataFrame) -> np.ndarray:
    """Per truth row of :mod:`imagingkit.synth`: is the spine above the visibility limit, base in view?

    Sub-resolution spines (head radius below :data:`VISIBLE_HEAD_RADIUS_UM` or contrast below
    :data:`VISIBLE_CONTRAST`) sit at the noise floor, where a human scorer would not see them
    either; border spines (``base_in_fov`` False: the head is in the image, the shaft point it
    grows from is not) have no dendrite leading to them. Absent rows (contrast NaN) are False.
    """
    return (
        (truth["intensity_ratio"].to_numpy(float) >= VISIBLE_CONTRAST)
        & (truth["head_radius_um"].to_numpy(float) >= VISIBLE_HEAD_RADIUS_UM)
        & truth["base_in_fov"].to_numpy(bool)
    )


def visible_detection_scores(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    visible: np.ndarray,
    spacing_um: tuple[float, ...] | None,
    tolerance_um: float = 0.5,
    tolerance_px: float = 3.0,
) -> dict:
    """Precision, recall and F1 on the ``visible`` truth spines only, fairly.

    Predictions are matched against *all* truth spines; a prediction matched to an
    invisible (e.g. sub-resolution) spine is neither a true nor a false positive, so
    finding a spine a human could not see is not punished, and missing it is not counted.
    """
    visible = np.asarray(visible, bool)
    full = detection_scores(pred, truth, spacing_um, tolerance_um, tolerance_px)
    hit_visible = visible[full["truth_index"]]
    tp = int(hit_visible.sum())
    n_pred = full["n_pred"] - int((~hit_visible).sum())
    n_truth = int(visible.sum())
    precision = tp / n_pred if n_pred else (1.0 if n_truth == 0 else 0.0)
    recall = tp / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "n_pred": n_pred,
        "n_truth": n_truth,
        "tp": tp,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
