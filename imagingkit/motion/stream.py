"""Streaming registration of a whole recording: bounded memory, both cores, atomic output.

``register_movie`` reads the recording in chunks, registers every plane (all
channels aligned on one), and writes ``registered.tif`` page by page as a
BigTIFF, plus ``shifts.csv``, the reference and mean images, the stimulation
light artifact lines (``artifact_lines.npz``), block shift fields
(piecewise-rigid) and ``metrics.json``. Everything is written into a temporary
folder renamed to the output folder only when complete, so an interrupted run
never leaves a result that looks finished.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from imagingkit._atomic import atomic_dir
from imagingkit.errors import DataError, ParameterError
from imagingkit.io.recording import Recording
from imagingkit.motion.artifacts import (
    LineBaseline,
    blend_artifact_lines,
    detect_artifact_lines,
    line_baseline,
    line_means,
    registered_row_mask,
)
from imagingkit.motion.bidi import correct_bidi_phase, estimate_bidi_phase
from imagingkit.motion.engine import BuiltinPlaneEngine, PlaneOutput
from imagingkit.motion.params import RigidParams
from imagingkit.motion.quality import flag_bad_frames, recording_metrics
from imagingkit.motion.reference import frame_correlation
from imagingkit.motion.rigid import estimate_rigid_shifts

SHIFT_COLUMNS = ["frame", "plane", "dy", "dx", "corr", "bad"]
EXTRA_COLUMNS = ["peak", "bad_reason", "artifact", "artifact_lines"]
RESIDUAL_EVERY = 20  # every n-th registered frame is re-registered to measure residual motion
ENGINES = ("builtin", "suite2p")


@dataclasses.dataclass
class RegistrationResult:
    """Outcome of :func:`register_movie`.

    Attributes
    ----------
    shifts : DataFrame
        One row per frame and plane: ``frame, plane, dy, dx, corr, bad`` (plus
        ``peak``, ``bad_reason``, ``artifact`` and ``artifact_lines``). ``dy, dx`` in
        pixels, house convention. ``artifact``: the frame has stimulation-light
        artifact lines (``artifact_lines`` of them) and was aligned on its other
        lines; it is also ``bad`` only when that alignment failed.
    reference : ndarray
        (Z, Y, X) float32 reference image per plane.
    mean_image : ndarray
        (Z, Y, X) float32 mean of the registered alignment channel.
    metrics : dict
        Per-plane quality metrics and run information (engine, frames/s, bidi phase).
    artifact_lines : dict
        ``frame``, ``plane`` (K,) and ``lines`` (K, Y) bool raw scan lines with light artifact,
        for the K frame/plane pairs that have any.
    block_shifts : dict or None
        Piecewise-rigid runs: ``dy``, ``dx`` (T, Z, n_block_rows, n_block_cols),
        ``centres_y``, ``centres_x`` (pixels), ``block_size_yx``.
    out_dir : Path or None
        Folder holding the written files.
    """

    shifts: pd.DataFrame
    reference: np.ndarray
    mean_image: np.ndarray
    metrics: dict
    artifact_lines: dict
    block_shifts: dict | None = None
    out_dir: Path | None = None

    @property
    def bad_frames(self) -> np.ndarray:
        """(T,) bool: bad in any plane."""
        return self.shifts.groupby("frame")["bad"].any().to_numpy()


def _make_engine(name: str, sample: np.ndarray, params: RigidParams):
    if name == "builtin":
        return BuiltinPlaneEngine(sample, params)
    if name == "suite2p":
        from imagingkit.motion.suite2p_engine import Suite2pPlaneEngine

        return Suite2pPlaneEngine(sample, params)
    raise ParameterError(f"engine must be one of {ENGINES}, got {name!r}")


def _check_input(recording: Recording, channel: int, planes: list[int]) -> None:
    if recording.n_frames < 2:
        raise DataError(f"registration needs at least 2 frames, the recording has {recording.n_frames}")
    if not 0 <= channel < recording.n_channels:
        raise ParameterError(
            f"reference channel {channel} does not exist: the recording has {recording.n_channels} channel(s) "
            f"(0..{recording.n_channels - 1})"
        )
    for z in planes:
        if not 0 <= z < recording.n_planes:
            raise ParameterError(f"plane {z} does not exist: the recording has {recording.n_planes} plane(s)")


def _frame_validity(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) bool valid (finite, with contrast) and (n,) mean intensity of (n, Y, X) frames.

    Contrast is checked on every 4th pixel (enough to catch blank, dropped or saturated frames).
    """
    mean = frames.mean(axis=(1, 2), dtype=np.float64)
    sub = frames[:, ::4, ::4].reshape(len(frames), -1)
    valid = np.isfinite(mean) & (sub.max(axis=1) > sub.min(axis=1))
    bad_mean = ~np.isfinite(mean)
    if bad_mean.any():
        with np.errstate(invalid="ignore"):
            for r in np.flatnonzero(bad_mean):
                finite = frames[r][np.isfinite(frames[r])]
                mean[r] = finite.mean() if finite.size else 0.0
    return valid, mean


