"""Readers: lazy recordings with micrometre scales, and their layers in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

pytestmark = pytest.mark.napari

from napari_imagingkit import _reader  # noqa: E402

from .conftest import correlation  # noqa: E402


def test_recording_reader_is_lazy_with_micrometre_scale(functional_tiff, functional_sim):
    reader = _reader.get_recording_reader(str(functional_tiff))
    assert reader is _reader.read_recording
    (data, meta, kind), *rest = reader(str(functional_tiff))
    assert not rest and kind == "image"
    assert type(data).__module__.startswith("dask")  # not loaded
    assert data.shape == (600, 1, 96, 96)  # (T, Z, Y, X): the plane axis is kept
    assert data.chunks[0] == (1,) * 600  # one time point per chunk
    assert meta["scale"] == pytest.approx((1.0, 1.0, 1.5, 1.5))
    assert meta["axis_labels"] == ("t", "z", "y", "x")
    frame = np.asarray(data[17, 0])
    np.testing.assert_array_equal(frame, functional_sim.movie[17, 0, 0])


def test_recording_reader_splits_channels_and_keeps_planes(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    movie = rng.integers(0, 4000, size=(6, 3, 2, 32, 40), dtype=np.uint16)  # T Z C Y X
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        movie,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"axes": "TZCYX", "unit": "um", "spacing": 2.0},
    )
    layers = _reader.read_recording(str(path))
    assert len(layers) == 2  # one layer per channel
    for channel, (data, meta, _) in enumerate(layers):
        assert data.shape == (6, 3, 32, 40)
        assert meta["scale"] == pytest.approx((1.0, 2.0, 0.5, 0.5))
        assert meta["metadata"]["imagingkit_channel"] == channel
        np.testing.assert_array_equal(np.asarray(data[4, 2]), movie[4, 2, channel])
    assert layers[0][1]["colormap"] != layers[1][1]["colormap"]


def test_multiroi_fields_become_layers_placed_where_they_were_scanned(tmp_path):
    from tests.io.si_writer import write_mroi_series

    fields = [("dendrite", (-3.0, 0.0), (2.0, 2.5), (48, 40)), ("soma", (4.0, 1.0), (1.6, 1.2), (40, 24))]
    pages = np.zeros((3, 72, 48), np.int16)  # 40 lines, 8 fly-to lines, 24 lines
    pages[:, :40, :48], pages[:, 48:72, :40] = 100, 200
    files = write_mroi_series(tmp_path, pages, fields)
    layers = _reader.read_recording(str(files[0]))
    assert [meta["name"] for _, meta, _ in layers] == ["file_00001 dendrite", "file_00001 soma"]
    assert [data.shape for data, _, _ in layers] == [(3, 1, 40, 48), (3, 1, 24, 40)]
    assert [int(np.asarray(data[0, 0]).max()) for data, _, _ in layers] == [100, 200]  # no fly-to lines
    # corners from the scan-angle centre and size (degrees) x objectiveResolution (15 µm/deg)
    assert layers[0][1]["translate"] == pytest.approx((0, 0, (0.0 - 1.25) * 15, (-3.0 - 1.0) * 15))
    assert layers[1][1]["translate"] == pytest.approx((0, 0, (1.0 - 0.6) * 15, (4.0 - 0.8) * 15))


def test_reader_declines_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert _reader.get_recording_reader(str(tmp_path / "notes.txt")) is None
    assert _reader.get_folder_reader(str(tmp_path)) is None  # a folder without imagingkit or suite2p output


def test_viewer_opens_recording_through_the_plugin(make_napari_viewer, functional_tiff, functional_sim):
    viewer = make_napari_viewer()
    layers = viewer.open(str(functional_tiff), plugin="imagingkit")
    assert len(layers) == 1
    layer = layers[0]
    assert tuple(layer.scale) == pytest.approx((1.0, 1.0, 1.5, 1.5))
    viewer.dims.set_point(0, 42)
    shown = np.asarray(layer._slice.image.view)  # the 2-D slice napari displays
    assert correlation(shown, functional_sim.movie[42, 0, 0]) > 0.999


@pytest.fixture(scope="module")
def run_folder(functional_sim, dendrite_sim, tmp_path_factory):
    """An imagingkit run folder (pipeline layout) written by the library's own writers."""
    from imagingkit.motion import RigidParams, register_movie
    from imagingkit.neurons import RoiSet, extract_traces, write_results
    from imagingkit.spines import detect_spines, write_tables
    from imagingkit.tracking import TrackingParams, track_spines
    from imagingkit.tracking.files import write_tracking_outputs
    from imagingkit.tracking.testing import simulate_point_series

    run = tmp_path_factory.mktemp("run")
    session = run / "m01" / "day0"
    register_movie(functional_sim.recording, session / "register", RigidParams(reference_frames=100))
    roi_set = RoiSet.from_label_image(functional_sim.truth.labels)
    write_results(roi_set, extract_traces(functional_sim.recording, roi_set), session / "neurons")
    spines = detect_spines(dendrite_sim.images[0], pixel_size_um=0.2)
    write_tables(spines, session / "spines" / "spines.csv")
    series = simulate_point_series(n_sessions=3, n_spines=40, n_dendrites=2, shape=(128, 128), seed=1)
    transforms = list(zip(series.to_reference, series.to_session, strict=True))
    result = track_spines(series.tables, series.times_h, TrackingParams(pixel_size_um=0.2), transforms)
    write_tracking_outputs(result, run / "m01" / "tracking")
    return {"root": run, "roi_set": roi_set, "spines": spines.spines, "tracks": result.tracks}


