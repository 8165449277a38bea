"""The pipeline's steps: each calls library functions with explicit parameters, never the CLI.

Per session (``RUN_DIR/ANIMAL/SESSION/<step>/``, each with a ``step.json``):

* ``register``: :func:`imagingkit.motion.register_movie` -> ``registered.tif``, ``shifts.csv``,
  ``reference.tif``, ``mean_image.tif``, ``metrics.json``; plus ``recording.json`` (rates, pixel
  size, line period of the raw recording) and ``frame_times_s.npy`` (raw frame start times).
* ``neurons``: :func:`imagingkit.neurons.detect_rois` + :func:`~imagingkit.neurons.extract_traces`
  on the registered movie (bad frames of ``shifts.csv`` excluded) -> ``rois.csv``,
  ``roi_labels.tif``, ``traces.npz``.
* ``stim`` (when the session has ``triggers`` or ``events``): events, sub-frame ROI timing, light
  artifacts, trial responses and statistics from :mod:`imagingkit.stim` -> ``events.csv``,
  ``responses.csv``, ``trial_responses.npz``, ``responses.png``, ``report.json``.
* ``spines`` (when the session has ``structural``): :func:`imagingkit.spines.detect_spines` ->
  ``spines.csv``, ``dendrites.csv``, ``image.json``.

Per animal (``RUN_DIR/ANIMAL/``):

* ``tracking``: the sessions' structural images registered to the reference session
  (:func:`imagingkit.motion.sessions.register_sessions`), then
  :func:`imagingkit.tracking.track_spines` over the spine tables -> ``tracks.csv``, ``turnover.csv``, ``tracking.png`` (and the other tracking tables).
* ``summary``: ``responses_across_sessions.csv`` (time_h, session, fraction responsive and mean
  response amplitude with bootstrap intervals), ``changes_across_sessions.csv``
  (:func:`imagingkit.stim.sessions.session_changes` over ROIs matched across sessions) and, with a
  behaviour table, ``behaviour_correlation.csv``
  (:func:`imagingkit.stim.sessions.correlate_with_behaviour`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagingkit.errors import ImagingKitError, ParameterError
from imagingkit.pipeline import params as P
from imagingkit.pipeline.config import SessionConfig
from imagingkit.pipeline.provenance import remove_stale_parts, run_step

log = logging.getLogger("imagingkit.pipeline")


class StepError(ImagingKitError):
    """A step failed; the message names the step and the cause."""


@contextlib.contextmanager
def _step_context(name: str) -> Iterator[None]:
    try:
        yield
    except StepError:
        raise
    except ImagingKitError as exc:
        raise StepError(f"{name}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - reported per session, traceback in the log
        raise StepError(f"{name}: {type(exc).__name__}: {exc}") from exc


def session_dir(run_dir: Path, session: SessionConfig) -> Path:
    """``RUN_DIR/ANIMAL/SESSION``."""
    return Path(run_dir) / session.animal / session.id


# ----------------------------------------------------------------------------- per session
def run_session_steps(
    session: SessionConfig, parameters: dict[str, dict[str, Any]], run_dir: Path
) -> Iterator[tuple[str, bool]]:
    """Run (or skip, when finished with the same inputs and parameters) every step of one session.

    Yields
    ------
    (step_name, ran) : (str, bool)
        After each step; ``ran`` is False when the step was skipped.

    Raises
    ------
    StepError
        The first step that failed, with its cause.
    """
    sdir = session_dir(run_dir, session)
    remove_stale_parts(sdir)
    if session.functional is not None:
        with _step_context("register"):
            yield "register", register_step(session, parameters["register"], sdir)
        with _step_context("neurons"):
            yield "neurons", neurons_step(session, parameters["neurons"], sdir)
        if session.triggers is not None or session.events is not None:
            with _step_context("stim"):
                yield "stim", stim_step(session, parameters["stim"], parameters["neurons"], sdir)
    if session.structural is not None:
        with _step_context("spines"):
            yield "spines", spines_step(session, parameters["spines"], sdir)


def _open_functional(session: SessionConfig):
    from imagingkit.io import open_recording

    overrides: dict[str, Any] = {}
    if session.frame_rate_hz is not None:
        overrides["frame_rate_hz"] = session.frame_rate_hz
    if session.pixel_size_um is not None:
        overrides["pixel_size_um"] = (session.pixel_size_um, session.pixel_size_um)
    if session.field is not None:
        overrides["field"] = session.field
    return open_recording(session.functional, **overrides)


def _recording_info(recording) -> dict[str, Any]:
    return {
        "format": recording.format,
        "n_frames": int(recording.n_frames),
        "n_planes": int(recording.n_planes),
        "frame_shape": list(recording.frame_shape),
        "frame_rate_hz": recording.frame_rate_hz,
        "volume_rate_hz": recording.volume_rate_hz,
        "pixel_size_um": None if recording.pixel_size_um is None else list(recording.pixel_size_um),
        "line_period_s": recording.line_period_s,
        "bidirectional": recording.bidirectional,
        "timestamps_from_file": bool(recording.timestamps_from_file),
        "source_files": [str(p) for p in recording.source_files],
    }


def register_step(session: SessionConfig, table: dict[str, Any], sdir: Path) -> bool:
    """Motion-correct the functional recording into ``sdir/register``."""
    from imagingkit.motion import register_movie
    from imagingkit.stim.clock import recording_frame_times

    def work(out: Path) -> dict[str, Any]:
        recording = _open_functional(session)
        result = register_movie(
            recording, out, params=P.register_params(table), channel=table["channel"], engine=table["engine"]
        )
        info = _recording_info(recording)
        (out / "recording.json").write_text(json.dumps(info, indent=2))
        times = recording_frame_times(recording.frame_times_s, recording.n_frames, recording.frame_rate_hz)
        np.save(out / "frame_times_s.npy", times)
        bad = result.bad_frames
        return {"n_frames": info["n_frames"], "n_bad_frames": int(bad.sum())}

    ran, _ = run_step(sdir / "register", {"functional": session.functional}, _record(session, table), work)
    return ran


def _record(session: SessionConfig, table: dict[str, Any]) -> dict[str, Any]:
    """The parameters that enter a step's key: the step table plus session overrides."""
    overrides = {k: getattr(session, k) for k in ("frame_rate_hz", "pixel_size_um", "z_step_um", "field")}
    return {**table, "session_overrides": {k: v for k, v in overrides.items() if v is not None}}


