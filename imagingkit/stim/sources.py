"""Event sources other than raw trigger traces, all returning the events table.

- :func:`read_event_table`: CSV/TSV tables (column aliases accepted, e.g.
  NWB-style ``start_time``/``stop_time``).
- :func:`events_from_times`: timestamps of trigger edges grouped into trains,
  e.g. ScanImage auxiliary-trigger timestamps (``Recording.trigger_times_s``,
  :func:`events_from_scanimage_aux`).
- :func:`read_scanimage_photostim_log`: a ScanImage photostimulation monitor
  log (``.stim``: interleaved float32 samples; by default 3 channels, galvo X,
  galvo Y and beam power, at the monitoring sample rate).
- :func:`events_from_scanbox`, :func:`read_scanbox_events`: Scanbox TTL event
  records (``info.frame``, ``info.line``, ``info.event_id`` in the ``.mat``).
- :func:`read_nwb_optogenetics`: ``OptogeneticSeries`` in an NWB file (the
  ``nwb`` extra: pynwb is imported inside the function).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, FileFormatError, MissingFileError, ParameterError
from imagingkit.stim.events import SHAM, STIM, make_events, validate_events
from imagingkit.stim.triggers import PulseParams, events_from_triggers

_ALIASES = {
    "onset_s": ("onset_s", "onset", "start_time", "start_s", "time_s", "time", "t"),
    "duration_s": ("duration_s", "duration"),
    "power_mw": ("power_mw", "power"),
    "frequency_hz": ("frequency_hz", "frequency", "freq_hz"),
    "n_pulses": ("n_pulses", "pulses", "num_pulses"),
}


def read_event_table(path: str | Path) -> pd.DataFrame:
    """Read an events table from CSV (``,``) or TSV (``.tsv``/``.tab``: tab).

    The onset column may be named ``onset_s``, ``onset``, ``start_time``,
    ``start_s``, ``time_s``, ``time`` or ``t``; a ``stop_time``/``stop_s``
    column gives ``duration_s``. Units are seconds; ``power_mw`` in mW.

    Raises
    ------
    MissingFileError, FileFormatError, DataError
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: events table not found")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        table = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: cannot parse events table ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    renamed = {}
    for target, aliases in _ALIASES.items():
        found = next((a for a in aliases if a in table.columns), None)
        if found is not None and found != target:
            renamed[found] = target
    table = table.rename(columns=renamed)
    if "onset_s" not in table.columns:
        raise FileFormatError(
            f"{path}: events table needs an onset column (one of {list(_ALIASES['onset_s'])}); "
            f"found columns {list(table.columns)}"
        )
    stop = next((c for c in ("stop_time", "stop_s", "offset_s") if c in table.columns), None)
    if stop is not None and "duration_s" not in table.columns:
        table["duration_s"] = pd.to_numeric(table[stop], errors="coerce") - pd.to_numeric(
            table["onset_s"], errors="coerce"
        )
    return validate_events(table, source=str(path), renumber="event_id" not in table.columns)


def events_from_times(
    times_s: np.ndarray,
    *,
    max_gap_s: float = 0.5,
    pulse_duration_s: float = 0.0,
    site: str = "",
    condition: str = STIM,
    source: str = "trigger times",
) -> pd.DataFrame:
    """Events from trigger-edge timestamps: edges closer than ``max_gap_s`` form one train.

    ``duration_s`` spans first to last edge plus ``pulse_duration_s`` (timestamps
    mark pulse starts only; give the pulse length so that the last pulse's light
    is inside the event, e.g. for light-artifact detection); ``frequency_hz`` is
    1 / median inter-edge interval (NaN for single edges).
    """
    if pulse_duration_s < 0:
        raise ParameterError(f"pulse_duration_s must be >= 0, got {pulse_duration_s}")
    times = np.sort(np.asarray(times_s, dtype=float).ravel())
    times = times[np.isfinite(times)]
    if times.size == 0:
        raise DataError(f"{source}: no trigger timestamps")
    train = np.concatenate(([0], np.cumsum(np.diff(times) > max_gap_s)))
    onset, duration, n_pulses, freq = [], [], [], []
    for k in range(train[-1] + 1):
        t = times[train == k]
        onset.append(t[0])
        duration.append(t[-1] - t[0] + pulse_duration_s)
        n_pulses.append(len(t))
        freq.append(1.0 / np.median(np.diff(t)) if len(t) > 1 else np.nan)
    return make_events(
        onset,
        source=source,
        duration_s=duration,
        n_pulses=n_pulses,
        frequency_hz=freq,
        site=site,
        condition=condition,
    )