def test_run_folder_reader_gives_movie_rois_spines_and_tracks(run_folder, functional_sim):
    reader = _reader.get_folder_reader(str(run_folder["root"]))
    assert reader is _reader.read_run_folder
    layers = {meta["name"]: (data, meta, kind) for data, meta, kind in reader(str(run_folder["root"]))}
    assert set(layers) == {"m01/day0 registered", "m01/day0 ROIs", "m01/day0 spines", "m01 spine tracks"}

    movie, meta, kind = layers["m01/day0 registered"]
    assert kind == "image" and movie.shape == (600, 1, 96, 96) and type(movie).__module__.startswith("dask")

    labels, meta, kind = layers["m01/day0 ROIs"]
    assert kind == "labels"
    np.testing.assert_array_equal(labels, run_folder["roi_set"].to_label_image())
    assert meta["metadata"]["imagingkit_traces"].dff.shape == (run_folder["roi_set"].n_rois, 600)

    points, meta, kind = layers["m01/day0 spines"]
    table = run_folder["spines"]
    assert kind == "points"
    np.testing.assert_allclose(points, table[["y", "x"]].to_numpy(), atol=1e-3)  # 2-D spines: (y, x)
    assert meta["scale"] == pytest.approx((0.2, 0.2), rel=1e-4)  # from the table's y_um / y (CSV: 4 decimals)
    assert {"intensity_ratio", "arc_um", "confidence"} <= set(meta["features"].columns)

    tracks, meta, kind = layers["m01 spine tracks"]
    truth = run_folder["tracks"]
    present = truth[truth["present"].astype(bool)]
    assert kind == "tracks" and len(tracks) == len(present)
    assert set(np.unique(tracks[:, 0])) == set(present["track_id"])
    assert set(meta["metadata"]["fates"]) == set(truth["fate"])


def test_suite2p_folder_reader_gives_mean_image_and_roi_labels(functional_sim, tmp_path):
    from imagingkit.neurons import RoiSet, extract_traces
    from imagingkit.neurons.interop import write_suite2p_folder

    roi_set = RoiSet.from_label_image(functional_sim.truth.labels)
    traces = extract_traces(functional_sim.recording, roi_set)
    mean = functional_sim.recording.mean_image()
    write_suite2p_folder(roi_set, traces, tmp_path / "suite2p", mean_image=mean, frame_rate_hz=30.0)
    reader = _reader.get_folder_reader(str(tmp_path))  # the parent of suite2p/
    assert reader is _reader.read_suite2p_folder
    (image, image_meta, image_kind), (labels, label_meta, label_kind) = reader(str(tmp_path))
    assert image_kind == "image" and label_kind == "labels"
    np.testing.assert_allclose(image, mean, rtol=1e-5)
    np.testing.assert_array_equal(labels, roi_set.to_label_image())
    assert label_meta["features"]["is_cell"].all()


def test_scanbox_file_opens_lazily_with_its_planes(tmp_path):
    from imagingkit.synth import simulate_functional
    from imagingkit.synth.writers import write_sbx

    sim = simulate_functional(n_frames=12, shape_yx=(32, 48), n_cells=3, n_planes=2, seed=2)
    sbx = write_sbx(sim.recording, tmp_path / "scan", frame_rate_hz=30.0)
    assert _reader.get_recording_reader(str(sbx)) is _reader.read_recording
    (data, meta, kind), *rest = _reader.read_recording(str(sbx))
    assert not rest and kind == "image"
    assert data.shape == (12, 2, 32, 48)  # time, plane, y, x: both planes kept
    np.testing.assert_array_equal(np.asarray(data[5]), sim.movie[5, :, 0])
    assert meta["metadata"]["imagingkit_summary"]["format"] == "scanbox"
