"""Rendering: a shown viewer's screenshot contains the data, not a blank canvas (needs OpenGL: Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from .conftest import correlation  # noqa: E402


def test_screenshot_shows_the_recording(make_napari_viewer, functional_tiff, functional_sim):
    from skimage.transform import resize

    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(functional_tiff), plugin="imagingkit")
    frame = functional_sim.movie[120, 0, 0].astype(float)
    lo, hi = np.percentile(frame, (1, 99.5))
    # map the data into [~0.33, 1] of the grey range so that the image is never pure black like the canvas
    layer.contrast_limits = (lo - (hi - lo) / 2, hi)
    viewer.dims.set_point(0, 120)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    grey = shot[..., :3].astype(float).mean(axis=2)
    assert grey.std() > 20  # not a blank canvas
    rows, cols = np.nonzero(grey > 40)
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert abs(crop.shape[0] / crop.shape[1] - 1.0) < 0.05  # a square 96x96 image, square pixels of 1.5 µm
    shown = resize(crop, frame.shape, anti_aliasing=True)
    assert correlation(shown, np.clip(frame, None, hi)) > 0.9  # the pixels drawn are the frame's
