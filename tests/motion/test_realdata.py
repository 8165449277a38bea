"""Real CA1 movie (SIMA's example): our shifts agree with SIMA's own estimate."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from imagingkit.io import from_array
from imagingkit.motion import RigidParams, register_movie


@pytest.mark.realdata
def test_sima_example_agrees_with_sima(realdata):
    folder = realdata / "sima_example"
    movie = tifffile.imread(folder / "example.tif")
    assert movie.shape == (20, 128, 256)
    sima_rows = np.load(folder / "displacements_rowwise_20x128x2.npy")
    # SIMA gives, per row, where the frame must move to (opposite sign), in whole pixels
    sima = -np.median(sima_rows, axis=1)
    res = register_movie(from_array(movie), None, RigidParams())
    ours = res.shifts[["dy", "dx"]].to_numpy()
    for axis, name in enumerate("yx"):
        diff = ours[:, axis] - sima[:, axis]
        rms = np.sqrt(np.mean((diff - np.median(diff)) ** 2))
        corr = np.corrcoef(ours[:, axis], sima[:, axis])[0, 1]
        # measured: y corr 0.89, rms 0.34 px; x corr 0.97, rms 0.52 px (SIMA is whole-pixel, row-wise)
        assert corr > 0.8, (name, corr)
        assert rms < 0.75, (name, rms)
    assert not res.shifts["bad"].any()
