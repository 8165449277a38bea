"""suite2p's detection and classifier as an imagingkit engine (the ``suite2p`` extra).

suite2p is imported only when this engine runs. It reads the movie through a
small adapter that serves frame ranges from the Recording (so suite2p's own
binning streams it in batches), runs on the CPU, and returns the same
:class:`RoiSet` as the built-in engine, with suite2p's classifier probability.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile

import numpy as np

from imagingkit.errors import ImagingKitError
from imagingkit.io.recording import Recording
from imagingkit.neurons.params import DetectionParams
from imagingkit.neurons.roiset import RoiSet, empty_roiset


class _FrameAdapter:
    """``f_reg``-like view of one plane/channel of a Recording: ``shape`` and ``[a:b]`` slicing."""

    def __init__(self, recording: Recording, plane: int, channel: int):
        self.recording = recording
        self.plane, self.channel = plane, channel
        self.shape = (recording.n_frames, *recording.frame_shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            first, rest = key[0], key[1:]
        else:
            first, rest = key, ()
        block = self.recording.data[first, self.plane, self.channel]
        block = np.asarray(block, dtype=np.float32)
        return block[(slice(None), *rest)] if rest and block.ndim == 3 else block


def suite2p_ops(params: DetectionParams, frame_rate_hz: float, n_frames: int, save_path: str) -> dict:
    """suite2p ops for detection: suite2p's defaults plus tau, fs, diameter-derived scale, CPU only."""
    from suite2p import default_ops

    ops = default_ops()
    diameter = params.diameter
    ops.update(
        {
            "fs": float(frame_rate_hz),
            "tau": float(params.tau_s),
            "nframes": int(n_frames),
            "nbinned": int(params.max_binned_frames),
            "batch_size": int(params.chunk_frames),
            "diameter": [int(round(diameter))] * 2,
            "spatial_scale": int(np.clip(round(math.log2(diameter / 6.0)) + 1, 1, 4)),
            "save_path": save_path,
            "save_path0": save_path,
            "sparse_mode": True,
            "connected": params.mode == "soma",
            "preclassify": 0.0,
            "use_builtin_classifier": True,
            "roidetect": True,
            "neucoeff": 0.7,
        }
    )
    if params.mode == "small":
        ops["spatial_scale"] = 1
        ops["soma_crop"] = False
    return ops


def _detect_suite2p_1x(f_reg, params: DetectionParams, fs: float, bad_frames) -> tuple[list, np.ndarray]:
    """suite2p 1.x: ``detection_wrapper(settings=...)`` on the CPU, extraction for skew, builtin classifier."""
    import torch
    from scipy import stats as sstats
    from suite2p import classification, default_settings, detection, extraction

    settings = default_settings()
    det = settings["detection"]
    det["nbins"] = int(params.max_binned_frames)
    diameter = params.diameter
    scale = int(np.clip(round(math.log2(diameter / 6.0)) + 1, 1, 4)) if params.mode == "soma" else 1
    det["sparsery_settings"]["spatial_scale"] = scale
    det["soma_crop"] = params.mode == "soma"
    cpu = torch.device("cpu")
    _, stat, _ = detection.detection_wrapper(
        f_reg,
        diameter=[diameter, diameter],
        tau=params.tau_s,
        fs=fs,
        badframes=bad_frames,
        settings=det,
        device=cpu,
    )
    if len(stat) == 0:
        return [], np.zeros((0, 2))
    F, Fneu, _, _ = extraction.extraction_wrapper(stat, f_reg, settings=settings["extraction"], device=cpu)
    corrected = F - settings["extraction"]["neuropil_coefficient"] * Fneu
    skew, std = sstats.skew(corrected, axis=1), corrected.std(axis=1)
    for k, s in enumerate(stat):
        s["skew"], s["std"] = skew[k], std[k]
    iscell = classification.classify(stat=stat, classfile=classification.builtin_classfile)
    return list(stat), iscell


def detect_suite2p(
    recording: Recording, params: DetectionParams, bad_frames: np.ndarray | None = None, quiet: bool = True
) -> RoiSet:
    """Run suite2p detection + extraction statistics + builtin classifier on one plane (0.14 or 1.x).

    Returns
    -------
    RoiSet
        ``engine="suite2p"``, ``cell_prob`` from suite2p's classifier, ``trace_skew``
        from suite2p's stat.

    Raises
    ------
    ImagingKitError
        suite2p is not installed (install the ``suite2p`` extra).
    """
    try:
        import torch  # noqa: F401  (suite2p imports it; fail early with our message)
        from suite2p import classification, detection, extraction
    except ImportError as exc:
        raise ImagingKitError(
            f"the suite2p engine needs the suite2p extra (pip install 'imagingkit[suite2p]'): {exc}"
        ) from exc
    import suite2p

    fs = params.frame_rate_hz or recording.frame_rate_hz or 30.0
    f_reg = _FrameAdapter(recording, params.plane, params.channel)
    if hasattr(suite2p, "default_settings"):  # suite2p >= 1.0
        try:
            stat, iscell = _detect_suite2p_1x(f_reg, params, fs, bad_frames)
        except (ValueError, IndexError) as exc:
            if np.ptp(recording.mean_image(params.plane, params.channel)) == 0:
                return empty_roiset(recording.frame_shape, engine="suite2p")
            raise ImagingKitError(f"suite2p detection failed: {exc}") from exc
        return _to_roiset(recording, stat, iscell)
    with tempfile.TemporaryDirectory(prefix="imagingkit-s2p-") as tmp:
        ops = suite2p_ops(params, fs, recording.n_frames, tmp)
        if bad_frames is not None:
            ops["badframes"] = np.asarray(bad_frames, bool)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            try:
                ops, stat = detection.detection_wrapper(f_reg, ops=ops)
            except (ValueError, IndexError) as exc:
                # suite2p raises on movies without any detectable activity (e.g. blank)
                if np.ptp(recording.mean_image(params.plane, params.channel)) == 0:
                    return empty_roiset(recording.frame_shape, engine="suite2p")
                raise ImagingKitError(f"suite2p detection failed: {exc}") from exc
            if len(stat) == 0:
                return empty_roiset(recording.frame_shape, engine="suite2p")
            stat, *_ = extraction.extraction_wrapper(stat, f_reg, ops=ops)
            iscell = classification.classify(stat=stat, classfile=classification.builtin_classfile)
    return _to_roiset(recording, stat, iscell)


def _to_roiset(recording: Recording, stat, iscell: np.ndarray) -> RoiSet:
    if len(stat) == 0:
        return empty_roiset(recording.frame_shape, engine="suite2p")
    return RoiSet.from_pixels(
        recording.frame_shape,
        [np.asarray(s["ypix"]) for s in stat],
        [np.asarray(s["xpix"]) for s in stat],
        [np.asarray(s["lam"]) for s in stat],
        cell_prob=np.asarray(iscell[:, 1], float),
        is_cell=np.asarray(iscell[:, 0], bool),
        trace_skew=np.array([float(s.get("skew", np.nan)) for s in stat]),
        engine="suite2p",
    )