def _sample_frames(recording: Recording, plane: int, channel: int, n_sample: int) -> np.ndarray:
    """(N, Y, X) float32 frames evenly spread over the recording, invalid ones dropped."""
    idx = np.unique(
        np.linspace(0, recording.n_frames - 1, min(n_sample, recording.n_frames)).round().astype(int)
    )
    sample = np.asarray(recording.data[idx][:, plane, channel], dtype=np.float32)
    valid, _ = _frame_validity(sample)
    if valid.sum() < 2:
        raise DataError(
            f"plane {plane} channel {channel}: only {int(valid.sum())} of {len(sample)} sampled frames are finite "
            "and non-constant (all-zero or NaN frames); nothing to register"
        )
    return sample[valid]


def _output_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(dtype) if np.issubdtype(dtype, np.integer) else np.dtype(np.float32)


def _to_dtype(frames: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float32 frames in place, then cast to ``dtype``."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(frames, out=frames)
        np.clip(frames, np.float32(info.min), np.float32(info.max), out=frames)
        return frames.astype(dtype)
    return frames.astype(dtype, copy=False)


@dataclasses.dataclass
class _ChunkResult:
    t0: int
    registered: np.ndarray  # (n, Z, C, Y, X) output dtype
    planes: list[PlaneOutput]
    corr: np.ndarray  # (n, Z)
    valid: np.ndarray  # (n, Z)
    artifact: list[np.ndarray]  # per plane (n, Y) bool raw artifact lines
    mean_intensity: np.ndarray  # (n, Z)
    sum_raw: np.ndarray  # (Z, Y, X) float64
    sum_reg: np.ndarray  # (Z, Y, X) float64
    residual: list[tuple[np.ndarray, np.ndarray]]


class _Registrar:
    """Registers chunks of (n, Z, C, Y, X) frames with one engine per plane."""

    def __init__(self, engines, planes, channel, bidi, out_dtype, margin_px, baselines, params):
        self.engines, self.planes, self.channel = engines, planes, channel
        self.bidi, self.out_dtype, self.margin_px = bidi, out_dtype, margin_px
        self.baselines: list[LineBaseline | None] = baselines
        self.params = params

    def _artifact_lines(self, k: int, means: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """(n, Y) bool stimulation-light artifact lines of plane ``k`` (none in invalid frames)."""
        if self.baselines[k] is None:
            return np.zeros(means.shape, bool)
        p = self.params
        mask = detect_artifact_lines(means, self.baselines[k], p.artifact_line_z, p.artifact_dilate_lines)
        mask[~ok] = False
        return mask

    def __call__(self, item: tuple[int, np.ndarray]) -> _ChunkResult:
        t0, block = item
        block = np.asarray(block)[:, self.planes]
        n, nz = block.shape[:2]
        reg = np.empty(block.shape, dtype=np.float32) if nz > 1 else None
        outs, residual, artifacts = [], [], []
        corr, valid, mean_int = (
            np.zeros((n, nz), dtype=np.float32),
            np.zeros((n, nz), bool),
            np.zeros((n, nz)),
        )
        sum_raw = np.zeros((nz, *block.shape[-2:]))
        sum_reg = np.zeros((nz, *block.shape[-2:]))
        for k, engine in enumerate(self.engines):
            frames = np.asarray(block[:, k], dtype=np.float32)
            if self.bidi[k]:
                frames = correct_bidi_phase(frames, self.bidi[k])
            ok, mean_int[:, k] = _frame_validity(frames[:, self.channel])
            valid[:, k] = ok
            if not ok.all():
                frames = np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0)
            means = line_means(frames[:, self.channel])
            art = self._artifact_lines(k, means, ok)
            has_art = art.any(axis=1)
            align = None
            if has_art.any():  # align on the clean lines; intensity from the clean lines
                align = blend_artifact_lines(frames[:, self.channel], art)
                for i in np.flatnonzero(has_art & ~art.all(axis=1)):
                    mean_int[i, k] = means[i][~art[i]].mean()
            out = engine.register(frames, self.channel, align=align)
            if not ok.all():  # unusable frames are passed through unshifted (and flagged bad)
                out.dy[~ok], out.dx[~ok] = 0.0, 0.0
                out.registered[~ok] = frames[~ok]
            if nz == 1:
                reg = out.registered[:, None]
            else:
                reg[:, k] = out.registered
            aligned = out.registered[:, self.channel]
            corr[:, k] = frame_correlation(
                aligned[:, ::2, ::2], engine.reference[::2, ::2], self.margin_px // 2
            )
            for i in np.flatnonzero(has_art & ~art.all(axis=1)):
                rows = ~registered_row_mask(art[i], out.dy[i])
                corr[i, k] = frame_correlation(
                    aligned[i][rows][None, ::2, ::2], engine.reference[rows][::2, ::2], self.margin_px // 2
                )[0]
            corr[~ok, k] = 0.0
            clean = ok & ~has_art  # the mean images leave out artifact frames
            sum_raw[k] = _valid_sum(frames[:, self.channel], clean)
            sum_reg[k] = _valid_sum(aligned, clean)
            artifacts.append(art)
            sub = aligned[::RESIDUAL_EVERY]
            rdy, rdx, _ = estimate_rigid_shifts(sub, engine.prepared_reference)
            keep = clean[::RESIDUAL_EVERY]
            residual.append((rdy[keep], rdx[keep]))
            outs.append(out)
        return _ChunkResult(
            t0,
            _to_dtype(reg, self.out_dtype),
            outs,
            corr,
            valid,
            artifacts,
            mean_int,
            sum_raw,
            sum_reg,
            residual,
        )


def _valid_sum(frames: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(Y, X) float64 sum of the valid frames of (n, Y, X)."""
    chosen = frames if valid.all() else frames[valid]
    return chosen.sum(axis=0, dtype=np.float64)


def _ordered_parallel(func, items: Iterator, n_workers: int) -> Iterator:
    """``map(func, items)`` on a thread pool, in order, with at most ``n_workers + 1`` items in flight."""
    if n_workers <= 1:
        yield from map(func, items)
        return
    with ThreadPoolExecutor(n_workers) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) > n_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def register_movie(
    recording: Recording,
    out_dir: str | Path | None = None,
    params: RigidParams | None = None,
    channel: int = 0,
    engine: str = "builtin",
    planes: list[int] | None = None,
    write_movie: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RegistrationResult:
    """Register a recording (rigid or piecewise-rigid), streaming it in chunks.

    Parameters
    ----------
    recording : Recording
        Any recording; read chunk by chunk, never loaded whole.
    out_dir : str or Path, optional
        Output folder; ``None`` computes shifts and metrics without writing anything.
        Files: ``registered.tif`` (BigTIFF, axes TZCYX, input dtype for integer
        input, else float32), ``shifts.csv``, ``reference.tif``, ``mean_image.tif``,
        ``metrics.json`` and, for piecewise-rigid, ``block_shifts.npz``.
    params : RigidParams or NonRigidParams
        Default: ``RigidParams()``.
    channel : int
        Channel the shifts are estimated on; the others follow.
    engine : {"builtin", "suite2p"}
        Registration engine (suite2p needs the ``suite2p`` extra).
    planes : list of int, optional
        Planes to register (default all).
    write_movie : bool
        With ``out_dir``, set False to write everything but ``registered.tif``.
    progress : callable, optional
        Called as ``progress(n_frames_done, n_frames)`` after each registered chunk (a
        progress bar, a log line, a batch scheduler's heartbeat).

    Returns
    -------
    RegistrationResult

    Raises
    ------
    DataError
        Fewer than 2 frames, or no usable (finite, non-constant) frames.
    ParameterError
        Channel or plane out of range, unknown engine.
    """
    params = params or RigidParams()
    planes = list(range(recording.n_planes)) if planes is None else [int(z) for z in planes]
    _check_input(recording, channel, planes)
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
    start = time.perf_counter()
    want_bidi = (
        params.bidi_correction if params.bidi_correction is not None else bool(recording.bidirectional)
    )
    engines, bidi, baselines = [], [], []
    for z in planes:
        sample = _sample_frames(recording, z, channel, params.reference_frames)
        phase = estimate_bidi_phase(sample.mean(axis=0)) if want_bidi else 0
        if phase:
            sample = correct_bidi_phase(sample, phase)
        engines.append(_make_engine(engine, sample, params))
        bidi.append(phase)
        baselines.append(None if params.artifact_line_z is None else line_baseline(sample))
    t_ref = time.perf_counter() - start
    margin = engines[0].max_shift_px
    registrar = _Registrar(
        engines, planes, channel, bidi, _output_dtype(recording.dtype), margin, baselines, params
    )
    chunks = _ordered_parallel(
        registrar, recording.iter_chunks(params.chunk_frames), params.n_workers if engine == "builtin" else 1
    )
    acc = _Accumulator(recording.n_frames, len(planes), recording.frame_shape, engines)
    n_out = (recording.n_frames, len(planes), recording.n_channels, *recording.frame_shape)

    def pages() -> Iterator[np.ndarray]:
        done = 0
        for res in chunks:
            acc.add(res)
            done += len(res.corr)
            if progress is not None:
                progress(done, recording.n_frames)
            yield from res.registered.reshape(-1, *recording.frame_shape)

    if out_dir is None:
        for _ in pages():
            pass
        return acc.result(params, engine, bidi, planes, start, t_ref, None)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if write_movie:
            with tifffile.TiffWriter(tmp / "registered.tif", bigtiff=True) as tif:
                tif.write(pages(), shape=n_out, dtype=registrar.out_dtype, metadata={"axes": "TZCYX"})
        else:
            for _ in pages():
                pass
        result = acc.result(params, engine, bidi, planes, start, t_ref, out_dir)
        _write_outputs(tmp, result)
    return result


class _Accumulator:
    """Collects per-chunk results into whole-recording arrays (shifts only, never the movie)."""

    def __init__(self, n_frames, n_planes, shape_yx, engines):
        self.engines = engines
        self.dy = np.zeros((n_frames, n_planes))
        self.dx = np.zeros((n_frames, n_planes))
        self.peak = np.zeros((n_frames, n_planes), np.float32)
        self.corr = np.zeros((n_frames, n_planes), np.float32)
        self.valid = np.zeros((n_frames, n_planes), bool)
        self.n_artifact_lines = np.zeros((n_frames, n_planes), np.int32)
        self.n_lines = shape_yx[0]
        self.artifact_rows: list[tuple[int, int, np.ndarray]] = []  # (frame, plane index, (Y,) mask)
        self.n_summed = np.zeros(n_planes, np.int64)
        self.mean_int = np.zeros((n_frames, n_planes))
        self.sum_raw = np.zeros((n_planes, *shape_yx))
        self.sum_reg = np.zeros((n_planes, *shape_yx))
        self.residual = [([], []) for _ in range(n_planes)]
        grid = engines[0].block_grid
        self.block_dy = None if grid is None else np.zeros((n_frames, n_planes, *grid.shape), np.float32)
        self.block_dx = None if grid is None else np.zeros((n_frames, n_planes, *grid.shape), np.float32)

    def add(self, res: _ChunkResult) -> None:
        sl = slice(res.t0, res.t0 + len(res.registered))
        for k, out in enumerate(res.planes):
            self.dy[sl, k], self.dx[sl, k], self.peak[sl, k] = out.dy, out.dx, out.peak
            if self.block_dy is not None:
                self.block_dy[sl, k], self.block_dx[sl, k] = out.block_dy, out.block_dx
            art = res.artifact[k]
            self.n_artifact_lines[sl, k] = art.sum(axis=1)
            self.artifact_rows.extend((res.t0 + i, k, art[i]) for i in np.flatnonzero(art.any(axis=1)))
            self.n_summed[k] += int((res.valid[:, k] & ~art.any(axis=1)).sum())
            self.residual[k][0].append(res.residual[k][0])
            self.residual[k][1].append(res.residual[k][1])
        self.corr[sl], self.valid[sl], self.mean_int[sl] = res.corr, res.valid, res.mean_intensity
        self.sum_raw += res.sum_raw
        self.sum_reg += res.sum_reg

    def result(self, params, engine, bidi, planes, start, t_ref, out_dir) -> RegistrationResult:
        n_frames = len(self.dy)
        rows, plane_metrics = [], {}
        mean_reg = np.zeros(self.sum_reg.shape, np.float32)
        for k, z in enumerate(planes):
            n_valid = max(int(self.n_summed[k]), 1)
            mean_raw = self.sum_raw[k] / n_valid
            mean_reg[k] = self.sum_reg[k] / n_valid
            bad, reason = flag_bad_frames(
                self.corr[:, k], self.dy[:, k], self.dx[:, k], self.mean_int[:, k], self.valid[:, k],
                self.engines[k].max_shift_px, params.bad_corr_mad, params.bad_jump_px, params.bad_intensity_mad,
                corr_min_drop=params.bad_corr_min_drop,
                artifact_fraction=self.n_artifact_lines[:, k] / self.n_lines,
                max_artifact_fraction=params.artifact_max_line_fraction,
            )  # fmt: skip
            rdy = np.concatenate(self.residual[k][0]) if self.residual[k][0] else None
            rdx = np.concatenate(self.residual[k][1]) if self.residual[k][1] else None
            m = recording_metrics(
                self.corr[:, k], self.dy[:, k], self.dx[:, k], bad, mean_raw, mean_reg[k],
                self.engines[k].max_shift_px, rdy, rdx,
            )  # fmt: skip
            m["bidi_phase_px"] = int(bidi[k])
            m["n_artifact_frames"] = int((self.n_artifact_lines[:, k] > 0).sum())
            m["n_artifact_frames_bad"] = int(((self.n_artifact_lines[:, k] > 0) & bad).sum())
            plane_metrics[str(z)] = m
            rows.append(
                pd.DataFrame(
                    {
                        "frame": np.arange(n_frames),
                        "plane": z,
                        "dy": self.dy[:, k],
                        "dx": self.dx[:, k],
                        "corr": self.corr[:, k],
                        "bad": bad,
                        "peak": self.peak[:, k],
                        "bad_reason": reason,
                        "artifact": self.n_artifact_lines[:, k] > 0,
                        "artifact_lines": self.n_artifact_lines[:, k],
                    }
                )
            )
        shifts = pd.concat(rows, ignore_index=True).sort_values(["frame", "plane"], kind="stable")
        elapsed = time.perf_counter() - start
        metrics = {
            "engine": engine,
            "nonrigid": bool(params.nonrigid),
            "params": dataclasses.asdict(params),
            "n_frames": n_frames,
            "planes": planes,
            "elapsed_s": elapsed,
            "reference_s": t_ref,
            "frames_per_s": n_frames * len(planes) / elapsed if elapsed > 0 else None,
            "per_plane": plane_metrics,
        }
        blocks = None
        if self.block_dy is not None:
            grid = self.engines[0].block_grid
            blocks = {
                "dy": self.block_dy,
                "dx": self.block_dx,
                "centres_y": grid.centres_y,
                "centres_x": grid.centres_x,
                "block_size_yx": np.array(grid.size_yx),
            }
        reference = np.stack([e.reference for e in self.engines]).astype(np.float32)
        rows_art = sorted(self.artifact_rows, key=lambda r: (r[0], r[1]))
        artifact_lines = {
            "frame": np.array([r[0] for r in rows_art], dtype=np.int64),
            "plane": np.array([planes[r[1]] for r in rows_art], dtype=np.int64),
            "lines": np.array([r[2] for r in rows_art], dtype=bool).reshape(len(rows_art), self.n_lines),
        }
        return RegistrationResult(
            shifts.reset_index(drop=True), reference, mean_reg, metrics, artifact_lines, blocks, out_dir
        )


def _write_outputs(folder: Path, result: RegistrationResult) -> None:
    """Write shifts, reference, mean image, block shifts and metrics into ``folder``."""
    result.shifts.to_csv(folder / "shifts.csv", index=False)
    tifffile.imwrite(folder / "reference.tif", result.reference, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "mean_image.tif", result.mean_image, metadata={"axes": "ZYX"})
    np.savez_compressed(folder / "artifact_lines.npz", **result.artifact_lines)
    if result.block_shifts is not None:
        np.savez_compressed(folder / "block_shifts.npz", **result.block_shifts)
    (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=float))


def estimate_shifts(
    recording: Recording, params: RigidParams | None = None, channel: int = 0, engine: str = "builtin"
) -> RegistrationResult:
    """Shifts, bad frames and metrics of a recording without writing anything (see :func:`register_movie`)."""
    return register_movie(recording, None, params=params, channel=channel, engine=engine)
