"""The built-in ROI detector (no torch): activity-based seeds, local growth, peel-off.

Steps
-----
1. Stream the movie once in chunks and average it in time bins of about the
   indicator decay time (``tau_s``); bad frames are left out. At most
   ``max_binned_frames`` bins (and ``max_binned_mb`` MiB) are kept, so memory
   does not grow with the recording length. Per-pixel noise comes from the
   RMS of successive-frame differences; samples clipped at the integer dtype's
   maximum are left out of it, and pixels clipped most of the time are left
   out of detection (a saturated pixel has no signal, and its underestimated
   noise would inflate the activity map).
2. Spatial high-pass (subtract a Gaussian blur of about one diameter: removes
   the smooth neuropil), temporal high-pass (subtract a running mean) and
   normalise every pixel by its noise.
3. Activity map: for every pixel, the mean squared excess of the spatially
   smoothed, normalised movie above 2 noise units.
4. Repeatedly take the most active pixel as a seed, find the bins in which the
   seed is active, regress the local patch on the seed trace to get pixel
   weights, keep the connected region above a fraction of the peak weight
   (within a disk in soma mode), re-estimate the trace from the weights, and
   subtract the ROI's contribution from the movie before the next seed so that
   overlapping cells can still be found. An ROI is kept when its trace peaks
   ``threshold`` noise SDs above its median and is not skewed negatively (the
   dark halo the spatial high-pass leaves around bright cells). In small mode
   the peak is measured on bins the footprint was not fitted to
   (:func:`held_out_snr`), and pieces of one process are merged
   (:func:`merge_fragments`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from imagingkit.io.recording import Recording
from imagingkit.neurons.params import DetectionParams
from imagingkit.neurons.roiset import RoiSet, empty_roiset

ACTIVITY_LEVEL = 2.0  # noise units subtracted before squaring in the activity map
WEIGHT_FRACTION = 0.2  # pixels keep weight above this fraction of the ROI's peak weight
MAX_FAILED_SEEDS = 5000  # stop after this many seeds in a row gave no ROI
SUB_BLOCK_FRAMES = 64  # frames converted to float32 at a time while binning
HELD_OUT_BLOCKS = (2, 4, 8, 16)  # splits of time tried by held_out_snr
FRAGMENT_GAP_PX = 2.0  # small mode: pieces this close ...
FRAGMENT_CORR = 0.5  # ... and this correlated are one process
MIN_TRACE_SKEW = 0.0  # ROIs whose binned trace is skewed negatively are not kept
MAX_SATURATED_FRACTION = 0.5  # pixels clipped in more frames than this are left out


def detect_builtin(
    recording: Recording,
    params: DetectionParams,
    bad_frames: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[RoiSet, dict]:
    """Detect ROIs with the built-in engine.

    Parameters
    ----------
    recording : Recording
        The (registered) recording; one plane and channel are used.
    params : DetectionParams
    bad_frames : ndarray of bool, optional
        (T,) frames to leave out.
    progress : callable, optional
        Called as ``progress(n_frames_read, n_frames)`` after each chunk of the one streaming
        pass (binning); the steps after it work on the small binned movie.

    Returns
    -------
    roi_set : RoiSet
        ROIs with weights (normalised movie units), classification not yet applied.
    info : dict
        ``mean_image`` (Y, X), ``activity_map`` (Y, X), ``bin_frames``, ``n_bins``,
        ``binned_traces`` (n_rois, n_bins) in noise units.
    """
    fs = params.frame_rate_hz or recording.frame_rate_hz or 30.0
    binned, mean_image, bin_frames, noise = bin_movie(recording, params, fs, bad_frames, progress)
    shape_yx = recording.frame_shape
    info = {"mean_image": mean_image, "bin_frames": bin_frames, "n_bins": len(binned)}
    if len(binned) < 3 or not np.any(binned != binned[:1]):
        info["activity_map"] = np.zeros(shape_yx, np.float32)
        info["binned_traces"] = np.zeros((0, len(binned)), np.float32)
        return empty_roiset(shape_yx, engine="builtin"), info
    diameter = params.diameter
    normalise_movie(binned, noise, diameter, max(3, round(params.highpass_window_s * fs / bin_frames)))
    sigma = _smoothing_sigma(params)
    scale = _smoothed_noise_scale(binned, sigma)
    activity = activity_map(binned, sigma, scale)
    info["activity_map"] = activity.copy()
    ypix, xpix, lam, traces, snrs = _peel_rois(binned, activity, sigma, scale, params)
    if params.mode == "small":
        ypix, xpix, lam, traces, snrs = merge_fragments(ypix, xpix, lam, traces, snrs, shape_yx)
    info["snr"] = np.asarray(snrs, dtype=float)
    info["binned_traces"] = np.array(traces, dtype=np.float32).reshape(len(traces), len(binned))
    roi_set = RoiSet.from_pixels(shape_yx, ypix, xpix, lam, engine="builtin")
    return roi_set, info


# -- 1. binning -------------------------------------------------------------------------
def bin_movie(
    recording: Recording,
    params: DetectionParams,
    frame_rate_hz: float,
    bad_frames: np.ndarray | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Stream the recording into time bins and measure per-pixel frame noise.

    ``progress(n_frames_read, n_frames)``, if given, is called after each chunk.

    Returns
    -------
    binned : ndarray
        (n_bins, Y, X) float32 bin means of the good frames (bins without good frames dropped).
    mean_image : ndarray
        (Y, X) float32 mean of the good frames.
    bin_frames : int
        Frames per bin.
    noise_binned : ndarray
        (Y, X) float32 noise SD of one bin mean: the RMS of successive-frame
        differences of the full-rate movie over sqrt(2) (slow calcium signals
        barely affect it), divided by sqrt(frames per bin).
        Differences involving a sample clipped at the integer dtype's maximum
        are left out; pixels clipped in more than ``MAX_SATURATED_FRACTION`` of
        the frames get an infinite noise (they are zero in the normalised movie).
    """
    n_frames = recording.n_frames
    max_bins = params.n_bins_cap(recording.frame_shape)
    bin_frames = max(1, round(params.tau_s * frame_rate_hz), math.ceil(n_frames / max_bins))
    n_bins = math.ceil(n_frames / bin_frames) if n_frames else 0
    sums = np.zeros((n_bins, *recording.frame_shape), dtype=np.float32)
    counts = np.zeros(n_bins, dtype=np.int64)
    sq_diff = np.zeros(recording.frame_shape, dtype=np.float64)
    n_diff = np.zeros(recording.frame_shape, dtype=np.int64)
    n_saturated = np.zeros(recording.frame_shape, dtype=np.int64)
    dtype = recording.data.dtype
    ceiling = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else np.inf
    previous = None
    good = np.ones(n_frames, bool) if bad_frames is None else ~np.asarray(bad_frames, bool)
    for t0, block in recording.iter_chunks(params.chunk_frames, plane=params.plane, channel=params.channel):
        # work on sub-blocks so the float32 copies and differences stay small whatever chunk_frames is
        for s0 in range(0, len(block), SUB_BLOCK_FRAMES):
            idx = np.arange(t0 + s0, t0 + min(len(block), s0 + SUB_BLOCK_FRAMES))
            keep = good[idx]
            if not keep.any():
                continue
            frames = block[s0 : s0 + len(idx)][keep].astype(np.float32)
            _accumulate_bins(sums, counts, frames, idx[keep] // bin_frames)
            n_saturated += (frames >= ceiling).sum(axis=0)
            if previous is not None:
                frames = np.concatenate([previous[None], frames])
            unclipped = frames < ceiling
            # noise from successive differences of unclipped samples only (a clipped pixel has no noise)
            both = unclipped[1:] & unclipped[:-1]
            diffs = np.diff(frames, axis=0)
            sq_diff += np.where(both, diffs * diffs, 0).sum(axis=0, dtype=np.float64)
            n_diff += both.sum(axis=0)
            previous = frames[-1].copy()
        if progress is not None:
            progress(t0 + len(block), n_frames)
    valid = np.flatnonzero(counts > 0)
    for new_index, old_index in enumerate(valid):  # drop empty bins in place (no second copy)
        if new_index != old_index:
            sums[new_index] = sums[old_index]
    binned = sums[: len(valid)]
    mean_total = binned.sum(axis=0, dtype=np.float64)
    binned /= counts[valid][:, None, None]
    n_good = max(int(counts.sum()), 1)
    mean_image = (mean_total / n_good).astype(np.float32)
    # var(a - b) = 2 var for independent a, b, whatever their distribution (photon noise is far from
    # Gaussian at 1-3 photons per pixel, so a mean-absolute-difference estimate would be biased low)
    frame_sd = np.sqrt(sq_diff / np.maximum(n_diff, 1) / 2)
    noise_binned = (frame_sd / np.sqrt(bin_frames)).astype(np.float32)
    # pixels clipped at the detector ceiling in many frames carry no usable signal: leave them out
    noise_binned[(n_saturated > MAX_SATURATED_FRACTION * n_good) | (n_diff < 2)] = np.inf
    return binned, mean_image, bin_frames, noise_binned


def _accumulate_bins(sums: np.ndarray, counts: np.ndarray, frames: np.ndarray, bins: np.ndarray) -> None:
    """Add frames into their (sorted) bins with one ``np.add.reduceat`` per chunk."""
    if len(frames) == 0:
        return
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    sums[bins[starts]] += np.add.reduceat(frames, starts, axis=0, dtype=np.float32)
    counts[bins[starts]] += np.diff(np.r_[starts, len(bins)])


# -- 2. normalisation ---------------------------------------------------------------------
def normalise_movie(
    binned: np.ndarray, noise: np.ndarray, diameter_px: float, highpass_bins: int, block_rows: int = 64
) -> None:
    """High-pass the binned movie in space and time and divide each pixel by its (Y, X) noise, in place."""
    sigma_hp = max(2.0, diameter_px)
    for t0 in range(0, len(binned), 32):
        block = binned[t0 : t0 + 32]
        block -= box_blur(block, sigma_hp)
    for r0 in range(0, binned.shape[1], block_rows):
        rows = binned[:, r0 : r0 + block_rows]
        rows -= ndimage.uniform_filter1d(rows, size=min(highpass_bins, len(binned)), axis=0, mode="reflect")
        sd = noise[r0 : r0 + block_rows].copy()
        sd[~(sd > 0)] = np.inf
        rows /= sd
        rows[:, ~np.isfinite(sd)] = 0.0


def box_blur(stack: np.ndarray, sigma_px: float) -> np.ndarray:
    """Spatial blur of a (T, Y, X) stack by three box filters, a fast stand-in for a Gaussian of ``sigma_px``.

    Three passes of width w have the variance of a Gaussian with sigma**2 = (w**2 - 1) / 4.
    """
    width = max(3, int(round(np.sqrt(4 * sigma_px**2 + 1))) | 1)
    out = stack
    for _ in range(3):
        out = ndimage.uniform_filter(out, size=(1, width, width), mode="reflect")
    return out


def _smoothing_sigma(params: DetectionParams) -> float:
    return max(0.6, params.diameter / 6.0) if params.mode == "soma" else max(0.5, params.diameter / 5.0)


def _smoothed_noise_scale(binned: np.ndarray, sigma: float) -> float:
    """Robust standard deviation of the spatially smoothed normalised movie (noise level of step 3)."""
    sample = binned[: min(len(binned), 64)]
    smooth = ndimage.gaussian_filter(sample, (0, sigma, sigma), mode="reflect", truncate=3.0)
    diffs = np.diff(smooth, axis=0)
    scale = 1.4826 * np.median(np.abs(diffs)) / np.sqrt(2)
    return float(scale) if scale > 0 else 1.0


# -- 3. activity map ---------------------------------------------------------------------------
def activity_map(binned: np.ndarray, sigma: float, scale: float, block_bins: int = 64) -> np.ndarray:
    """(Y, X) mean over bins of ``max(z - 2, 0) ** 2`` of the smoothed movie ``z`` in noise units."""
    total = np.zeros(binned.shape[1:], dtype=np.float64)
    for t0 in range(0, len(binned), block_bins):
        total += _excess_power(binned[t0 : t0 + block_bins], sigma, scale).sum(axis=0)
    return (total / len(binned)).astype(np.float32)


def _excess_power(block: np.ndarray, sigma: float, scale: float) -> np.ndarray:
    z = ndimage.gaussian_filter(block, (0, sigma, sigma), mode="reflect", truncate=3.0) / scale
    np.subtract(z, ACTIVITY_LEVEL, out=z)
    np.clip(z, 0, None, out=z)
    return z * z


# -- 4. seeds, growth and peel-off ----------------------------------------------------------------
def _peel_rois(
    binned: np.ndarray, activity: np.ndarray, sigma: float, scale: float, params: DetectionParams
) -> tuple[list, list, list, list, list]:
    diameter = params.diameter
    n_bins = len(binned)
    floor = _activity_floor(activity, n_bins)
    margin = int(math.ceil(3 * sigma)) + 1
    suppress_r = max(1.0, diameter / 4.0)
    ypix, xpix, lam, traces, snrs = [], [], [], [], []
    owner = np.full(activity.shape, -1, dtype=np.int64)  # last ROI covering each pixel
    failures = 0
    while len(ypix) < params.max_rois and failures < MAX_FAILED_SEEDS:
        flat = int(np.argmax(activity))
        y0, x0 = np.unravel_index(flat, activity.shape)
        if activity[y0, x0] <= floor:
            break
        roi = grow_roi(binned, y0, x0, params)
        if roi is None:
            failures += 1
            _zero_disk(activity, y0, x0, suppress_r)
            continue
        ys, xs, weights, trace, snr = roi
        binned[:, ys, xs] -= trace[:, None] * weights[None, :]
        parent = _parent_roi(ys, xs, trace, owner, traces)
        if parent >= 0:
            # a residue of an earlier ROI (its missed rim): give the pixels to that ROI
            snrs[parent] = max(snrs[parent], snr)
            ypix[parent], xpix[parent], lam[parent] = _merge_pixels(
                (ypix[parent], xpix[parent], lam[parent]), (ys, xs, weights), activity.shape
            )
            owner[ys, xs] = parent
            _zero_disk(activity, y0, x0, suppress_r)
            _update_activity(binned, activity, _box(ys, xs, margin, activity.shape), margin, sigma, scale)
            continue
        failures = 0
        owner[ys, xs] = len(ypix)
        ypix.append(ys)
        xpix.append(xs)
        lam.append(weights)
        traces.append(trace)
        snrs.append(snr)
        box = _box(ys, xs, margin, activity.shape)
        _update_activity(binned, activity, box, margin, sigma, scale)
        _zero_disk(activity, y0, x0, suppress_r)
    return ypix, xpix, lam, traces, snrs


def merge_fragments(
    ypix: list,
    xpix: list,
    lam: list,
    traces: list,
    snrs: list,
    shape_yx: tuple[int, int],
    max_gap_px: float = FRAGMENT_GAP_PX,
    min_corr: float = FRAGMENT_CORR,
) -> tuple[list, list, list, list, list]:
    """Join ROIs that are pieces of one process: within ``max_gap_px`` of each other and correlated.

    Small-mode ROIs are limited in extent, so a dendritic segment comes out as
    a chain of pieces; pieces whose pixels come within ``max_gap_px`` and whose
    binned traces correlate above ``min_corr`` are merged (transitively, by
    connected components of that graph). The merged trace is the weight-summed
    mean of the pieces' traces.
    """
    n = len(ypix)
    if n < 2:
        return ypix, xpix, lam, traces, snrs
    labels = np.full(shape_yx, -1, dtype=np.int64)
    for i, (y, x) in enumerate(zip(ypix, xpix, strict=True)):
        labels[y, x] = i
    corr = np.corrcoef(np.asarray(traces, dtype=np.float64))
    reach = int(math.ceil(max_gap_px))
    rows, cols = [], []
    for i, (y, x) in enumerate(zip(ypix, xpix, strict=True)):
        ya, yb = max(0, int(y.min()) - reach), min(shape_yx[0], int(y.max()) + reach + 1)
        xa, xb = max(0, int(x.min()) - reach), min(shape_yx[1], int(x.max()) + reach + 1)
        own = np.ones((yb - ya, xb - xa), bool)
        own[y - ya, x - xa] = False
        near = ndimage.distance_transform_edt(own) <= max_gap_px
        for j in np.unique(labels[ya:yb, xa:xb][near]):
            if j > i and corr[i, j] > min_corr:
                rows.append(i)
                cols.append(j)
    if not rows:
        return ypix, xpix, lam, traces, snrs
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, group = csgraph.connected_components(graph, directed=False)
    out = ([], [], [], [], [])
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        pixels = (ypix[members[0]], xpix[members[0]], lam[members[0]])
        for k in members[1:]:
            pixels = _merge_pixels(pixels, (ypix[k], xpix[k], lam[k]), shape_yx)
        weight = np.array([lam[k].sum() for k in members])
        trace = np.average(np.asarray([traces[k] for k in members]), axis=0, weights=weight)
        for store, value in zip(out, (*pixels, trace, max(snrs[k] for k in members)), strict=True):
            store.append(value)
    return out


def _parent_roi(ys, xs, trace, owner, traces, corr=0.6) -> int:
    """Index of an earlier ROI that touches the new one and whose trace it repeats, else -1."""
    ny, nx = owner.shape
    near = []
    for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        yy, xx = np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)
        near.append(owner[yy, xx])
    near = np.concatenate(near)
    near = near[near >= 0]
    if len(near) == 0:
        return -1
    for candidate in np.argsort(np.bincount(near))[::-1][:3]:
        if np.sum(near == candidate) and np.corrcoef(trace, traces[candidate])[0, 1] > corr:
            return int(candidate)
    return -1


