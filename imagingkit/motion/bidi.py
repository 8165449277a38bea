"""Bidirectional scan phase: the x offset between lines scanned left-to-right and right-to-left.

Resonant scanners acquire every other line in the opposite direction; a timing
mismatch shifts odd lines against even ones. The offset is estimated by phase
correlation along x between the odd and even lines (as suite2p's ``bidiphase``)
and undone before registration.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft


def estimate_bidi_phase(images: np.ndarray, max_offset_px: int = 10) -> int:
    """Whole-pixel x offset of odd lines relative to even lines.

    Parameters
    ----------
    images : ndarray
        (Y, X) mean image or (T, Y, X) sample of frames.
    max_offset_px : int
        Largest offset searched.

    Returns
    -------
    int
        ``offset`` such that odd lines show the content of even lines moved by
        ``offset`` pixels along x (positive: to larger x). 0 for a unidirectional scan.
    """
    frames = np.asarray(images, dtype=np.float32)
    frames = frames[None] if frames.ndim == 2 else frames
    nx = frames.shape[-1]
    n_pairs = frames.shape[1] // 2
    odd = sfft.fft(frames[:, 1 : 2 * n_pairs : 2], axis=-1)
    even = sfft.fft(frames[:, 0 : 2 * n_pairs : 2], axis=-1)
    odd /= np.abs(odd) + 1e-5
    even = np.conj(even) / (np.abs(even) + 1e-5)
    cc = np.real(sfft.ifft(odd * even, axis=-1)).mean(axis=(0, 1))
    max_offset_px = int(min(max_offset_px, nx // 4))
    lags = np.arange(-max_offset_px, max_offset_px + 1)
    return int(lags[np.argmax(cc[lags % nx])])


def correct_bidi_phase(frames: np.ndarray, offset_px: int) -> np.ndarray:
    """Return frames with odd lines moved back by ``offset_px`` along x (a copy; edges clamped).

    Parameters
    ----------
    frames : ndarray
        (..., Y, X) frames.
    offset_px : int
        As returned by :func:`estimate_bidi_phase`.
    """
    out = np.array(frames, copy=True)
    if offset_px == 0:
        return out
    nx = out.shape[-1]
    idx = np.clip(np.arange(nx) + offset_px, 0, nx - 1)
    out[..., 1::2, :] = np.asarray(frames)[..., 1::2, :][..., idx]
    return out
