"""The ROI set: per-ROI pixel weights and the shape statistics derived from them.

Every detection engine and every importer returns a :class:`RoiSet`; extraction,
classification and the writers take one. ROIs may overlap (a pixel can carry
weight in several ROIs).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import sparse

from imagingkit.errors import DataError, ParameterError

CSV_COLUMNS = ("roi_id", "y", "x", "npix", "radius_px", "cell_prob", "is_cell")


@dataclasses.dataclass(frozen=True)
class RoiSet:
    """A set of weighted ROIs on a (Y, X) image.

    Attributes
    ----------
    shape_yx : tuple of int
        (Y, X) size of the image the ROIs live on.
    ypix, xpix : tuple of ndarray
        Per ROI, int32 row and column indices of its pixels.
    lam : tuple of ndarray
        Per ROI, float32 non-negative pixel weights (same length as ``ypix``).
    cell_prob : ndarray
        (n_rois,) probability in [0, 1] that the ROI is a cell body / real process.
    is_cell : ndarray
        (n_rois,) bool, ``cell_prob >= threshold`` of the classification used.
    trace_skew : ndarray
        (n_rois,) skewness of the ROI's activity trace (NaN when unknown).
    engine : str
        What produced the set ("builtin", "suite2p", "suite2p-folder", "imagej", "labels"...).
    """

    shape_yx: tuple[int, int]
    ypix: tuple[np.ndarray, ...] = ()
    xpix: tuple[np.ndarray, ...] = ()
    lam: tuple[np.ndarray, ...] = ()
    cell_prob: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    is_cell: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    trace_skew: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    engine: str = ""

    def __post_init__(self) -> None:
        n = len(self.ypix)
        if len(self.xpix) != n or len(self.lam) != n:
            raise ParameterError(
                f"RoiSet needs as many xpix and lam arrays as ypix arrays, got {n}, {len(self.xpix)}, {len(self.lam)}"
            )
        for name in ("cell_prob", "is_cell", "trace_skew"):
            if len(getattr(self, name)) != n:
                raise ParameterError(
                    f"RoiSet.{name} must have one value per ROI ({n}), got {len(getattr(self, name))}"
                )
        ny, nx = self.shape_yx
        for i, (y, x, w) in enumerate(zip(self.ypix, self.xpix, self.lam, strict=True)):
            if not len(y) == len(x) == len(w):
                raise ParameterError(
                    f"ROI {i}: ypix, xpix and lam differ in length ({len(y)}, {len(x)}, {len(w)})"
                )
            if len(y) == 0:
                raise DataError(f"ROI {i} has no pixels")
            if y.min() < 0 or x.min() < 0 or y.max() >= ny or x.max() >= nx:
                raise DataError(f"ROI {i} has pixels outside the {ny}x{nx} image")

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_pixels(
        cls,
        shape_yx: tuple[int, int],
        ypix: list,
        xpix: list,
        lam: list | None = None,
        cell_prob: np.ndarray | None = None,
        is_cell: np.ndarray | None = None,
        trace_skew: np.ndarray | None = None,
        engine: str = "",
    ) -> RoiSet:
        """Build a set from per-ROI pixel lists (weights default to 1, probabilities to 1)."""
        n = len(ypix)
        lam = [np.ones(len(y)) for y in ypix] if lam is None else lam
        prob = np.ones(n) if cell_prob is None else np.asarray(cell_prob, dtype=float)
        return cls(
            shape_yx=(int(shape_yx[0]), int(shape_yx[1])),
            ypix=tuple(np.asarray(y, dtype=np.int32) for y in ypix),
            xpix=tuple(np.asarray(x, dtype=np.int32) for x in xpix),
            lam=tuple(np.asarray(w, dtype=np.float32) for w in lam),
            cell_prob=prob,
            is_cell=np.ones(n, bool) if is_cell is None else np.asarray(is_cell, dtype=bool),
            trace_skew=np.full(n, np.nan) if trace_skew is None else np.asarray(trace_skew, dtype=float),
            engine=engine,
        )

    @classmethod
    def from_masks(cls, masks: np.ndarray, engine: str = "masks") -> RoiSet:
        """Build a set from (n, Y, X) weight or boolean masks (zero = not in the ROI)."""
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ParameterError(f"masks must be (n_rois, Y, X), got shape {masks.shape}")
        ypix, xpix, lam = [], [], []
        for m in masks:
            y, x = np.nonzero(m)
            if len(y) == 0:
                continue
            ypix.append(y)
            xpix.append(x)
            lam.append(np.asarray(m[y, x], dtype=np.float32))
        return cls.from_pixels(masks.shape[1:], ypix, xpix, lam, engine=engine)

    @classmethod
    def from_label_image(cls, labels: np.ndarray, engine: str = "labels") -> RoiSet:
        """Build a set from a (Y, X) integer label image (0 = background, label k -> ROI k - 1 order)."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ParameterError(f"labels must be a 2-D integer image, got {labels.dtype} {labels.shape}")
        ids = np.unique(labels[labels > 0])
        ypix, xpix = [], []
        for k in ids:
            y, x = np.nonzero(labels == k)
            ypix.append(y)
            xpix.append(x)
        return cls.from_pixels(labels.shape, ypix, xpix, engine=engine)

    # -- basic properties --------------------------------------------------------
    @property
    def n_rois(self) -> int:
        return len(self.ypix)

    def __len__(self) -> int:
        return self.n_rois

    @property
    def npix(self) -> np.ndarray:
        """(n_rois,) number of pixels per ROI."""
        return np.array([len(y) for y in self.ypix], dtype=np.int64)

    @property
    def centroids_yx(self) -> np.ndarray:
        """(n_rois, 2) weight-averaged (y, x) centre of each ROI."""
        out = np.zeros((self.n_rois, 2))
        for i, (y, x, w) in enumerate(zip(self.ypix, self.xpix, self._weights(), strict=True)):
            out[i] = (np.sum(w * y), np.sum(w * x))
        return out

    def _weights(self) -> list[np.ndarray]:
        """Weights normalised to sum 1 per ROI (uniform when all weights are zero)."""
        out = []
        for w in self.lam:
            w = np.clip(np.asarray(w, dtype=np.float64), 0, None)
            total = w.sum()
            out.append(w / total if total > 0 else np.full(len(w), 1.0 / len(w)))
        return out

    @property
    def radius_px(self) -> np.ndarray:
        """(n_rois,) radius of the disk with the ROI's second moments (2 * sqrt(geometric mean variance)).

        A uniform disk of radius r has variance r**2 / 4 along every axis, so a
        filled disk gives back its radius.
        """
        return np.array([_ellipse_axes(y, x)[2] for y, x in zip(self.ypix, self.xpix, strict=True)])

    def shape_stats(self) -> pd.DataFrame:
        """Per-ROI shape statistics.

        Columns: ``npix``, ``radius_px``, ``aspect_ratio`` (major / minor axis of
        the moment ellipse, >= 1), ``compactness`` (mean pixel distance to the
        centroid over that of a disk with the same area, 1 for a disk, larger
        for elongated or scattered shapes), ``solidity`` (pixels / convex-hull
        area proxy from the bounding ellipse, <= ~1), ``footprint_weight``
        (fraction of total weight in the brightest half of the pixels).
        """
        rows = []
        for y, x, w in zip(self.ypix, self.xpix, self._weights(), strict=True):
            major, minor, radius = _ellipse_axes(y, x)
            dist = np.hypot(y - y.mean(), x - x.mean())
            disk_mean_dist = (2.0 / 3.0) * np.sqrt(len(y) / np.pi)
            compact = float(dist.mean() / disk_mean_dist) if len(y) > 1 else 1.0
            ellipse_area = np.pi * 4 * major * minor if major > 0 else 1.0
            solidity = float(min(1.0, len(y) / max(ellipse_area, 1.0)))
            srt = np.sort(w)[::-1]
            bright = float(srt[: max(1, len(srt) // 2)].sum())
            rows.append(
                {
                    "npix": len(y),
                    "radius_px": radius,
                    "aspect_ratio": float(major / minor) if minor > 0 else float(max(major, 1.0) / 0.5),
                    "compactness": max(compact, 1.0) if len(y) > 1 else 1.0,
                    "solidity": solidity,
                    "footprint_weight": bright,
                }
            )
        columns = ["npix", "radius_px", "aspect_ratio", "compactness", "solidity", "footprint_weight"]
        return pd.DataFrame(rows, columns=columns)

    # -- conversions -------------------------------------------------------------
    def weight_matrix(self, normalise: bool = True) -> sparse.csr_matrix:
        """(n_rois, Y * X) sparse weights; rows sum to 1 when ``normalise``."""
        weights = self._weights() if normalise else [np.asarray(w, dtype=np.float64) for w in self.lam]
        nx = self.shape_yx[1]
        rows = np.concatenate([np.full(len(y), i) for i, y in enumerate(self.ypix)]) if self.n_rois else []
        cols = (
            np.concatenate([y.astype(np.int64) * nx + x for y, x in zip(self.ypix, self.xpix, strict=True)])
            if self.n_rois
            else []
        )
        vals = np.concatenate(weights) if self.n_rois else []
        return sparse.csr_matrix(
            (np.asarray(vals, np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
            shape=(self.n_rois, self.shape_yx[0] * nx),
        )

    def masks(self, weighted: bool = False) -> np.ndarray:
        """(n_rois, Y, X) dense masks: bool, or float32 weights when ``weighted``."""
        out = np.zeros((self.n_rois, *self.shape_yx), dtype=np.float32 if weighted else bool)
        for i, (y, x, w) in enumerate(zip(self.ypix, self.xpix, self.lam, strict=True)):
            out[i, y, x] = w if weighted else True
        return out

    def to_label_image(self) -> np.ndarray:
        """(Y, X) int32 labels, 0 = background, ``roi_id`` (index + 1) elsewhere; largest weight wins overlaps.

        Weights are compared after normalising each ROI to sum 1, so a small
        ROI lying on a large one keeps its pixels.
        """
        labels = np.zeros(self.shape_yx, dtype=np.int32)
        best = np.zeros(self.shape_yx, dtype=np.float64)
        for i, (y, x, w) in enumerate(zip(self.ypix, self.xpix, self._weights(), strict=True)):
            better = w > best[y, x]
            labels[y[better], x[better]] = i + 1
            best[y[better], x[better]] = w[better]
        return labels

    def to_dataframe(self) -> pd.DataFrame:
        """The ``rois.csv`` table: roi_id, y, x, npix, radius_px, cell_prob, is_cell.

        ``roi_id`` counts from 1 so that it equals the ROI's value in :meth:`to_label_image`.
        """
        cent = self.centroids_yx
        return pd.DataFrame(
            {
                "roi_id": np.arange(1, self.n_rois + 1, dtype=np.int64),
                "y": cent[:, 0],
                "x": cent[:, 1],
                "npix": self.npix,
                "radius_px": self.radius_px,
                "cell_prob": np.asarray(self.cell_prob, dtype=float),
                "is_cell": np.asarray(self.is_cell, dtype=bool),
            },
            columns=list(CSV_COLUMNS),
        )

    # -- derived sets --------------------------------------------------------------
    def subset(self, index: np.ndarray | list) -> RoiSet:
        """The ROIs selected by an integer index or boolean mask, in that order."""
        idx = np.arange(self.n_rois)[np.asarray(index)] if len(index) else np.zeros(0, int)
        return dataclasses.replace(
            self,
            ypix=tuple(self.ypix[i] for i in idx),
            xpix=tuple(self.xpix[i] for i in idx),
            lam=tuple(self.lam[i] for i in idx),
            cell_prob=np.asarray(self.cell_prob)[idx],
            is_cell=np.asarray(self.is_cell)[idx],
            trace_skew=np.asarray(self.trace_skew)[idx],
        )

    def with_classification(
        self, cell_prob: np.ndarray, threshold: float = 0.5, trace_skew: np.ndarray | None = None
    ) -> RoiSet:
        """A copy with new probabilities and ``is_cell = cell_prob >= threshold``."""
        prob = np.clip(np.asarray(cell_prob, dtype=float), 0.0, 1.0)
        skew = self.trace_skew if trace_skew is None else np.asarray(trace_skew, dtype=float)
        return dataclasses.replace(self, cell_prob=prob, is_cell=prob >= threshold, trace_skew=skew)


def _ellipse_axes(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """(major, minor) standard deviations of the pixel cloud, and the equivalent disk radius.

    Each pixel is treated as a unit square (variance 1/12 added per axis) so a
    single pixel has a radius near 0.58 instead of 0.
    """
    if len(y) == 1:
        sd = np.sqrt(1 / 12)
        return sd, sd, 2 * sd
    cov = np.cov(np.vstack([y, x]).astype(float)) + np.eye(2) / 12.0
    evals = np.sort(np.clip(np.linalg.eigvalsh(cov), 1e-12, None))[::-1]
    major, minor = float(np.sqrt(evals[0])), float(np.sqrt(evals[1]))
    return major, minor, 2.0 * float(np.sqrt(major * minor))


def empty_roiset(shape_yx: tuple[int, int], engine: str = "") -> RoiSet:
    """A set with no ROIs on a (Y, X) image."""
    return RoiSet.from_pixels(shape_yx, [], [], engine=engine)
