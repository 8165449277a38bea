"""Demixing of overlapping ROIs: least-squares traces from the ROI footprints.

A weighted-mean trace ``F_i = w_i . x`` (``x`` a frame, ``w_i`` ROI i's weights
summing to 1) also holds a share of every overlapping ROI's light. Modelling a
frame on the union of ROI pixels as ``x ~ sum_j f_j u_j`` with footprints
``u_j = w_j / |w_j|^2`` (scaled so that ``w_j . u_j = 1``), the least-squares
traces solve the normal equations ``(U U^T) f = U x``. With ``G = W W^T`` (the
Gram matrix of the weights) and ``D = diag(|w_j|^2)`` this is

    f = D G^-1 F,

a linear map of the weighted means, so demixing needs no second pass over the
movie: the per-pixel least-squares solution is obtained exactly from the
streamed weighted means, frame block by frame block. ``G`` is block diagonal
over the connected components of the overlap graph (ROIs sharing a pixel);
only ROIs in a group of two or more are solved (one sparse LU factorisation
of their Gram matrix, which is block diagonal over the groups), and an ROI
that overlaps nothing keeps its weighted mean unchanged. A tiny ridge keeps the solve stable when two ROIs
are (almost) identical.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as splinalg

BLOCK_VALUES = 2**22  # ROI x frame values per float64 temporary of the solve
RIDGE = 1e-6  # added to the Gram matrix's diagonal, relative to each ROI's |w|^2


@dataclasses.dataclass(frozen=True)
class Demixer:
    """The demixing map of a set of ROIs, restricted to the ROIs that overlap another.

    Attributes
    ----------
    rois : ndarray
        (k,) indices of the ROIs that share a pixel with at least one other ROI.
    n_groups : int
        Number of connected groups of overlapping ROIs among them.
    gram_norms : ndarray
        (k,) ``|w_j|^2`` of those ROIs (the ``D`` of the module docstring).
    factor : scipy.sparse.linalg.SuperLU
        Sparse LU factorisation of their ridged Gram matrix (block diagonal over groups).
    """

    rois: np.ndarray
    n_groups: int
    gram_norms: np.ndarray
    factor: splinalg.SuperLU | None


def make_demixer(weights: sparse.spmatrix) -> Demixer:
    """Find the overlapping ROIs and factorise their Gram matrix.

    Parameters
    ----------
    weights : scipy.sparse matrix
        (n_rois, n_pixels) ROI weights, each row summing to 1.

    Returns
    -------
    Demixer
    """
    weights = sparse.csr_matrix(weights, dtype=np.float64)
    gram = (weights @ weights.T).tocsr()
    gram.eliminate_zeros()
    n_groups, labels = csgraph.connected_components(gram, directed=False)
    sizes = np.bincount(labels, minlength=n_groups)
    rois = np.flatnonzero(sizes[labels] > 1)
    if len(rois) == 0:
        return Demixer(rois=rois, n_groups=0, gram_norms=np.zeros(0), factor=None)
    block = gram[rois][:, rois].tocsc()
    norms = block.diagonal().copy()
    ridged = (block + sparse.diags(RIDGE * norms)).tocsc()  # relative ridge per ROI
    return Demixer(
        rois=rois,
        n_groups=int(np.count_nonzero(sizes > 1)),
        gram_norms=norms,
        factor=splinalg.splu(ridged),
    )


def demix_traces(
    traces: np.ndarray,
    demixer: Demixer,
    neuropil: np.ndarray | None = None,
    coefficient: np.ndarray | float = 0.0,
    block_frames: int | None = None,
    in_place: bool = False,
) -> np.ndarray:
    """Least-squares traces ``D G^-1 (F - B) + B`` from (n_rois, T) weighted means ``F``.

    ``B = coefficient * neuropil`` is each ROI's background, taken out before
    the solve (the neuropil is not part of the ROI footprints) and put back
    afterwards, so ``result - B`` is the demixed, neuropil-corrected trace.

    Parameters
    ----------
    traces : ndarray
        (n_rois, T) weighted means. Bad frames, NaN in every ROI, stay NaN.
    demixer : Demixer
        From :func:`make_demixer` with the weights that produced ``traces``.
    neuropil : ndarray, optional
        (n_rois, T) neuropil traces; None = no background.
    coefficient : float or ndarray
        Neuropil coefficient, scalar or (n_rois,).
    block_frames : int, optional
        Frames solved at a time; None = about ``BLOCK_VALUES`` values per
        float64 temporary (32 MiB) whatever the number of ROIs.
    in_place : bool
        Overwrite ``traces`` (float32) instead of returning a copy.

    Returns
    -------
    ndarray
        (n_rois, T) float32; rows of ROIs that overlap nothing are unchanged.
    """
    out = traces if in_place else np.array(traces, dtype=np.float32, copy=True)
    if demixer.factor is None:
        return out
    rois = demixer.rois
    block_frames = block_frames or max(64, BLOCK_VALUES // len(rois))
    coefs = np.broadcast_to(np.asarray(coefficient, np.float64), (out.shape[0],))[rois]
    for t0 in range(0, out.shape[1], block_frames):
        cols = slice(t0, t0 + block_frames)
        rhs = np.ascontiguousarray(out[rois, cols], dtype=np.float64)
        bg = 0.0 if neuropil is None else coefs[:, None] * np.asarray(neuropil[rois, cols], np.float64)
        out[rois, cols] = demixer.gram_norms[:, None] * demixer.factor.solve(rhs - bg) + bg
    return out
