"""The built-in registration engine for one plane: a reference, then rigid or piecewise-rigid registration.

An engine object is built once per plane from a sample of frames and then
registers blocks of frames (all channels, aligned on one). The suite2p engine
(:mod:`imagingkit.motion.suite2p_engine`) offers the same two methods.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imagingkit.motion.nonrigid import (
    BlockReference,
    estimate_block_shifts,
    prepare_block_reference,
    upsample_block_shifts,
    warp_frames,
)
from imagingkit.motion.params import NonRigidParams, RigidParams
from imagingkit.motion.reference import compute_reference
from imagingkit.motion.rigid import (
    BATCH_FRAMES,
    PreparedReference,
    estimate_rigid_shifts,
    prepare_reference,
    shift_frames,
)


@dataclasses.dataclass
class PlaneOutput:
    """What registering a block of frames of one plane gives.

    Attributes
    ----------
    registered : ndarray
        (n, C, Y, X) float32 registered frames, every channel.
    dy, dx : ndarray
        (n,) rigid shifts (house convention).
    peak : ndarray
        (n,) phase-correlation peak height.
    block_dy, block_dx : ndarray or None
        (n, by, bx) total block shifts for piecewise-rigid runs.
    """

    registered: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    peak: np.ndarray
    block_dy: np.ndarray | None = None
    block_dx: np.ndarray | None = None


def max_shift_for(shape_yx: tuple[int, int], params: RigidParams) -> int:
    """Search radius in pixels from the parameters and the frame size."""
    return max(2, int(round(params.max_shift_fraction * min(shape_yx))))


class BuiltinPlaneEngine:
    """Registers the frames of one plane to a reference built from the data.

    Parameters
    ----------
    sample : ndarray
        (N, Y, X) frames of the alignment channel sampled over the recording.
    params : RigidParams or NonRigidParams
    reference : ndarray, optional
        Use this (Y, X) reference instead of building one.
    """

    name = "builtin"

    def __init__(self, sample: np.ndarray, params: RigidParams, reference: np.ndarray | None = None):
        self.params = params
        shape = sample.shape[-2:]
        self.max_shift_px = max_shift_for(shape, params)
        if reference is None:
            reference = compute_reference(
                sample,
                self.max_shift_px,
                n_iterations=params.reference_iterations,
                smooth_sigma_px=params.smooth_sigma_px,
                taper_slope_px=params.taper_slope_px,
                method=params.interpolation,
                workers=params.n_workers,
            )
        self.reference = np.asarray(reference, dtype=np.float32)
        self.prepared: PreparedReference = prepare_reference(
            self.reference, self.max_shift_px, params.smooth_sigma_px, params.taper_slope_px
        )
        self.blocks: BlockReference | None = None
        if isinstance(params, NonRigidParams):
            self.blocks = prepare_block_reference(
                self.reference, params.block_size_px, params.max_block_shift_px, params.smooth_sigma_px
            )

    @property
    def block_grid(self):
        return None if self.blocks is None else self.blocks.grid

    @property
    def prepared_reference(self) -> PreparedReference:
        return self.prepared

    def register(self, frames: np.ndarray, channel: int, align: np.ndarray | None = None) -> PlaneOutput:
        """Register (n, C, Y, X) float32 frames on ``channel``; the same shifts move every channel.

        ``align`` (n, Y, X), when given, replaces ``frames[:, channel]`` for estimating the shifts
        only (e.g. with artifact lines faded out); the registered output is always ``frames``.
        """
        n = len(frames)
        out = PlaneOutput(
            np.empty(frames.shape, dtype=np.float32), np.zeros(n), np.zeros(n), np.zeros(n, np.float32)
        )
        if self.blocks is not None:
            out.block_dy = np.zeros((n, *self.blocks.grid.shape), np.float32)
            out.block_dx = np.zeros((n, *self.blocks.grid.shape), np.float32)
        for i in range(0, n, BATCH_FRAMES):
            sl = slice(i, i + BATCH_FRAMES)
            self._register_batch(frames[sl], frames[sl, channel] if align is None else align[sl], out, sl)
        return out

    def _register_batch(self, frames: np.ndarray, align: np.ndarray, out: PlaneOutput, sl: slice) -> None:
        dy, dx, peak = estimate_rigid_shifts(align, self.prepared)
        out.dy[sl], out.dx[sl], out.peak[sl] = dy, dx, peak
        if self.blocks is None:
            for c in range(frames.shape[1]):
                out.registered[sl, c] = shift_frames(frames[:, c], dy, dx, method=self.params.interpolation)
            return
        bdy, bdx, _ = estimate_block_shifts(
            align, self.blocks, dy, dx, snr_threshold=self.params.snr_threshold
        )
        out.block_dy[sl], out.block_dx[sl] = bdy, bdx
        fy, fx = upsample_block_shifts(bdy, bdx, self.blocks.grid, align.shape[-2:])
        for c in range(frames.shape[1]):
            out.registered[sl, c] = warp_frames(frames[:, c], fy, fx)
