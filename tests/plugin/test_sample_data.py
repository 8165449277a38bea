"""Sample data contributions open the files of sample_data/ (or the simulators when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from napari_imagingkit import _sample_data  # noqa: E402


@pytest.fixture(scope="module")
def sample_dir(stim_sim, dendrite_sim, tmp_path_factory):
    """A sample_data/ layout written by the synth writers: functional/ series and structural/ sessions."""
    from imagingkit.synth.writers import write_dendrite_sessions, write_scanimage_tiff_series

    root = tmp_path_factory.mktemp("sample_data")
    write_scanimage_tiff_series(stim_sim.recording, root / "functional", "func", frames_per_file=500)
    write_dendrite_sessions(dendrite_sim, root / "structural")
    return root


def test_sample_menu_opens_functional_and_structural(
    make_napari_viewer, monkeypatch, sample_dir, stim_sim, dendrite_sim
):
    monkeypatch.setattr(_sample_data, "SAMPLE_DIR", sample_dir)
    viewer = make_napari_viewer()
    viewer.open_sample("imagingkit", "functional")
    (movie,) = viewer.layers
    assert movie.data.shape == (1200, 1, 96, 96)  # the whole 3-file series, lazily
    assert tuple(movie.scale) == pytest.approx((1.0, 1.0, 1.5, 1.5))
    np.testing.assert_array_equal(np.asarray(movie.data[700, 0]), stim_sim.movie[700, 0, 0])

    viewer.open_sample("imagingkit", "structural")
    sessions = viewer.layers[1:]
    assert [layer.name for layer in sessions] == ["session 0 (0 h)", "session 1 (1 h)", "session 2 (6 h)"]
    for layer, image in zip(sessions, dendrite_sim.images, strict=True):
        np.testing.assert_array_equal(layer.data, image)
        assert tuple(layer.scale) == pytest.approx((0.2, 0.2))


def test_committed_sample_data_opens():
    if _sample_data._functional_file(_sample_data.SAMPLE_DIR) is None:
        pytest.skip("sample_data/ has no functional recording yet (python sample_data/make_sample_data.py)")
    (data, meta, kind), *_ = _sample_data.sample_functional()
    assert kind == "image" and data.ndim == 4 and meta["scale"][-1] > 0
    layers = _sample_data.sample_structural()
    assert len(layers) >= 4 and all(kind == "image" for _, _, kind in layers)
