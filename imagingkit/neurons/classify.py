"""Cell / not-cell classification of ROIs from shape and activity features.

The default classifier is a fixed logistic score over interpretable features
(documented in :func:`default_cell_probability`); a user with labelled ROIs can
fit their own with :func:`fit_classifier` (scikit-learn logistic regression)
and pass it to :func:`classify_rois`. The threshold on ``cell_prob`` is always
the caller's choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from imagingkit.errors import DataError, ParameterError
from imagingkit.neurons.roiset import RoiSet

UNDERSIZE_PENALTY = 2.0  # soma mode: logit per unit |log npix_ratio| below the expected size
OVERSIZE_PENALTY = 2.5  # ... and above it
FEATURES = ("npix_ratio", "compactness", "aspect_ratio", "trace_skew", "trace_snr")


def roi_features(
    roi_set: RoiSet, expected_diameter_px: float, traces: np.ndarray | None = None
) -> pd.DataFrame:
    """Per-ROI features used by the classifiers.

    Parameters
    ----------
    roi_set : RoiSet
    expected_diameter_px : float
        Expected ROI diameter; ``npix_ratio`` is npix over the area of that disk.
    traces : ndarray, optional
        (n_rois, T) activity traces (any units; NaN allowed). Without them
        ``trace_skew`` is taken from the set and ``trace_snr`` is NaN.

    Returns
    -------
    DataFrame
        Columns ``npix_ratio, compactness, aspect_ratio, trace_skew, trace_snr``.
        ``trace_snr`` is the peak of the trace above its median in robust SDs.
    """
    shape = roi_set.shape_stats()
    expected_area = np.pi * (expected_diameter_px / 2) ** 2
    out = pd.DataFrame(
        {
            "npix_ratio": shape["npix"].to_numpy(float) / expected_area,
            "compactness": shape["compactness"].to_numpy(float),
            "aspect_ratio": shape["aspect_ratio"].to_numpy(float),
            "trace_skew": np.asarray(roi_set.trace_skew, float),
            "trace_snr": np.full(roi_set.n_rois, np.nan),
        },
        columns=list(FEATURES),
    )
    if traces is not None:
        traces = np.asarray(traces, dtype=np.float64)
        if traces.shape[0] != roi_set.n_rois:
            raise DataError(f"traces have {traces.shape[0]} rows but the ROI set has {roi_set.n_rois} ROIs")
        if traces.shape[1] > 2:
            out["trace_skew"] = stats.skew(traces, axis=1, nan_policy="omit")
            med = np.nanmedian(traces, axis=1)
            sd = 1.4826 * np.nanmedian(np.abs(traces - med[:, None]), axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["trace_snr"] = (np.nanmax(traces, axis=1) - med) / np.where(sd > 0, sd, np.nan)
    return out


def default_cell_probability(
    features: pd.DataFrame, mode: str = "soma", snr_threshold: float = 5.0
) -> np.ndarray:
    """Fixed logistic score of the features; (n_rois,) probabilities in [0, 1].

    ``logit = 2 - a |log npix_ratio| - 3 (compactness - 1) - (aspect_ratio - 1)
    + 2 log(trace_snr / snr_threshold) + 0.5 trace_skew`` with ``a = 2.5`` for
    ROIs larger than expected and 2 for smaller ones (cells partly hidden by a
    neighbour or with a saturated core come out small); in "small" mode the
    shape terms are dropped except a penalty for ROIs larger than 4x expected.
    Missing (NaN) features contribute nothing. The weights were set by hand so
    that a disk of the expected size with a clear transient scores ~0.9 and a
    sprawling, 3x oversized or activity-less region scores < 0.5.
    """
    if mode not in ("soma", "small"):
        raise ParameterError(f"mode must be 'soma' or 'small', got {mode!r}")
    f = features
    ratio = np.clip(f["npix_ratio"].to_numpy(float), 1e-3, None)
    logit = np.full(len(f), 2.0)
    if mode == "soma":
        logit -= np.where(ratio < 1, UNDERSIZE_PENALTY, OVERSIZE_PENALTY) * np.abs(np.log(ratio))
        logit -= 3.0 * np.clip(f["compactness"].to_numpy(float) - 1.0, 0, None)
        logit -= 1.0 * np.clip(f["aspect_ratio"].to_numpy(float) - 1.0, 0, None)
    else:
        logit -= 2.5 * np.clip(np.log(ratio / 4.0), 0, None)
    snr = f["trace_snr"].to_numpy(float)
    logit += np.where(np.isfinite(snr), 2.0 * np.log(np.clip(snr, 1e-3, None) / snr_threshold), 0.0)
    skew = f["trace_skew"].to_numpy(float)
    logit += np.where(np.isfinite(skew), 0.5 * np.clip(skew, -4, 4), 0.0)
    return 1.0 / (1.0 + np.exp(-logit))


def fit_classifier(features: pd.DataFrame, is_cell: np.ndarray):
    """Fit a logistic-regression classifier (scikit-learn) on labelled ROIs.

    Parameters
    ----------
    features : DataFrame
        From :func:`roi_features`; NaN features are replaced by the column median.
    is_cell : ndarray of bool
        (n_rois,) labels.

    Returns
    -------
    sklearn Pipeline with ``predict_proba``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(is_cell, bool)
    if len(np.unique(labels)) < 2:
        raise DataError("fit_classifier needs both cell and not-cell examples")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(_feature_matrix(features), labels)
    return model


def _feature_matrix(features: pd.DataFrame) -> np.ndarray:
    x = features[list(FEATURES)].to_numpy(float).copy()
    x[:, 0] = np.log(np.clip(x[:, 0], 1e-3, None))
    col_median = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0)
    col_median = np.where(np.isfinite(col_median), col_median, 0.0)
    bad = ~np.isfinite(x)
    x[bad] = np.take(col_median, np.nonzero(bad)[1])
    return x


def classify_rois(
    roi_set: RoiSet,
    expected_diameter_px: float,
    traces: np.ndarray | None = None,
    threshold: float = 0.5,
    mode: str = "soma",
    model=None,
    snr_threshold: float = 5.0,
) -> RoiSet:
    """Return a copy of ``roi_set`` with ``cell_prob`` and ``is_cell = cell_prob >= threshold``.

    Parameters
    ----------
    roi_set : RoiSet
    expected_diameter_px : float
    traces : ndarray, optional
        (n_rois, T) activity traces for the activity features.
    threshold : float
        Probability at or above which an ROI is called a cell, in [0, 1].
    mode : {"soma", "small"}
    model : fitted classifier, optional
        From :func:`fit_classifier`; default: :func:`default_cell_probability`.
    snr_threshold : float
        Trace SNR at which the default score's activity term is neutral.
    """
    if not 0 <= threshold <= 1:
        raise ParameterError(f"threshold must be in [0, 1], got {threshold}")
    if roi_set.n_rois == 0:
        return roi_set
    features = roi_features(roi_set, expected_diameter_px, traces)
    if model is None:
        prob = default_cell_probability(features, mode, snr_threshold)
    else:
        prob = model.predict_proba(_feature_matrix(features))[:, 1]
    return roi_set.with_classification(prob, threshold, trace_skew=features["trace_skew"].to_numpy(float))
