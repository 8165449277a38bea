"""Screenshots of the napari plugin's widgets on the bundled sample data (for the README).

Each widget is docked in its own viewer, driven as a user would (buttons clicked, worker
threads awaited) and the whole window is saved as ``docs/plugin_<widget>.png``.

Run under an X server (no display here: ``xvfb-run -a``)::

    xvfb-run -a .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QApplication

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
SAMPLE = ROOT / "sample_data"
WINDOW_SIZE = (1500, 950)


def wait(widget, timeout_s: float = 300.0) -> None:
    """Process Qt events until the widget's worker is done; raise on its error."""
    start = time.perf_counter()
    while widget.busy or getattr(widget, "_dirty", False):
        QApplication.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"{type(widget).__name__} still busy after {timeout_s} s")
    for _ in range(20):
        QApplication.processEvents()
    if widget.last_error:
        raise RuntimeError(f"{type(widget).__name__}: {widget.last_error}")


def new_viewer(title: str):
    import napari

    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")

    viewer = napari.Viewer(title=title, show=True)
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    return viewer


def save(viewer, name: str) -> Path:
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # pop-up notifications (e.g. the PyQt5 deprecation notice) would cover the canvas
    for _ in range(5):
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    path = DOCS / f"plugin_{name}.png"
    image = viewer.screenshot(canvas_only=False, flash=False)
    from skimage.io import imsave

    imsave(path, image, check_contrast=False)
    print(f"wrote {path.relative_to(ROOT)} {image.shape[1]}x{image.shape[0]}")
    return path


def recording_and_neurons_and_stim(work: Path) -> None:
    from napari_imagingkit._neurons_widget import NeuronsWidget
    from napari_imagingkit._recording_widget import RecordingWidget
    from napari_imagingkit._stim_widget import StimWidget

    movie_path = sorted((SAMPLE / "functional_opto").glob("*_00001.tif"))[0]
    events_path = sorted((SAMPLE / "functional_opto").glob("*_events.csv"))[0]

    viewer = new_viewer("imagingkit: functional recording")
    (movie,) = viewer.open(str(movie_path), plugin="imagingkit")
    recording = RecordingWidget(viewer)
    viewer.window.add_dock_widget(recording, name="Recording", area="right")
    recording.output_dir.value = work / "register"
    recording.run_button.click()
    wait(recording)
    viewer.dims.set_point(0, 200)
    save(viewer, "recording")
    registered = viewer.layers[f"{movie.name} registered"]
    movie.visible = False
    viewer.window.remove_dock_widget(recording)
    neurons = NeuronsWidget(viewer)
    viewer.window.add_dock_widget(neurons, name="Neurons", area="right")
    neurons.movie_choice.value = registered
    neurons.detect_form.diameter_px.value = 8.0  # somata of 4-7 µm radius at 1.5 µm pixels
    neurons.detect_button.click()
    wait(neurons)
    best = int(np.nanargmax(np.nanstd(neurons.traces.dff, axis=1)))
    neurons.select(best)
    save(viewer, "neurons")

    # the stimulation widget on the simulator's true ROIs (a neurons folder written by the library), so the
    # picture shows the responses rather than the current detector's misses
    from imagingkit.neurons import RoiSet, extract_traces, write_results

    truth = np.load(sorted((SAMPLE / "functional_opto").glob("*_truth.npz"))[0])
    roi_set = RoiSet.from_label_image(truth["labels"].reshape(truth["labels"].shape[-2:]))  # plane 0
    recording = registered.metadata["imagingkit_recording"]
    write_results(roi_set, extract_traces(recording, roi_set), work / "truth" / "neurons")
    (true_rois,) = viewer.open(str(work / "truth"), plugin="imagingkit")
    true_rois.name = "ROIs (simulator truth)"
    true_rois.scale = registered.scale[-2:]
    neurons.labels_layer.visible = False
    stim = StimWidget(viewer)
    viewer.window.remove_dock_widget(neurons)
    viewer.window.add_dock_widget(stim, name="Stimulation", area="right")
    stim.rois_choice.value = true_rois
    stim.movie_choice.value = registered
    stim.events_file.value = events_path
    stim.events_button.click()
    stim.run_button.click()
    wait(stim)
    order = np.argsort(stim.table["q_value"].to_numpy())
    true_rois.selected_label = int(order[0]) + 1
    true_rois.contour = 1
    save(viewer, "stimulation")
    viewer.close()


def spines_and_review(work: Path) -> None:
    import pandas as pd
    from napari_imagingkit._review_widget import ReviewWidget
    from napari_imagingkit._sample_data import sample_structural
    from napari_imagingkit._spines_widget import SpinesWidget

    viewer = new_viewer("imagingkit: spines")
    sessions = sample_structural()
    data, meta, _ = sessions[0]
    viewer.add_image(data, **meta)
    spines = SpinesWidget(viewer)
    viewer.window.add_dock_widget(spines, name="Spines", area="right")
    spines.detect_button.click()
    wait(spines)
    spines.points_layer.selected_data = {0}
    save(viewer, "spines")
    viewer.close()

    viewer = new_viewer("imagingkit: spine review")
    names = []
    for data, meta, _ in sessions:
        names.append(viewer.add_image(data, **meta).name)
    table = pd.read_csv(sorted(SAMPLE.rglob("sessions.csv"))[0])
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="Spine review", area="right")
    review.set_sessions(names)
    review.times_h.value = ", ".join(f"{t:g}" for t in table["time_h"])
    review.output_dir.value = work / "tracking"
    review.track_button.click()
    wait(review, timeout_s=600)
    for name in names:
        viewer.layers[name].visible = False
    viewer.dims.set_point(0, 2)
    review.next_event_button.click()  # the first event no image confirmed: its session shown, its point selected
    save(viewer, "review")
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=("functional", "structural"), help="make only one group of screenshots"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "functional"):
            recording_and_neurons_and_stim(Path(tmp))
        if args.only in (None, "structural"):
            spines_and_review(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
