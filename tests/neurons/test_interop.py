"""suite2p folders, ImageJ ROI sets (FISSA real values), label images and result files."""

import numpy as np
import pytest
import tifffile

from imagingkit.errors import DataError, MissingFileError
from imagingkit.neurons import RoiSet, extract_traces
from imagingkit.neurons.interop import (
    polygon_mask,
    read_imagej_rois,
    read_suite2p_folder,
    write_imagej_rois,
    write_suite2p_folder,
)
from imagingkit.neurons.io import read_label_image, read_rois_csv, read_traces, write_results
from tests.neurons.fixtures import disk_footprints, small_movie


@pytest.fixture(scope="module")
def small_result():
    movie, fp, _, _ = small_movie(n_frames=300, noise_sd=2.0)
    rois = RoiSet.from_masks(fp * np.linspace(0.5, 1.0, fp.shape[-1])[None, None, :])
    rois = rois.with_classification(np.array([0.9, 0.2, 0.7, 0.6]), threshold=0.5)
    return movie, rois, extract_traces(movie, rois, frame_rate_hz=30.0)


def test_fissa_raw_traces_match_reference(realdata):
    folder = realdata / "fissa_expB"
    expected = np.load(folder / "expected_py3.npz", allow_pickle=True)["raw"]
    for trial in range(3):
        movie = tifffile.imread(folder / "images" / f"AVG_A0{trial + 1}.tif").astype(np.float64)
        rois = read_imagej_rois(folder / "rois.zip", movie.shape[1:])
        assert rois.n_rois == 2
        for i, mask in enumerate(rois.masks()):
            np.testing.assert_allclose(movie[:, mask].mean(axis=1), expected[i][trial][0], rtol=1e-12)
        # the streamed, weighted extraction gives the same means (float32 arithmetic)
        traces = extract_traces(movie, rois, frame_rate_hz=10.0)
        for i in range(2):
            np.testing.assert_allclose(traces.F[i], expected[i][trial][0], rtol=1e-5)


def test_imagej_round_trip(tmp_path):
    fp = disk_footprints((40, 50), [(10, 10), (25, 30), (0, 49)], 4.5)
    rois = RoiSet.from_masks(fp)
    write_imagej_rois(rois, tmp_path / "rois.zip")
    back = read_imagej_rois(tmp_path / "rois.zip", (40, 50))
    np.testing.assert_array_equal(back.masks(), rois.masks())


def test_imagej_rois_outside_image(tmp_path, realdata):
    with pytest.raises(DataError, match="lies outside the 5x5 image"):
        read_imagej_rois(realdata / "fissa_expB" / "rois.zip", (5, 5))
    with pytest.raises(MissingFileError):
        read_imagej_rois(tmp_path / "nope.zip", (5, 5))


def test_polygon_mask_edge_centres_are_outside():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    np.testing.assert_array_equal(polygon_mask(square, (4, 4))[:3, :3], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_suite2p_round_trip(tmp_path, small_result):
    movie, rois, traces = small_result
    write_suite2p_folder(rois, traces, tmp_path / "suite2p", mean_image=movie.mean(0), frame_rate_hz=30.0)
    plane = tmp_path / "suite2p" / "plane0"
    ops = np.load(plane / "ops.npy", allow_pickle=True).item()
    assert (ops["Ly"], ops["Lx"], ops["nframes"], ops["fs"]) == (64, 64, 300, 30.0)
    stat = np.load(plane / "stat.npy", allow_pickle=True)
    for key in (
        "ypix",
        "xpix",
        "lam",
        "med",
        "npix",
        "radius",
        "aspect_ratio",
        "compact",
        "footprint",
        "overlap",
        "skew",
        "std",
    ):
        assert key in stat[0]
    assert np.load(plane / "iscell.npy").shape == (4, 2)
    back, arrays = read_suite2p_folder(tmp_path / "suite2p")
    np.testing.assert_array_equal(back.masks(), rois.masks())
    np.testing.assert_allclose(back.cell_prob, rois.cell_prob)
    np.testing.assert_array_equal(back.is_cell, rois.is_cell)
    np.testing.assert_allclose(arrays["F"], traces.F)
    np.testing.assert_allclose(back.centroids_yx, rois.centroids_yx, atol=1e-4)


def test_suite2p_1x_layout_without_ops(tmp_path, small_result):
    _, rois, traces = small_result
    write_suite2p_folder(rois, traces, tmp_path / "s2p")
    plane = tmp_path / "s2p" / "plane0"
    (plane / "ops.npy").unlink()
    # suite2p 1.x: recording facts in db.npy, pipeline settings in settings.npy
    np.save(plane / "db.npy", np.array({"Ly": 64, "Lx": 64, "nframes": 300, "nplanes": 1}, dtype=object))
    np.save(plane / "settings.npy", np.array({"fs": 30.0}, dtype=object))
    back, _ = read_suite2p_folder(plane)
    assert back.shape_yx == (64, 64) and back.n_rois == 4


def test_suite2p_folder_missing_files(tmp_path, small_result):
    _, rois, traces = small_result
    write_suite2p_folder(rois, traces, tmp_path / "s2p")
    (tmp_path / "s2p" / "plane0" / "Fneu.npy").unlink()
    (tmp_path / "s2p" / "plane0" / "iscell.npy").unlink()
    with pytest.raises(MissingFileError, match="missing Fneu.npy, iscell.npy"):
        read_suite2p_folder(tmp_path / "s2p")


def test_result_files(tmp_path, small_result):
    _, rois, traces = small_result
    write_results(rois, traces, tmp_path / "out")
    table = read_rois_csv(tmp_path / "out" / "rois.csv")
    assert list(table.roi_id) == [1, 2, 3, 4]
    labels = read_label_image(tmp_path / "out" / "roi_labels.tif")
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2, 3, 4}
    for roi_id, y, x in table[["roi_id", "y", "x"]].itertuples(index=False):
        assert labels[int(round(y)), int(round(x))] == roi_id
    data = read_traces(tmp_path / "out" / "traces.npz")
    assert data["dff"].dtype == np.float32 and data["dff"].shape == (4, 300)
    assert not list(tmp_path.glob(".*part"))


def test_label_image_largest_weight_wins():
    rois = RoiSet.from_pixels((5, 5), [[1, 2], [2, 3]], [[1, 2], [2, 3]], [[1.0, 1.0], [5.0, 1.0]])
    labels = rois.to_label_image()
    assert labels[2, 2] == 2 and labels[1, 1] == 1 and labels[3, 3] == 2
    back = RoiSet.from_label_image(labels)
    assert back.n_rois == 2
