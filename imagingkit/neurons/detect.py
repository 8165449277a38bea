"""One entry point for ROI detection, whatever engine does the work."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imagingkit.errors import DataError, ParameterError
from imagingkit.io.recording import Recording, from_array
from imagingkit.neurons.classify import classify_rois
from imagingkit.neurons.params import DetectionParams
from imagingkit.neurons.roiset import RoiSet

ENGINES = ("builtin", "suite2p")


def as_recording(source: Recording | np.ndarray, frame_rate_hz: float | None = None) -> Recording:
    """A Recording from a Recording or a (T, Y, X) array."""
    if isinstance(source, Recording):
        return source
    array = np.asarray(source)
    if array.ndim != 3:
        raise ParameterError(f"a movie array must be (T, Y, X), got shape {array.shape}")
    return from_array(array, "TYX", frame_rate_hz=frame_rate_hz)


def detect_rois(
    source: Recording | np.ndarray,
    params: DetectionParams | None = None,
    engine: str = "builtin",
    bad_frames: np.ndarray | None = None,
    cell_threshold: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
) -> RoiSet:
    """Find ROIs (cells, or small processes in ``mode="small"``) in a registered movie.

    Parameters
    ----------
    source : Recording or ndarray
        A registered recording, or a (T, Y, X) movie.
    params : DetectionParams, optional
    engine : {"builtin", "suite2p"}
        "builtin" needs no torch; "suite2p" runs suite2p's detection and
        classifier (the ``suite2p`` extra).
    bad_frames : ndarray of bool, optional
        (T,) frames to ignore (e.g. the ``bad`` column of shifts.csv).
    cell_threshold : float
        ``is_cell = cell_prob >= cell_threshold``.
    progress : callable, optional
        Called as ``progress(n_frames_read, n_frames)``: after each chunk of the built-in
        engine's streaming pass, and once at the end for suite2p (which reports nothing
        while it runs).

    Returns
    -------
    RoiSet
        Possibly empty (a blank movie gives an empty set, not an error).
    """
    params = params or DetectionParams()
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
    recording = as_recording(source, params.frame_rate_hz)
    if recording.n_frames < 2:
        raise DataError(f"ROI detection needs at least 2 frames, the recording has {recording.n_frames}")
    if bad_frames is not None:
        bad_frames = np.asarray(bad_frames, bool)
        if bad_frames.shape != (recording.n_frames,):
            raise ParameterError(
                f"bad_frames must have one value per frame ({recording.n_frames}), got shape {bad_frames.shape}"
            )
    if engine == "suite2p":
        from imagingkit.neurons.suite2p_engine import detect_suite2p

        roi_set = detect_suite2p(recording, params, bad_frames=bad_frames)
        if progress is not None:
            progress(recording.n_frames, recording.n_frames)
        return roi_set.with_classification(roi_set.cell_prob, cell_threshold)
    from imagingkit.neurons.builtin import detect_builtin

    roi_set, info = detect_builtin(recording, params, bad_frames=bad_frames, progress=progress)
    return classify_rois(
        roi_set,
        params.diameter,
        traces=info["binned_traces"] if roi_set.n_rois else None,
        threshold=cell_threshold,
        mode=params.mode,
        snr_threshold=params.threshold,
    )
