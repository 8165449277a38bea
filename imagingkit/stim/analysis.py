"""One session's stimulus-response analysis as plain functions: what the CLI, the pipeline and the plugin call.

The whole chain, in order::

    traces, time_s, rois, kind = load_neurons_outdir(folder, trace="F-neuropil")   # optional helper
    events, clock_report = events_for_session(EventSource("triggers", path, stim_channel="stim",
                                                          frame_channel="frame_clock"), frame_times_s)
    result = analyse_responses(traces, time_s, rois, events, recording=recording,
                               window=WindowParams(input_kind=kind), stats=StatsParams(),
                               artifacts=ArtifactParams(margin_px=20))
    write_response_outputs(result, out_dir)            # atomic: events.csv, responses.csv, ...

- :func:`events_for_session` (:class:`EventSource`): events on the imaging clock from an events
  table, raw trigger traces (with a frame-clock fit and sham labelling from a trial channel),
  an NWB ``OptogeneticSeries``, ScanImage auxiliary-trigger timestamps or Scanbox TTL records;
  returns the events and a JSON-able clock report.
- :func:`analyse_responses`: events kept inside the recording (counted), sub-frame sample times,
  light-artifact mask from the movie (when a recording is given), trial responses and per-ROI
  statistics -> :class:`ResponseAnalysis`.
- :func:`write_response_outputs`: writes ``events.csv`` (+ ``frame``), ``responses.csv``,
  ``trial_responses.npz``, ``responses.png`` and ``report.json`` into a folder, atomically.
- :func:`load_neurons_outdir`: reads a neurons output folder (``traces.npz``, ``rois.csv``)
  and forms the chosen trace (``dff``, ``F`` or neuropil-corrected ``F - r * Fneu``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from imagingkit._atomic import atomic_dir
from imagingkit.errors import DataError, FileFormatError, MissingFileError, ParameterError
from imagingkit.stim import artifacts as art
from imagingkit.stim import clock, sources, timing, triggers
from imagingkit.stim import events as ev
from imagingkit.stim.artifacts import ArtifactParams
from imagingkit.stim.responses import TrialResponses, WindowParams, sort_by_response, trial_responses
from imagingkit.stim.stats import RESPONSE_COLUMNS, StatsParams, response_statistics
from imagingkit.stim.triggers import PulseParams

TRACE_CHOICES = ("dff", "F", "F-neuropil")
EVENT_SOURCE_KINDS = ("table", "triggers", "nwb", "scanimage-aux", "scanbox")


# -- inputs --------------------------------------------------------------------------------------------------
def load_neurons_outdir(
    folder: str | Path, trace: str = "dff", *, neuropil_coefficient: float = 0.7
) -> tuple[np.ndarray, np.ndarray | None, pd.DataFrame, Literal["dff", "raw"]]:
    """Traces, frame times and ROI table of a neurons output folder.

    Parameters
    ----------
    folder : str or Path
        Holds ``traces.npz`` (``dff``, ``F``, ``Fneu``, ``time_s``) and ``rois.csv``
        (``roi_id, y, x`` and optionally ``radius_px``, ``plane``).
    trace : {"dff", "F", "F-neuropil"}
        ``dff``: the neurons room's dF/F (already neuropil-corrected); ``F``: raw ROI
        fluorescence; ``F-neuropil``: ``F - neuropil_coefficient * Fneu``.
    neuropil_coefficient : float
        ``r`` of ``F-neuropil``.

    Returns
    -------
    traces : ndarray
        (n_rois, T) float32.
    time_s : ndarray or None
        (T,) frame times stored with the traces.
    rois : DataFrame
    input_kind : {"dff", "raw"}
        What :class:`~imagingkit.stim.responses.WindowParams` ``input_kind`` the traces need.
    """
    folder = Path(folder)
    if trace not in TRACE_CHOICES:
        raise ParameterError(f"trace must be one of {TRACE_CHOICES}, got {trace!r}")
    if not 0 <= neuropil_coefficient <= 2:
        raise ParameterError(f"neuropil coefficient must be in [0, 2], got {neuropil_coefficient}")
    npz, csv = folder / "traces.npz", folder / "rois.csv"
    for f in (npz, csv):
        if not f.is_file():
            raise MissingFileError(
                f"{f}: not found (expected a neurons output folder with traces.npz and rois.csv)"
            )
    needed = ("F", "Fneu") if trace == "F-neuropil" else (trace,)
    with np.load(npz, allow_pickle=False) as data:
        missing = [k for k in needed if k not in data]
        if missing:
            raise FileFormatError(
                f"{npz}: no array(s) {missing} for trace {trace!r} (has {list(data.keys())})"
            )
        if trace == "F-neuropil":
            traces = np.asarray(data["F"], np.float64) - neuropil_coefficient * np.asarray(
                data["Fneu"], np.float64
            )
        else:
            traces = np.asarray(data[trace])
        time_s = np.asarray(data["time_s"], dtype=float) if "time_s" in data else None
    traces = traces.astype(np.float32)
    rois = pd.read_csv(csv)
    missing_cols = {"roi_id", "y", "x"} - set(rois.columns)
    if missing_cols:
        raise FileFormatError(f"{csv}: missing column(s) {sorted(missing_cols)}")
    if traces.ndim != 2 or traces.shape[0] != len(rois):
        raise FileFormatError(f"{npz}: {trace} has shape {traces.shape} but {csv} lists {len(rois)} ROIs")
    return traces, time_s, rois, ("dff" if trace == "dff" else "raw")


def session_frame_times(
    n_frames: int, time_s: np.ndarray | None = None, recording=None, *, source: str = "traces"
) -> np.ndarray:
    """(T, Z) frame start times: the recording's (checked against ``n_frames``) or the traces' ``time_s``."""
    if recording is not None:
        if recording.n_frames != n_frames:
            raise DataError(
                f"the recording {_name(recording)} has {recording.n_frames} frames but {source} has "
                f"{n_frames}; they must come from the same movie"
            )
        return clock.recording_frame_times(recording.frame_times_s, n_frames, recording.frame_rate_hz)
    if time_s is None:
        raise DataError(f"{source} has no frame times (time_s) and no recording was given")
    times = np.asarray(time_s, dtype=float)
    times = times.reshape(len(times), -1)
    if len(times) != n_frames:
        raise DataError(f"{source}: {len(times)} frame times for {n_frames} frames")
    return times


def _name(recording) -> str:
    return str(recording.source_files[0]) if getattr(recording, "source_files", None) else "(in memory)"


# -- events ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EventSource:
    """Where a session's stimulation events come from.

    Attributes
    ----------
    kind : {"table", "triggers", "nwb", "scanimage-aux", "scanbox"}
        ``table``: CSV/TSV events table on the imaging clock. ``triggers``: raw trigger
        traces (formats of :func:`imagingkit.stim.triggers.read_trigger_file`). ``nwb``:
        ``OptogeneticSeries`` of an NWB file (session clock = imaging clock).
        ``scanimage-aux``: the recording's auxiliary-trigger timestamps
        (``Recording.trigger_times_s[aux_channel]``). ``scanbox``: TTL records of a Scanbox
        ``info`` ``.mat`` (frame, line), timed with the session's frame times.
    path : Path or None
        The file (not needed for ``scanimage-aux``).
    stim_channel, frame_channel, trial_channel : str or None
        Trigger channels: light command / stim TTL (required for ``triggers``), frame
        clock (one pulse per plane frame; fits trigger clock -> imaging clock), trial TTL
        (trials without light become ``condition = "sham"``).
    trigger_rate_hz : float or None
        Trigger sample rate when the file does not store it.
    power_mw_per_unit : float or None
        mW per unit of an analog light command.
    aux_channel : str
        ScanImage auxiliary trigger carrying the stimulation.
    pulse_duration_s : float
        Light-pulse length added to trains built from pulse-start timestamps
        (``scanimage-aux``), which carry no offsets.
    nwb_series : str or None
        Name of one ``OptogeneticSeries`` (default: all).
    hdf5_group : str or None
        Group of an HDF5 trigger file holding the channels.
    """

    kind: Literal["table", "triggers", "nwb", "scanimage-aux", "scanbox"]
    path: Path | None = None
    stim_channel: str | None = None
    frame_channel: str | None = None
    trial_channel: str | None = None
    trigger_rate_hz: float | None = None
    power_mw_per_unit: float | None = None
    aux_channel: str = "auxTrigger0"
    pulse_duration_s: float = 0.0
    nwb_series: str | None = None
    hdf5_group: str | None = None

    def __post_init__(self):
        if self.kind not in EVENT_SOURCE_KINDS:
            raise ParameterError(f"event source kind must be one of {EVENT_SOURCE_KINDS}, got {self.kind!r}")
        if self.kind != "scanimage-aux" and self.path is None:
            raise ParameterError(f"event source {self.kind!r} needs a file path")
        if self.kind == "triggers" and not self.stim_channel:
            raise ParameterError("trigger files need the stimulation channel (--stim-channel)")

    @classmethod
    def from_path(cls, path: str | Path, **fields) -> EventSource:
        """``nwb`` for ``.nwb`` files, ``scanbox`` for ``.mat``, else an events ``table``."""
        path = Path(path)
        suffix = path.suffix.lower()
        kind = "nwb" if suffix == ".nwb" else "scanbox" if suffix == ".mat" else "table"
        return cls(kind, path, **fields)


def events_for_session(
    source: EventSource,
    frame_times_s: np.ndarray,
    *,
    recording=None,
    pulses: PulseParams = PulseParams(),
) -> tuple[pd.DataFrame, dict | str]:
    """Stimulation events of one session on the imaging clock.

    Parameters
    ----------
    source : EventSource
    frame_times_s : ndarray
        (T, Z) or (T,) frame start times on the imaging clock (a frame-clock channel must
        have ``T * Z`` pulses).
    recording : Recording or None
        Needed for ``scanimage-aux`` (its ``trigger_times_s``).
    pulses : PulseParams
        Pulse detection and train grouping (``max_gap_s``) for trigger traces, NWB series
        and timestamp sources.

    Returns
    -------
    events : DataFrame
        The events table (:data:`imagingkit.stim.events.EVENT_COLUMNS`).
    clock_report : dict or str
        The frame-clock fit (:meth:`imagingkit.stim.clock.ClockFit.report`) or a sentence
        saying which clock was taken as the imaging clock.
    """
    frame_times = np.asarray(frame_times_s, dtype=float)
    frame_times = frame_times.reshape(len(frame_times), -1)
    if source.kind == "table":
        return sources.read_event_table(source.path), "events table taken as on the imaging clock"
    if source.kind == "nwb":
        events = sources.read_nwb_optogenetics(source.path, series_name=source.nwb_series, params=pulses)
        return events, "NWB session clock taken as the imaging clock"
    if source.kind == "scanimage-aux":
        if recording is None:
            raise ParameterError("ScanImage auxiliary triggers come from the recording: give the recording")
        events = sources.events_from_scanimage_aux(
            recording.trigger_times_s,
            source.aux_channel,
            max_gap_s=pulses.max_gap_s,
            pulse_duration_s=source.pulse_duration_s,
        )
        return events, f"ScanImage {source.aux_channel} timestamps (recording clock)"
    if source.kind == "scanbox":
        events = sources.read_scanbox_events(source.path, frame_times_s=frame_times)
        return events, "Scanbox TTL records (frame, line) timed with the recording's frame times"
    return _events_from_trigger_file(source, frame_times, pulses)


def _events_from_trigger_file(
    source: EventSource, frame_times: np.ndarray, pulses: PulseParams
) -> tuple[pd.DataFrame, dict | str]:
    data = triggers.read_trigger_file(source.path, rate_hz=source.trigger_rate_hz, group=source.hdf5_group)
    name = str(source.path)
    events = triggers.events_from_triggers(
        data.channel(source.stim_channel),
        data.rate_hz,
        pulses,
        t0_s=data.t0_s,
        power_mw_per_unit=source.power_mw_per_unit,
        source=f"{name}:{source.stim_channel}",
    )
    if source.trial_channel:
        trials = triggers.events_from_triggers(
            data.channel(source.trial_channel),
            data.rate_hz,
            pulses,
            t0_s=data.t0_s,
            source=f"{name}:{source.trial_channel}",
        )
        events = sources.label_sham_trials(trials, events)
    if not source.frame_channel:
        return events, "no frame channel: trigger clock taken as the imaging clock"
    onsets = clock.frame_times_from_clock(
        data.channel(source.frame_channel),
        data.rate_hz,
        n_frames_expected=frame_times.size,
        t0_s=data.t0_s,
        source=f"{name}:{source.frame_channel}",
    )
    fit = clock.fit_clock(onsets, np.sort(frame_times.ravel()), source=name)
    return clock.align_events(events, fit), fit.report()


# -- analysis -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ResponseAnalysis:
    """Everything one stimulus-response analysis produced.

    Attributes
    ----------
    events : DataFrame
        The trials analysed (events table + ``frame``: the frame during which each started).
    trials : TrialResponses
        (n_rois, n_trials, n_samples) dF/F on the peri-stimulus axis.
    table : DataFrame
        One row per ROI: :data:`imagingkit.stim.stats.RESPONSE_COLUMNS` first, then
        ``time_to_peak_s, peak_dff, effect_size, n_trials``.
    sample_times_s : ndarray
        (n_rois, T) sub-frame sample times used for alignment.
    roi_mask : ndarray or None
        (n_rois, T) bool light-artifact mask applied to the traces (None: no detection).
    roi_yx : ndarray
        (n_rois, 2) ROI centroids (pixels).
    frame_shape : tuple or None
        (Y, X) of the recording when known.
    report : dict
        JSON-able counts and settings (events left out, clock fit, artifact lines, ...).
    """

    events: pd.DataFrame
    trials: TrialResponses
    table: pd.DataFrame
    sample_times_s: np.ndarray
    roi_mask: np.ndarray | None
    roi_yx: np.ndarray
    frame_shape: tuple[int, int] | None
    report: dict

    @property
    def trial_mean(self) -> np.ndarray:
        """(n_rois, n_samples) average over all trials."""
        return self.trials.mean(condition=None)

    def heatmap_order(self) -> np.ndarray:
        """ROI order of the heatmap: largest mean response first."""
        return sort_by_response(self.trial_mean, self.trials.time_s, self.trials.params.response_s)


def analyse_responses(
    traces: np.ndarray,
    time_s: np.ndarray | None,
    rois: pd.DataFrame,
    events: pd.DataFrame,
    *,
    recording=None,
    line_period_s: float | None = None,
    bidirectional: bool | None = None,
    frame_shape: tuple[int, int] | None = None,
    plane: int = 0,
    window: WindowParams = WindowParams(),
    stats: StatsParams = StatsParams(),
    artifacts: ArtifactParams | None = ArtifactParams(),
    source: str = "traces",
) -> ResponseAnalysis:
    """Align traces to events and test every ROI.

    Parameters
    ----------
    traces : ndarray
        (n_rois, T) dF/F or fluorescence (``window.input_kind``); NaN = missing.
    time_s : ndarray or None
        (T,) or (T, Z) frame start times; ignored when ``recording`` is given (its frame
        times are used and its frame count must equal T).
    rois : DataFrame
        ``roi_id, y, x`` (pixels), optionally ``radius_px`` (rows the ROI covers around
        ``y``) and ``plane`` (index into the frame-time columns).
    events : DataFrame
        Events on the imaging clock (:func:`events_for_session`).
    recording : Recording or None
        The movie the traces come from: frame times, line period, scan direction, frame
        shape, and the light-artifact detection (streamed, one plane at a time).
    line_period_s : float or None
        Time between scan lines; overrides the recording's. None and no recording: every
        ROI is sampled at its frame's start (no sub-frame timing).
    bidirectional : bool or None
        Scan direction (default: the recording's, else False).
    frame_shape : (int, int) or None
        (Y, X) when there is no recording (for the in-line offset and the figure).
    plane : int
        Plane of ROIs without a ``plane`` column. With single-column frame times every ROI
        uses that column (the caller has already chosen the plane).
    window, stats : WindowParams, StatsParams
    artifacts : ArtifactParams or None
        Light-artifact detection (needs ``recording`` and a line period); None skips it.
    source : str
        Name of the traces in messages.

    Returns
    -------
    ResponseAnalysis

    Raises
    ------
    DataError
        Frame-count mismatch with the recording, no event inside the recording,
        overlapping trials (``window.overlap="error"``), every trial masked.
    """
    traces = np.asarray(traces, dtype=np.float32)
    if traces.ndim != 2 or traces.shape[0] != len(rois):
        raise DataError(f"{source}: traces of shape {traces.shape} for {len(rois)} ROIs")
    missing = {"roi_id", "y", "x"} - set(rois.columns)
    if missing:
        raise DataError(f"{source}: ROI table lacks column(s) {sorted(missing)}")
    n_rois, n_frames = traces.shape
    frame_times = session_frame_times(n_frames, time_s, recording, source=source)
    if recording is not None:
        line_period_s = line_period_s or recording.line_period_s
        bidirectional = recording.bidirectional if bidirectional is None else bidirectional
        frame_shape = recording.frame_shape
    roi_y, roi_x = rois["y"].to_numpy(dtype=float), rois["x"].to_numpy(dtype=float)
    roi_plane = _roi_planes(rois, plane, frame_times.shape[1], source)
    report: dict = {
        "n_rois": n_rois,
        "n_frames": n_frames,
        "n_planes": int(frame_times.shape[1]),
        "sub_frame_timing": line_period_s is not None,
        "line_period_s": line_period_s,
        "bidirectional": bool(bidirectional),
        "input_kind": window.input_kind,
        "n_events_total": len(events),
    }
    selection = ev.select_in_recording(events, frame_times, window_s=window.span_s, source="events")
    report.update(
        n_events_before_start=selection.n_before,
        n_events_after_end=selection.n_after,
        events_left_out=selection.message(),
    )
    sample_times = timing.roi_sample_times(
        frame_times,
        roi_y,
        line_period_s=line_period_s,
        roi_x_px=roi_x,
        n_pixels_x=None if frame_shape is None else frame_shape[1],
        bidirectional=bool(bidirectional),
        roi_plane=roi_plane if frame_times.shape[1] > 1 else None,
    )
    roi_mask = None
    report["artifact_lines"] = 0
    if artifacts is not None and recording is not None and line_period_s:
        radius = rois["radius_px"].to_numpy(dtype=float) if "radius_px" in rois.columns else np.zeros(n_rois)
        roi_mask, n_lines = light_artifact_mask(
            recording, selection.events, frame_times, roi_y, radius, roi_plane, line_period_s, artifacts
        )
        traces = art.apply_mask(traces, roi_mask)
        report.update(
            artifact_lines=n_lines,
            artifact_samples_masked=int(roi_mask.sum()),
            artifact_margin_px=artifacts.margin_px,
        )
    trials = trial_responses(traces, sample_times, selection.events, window, source=source)
    table = response_statistics(
        trials, stats, roi_ids=rois["roi_id"].to_numpy(), traces=traces, sample_times_s=sample_times
    )
    report.update(
        n_trials=len(trials.events),
        n_sham_trials=int((trials.events["condition"] == ev.SHAM).sum()),
        n_trials_dropped_overlap=trials.n_dropped_overlap,
        n_trials_fully_masked=trials.n_masked_trials,
        n_responsive=int(table["responsive"].sum()),
        n_excited=int((table["direction"] > 0).sum()),
        n_inhibited=int((table["direction"] < 0).sum()),
        test=stats.test,
        alpha=stats.alpha,
        latency_method=stats.latency_method,
        baseline_s=list(window.baseline_s),
        response_s=list(window.response_s),
    )
    return ResponseAnalysis(
        events=ev.assign_frames(trials.events, frame_times),
        trials=trials,
        table=table,
        sample_times_s=sample_times,
        roi_mask=roi_mask,
        roi_yx=np.c_[roi_y, roi_x],
        frame_shape=None if frame_shape is None else (int(frame_shape[0]), int(frame_shape[1])),
        report=report,
    )


def _roi_planes(rois: pd.DataFrame, plane: int, n_columns: int, source: str) -> np.ndarray:
    """(n_rois,) recording plane of every ROI (``plane`` column, else ``plane``)."""
    planes = rois["plane"].to_numpy(dtype=int) if "plane" in rois.columns else np.full(len(rois), plane)
    if n_columns > 1 and planes.size and (planes.min() < 0 or planes.max() >= n_columns):
        raise DataError(
            f"{source}: ROI planes {sorted(set(planes.tolist()))} but the recording has {n_columns} plane(s)"
        )
    return planes


def light_artifact_mask(
    recording,
    events: pd.DataFrame,
    frame_times_s: np.ndarray,
    roi_y_px: np.ndarray,
    roi_radius_px: np.ndarray,
    roi_plane: np.ndarray,
    line_period_s: float,
    params: ArtifactParams = ArtifactParams(),
) -> tuple[np.ndarray, int]:
    """(n_rois, T) light-artifact mask of every ROI and the number of contaminated lines.

    Each plane holding ROIs is streamed once (:func:`imagingkit.stim.artifacts.line_brightness`);
    a ROI is masked in a frame when any line within ``radius + params.margin_px`` rows of its
    centre was contaminated. With single-column frame times (one plane chosen by the
    caller) the recording's plane is taken from ``roi_plane`` of the ROIs (default 0).
    """
    frame_times = np.asarray(frame_times_s, dtype=float).reshape(len(frame_times_s), -1)
    reach = np.asarray(roi_radius_px, dtype=float) + params.margin_px
    mask = np.zeros((len(roi_y_px), recording.n_frames), dtype=bool)
    n_lines = 0
    for z in np.unique(roi_plane):
        column = int(z) if frame_times.shape[1] > 1 else 0
        brightness = art.line_brightness(recording, plane=int(z), chunk_frames=params.chunk_frames)
        lines = timing.line_times(frame_times, brightness.shape[1], line_period_s, plane=column)
        contaminated = art.detect_light_artifacts(brightness, events, lines, line_period_s, params)
        n_lines += int(contaminated.sum())
        here = roi_plane == z
        mask[here] = art.roi_artifact_mask(
            contaminated, roi_y_px[here] - reach[here], roi_y_px[here] + reach[here]
        )
    return mask, n_lines


# -- outputs --------------------------------------------------------------------------------------------------
def write_response_outputs(result: ResponseAnalysis, out_dir: str | Path, *, title: str = "") -> Path:
    """Write one analysis into ``out_dir`` atomically (all files or none).

    Files: ``events.csv`` (events table + ``frame``), ``responses.csv`` (one row per ROI,
    :data:`~imagingkit.stim.stats.RESPONSE_COLUMNS` first), ``trial_responses.npz``
    (``dff`` (n_rois, n_trials, n_samples), ``time_s``, ``roi_id``, ``event_id``,
    ``condition``), ``responses.png`` (trial-averaged heatmap + map of responsive ROIs),
    ``report.json``. An existing ``out_dir`` is replaced only once everything is written.
    """
    from imagingkit.stim.figures import plot_responses

    out_dir = Path(out_dir)
    table = result.table
    columns = list(RESPONSE_COLUMNS) + [c for c in table.columns if c not in RESPONSE_COLUMNS]
    trials = result.trials
    with atomic_dir(out_dir) as tmp:
        result.events.to_csv(tmp / "events.csv", index=False)
        table[columns].to_csv(tmp / "responses.csv", index=False)
        np.savez_compressed(
            tmp / "trial_responses.npz",
            dff=trials.dff,
            time_s=trials.time_s,
            roi_id=table["roi_id"].to_numpy(),
            event_id=trials.events["event_id"].to_numpy(),
            condition=trials.events["condition"].to_numpy().astype(str),
        )
        plot_responses(
            result.trial_mean,
            trials.time_s,
            table,
            result.roi_yx,
            tmp / "responses.png",
            order=result.heatmap_order(),
            frame_shape=result.frame_shape,
            title=title,
        )
        (tmp / "report.json").write_text(json.dumps(result.report, indent=2, default=str))
    return out_dir
