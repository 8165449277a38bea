"""Trace extraction: weighted ROI fluorescence, neuropil annuli, dF/F and spikes, streamed.

The movie is read once, chunk by chunk; each chunk is multiplied by one sparse
(2 n_rois, Y * X) matrix holding the ROI weights and the neuropil annuli, so
memory is bounded by one chunk whatever the recording length. Overlapping ROIs
are then demixed from these weighted means by least squares (exact, see
:mod:`imagingkit.neurons.demix`) when ``ExtractionParams.demix`` is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import ndimage, sparse

from imagingkit.errors import DataError, ParameterError
from imagingkit.io.recording import Recording
from imagingkit.neurons.deconvolve import deconvolve_traces
from imagingkit.neurons.demix import demix_traces, make_demixer
from imagingkit.neurons.detect import as_recording
from imagingkit.neurons.dff import compute_dff
from imagingkit.neurons.params import ExtractionParams
from imagingkit.neurons.roiset import RoiSet

SUB_BLOCK_FRAMES = 64  # frames converted to float32 at a time
ROI_BLOCK = 64  # ROIs whose dF/F and spikes are computed together (bounds the float64 temporaries)


@dataclasses.dataclass(frozen=True)
class Traces:
    """Activity of every ROI.

    Attributes
    ----------
    F, Fneu : ndarray
        (n_rois, T) float32 weighted ROI fluorescence and neuropil fluorescence.
    dff : ndarray
        (n_rois, T) float32 dF/F of ``F - coefficient * Fneu``.
    spikes : ndarray
        (n_rois, T) float32 OASIS spike estimates (zeros if not deconvolved).
    time_s : ndarray
        (T,) frame times in seconds.
    neuropil_coefficient : ndarray
        (n_rois,) coefficient used per ROI.
    baseline : ndarray
        (n_rois, T) float32 F0 of dF/F.

    Bad frames are NaN in ``F``, ``Fneu``, ``dff``, ``spikes`` and ``baseline``.
    """

    F: np.ndarray
    Fneu: np.ndarray
    dff: np.ndarray
    spikes: np.ndarray
    time_s: np.ndarray
    neuropil_coefficient: np.ndarray
    baseline: np.ndarray

    @property
    def n_rois(self) -> int:
        return self.F.shape[0]

    @property
    def n_frames(self) -> int:
        return self.F.shape[1]


def neuropil_masks(roi_set: RoiSet, params: ExtractionParams | None = None) -> sparse.csr_matrix:
    """(n_rois, Y * X) neuropil weights, rows summing to 1 (all-zero rows when no pixel qualifies).

    The annulus of an ROI starts ``neuropil_gap_px`` beyond its edge, leaves
    out every pixel of every ROI, and extends outwards until it holds
    ``neuropil_min_pixels`` pixels or reaches ``neuropil_max_radius_px`` from the edge.
    """
    params = params or ExtractionParams()
    ny, nx = roi_set.shape_yx
    occupied = np.zeros((ny, nx), bool)
    for y, x in zip(roi_set.ypix, roi_set.xpix, strict=True):
        occupied[y, x] = True
    reach = int(np.ceil(params.neuropil_gap_px + params.neuropil_max_radius_px)) + 1
    rows, cols = [], []
    for i, (y, x) in enumerate(zip(roi_set.ypix, roi_set.xpix, strict=True)):
        ya, yb = max(0, int(y.min()) - reach), min(ny, int(y.max()) + reach + 1)
        xa, xb = max(0, int(x.min()) - reach), min(nx, int(x.max()) + reach + 1)
        own = np.zeros((yb - ya, xb - xa), bool)
        own[y - ya, x - xa] = True
        dist = ndimage.distance_transform_edt(~own)
        candidate = (dist > params.neuropil_gap_px) & ~occupied[ya:yb, xa:xb]
        candidate &= dist <= params.neuropil_gap_px + params.neuropil_max_radius_px
        d = np.sort(dist[candidate])
        if len(d) == 0:
            continue
        outer = d[min(params.neuropil_min_pixels, len(d)) - 1]
        yy, xx = np.nonzero(candidate & (dist <= outer))
        rows.append(np.full(len(yy), i))
        cols.append((yy + ya).astype(np.int64) * nx + (xx + xa))
    if rows:
        r, c = np.concatenate(rows), np.concatenate(cols)
    else:
        r = c = np.zeros(0, np.int64)
    mat = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(roi_set.n_rois, ny * nx))
    counts = np.asarray(mat.sum(axis=1)).ravel()
    scale = sparse.diags(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0).astype(np.float32))
    return (scale @ mat).tocsr()


def raw_traces(
    recording: Recording,
    weights: sparse.csr_matrix,
    chunk_frames: int = 500,
    plane: int = 0,
    channel: int = 0,
    bad_frames: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(n_rows, T) float32 products of a sparse (n_rows, Y * X) matrix with every frame, streamed.

    Bad frames are NaN. ``progress(n_frames_read, n_frames)``, if given, is called after each chunk.
    """
    out = np.empty((weights.shape[0], recording.n_frames), dtype=np.float32)
    for t0, block in recording.iter_chunks(chunk_frames, plane=plane, channel=channel):
        for s0 in range(0, len(block), SUB_BLOCK_FRAMES):  # small float32 copies whatever the chunk size
            flat = (
                block[s0 : s0 + SUB_BLOCK_FRAMES].reshape(-1, weights.shape[1]).astype(np.float32, copy=False)
            )
            out[:, t0 + s0 : t0 + s0 + len(flat)] = (weights @ flat.T).astype(np.float32)
        if progress is not None:
            progress(t0 + len(block), recording.n_frames)
    if bad_frames is not None:
        out[:, np.asarray(bad_frames, bool)] = np.nan
    return out