def events_from_scanimage_aux(trigger_times_s: dict, channel: str = "auxTrigger0", **kwargs) -> pd.DataFrame:
    """Events from ScanImage auxiliary-trigger timestamps.

    Parameters
    ----------
    trigger_times_s : dict
        ``Recording.trigger_times_s``: name -> timestamps (s, recording clock),
        as read from the per-frame ``auxTrigger0..3`` header fields.
    channel : str
        Which auxiliary trigger carries the stimulation.
    **kwargs
        Passed to :func:`events_from_times` (``max_gap_s``, ``site``, ``condition``).
    """
    if channel not in trigger_times_s:
        raise DataError(
            f"no ScanImage trigger {channel!r} in the recording; available: {sorted(trigger_times_s)}"
        )
    return events_from_times(trigger_times_s[channel], source=f"ScanImage {channel}", **kwargs)


def read_scanimage_photostim_log(
    path: str | Path,
    rate_hz: float,
    *,
    n_channels: int = 3,
    power_channel: int = 2,
    params: PulseParams = PulseParams(threshold=1.0, hysteresis=0.0, max_gap_s=0.05),
    power_mw_per_unit: float | None = None,
    site: str = "",
) -> pd.DataFrame:
    """Events from a ScanImage photostimulation monitor log (``.stim``).

    The log is a flat little-endian float32 stream of interleaved samples, one
    value per monitored channel (default 3: galvo X, galvo Y, beam power in %),
    sampled at the photostim monitoring rate ``rate_hz``. Pulses are found on
    the power channel (default threshold 1 %).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: photostim log not found")
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0 or raw.size % n_channels:
        raise FileFormatError(
            f"{path}: {raw.size} float32 values is not a whole number of {n_channels}-channel samples"
        )
    samples = raw.reshape(-1, n_channels)
    if not 0 <= power_channel < n_channels:
        raise ParameterError(f"power_channel {power_channel} out of range for {n_channels} channels")
    return events_from_triggers(
        samples[:, power_channel],
        rate_hz,
        params,
        power_mw_per_unit=power_mw_per_unit,
        site=site,
        source=str(path),
    )


def events_from_scanbox(
    frame: np.ndarray,
    line: np.ndarray,
    *,
    frame_times_s: np.ndarray,
    line_period_s: float,
    event_id: np.ndarray | None = None,
    site: str = "",
) -> pd.DataFrame:
    """Events from Scanbox TTL event records.

    Scanbox stamps each TTL with the frame counter and the scan line at which it
    arrived. Time = start of that frame + line x line period. For volumes the
    frame counter counts plane frames, so frame ``k`` is volume ``k // Z``,
    plane ``k % Z`` of ``frame_times_s`` (T, Z). ``line`` is taken as the image
    line (0 .. lines-1). The TTL ``event_id`` is kept as column ``ttl_id``.
    """
    frame = np.atleast_1d(np.asarray(frame, dtype=int))
    line = np.atleast_1d(np.asarray(line, dtype=float))
    if frame.shape != line.shape:
        raise DataError(f"Scanbox event records: {frame.size} frames but {line.size} lines")
    flat = np.asarray(frame_times_s, dtype=float).ravel()
    bad = (frame < 0) | (frame >= flat.size)
    if bad.any():
        raise DataError(
            f"Scanbox event records: frame(s) {frame[bad].tolist()} outside the recording's {flat.size} frames"
        )
    onset = flat[frame] + line * line_period_s
    extra = {} if event_id is None else {"ttl_id": np.atleast_1d(event_id)}
    return make_events(onset, source="Scanbox events", site=site, **extra)


def read_scanbox_events(mat_path: str | Path, *, frame_times_s: np.ndarray | None = None) -> pd.DataFrame:
    """Events from the TTL records of a Scanbox ``info`` ``.mat`` file.

    Frame times default to the header's timing: line period ``1 / resfreq``
    (unidirectional, ``scanmode = 1``) or ``1 / (2 resfreq)`` (bidirectional),
    frame period = lines x line period, plane frames back to back.
    """
    import scipy.io

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise MissingFileError(f"{mat_path}: Scanbox .mat not found")
    try:
        info = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)["info"]
    except (KeyError, ValueError, NotImplementedError) as exc:
        raise FileFormatError(f"{mat_path}: not a Scanbox info file ({exc})") from exc
    frame = np.atleast_1d(getattr(info, "frame", np.array([])))
    line = np.atleast_1d(getattr(info, "line", np.array([])))
    if frame.size == 0:
        raise DataError(f"{mat_path}: no TTL event records (info.frame is empty)")
    try:
        n_lines = int(np.atleast_1d(info.sz)[0])
        line_period = 1.0 / float(info.resfreq) / (1 if int(info.scanmode) == 1 else 2)
    except AttributeError as exc:
        raise FileFormatError(f"{mat_path}: Scanbox info lacks {exc.name or 'sz/resfreq/scanmode'}") from exc
    if frame_times_s is None:
        frame_times_s = np.arange(int(frame.max()) + 1) * n_lines * line_period
    return events_from_scanbox(
        frame,
        line,
        frame_times_s=frame_times_s,
        line_period_s=line_period,
        event_id=np.atleast_1d(getattr(info, "event_id", np.arange(frame.size))),
    )


def read_nwb_optogenetics(
    path: str | Path,
    *,
    series_name: str | None = None,
    params: PulseParams = PulseParams(max_gap_s=0.5),
) -> pd.DataFrame:
    """Events from ``OptogeneticSeries`` in an NWB file (needs the ``nwb`` extra).

    The series' data is light power in watts over its timestamps (or starting
    time and rate); pulses are found on it and grouped into trains, with
    ``power_mw`` from the on-power and ``site`` from the series' stimulus site.

    Parameters
    ----------
    series_name : str or None
        Which series (default: every ``OptogeneticSeries`` in the file).
    params : PulseParams
        Pulse detection on the power trace; ``max_gap_s`` groups pulses into trains.
    """
    try:
        from pynwb import NWBHDF5IO
        from pynwb.ogen import OptogeneticSeries
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ParameterError("reading NWB needs the nwb extra: pip install 'imagingkit[nwb]'") from exc
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: NWB file not found")
    tables = []
    with NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        series = [o for o in nwbfile.objects.values() if isinstance(o, OptogeneticSeries)]
        if series_name is not None:
            series = [s for s in series if s.name == series_name]
        if not series:
            raise DataError(
                f"{path}: no OptogeneticSeries{'' if series_name is None else f' named {series_name!r}'}"
            )
        for s in series:
            data = np.asarray(s.data[:], dtype=float)
            if data.ndim > 1:
                data = data.reshape(len(data), -1).max(axis=1)
            if s.timestamps is not None:
                times = np.asarray(s.timestamps[:], dtype=float)
                rate = 1.0 / float(np.median(np.diff(times)))
                t0 = float(times[0])
            else:
                rate, t0 = float(s.rate), float(s.starting_time or 0.0)
            tables.append(
                events_from_triggers(
                    data,
                    rate,
                    params,
                    t0_s=t0,
                    power_mw_per_unit=1000.0,
                    site=s.site.name if s.site is not None else "",
                    source=f"{path}:{s.name}",
                )
            )
    events = pd.concat(tables, ignore_index=True)
    events.loc[events["power_mw"] <= 0, "condition"] = SHAM
    return validate_events(events, source=str(path), renumber=True)


def label_sham_trials(
    trial_events: pd.DataFrame, stim_events: pd.DataFrame, *, tolerance_s: float = 0.01
) -> pd.DataFrame:
    """Combine a trial TTL (every trial) with the light command (stim trials only).

    Trials with a light train starting inside them (+/- ``tolerance_s``) take
    that train's onset and parameters; trials without light become sham trials
    (``condition = "sham"``, ``power_mw = 0``) at the trial TTL onset.
    """
    trial_on = trial_events["onset_s"].to_numpy()
    trial_off = trial_on + trial_events["duration_s"].to_numpy()
    stim_on = stim_events["onset_s"].to_numpy()
    k = np.searchsorted(stim_on, trial_on - tolerance_s, side="left")
    has = (k < len(stim_on)) & (stim_on[np.minimum(k, len(stim_on) - 1)] <= trial_off + tolerance_s)
    rows = []
    for i in range(len(trial_events)):
        if has[i]:
            rows.append(stim_events.iloc[k[i]].to_dict())
        else:
            row = trial_events.iloc[i].to_dict()
            row.update(condition=SHAM, power_mw=0.0, n_pulses=0, frequency_hz=np.nan)
            rows.append(row)
    n_orphan = len(stim_on) - int(np.unique(k[has]).size)
    table = pd.DataFrame(rows).drop(columns=["event_id", "trial"], errors="ignore")
    out = validate_events(table, source="trials", renumber=True)
    out.attrs["n_stim_outside_trials"] = n_orphan
    return out