def _registered_recording(reg: Path):
    from imagingkit.io import open_recording

    info = json.loads((reg / "recording.json").read_text())
    overrides: dict[str, Any] = {}
    if info["volume_rate_hz"] or info["frame_rate_hz"]:
        overrides["frame_rate_hz"] = info["volume_rate_hz"] or info["frame_rate_hz"]
    if info["pixel_size_um"]:
        overrides["pixel_size_um"] = tuple(info["pixel_size_um"])
    return open_recording(reg / "registered.tif", **overrides), info


def neurons_step(session: SessionConfig, table: dict[str, Any], sdir: Path) -> bool:
    """Detect ROIs and extract traces from the registered movie into ``sdir/neurons``."""
    from imagingkit.motion import read_frame_flags
    from imagingkit.neurons import detect_rois, extract_traces, write_results

    reg = sdir / "register"

    def work(out: Path) -> dict[str, Any]:
        detection, extraction = P.neurons_params(table)
        recording, _ = _registered_recording(reg)
        flags = read_frame_flags(reg / "shifts.csv", recording.n_frames, detection.plane)
        rois = detect_rois(
            recording,
            detection,
            engine=table["engine"],
            bad_frames=flags.unusable_for_detection,
            cell_threshold=table["cell_threshold"],
        )
        traces = extract_traces(recording, rois, extraction, bad_frames=flags.bad)
        write_results(rois, traces, out)
        return {"n_rois": int(rois.n_rois), "n_cells": int(np.sum(rois.is_cell))}

    ran, _ = run_step(sdir / "neurons", {"register": reg}, table, work)
    return ran


