"""Small hand-made movies with known footprints for the neurons tests.

Used where an exact, tiny fixture is clearer than the full simulator
(extraction arithmetic, NaN handling, border ROIs).
"""

from __future__ import annotations

import numpy as np


def disk_footprints(shape_yx, centres_yx, radius_px):
    """(n, Y, X) float32 flat disks of the given radius."""
    yy, xx = np.mgrid[: shape_yx[0], : shape_yx[1]]
    return np.stack([(np.hypot(yy - cy, xx - cx) <= radius_px).astype(np.float32) for cy, cx in centres_yx])


def small_movie(
    n_frames=600,
    shape_yx=(64, 64),
    centres_yx=((16, 16), (16, 44), (44, 30), (2, 60)),
    radius_px=5,
    frame_rate_hz=30.0,
    noise_sd=5.0,
    seed=0,
):
    """A movie of flat-disk cells with exponential calcium transients, a smooth neuropil and noise.

    Returns
    -------
    movie : (T, Y, X) float32
    footprints : (n, Y, X) float32
    calcium : (n, T) float64, in dF/F units (amplitude 1 per spike before summation)
    neuropil : (T,) float64 neuropil trace added to every pixel
    """
    rng = np.random.default_rng(seed)
    fp = disk_footprints(shape_yx, centres_yx, radius_px)
    decay = np.exp(-1.0 / (0.5 * frame_rate_hz))
    calcium = np.zeros((len(fp), n_frames))
    for i in range(len(fp)):
        spikes = rng.random(n_frames) < 0.2 / frame_rate_hz
        c = 0.0
        for t in range(n_frames):
            c = c * decay + spikes[t]
            calcium[i, t] = c
    neuropil = 20 + 5 * np.sin(np.arange(n_frames) / frame_rate_hz)
    baseline = 100.0
    movie = np.full((n_frames, *shape_yx), baseline, dtype=np.float64)
    movie += neuropil[:, None, None]
    movie += np.einsum("nt,nyx->tyx", baseline * calcium, fp)
    movie += rng.normal(0, noise_sd, movie.shape)
    return movie.astype(np.float32), fp, calcium, neuropil