def estimate_neuropil_coefficient(
    F: np.ndarray, Fneu: np.ndarray, n_bins: int = 20, percentile: float = 10.0
) -> np.ndarray:
    """Per-ROI neuropil coefficient by lower-envelope regression.

    For each ROI the frames are split into ``n_bins`` equal-count bins of the
    neuropil value; in each bin the ``percentile``-th percentile of F (frames in
    which the cell is silent, so F ~ offset + r * Fneu + noise) is paired with
    the bin's median Fneu, and r is the least-squares slope through these
    points, clipped to [0, 1.5]. NaN frames are ignored; ROIs with fewer than
    ``4 * n_bins`` valid frames or a flat neuropil get the conventional 0.7.

    Returns
    -------
    ndarray
        (n_rois,) coefficients.
    """
    F = np.atleast_2d(np.asarray(F, np.float64))
    Fneu = np.atleast_2d(np.asarray(Fneu, np.float64))
    out = np.full(F.shape[0], 0.7)
    for i in range(F.shape[0]):
        valid = np.isfinite(F[i]) & np.isfinite(Fneu[i])
        if valid.sum() < 4 * n_bins:
            continue
        f, n = F[i, valid], Fneu[i, valid]
        order = np.argsort(n)
        groups = np.array_split(order, n_bins)
        xs = np.array([np.median(n[g]) for g in groups])
        ys = np.array([np.percentile(f[g], percentile) for g in groups])
        if np.ptp(xs) <= 0:
            continue
        slope = np.polyfit(xs, ys, 1)[0]
        out[i] = float(np.clip(slope, 0.0, 1.5))
    return out