def stim_step(
    session: SessionConfig, table: dict[str, Any], neurons_table: dict[str, Any], sdir: Path
) -> bool:
    """Stimulus-response analysis of the session's ROIs into ``sdir/stim``."""
    reg, neu = sdir / "register", sdir / "neurons"
    source = session.triggers if session.triggers is not None else session.events
    plane = int(neurons_table["detection"]["plane"])

    def work(out: Path) -> dict[str, Any]:
        return _stim_work(session, table, reg, neu, plane, out)

    inputs = {"register": reg, "neurons": neu, "events_source": source}
    ran, _ = run_step(sdir / "stim", inputs, {**table, "plane": plane}, work)
    return ran


def _event_source(session: SessionConfig, table: dict[str, Any]):
    """Where the session's events come from: its events table or its raw trigger file."""
    from imagingkit.stim.analysis import EventSource

    if session.events is not None:
        return EventSource.from_path(session.events)
    return EventSource(
        "triggers",
        session.triggers,
        stim_channel=table["stim_channel"],
        frame_channel=table["frame_channel"] or None,
        trial_channel=table["trial_channel"] or None,
        trigger_rate_hz=table["trigger_rate_hz"],
        power_mw_per_unit=table["power_mw_per_unit"],
    )


def _stim_work(
    session: SessionConfig, table: dict[str, Any], reg: Path, neu: Path, plane: int, out: Path
) -> dict:
    """The stim room's session analysis (the same functions ``imagingkit stim responses`` calls)."""
    from imagingkit.stim.analysis import (
        analyse_responses,
        events_for_session,
        load_neurons_outdir,
        write_response_outputs,
    )

    window, stats_params, pulses, artifact_params = P.stim_params(table)
    info = json.loads((reg / "recording.json").read_text())
    frame_times = np.load(reg / "frame_times_s.npy")
    traces, _, rois, _ = load_neurons_outdir(neu, table["trace"])
    recording = _open_functional(session) if table["detect_artifacts"] else None
    events, clock_report = events_for_session(
        _event_source(session, table), frame_times, recording=recording, pulses=pulses
    )
    result = analyse_responses(
        traces,
        frame_times[:, [plane]],
        rois,
        events,
        recording=recording,
        line_period_s=info["line_period_s"],
        bidirectional=bool(info["bidirectional"]),
        frame_shape=tuple(info["frame_shape"]),
        plane=plane,
        window=window,
        stats=stats_params,
        artifacts=artifact_params if recording is not None else None,
        source=str(neu / "traces.npz"),
    )
    result.report["clock"] = clock_report
    write_response_outputs(result, out, title=session.key)
    return {k: result.report[k] for k in ("n_trials", "n_responsive", "n_rois")}


def _structural_image(session: SessionConfig) -> tuple[np.ndarray, float | None, float | None]:
    """Structural image (Y, X) or (Z, Y, X), pixel size and z step (session overrides first)."""
    from imagingkit.io import open_recording
    from imagingkit.tracking.files import load_session_image

    image, pixel = load_session_image(session.structural)
    pixel = session.pixel_size_um or pixel
    z_step = None
    if image.ndim == 3:
        z_step = session.z_step_um or open_recording(session.structural).z_step_um
    return image, pixel, z_step


def spines_step(session: SessionConfig, table: dict[str, Any], sdir: Path) -> bool:
    """Trace dendrites and detect spines in the structural image into ``sdir/spines``."""
    from imagingkit.spines import detect_spines, write_tables
    from imagingkit.spines.measure import NoSpinesWarning

    def work(out: Path) -> dict[str, Any]:
        image, pixel, z_step = _structural_image(session)
        if pixel is None:
            raise ParameterError(
                f"{session.structural}: no pixel size stored; set pixel_size_um in the session"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoSpinesWarning)
            result = detect_spines(image, pixel_size_um=pixel, z_step_um=z_step, params=P.spine_params(table))
        write_tables(result, out / "spines.csv")
        info = {
            "pixel_size_um": pixel,
            "z_step_um": z_step,
            "shape": list(image.shape),
            "message": result.message,
        }
        (out / "image.json").write_text(json.dumps(info, indent=2))
        return {"n_spines": len(result.spines), "n_dendrites": len(result.dendrites)}

    ran, _ = run_step(sdir / "spines", {"structural": session.structural}, _record(session, table), work)
    return ran