def _merge_pixels(a, b, shape):
    """Union of two (ypix, xpix, weights) pixel sets; weights of shared pixels add."""
    flat = np.concatenate([a[0].astype(np.int64) * shape[1] + a[1], b[0].astype(np.int64) * shape[1] + b[1]])
    weights = np.concatenate([a[2], b[2]])
    uniq, inverse = np.unique(flat, return_inverse=True)
    summed = np.bincount(inverse, weights=weights).astype(np.float32)
    return (uniq // shape[1]).astype(np.int32), (uniq % shape[1]).astype(np.int32), summed


def _activity_floor(activity: np.ndarray, n_bins: int) -> float:
    """Activity below which no seed is tried: the noise-only level plus 8 of its SDs, or the median pixel.

    Deliberately low (cells that fire rarely have a low mean activity): every
    seed must still pass the significance and skewness tests of :func:`grow_roi`.
    """
    # expected value of max(z - 2, 0)^2 for pure Gaussian noise, z ~ N(0, 1)
    null_mean = 5 * 0.022750131948179 - 2 * 0.053990966513188
    null_sd = math.sqrt(0.0076 / max(n_bins, 1))
    return max(float(np.median(activity)), null_mean + 8 * null_sd)


def grow_roi(
    binned: np.ndarray, y0: int, x0: int, params: DetectionParams, n_iterations: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Grow one ROI from a seed pixel in the normalised binned movie.

    Returns
    -------
    (ypix, xpix, weights, trace, snr) or None
        Pixel indices, positive weights, the (n_bins,) trace in noise units and
        its peak above the median in noise SDs; None when the seed's activity is
        not significant, the region too small or the trace skewed negatively.
    """
    diameter = params.diameter
    soma = params.mode == "soma"
    half = int(math.ceil(1.5 * diameter)) if soma else int(math.ceil(2.5 * diameter))
    ny, nx = binned.shape[1:]
    ya, yb = max(0, y0 - half), min(ny, y0 + half + 1)
    xa, xb = max(0, x0 - half), min(nx, x0 + half + 1)
    patch = binned[:, ya:yb, xa:xb].reshape(len(binned), -1)
    py, px = np.mgrid[ya:yb, xa:xb]
    py, px = py.ravel(), px.ravel()
    dist_seed = np.hypot(py - y0, px - x0)
    seed_sel = dist_seed <= max(1.0, diameter / 4.0)
    trace = patch[:, seed_sel].mean(axis=1)
    noise = 1.0 / np.sqrt(seed_sel.sum())  # pixels have unit noise per bin
    # the seed itself must be significant; only half the threshold for somata, whose weights then
    # gather many more pixels, the full threshold for small ROIs (few pixels fit noise easily)
    if (trace.max() - np.median(trace)) / noise < (0.5 if soma else 1.0) * params.threshold:
        return None
    radius_limit = 0.6 * diameter if soma else 2.5 * diameter
    min_npix = max(4, int(0.15 * np.pi * (diameter / 2) ** 2)) if soma else 3
    shape = (yb - ya, xb - xa)
    mask = seed_sel
    for _ in range(n_iterations):
        active = trace > np.median(trace) + 3 * noise
        fitted = _fit_footprint(patch, trace, active, seed_sel | mask, py, px, shape, radius_limit, min_npix)
        if fitted is None:
            return None
        mask, w = fitted
        trace = patch[:, mask] @ w / float(w @ w)
        noise = 1.0 / float(np.linalg.norm(w))  # SD of the weighted trace for unit pixel noise
    snr = float((trace.max() - np.median(trace)) / noise)
    if params.use_cross_validation:
        fit = functools.partial(
            _fit_footprint,
            patch,
            trace,
            seed_sel=seed_sel | mask,
            py=py,
            px=px,
            shape=shape,
            radius_limit=radius_limit,
            min_npix=min_npix,
        )
        snr = min(snr, held_out_snr(patch, trace, noise, fit))
    if snr < params.threshold:
        return None
    if _skewness(trace) < MIN_TRACE_SKEW:
        return None  # dips rather than transients: a shadow of the spatial high-pass, not a cell
    return py[mask].astype(np.int32), px[mask].astype(np.int32), w.astype(np.float32), trace, snr


def _fit_footprint(
    patch: np.ndarray,
    trace: np.ndarray,
    active: np.ndarray,
    seed_sel: np.ndarray,
    py: np.ndarray,
    px: np.ndarray,
    shape: tuple[int, int],
    radius_limit: float,
    min_npix: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixel weights by regressing the patch on ``trace`` over the ``active`` bins.

    Keeps the connected region above ``WEIGHT_FRACTION`` of the peak weight
    (peak searched within ``seed_sel``), within ``radius_limit`` of the peak.
    Returns (mask over patch pixels, weights of the masked pixels) or None.
    """
    if active.sum() < 1:
        return None
    t_act = trace[active]
    weights = t_act @ patch[active] / float(t_act @ t_act)
    weights = _smooth_patch(weights, *shape)
    centre = np.argmax(np.where(seed_sel, weights, -np.inf))
    peak = weights[centre]
    if not peak > 0:
        return None
    cy, cx = py[centre], px[centre]
    keep = (weights > WEIGHT_FRACTION * peak) & (np.hypot(py - cy, px - cx) <= radius_limit)
    mask = _component_containing(keep, centre, *shape)
    if mask.sum() < min_npix:
        return None
    return mask, weights[mask]


def held_out_snr(patch: np.ndarray, trace: np.ndarray, noise: float, fit) -> float:
    """Peak SNR of an ROI measured on bins its footprint was not fitted to.

    Fitting weights to the very bins whose peak is then tested inflates the
    peak of small ROIs far above the nominal threshold (a few pixels fitted to
    a few bins make noise look like a transient). Here the bins are split into
    alternating blocks of time (2, 4, 8 and 16 blocks); the footprint is
    fitted (``fit(active=...)`` -> (mask, weights)) on the active bins of one
    half and its trace's peak is measured over every bin of the other half,
    both ways; the largest held-out peak (above the held-out median, in noise
    SDs) is returned, 0 when no split has activity on both sides. An ROI needs
    events in both halves of some split, so one that is active only once is
    rejected.
    """
    n_bins = len(trace)
    active = trace > np.median(trace) + 3 * noise
    order = np.arange(n_bins)
    best = 0.0
    for n_blocks in HELD_OUT_BLOCKS:
        first_half = (order * n_blocks // n_bins) % 2 == 0
        for train in (first_half, ~first_half):
            test = ~train
            if not (active & train).any() or not (active & test).any():
                continue
            fitted = fit(active=active & train)
            if fitted is None:
                continue
            mask, w = fitted
            held = patch[test][:, mask] @ w / float(w @ w)
            best = max(best, float((held.max() - np.median(held)) * np.linalg.norm(w)))
    return best


def _skewness(trace: np.ndarray) -> float:
    centred = trace - trace.mean()
    sd = centred.std()
    return float(np.mean(centred**3) / sd**3) if sd > 0 else 0.0


def _robust_sd(trace: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(trace - np.median(trace)))) or float(trace.std()) or 1e-12


def _smooth_patch(weights: np.ndarray, h: int, w: int) -> np.ndarray:
    return ndimage.gaussian_filter(weights.reshape(h, w), 0.5, mode="nearest").ravel()


def _component_containing(keep: np.ndarray, index: int, h: int, w: int) -> np.ndarray:
    labels, _ = ndimage.label(keep.reshape(h, w))
    lab = labels.ravel()[index]
    if lab == 0:
        return np.zeros_like(keep)
    return labels.ravel() == lab


def _box(ys: np.ndarray, xs: np.ndarray, margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    return (
        max(0, int(ys.min()) - margin),
        min(shape[0], int(ys.max()) + margin + 1),
        max(0, int(xs.min()) - margin),
        min(shape[1], int(xs.max()) + margin + 1),
    )


def _update_activity(
    binned: np.ndarray, activity: np.ndarray, box: tuple, margin: int, sigma: float, scale: float
) -> None:
    """Recompute the activity map inside ``box`` after an ROI was subtracted."""
    ya, yb, xa, xb = box
    ny, nx = activity.shape
    ea, eb = max(0, ya - margin), min(ny, yb + margin)
    fa, fb = max(0, xa - margin), min(nx, xb + margin)
    power = _excess_power(binned[:, ea:eb, fa:fb], sigma, scale).mean(axis=0)
    activity[ya:yb, xa:xb] = power[ya - ea : yb - ea, xa - fa : xb - fa]


def _zero_disk(image: np.ndarray, y0: int, x0: int, radius: float) -> None:
    r = int(math.ceil(radius))
    ya, yb = max(0, y0 - r), min(image.shape[0], y0 + r + 1)
    xa, xb = max(0, x0 - r), min(image.shape[1], x0 + r + 1)
    yy, xx = np.mgrid[ya:yb, xa:xb]
    image[ya:yb, xa:xb][np.hypot(yy - y0, xx - x0) <= radius] = 0