def extract_traces(
    source: Recording | np.ndarray,
    roi_set: RoiSet,
    params: ExtractionParams | None = None,
    bad_frames: np.ndarray | None = None,
    frame_rate_hz: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Traces:
    """Extract F, Fneu, dF/F and spikes for every ROI, streaming the movie once.

    Parameters
    ----------
    source : Recording or ndarray
        Registered recording or (T, Y, X) movie.
    roi_set : RoiSet
        ROIs on the recording's (Y, X) grid.
    params : ExtractionParams, optional
    bad_frames : ndarray of bool, optional
        (T,) frames that become NaN and are left out of baselines.
    frame_rate_hz : float, optional
        Overrides the recording's rate (30 Hz is assumed when neither is known).
    progress : callable, optional
        Called as ``progress(n_frames_read, n_frames)`` after each chunk of the one pass over
        the movie (a progress bar, a log line, a batch scheduler's heartbeat).

    Returns
    -------
    Traces
    """
    params = params or ExtractionParams()
    recording = as_recording(source, frame_rate_hz)
    if recording.frame_shape != tuple(roi_set.shape_yx):
        raise DataError(
            f"ROIs were defined on a {roi_set.shape_yx} image but the recording frames are {recording.frame_shape}"
        )
    n_frames = recording.n_frames
    if bad_frames is not None:
        bad_frames = np.asarray(bad_frames, bool)
        if bad_frames.shape != (n_frames,):
            raise ParameterError(
                f"bad_frames must have one value per frame ({n_frames}), got shape {bad_frames.shape}"
            )
    fs = frame_rate_hz or recording.frame_rate_hz or 30.0
    time_s = (
        recording.time_s
        if recording.time_s is not None and frame_rate_hz is None
        else np.arange(n_frames) / fs
    )
    n = roi_set.n_rois
    if n == 0:
        empty = np.zeros((0, n_frames), np.float32)
        return Traces(empty, empty, empty, empty, np.asarray(time_s, float), np.zeros(0), empty)
    stacked = sparse.vstack([roi_set.weight_matrix(), neuropil_masks(roi_set, params)]).tocsr()
    both = raw_traces(
        recording, stacked, params.chunk_frames, params.plane, params.channel, bad_frames, progress
    )
    F, Fneu = both[:n], both[n:]
    no_annulus = np.asarray(stacked[n:].sum(axis=1)).ravel() == 0
    Fneu[no_annulus] = np.where(np.isfinite(F[no_annulus]), 0.0, np.nan)
    if params.neuropil_coefficient == "estimate":
        coef = estimate_neuropil_coefficient(F, Fneu)  # from the weighted means, before demixing
    else:
        coef = np.full(n, float(params.neuropil_coefficient))
    if params.demix:  # neuropil out before the least-squares solve, back in after; in place, streamed
        demix_traces(F, make_demixer(stacked[:n]), neuropil=Fneu, coefficient=coef, in_place=True)
    dff = np.empty(F.shape, np.float32)
    baseline = np.empty(F.shape, np.float32)
    spikes = np.empty(F.shape, np.float32)
    for r0 in range(0, n, ROI_BLOCK):  # float64 temporaries for a block of ROIs at a time
        rows = slice(r0, r0 + ROI_BLOCK)
        corrected = F[rows].astype(np.float64) - coef[rows, None] * Fneu[rows]
        block_dff, block_base = compute_dff(
            corrected,
            fs,
            raw=F[rows],
            method=params.baseline_method,
            window_s=params.baseline_window_s,
            smooth_s=params.baseline_smooth_s,
            percentile=params.baseline_percentile,
        )
        block_base[~np.isfinite(block_dff)] = np.nan
        dff[rows], baseline[rows] = block_dff, block_base
        if params.deconvolve:
            spikes[rows] = deconvolve_traces(block_dff, fs, params.tau_decay_s)
        else:
            spikes[rows] = np.where(np.isfinite(block_dff), 0.0, np.nan)
    return Traces(
        F=F,
        Fneu=Fneu,
        dff=dff,
        spikes=spikes,
        time_s=np.asarray(time_s, dtype=np.float64),
        neuropil_coefficient=coef,
        baseline=baseline,
    )