# ----------------------------------------------------------------------------- per animal
def run_animal_steps(
    animal: str, sessions: list[SessionConfig], parameters: dict[str, dict[str, Any]], run_dir: Path
) -> Iterator[tuple[str, bool]]:
    """Cross-session steps of one animal over its (successful) sessions, in time order.

    ``tracking`` needs at least two sessions with spines, ``summary`` at least one
    session with stimulus responses; a step without enough sessions is not run.
    """
    adir = Path(run_dir) / animal
    remove_stale_parts(adir)
    sessions = sorted(sessions, key=lambda s: s.time_h)
    with_spines = [s for s in sessions if (session_dir(run_dir, s) / "spines" / "spines.csv").is_file()]
    if len(with_spines) >= 2:
        with _step_context("tracking"):
            yield "tracking", tracking_step(with_spines, parameters["tracking"], run_dir, adir)
    with_stim = [s for s in sessions if (session_dir(run_dir, s) / "stim" / "responses.csv").is_file()]
    if with_stim:
        with _step_context("summary"):
            yield "summary", summary_step(with_stim, parameters["summary"], run_dir, adir)


def tracking_step(sessions: list[SessionConfig], table: dict[str, Any], run_dir: Path, adir: Path) -> bool:
    """Track spines across the sessions into ``ANIMAL/tracking``."""
    from imagingkit.motion.sessions import register_sessions
    from imagingkit.spines import read_spine_table
    from imagingkit.tracking import track_spines
    from imagingkit.tracking.files import write_tracking_outputs

    inputs: dict[str, Path] = {}
    for s in sessions:
        inputs[f"{s.id}/structural"] = s.structural
        inputs[f"{s.id}/spines"] = session_dir(run_dir, s) / "spines"

    def work(out: Path) -> dict[str, Any]:
        images, tables, pixel, z_step = [], [], None, 1.0
        for s in sessions:
            spines_dir = session_dir(run_dir, s) / "spines"
            info = json.loads((spines_dir / "image.json").read_text())
            pixel = pixel or info["pixel_size_um"]
            z_step = info["z_step_um"] or z_step
            images.append(_structural_image(s)[0])
            tables.append(read_spine_table(spines_dir / "spines.csv"))
        params = P.tracking_params(table, float(np.mean(pixel)), z_step)
        transforms = register_sessions(images, reference_index=params.reference_index)
        reference = session_dir(run_dir, sessions[params.reference_index]) / "spines" / "dendrites.csv"
        dendrites = pd.read_csv(reference)
        lengths = dict(zip(dendrites["dendrite_id"].astype(int), dendrites["length_um"], strict=True))
        result = track_spines(
            tables,
            [s.time_h for s in sessions],
            params,
            transforms,
            [im.shape for im in images],
            lengths or None,
            images=images,
            # the tables are this detector's output on these images (or a reviewer's edit of it):
            # detecting again would add nothing, and would bring back spines a reviewer removed
            detector_tables=tables,
        )
        write_tracking_outputs(result, out, sources=[str(s.structural) for s in sessions])
        return {"n_tracks": int(result.tracks["track_id"].nunique()), "sessions": [s.id for s in sessions]}

    ran, _ = run_step(adir / "tracking", inputs, {**table, "times_h": [s.time_h for s in sessions]}, work)
    return ran


def summary_step(sessions: list[SessionConfig], table: dict[str, Any], run_dir: Path, adir: Path) -> bool:
    """Responses across sessions (and against behaviour) into ``ANIMAL/summary``."""
    from imagingkit.pipeline import summary

    inputs: dict[str, Path] = {}
    for s in sessions:
        inputs[f"{s.id}/stim"] = session_dir(run_dir, s) / "stim"
        inputs[f"{s.id}/register"] = session_dir(run_dir, s) / "register"
        inputs[f"{s.id}/neurons"] = session_dir(run_dir, s) / "neurons"
    behaviour = sorted({s.behaviour for s in sessions if s.behaviour is not None})
    for i, path in enumerate(behaviour):
        inputs[f"behaviour{i}"] = path

    def work(out: Path) -> dict[str, Any]:
        return summary.write_summary(sessions, [session_dir(run_dir, s) for s in sessions], table, out)

    record = {**table, "sessions": [[s.id, s.time_h] for s in sessions]}
    ran, _ = run_step(adir / "summary", inputs, record, work)
    return ran
