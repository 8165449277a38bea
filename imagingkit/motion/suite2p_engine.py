"""suite2p's registration behind the imagingkit engine interface (optional ``suite2p`` extra).

suite2p's stage functions are called on arrays with an explicit CPU device
(its defaults assume CUDA). Both APIs are supported: 0.14 (``ops`` dicts,
``compute_reference_masks``/``register_frames(refAndMasks, frames, ops=...)``)
and 1.x (``settings`` dicts, ``register_frames(frames, refImg, device=...)``).
suite2p's rigid offsets are whole pixels and follow the house convention
(frames are rolled by ``-dy, -dx``); its block offsets are measured after the
rigid roll, so total block shifts are ``rigid + block``.
"""

from __future__ import annotations

import inspect

import numpy as np

from imagingkit.errors import ParameterError
from imagingkit.motion.engine import PlaneOutput, max_shift_for
from imagingkit.motion.nonrigid import BlockGrid
from imagingkit.motion.params import NonRigidParams, RigidParams


def _import_suite2p():
    try:
        import torch
        from suite2p.registration import register
    except ImportError as exc:
        raise ParameterError(
            "engine 'suite2p' needs the suite2p extra (pip install 'imagingkit[suite2p]'); "
            f"import failed: {exc}"
        ) from exc
    return torch, register


def _to_int16(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames), -32768, 32767).astype(np.int16)


def _grid_from_suite2p(blocks) -> BlockGrid:
    ny, nx = (int(v) for v in blocks[2])
    yblock, xblock = blocks[0], blocks[1]
    y_starts = np.array([int(yblock[i * nx][0]) for i in range(ny)])
    x_starts = np.array([int(xblock[j][0]) for j in range(nx)])
    size = (int(yblock[0][1] - yblock[0][0]), int(xblock[0][1] - xblock[0][0]))
    return BlockGrid(y_starts, x_starts, size)


class Suite2pPlaneEngine:
    """Registers one plane with suite2p's functions on the CPU (same interface as the built-in engine)."""

    name = "suite2p"

    def __init__(self, sample: np.ndarray, params: RigidParams):
        self.torch, self.register_module = _import_suite2p()
        self.device = self.torch.device("cpu")
        self.params = params
        self.nonrigid = isinstance(params, NonRigidParams)
        self.max_shift_px = max_shift_for(sample.shape[-2:], params)
        self.new_api = "device" in inspect.signature(self.register_module.register_frames).parameters
        sample16 = _to_int16(sample)
        if self.new_api:
            from suite2p.parameters import default_settings

            self.settings = dict(default_settings()["registration"])
            self.settings.update(self._common())
            ref = self.register_module.compute_reference(
                sample16.copy(), settings=self.settings, device=self.device
            )
        else:
            from suite2p import default_ops

            self.settings = default_ops()
            self.settings.update(self._common())
            ref = self.register_module.compute_reference(sample16.copy(), ops=self.settings)
            self.ref_and_masks = self.register_module.compute_reference_masks(ref, self.settings)
        self.reference = np.asarray(ref, dtype=np.float32)
        self.block_grid = None
        if self.nonrigid:
            from suite2p.registration import nonrigid

            size = (params.block_size_px, params.block_size_px)
            self.block_grid = _grid_from_suite2p(nonrigid.make_blocks(*self.reference.shape, block_size=size))

    @property
    def prepared_reference(self):
        """The reference prepared for the built-in phase correlation (used for residual-motion metrics)."""
        from imagingkit.motion.rigid import prepare_reference

        if not hasattr(self, "_prepared"):
            self._prepared = prepare_reference(self.reference, self.max_shift_px)
        return self._prepared

    def _common(self) -> dict:
        p = self.params
        out = {
            "maxregshift": p.max_shift_fraction,
            "smooth_sigma": p.smooth_sigma_px,
            "spatial_taper": p.taper_slope_px,
            "smooth_sigma_time": 0,
            "nonrigid": self.nonrigid,
            "batch_size": p.chunk_frames,
        }
        if self.nonrigid:
            out.update(
                block_size=(p.block_size_px, p.block_size_px),
                maxregshiftNR=int(np.ceil(p.max_block_shift_px)),
                snr_thresh=p.snr_threshold,
            )
        return out

    def register(self, frames: np.ndarray, channel: int, align: np.ndarray | None = None) -> PlaneOutput:
        """Register (n, C, Y, X) frames on ``channel`` with suite2p; other channels get the same shifts.

        ``align`` is ignored: suite2p aligns on every line (artifact frames are still marked).
        """
        align = _to_int16(frames[:, channel])
        if self.new_api:
            out_frames = np.empty_like(align)
            s = self.settings
            kwargs = dict(
                batch_size=len(align), nonrigid=self.nonrigid, maxregshift=s["maxregshift"],
                smooth_sigma=s["smooth_sigma"], spatial_taper=s["spatial_taper"], device=self.device,
            )  # fmt: skip
            if self.nonrigid:
                kwargs.update(
                    block_size=s["block_size"], maxregshiftNR=s["maxregshiftNR"], snr_thresh=s["snr_thresh"]
                )
            _, _, _, offsets, blocks, *_ = self.register_module.register_frames(
                align, self.reference.astype(np.int16), f_align_out=out_frames, **kwargs
            )
            ymax, xmax, cmax, ymax1, xmax1 = offsets[:5]
            registered = out_frames
        else:
            res = self.register_module.register_frames(self.ref_and_masks, align.copy(), ops=self.settings)
            registered, ymax, xmax, cmax, ymax1, xmax1 = res[:6]
            blocks = self.ref_and_masks[-1]
        out = np.empty(frames.shape, dtype=np.float32)
        for c in range(frames.shape[1]):
            out[:, c] = (
                registered
                if c == channel
                else self._apply(_to_int16(frames[:, c]), ymax, xmax, ymax1, xmax1, blocks)
            )
        dy, dx = np.asarray(ymax, float), np.asarray(xmax, float)
        result = PlaneOutput(out, dy, dx, np.asarray(cmax, np.float32))
        if self.nonrigid and ymax1 is not None:
            shape = (len(dy), *self.block_grid.shape)
            result.block_dy = (dy[:, None] + np.asarray(ymax1)).reshape(shape).astype(np.float32)
            result.block_dx = (dx[:, None] + np.asarray(xmax1)).reshape(shape).astype(np.float32)
        return result

    def _apply(self, frames16, ymax, xmax, ymax1, xmax1, blocks) -> np.ndarray:
        if self.new_api:
            t = self.torch
            return self.register_module.shift_frames(
                t.from_numpy(frames16), t.as_tensor(np.asarray(ymax)), t.as_tensor(np.asarray(xmax)),
                None if ymax1 is None else np.asarray(ymax1), None if xmax1 is None else np.asarray(xmax1),
                blocks, device=self.device,
            )  # fmt: skip
        return self.register_module.shift_frames(frames16, ymax, xmax, ymax1, xmax1, blocks, self.settings)
