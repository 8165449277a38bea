"""Trigger traces: read them from files and turn pulses into events.

A trigger trace is a digital (TTL) or analog voltage sampled at a fixed rate.
:func:`detect_pulses` finds light pulses with a Schmitt trigger (threshold
with hysteresis), drops glitches shorter than a debounce time and merges
dropouts; :func:`group_pulses` groups pulses into trains (one train = one
trial) by a maximum inter-pulse gap; :func:`events_from_triggers` does both
and returns the events table of :mod:`imagingkit.stim.events`.

Trigger-file formats read by :func:`read_trigger_file`
-----------------------------------------------------
``.npy``
    A (n_samples,) or (n_samples, n_channels) array; ``rate_hz`` must be given.
    Channels are named "0", "1", ... unless ``channel_names`` is given.
``.npz``
    Either an array ``traces`` (or ``triggers``, as the simulator writes) of shape
    (n_samples, n_channels) with optional
    ``channels`` (names) and ``rate_hz`` (scalar), or one 1-D array per channel
    (the key is the channel name) plus an optional scalar ``rate_hz``.
``.csv`` / ``.tsv`` / ``.txt``
    A header row of channel names, one row per sample. A column ``time_s``
    (or ``time``) gives the sample times: the rate is taken from it and the
    first time becomes ``t0_s``; otherwise ``rate_hz`` must be given.
``.h5`` / ``.hdf5``
    Either 1-D datasets named by channel (in the root or in a group given by
    ``group=``), or a 2-D dataset ``traces`` (n_samples, n_channels) whose
    attribute ``channels`` names the columns. The rate comes from an attribute
    ``rate_hz`` (or ``sample_rate_hz``/``sampling_rate``) on the dataset, its
    group or the file, unless ``rate_hz`` is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, FileFormatError, MissingFileError, ParameterError
from imagingkit.stim.events import STIM, make_events

_RATE_ATTRS = ("rate_hz", "sample_rate_hz", "sampling_rate", "rate")


@dataclasses.dataclass(frozen=True)
class TriggerData:
    """Trigger channels sampled at one rate.

    Attributes
    ----------
    traces : ndarray
        (n_samples, n_channels) float32 values.
    rate_hz : float
        Sample rate.
    channels : tuple of str
        Channel names, one per column.
    t0_s : float
        Time of the first sample on the trigger clock.
    source : str
        Where the data came from (for messages).
    """

    traces: np.ndarray
    rate_hz: float
    channels: tuple[str, ...]
    t0_s: float = 0.0
    source: str = "triggers"

    def channel(self, name: str | int) -> np.ndarray:
        """(n_samples,) trace of one channel by name or index."""
        if isinstance(name, str) and name in self.channels:
            return self.traces[:, self.channels.index(name)]
        if isinstance(name, (int, np.integer)) or (isinstance(name, str) and name.lstrip("-").isdigit()):
            index = int(name)
            if -len(self.channels) <= index < len(self.channels):
                return self.traces[:, index]
        raise ParameterError(
            f"{self.source}: no trigger channel {name!r}; channels are {list(self.channels)}"
        )


@dataclasses.dataclass(frozen=True)
class PulseParams:
    """How pulses are found in a trigger trace.

    Attributes
    ----------
    threshold : float or None
        Level separating off from on; None = ``threshold_fraction`` of the way
        from the off level (1st percentile) to the highest level (99.9th
        percentile), low enough for analog commands at several power levels.
    threshold_fraction : float
        See ``threshold``.
    hysteresis : float
        Half-width of the Schmitt band as a fraction of the off-on range: the
        state turns on above ``threshold + hysteresis*range`` and off below
        ``threshold - hysteresis*range``.
    min_high_s : float
        Debounce: on-periods shorter than this are glitches and dropped.
    min_low_s : float
        Debounce: off-gaps shorter than this are dropouts and merged.
    max_gap_s : float
        Pulses whose gap (offset to next onset) is at most this belong to one train.
    min_range : float
        A trace whose off-on range is below this has no pulses.
    """

    threshold: float | None = None
    threshold_fraction: float = 0.1
    hysteresis: float = 0.05
    min_high_s: float = 0.0
    min_low_s: float = 0.0
    max_gap_s: float = 0.5
    min_range: float = 1e-6

    def __post_init__(self):
        for key in ("hysteresis", "min_high_s", "min_low_s", "max_gap_s", "min_range"):
            if getattr(self, key) < 0:
                raise ParameterError(f"PulseParams.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 < self.threshold_fraction < 1:
            raise ParameterError(
                f"PulseParams.threshold_fraction must be in (0, 1), got {self.threshold_fraction}"
            )
        if self.threshold is None and self.hysteresis >= min(
            self.threshold_fraction, 1 - self.threshold_fraction
        ):
            raise ParameterError(
                f"PulseParams.hysteresis {self.hysteresis} must be below threshold_fraction {self.threshold_fraction}"
            )


def _schmitt(trace: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean state of a Schmitt trigger over ``trace`` (starts off)."""
    decision = np.full(len(trace), -1, dtype=np.int8)
    decision[trace > high] = 1
    decision[trace < low] = 0
    index = np.where(decision >= 0, np.arange(len(trace)), 0)
    np.maximum.accumulate(index, out=index)
    state = decision[index]
    state[(index == 0) & (decision[0] < 0)] = 0
    return state.astype(bool)


def _runs(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) sample indices of True runs."""
    edges = np.diff(np.concatenate(([0], state.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _crossing(trace: np.ndarray, index: np.ndarray, level: float) -> np.ndarray:
    """Fractional sample position where the trace crosses ``level`` between index-1 and index."""
    index = np.asarray(index)
    prev = np.clip(index - 1, 0, len(trace) - 1)
    v0, v1 = trace[prev].astype(float), trace[np.minimum(index, len(trace) - 1)].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(v1 != v0, (level - v0) / (v1 - v0), 1.0)
    frac = np.clip(np.nan_to_num(frac, nan=1.0), 0.0, 1.0)
    return np.where(index > 0, prev + frac, index.astype(float))


def detect_pulses(
    trace: np.ndarray,
    rate_hz: float,
    params: PulseParams = PulseParams(),
    *,
    t0_s: float = 0.0,
    source: str = "trigger",
) -> pd.DataFrame:
    """Find light pulses in a digital or analog trigger trace.

    Parameters
    ----------
    trace : ndarray
        (n_samples,) voltage or TTL values.
    rate_hz : float
        Sample rate of the trace.
    params : PulseParams
        Threshold, hysteresis and debounce times.
    t0_s : float
        Time of the first sample.
    source : str
        Channel/file name used in messages.

    Returns
    -------
    DataFrame
        One row per pulse: ``onset_s``, ``offset_s`` (threshold crossings,
        linearly interpolated between samples), ``amplitude`` (mean value while
        on, minus the off level).

    Raises
    ------
    DataError
        The trace is flat or never crosses the threshold (no pulses).
    """
    if rate_hz is None or not rate_hz > 0:
        raise ParameterError(f"{source}: trigger sample rate must be positive, got {rate_hz}")
    trace = np.asarray(trace, dtype=np.float32).ravel()
    if trace.size < 2:
        raise DataError(f"{source}: trigger trace has {trace.size} samples; need at least 2")
    finite = trace[np.isfinite(trace)]
    lo_level, hi_level = np.percentile(finite, [1.0, 99.9]) if finite.size else (0.0, 0.0)
    span = float(hi_level - lo_level)
    if span <= params.min_range and params.threshold is None:
        raise DataError(
            f"{source}: trigger channel has no pulses (flat trace, range {span:.3g} over {trace.size} samples)"
        )
    threshold = (
        float(lo_level + params.threshold_fraction * span)
        if params.threshold is None
        else float(params.threshold)
    )
    band = params.hysteresis * span
    state = _schmitt(np.nan_to_num(trace, nan=lo_level), threshold - band, threshold + band)
    state = _debounce(state, int(round(params.min_low_s * rate_hz)), value=False)
    state = _debounce(state, int(round(params.min_high_s * rate_hz)), value=True)
    starts, stops = _runs(state)
    if len(starts) == 0:
        raise DataError(
            f"{source}: trigger channel has no pulses: no crossing of threshold {threshold:.3g} "
            f"(values {float(finite.min()) if finite.size else float('nan'):.3g}.."
            f"{float(finite.max()) if finite.size else float('nan'):.3g})"
        )
    onset = _crossing(trace, starts, threshold) / rate_hz + t0_s
    offset = _crossing(trace, stops, threshold) / rate_hz + t0_s
    # a pulse still on at the end has its offset at the last sample
    offset = np.where(stops >= len(trace), (len(trace) - 1) / rate_hz + t0_s, offset)
    csum = np.concatenate(([0.0], np.cumsum(trace, dtype=np.float64)))
    sums = csum[stops] - csum[starts]
    amplitude = sums / np.maximum(stops - starts, 1) - lo_level
    return pd.DataFrame({"onset_s": onset, "offset_s": offset, "amplitude": amplitude})


def _debounce(state: np.ndarray, min_samples: int, *, value: bool) -> np.ndarray:
    """Flip runs of ``value`` shorter than ``min_samples`` (interior runs only for gaps)."""
    if min_samples <= 1:
        return state
    target = state if value else ~state
    starts, stops = _runs(target)
    short = (stops - starts) < min_samples
    if not value:  # never fill a gap touching either end of the trace
        short &= (starts > 0) & (stops < len(state))
    out = state.copy()
    for a, b in zip(starts[short], stops[short], strict=True):
        out[a:b] = not value
    return out


def group_pulses(pulses: pd.DataFrame, max_gap_s: float) -> np.ndarray:
    """(n_pulses,) train index: a new train starts when the gap to the previous pulse exceeds ``max_gap_s``."""
    if len(pulses) == 0:
        return np.zeros(0, dtype=int)
    gaps = pulses["onset_s"].to_numpy()[1:] - pulses["offset_s"].to_numpy()[:-1]
    return np.concatenate(([0], np.cumsum(gaps > max_gap_s))).astype(int)


def events_from_triggers(
    trace: np.ndarray,
    rate_hz: float,
    params: PulseParams = PulseParams(),
    *,
    t0_s: float = 0.0,
    power_mw_per_unit: float | None = None,
    site: str = "",
    condition: str = STIM,
    source: str = "trigger",
) -> pd.DataFrame:
    """Events table from a stimulation trigger trace: pulses grouped into trains.

    Parameters
    ----------
    trace, rate_hz, params, t0_s, source
        See :func:`detect_pulses`; ``params.max_gap_s`` groups pulses into trains.
    power_mw_per_unit : float or None
        Scale from the trace's on-amplitude to light power (mW) for an analog
        laser-command channel; None leaves ``power_mw`` unknown (NaN).
    site, condition : str
        Stored in every event.

    Returns
    -------
    DataFrame
        The events table; one event (= one trial) per train. ``duration_s``
        spans first onset to last offset, ``frequency_hz`` is 1 / median
        inter-onset interval (NaN for single pulses).
    """
    pulses = detect_pulses(trace, rate_hz, params, t0_s=t0_s, source=source)
    train = group_pulses(pulses, params.max_gap_s)
    grouped = pulses.assign(train=train).groupby("train", sort=True)
    onset = grouped["onset_s"].min().to_numpy()
    offset = grouped["offset_s"].max().to_numpy()
    n_pulses = grouped.size().to_numpy()
    frequency = grouped["onset_s"].agg(lambda s: 1.0 / np.median(np.diff(s)) if len(s) > 1 else np.nan)
    amplitude = grouped["amplitude"].mean().to_numpy()
    power = amplitude * power_mw_per_unit if power_mw_per_unit is not None else np.nan
    return make_events(
        onset,
        source=source,
        duration_s=offset - onset,
        n_pulses=n_pulses,
        frequency_hz=frequency.to_numpy(dtype=float),
        power_mw=power,
        site=site,
        condition=condition,
    )


# -- readers ----------------------------------------------------------------------------------------------
def read_trigger_file(
    path: str | Path,
    *,
    rate_hz: float | None = None,
    channel_names: tuple[str, ...] | None = None,
    group: str | None = None,
) -> TriggerData:
    """Read trigger channels from a file (formats in the module docstring).

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt`` or ``.h5``/``.hdf5``.
    rate_hz : float or None
        Sample rate; required when the file does not store it.
    channel_names : tuple of str or None
        Names for the columns of an unnamed array.
    group : str or None
        HDF5 group holding the channel datasets (default: the root).

    Raises
    ------
    MissingFileError, FileFormatError, ParameterError
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: trigger file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        traces, names, file_rate, t0 = _read_npy(path), None, None, 0.0
    elif suffix == ".npz":
        traces, names, file_rate, t0 = _read_npz(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        traces, names, file_rate, t0 = _read_csv(path)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        traces, names, file_rate, t0 = _read_hdf5(path, group)
    else:
        raise FileFormatError(
            f"{path}: unknown trigger file type {suffix!r}; expected .npy, .npz, .csv/.tsv or .h5/.hdf5"
        )
    if traces.ndim == 1:
        traces = traces[:, None]
    if traces.ndim != 2 or traces.shape[0] < 2:
        raise FileFormatError(
            f"{path}: trigger data must be (n_samples, n_channels), got shape {traces.shape}"
        )
    if channel_names is not None:
        names = tuple(channel_names)
    if names is None:
        names = tuple(str(i) for i in range(traces.shape[1]))
    if len(names) != traces.shape[1]:
        raise FileFormatError(f"{path}: {len(names)} channel names for {traces.shape[1]} channels")
    rate = rate_hz if rate_hz is not None else file_rate
    if rate is None:
        raise ParameterError(
            f"{path}: the file does not store its sample rate; pass rate_hz (--trigger-rate)"
        )
    if not rate > 0:
        raise ParameterError(f"{path}: trigger sample rate must be positive, got {rate}")
    return TriggerData(
        traces=np.ascontiguousarray(traces, dtype=np.float32),
        rate_hz=float(rate),
        channels=tuple(str(n) for n in names),
        t0_s=float(t0),
        source=str(path),
    )


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise FileFormatError(f"{path}: not a plain NumPy array ({exc})") from exc


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        rate = float(data["rate_hz"]) if "rate_hz" in keys else None
        t0 = float(data["t0_s"]) if "t0_s" in keys else 0.0
        array_key = next((k for k in ("traces", "triggers") if k in keys), None)
        if array_key is not None:
            names = tuple(str(n) for n in data["channels"]) if "channels" in keys else None
            return data[array_key], names, rate, t0
        channels = [k for k in keys if k not in ("rate_hz", "channels", "t0_s") and data[k].ndim == 1]
        if not channels:
            raise FileFormatError(f"{path}: no 'traces' array and no 1-D channel arrays (keys: {keys})")
        lengths = {len(data[k]) for k in channels}
        if len(lengths) != 1:
            raise FileFormatError(f"{path}: channel arrays differ in length {sorted(lengths)}")
        return np.stack([data[k] for k in channels], axis=1), tuple(channels), rate, t0


def _read_csv(path: Path):
    sep = "\t" if path.suffix.lower() == ".tsv" else None
    try:
        table = pd.read_csv(path, sep=sep, engine="python")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: cannot parse as a delimited table ({exc})") from exc
    time_col = next((c for c in ("time_s", "time", "t") if c in table.columns), None)
    rate, t0 = None, 0.0
    if time_col is not None:
        time = table.pop(time_col).to_numpy(dtype=float)
        step = np.median(np.diff(time)) if len(time) > 1 else 0.0
        if not step > 0:
            raise FileFormatError(f"{path}: column {time_col!r} must increase")
        rate, t0 = 1.0 / step, float(time[0])
    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = [c for c in numeric.columns if numeric[c].isna().all()]
    if bad:
        raise FileFormatError(f"{path}: non-numeric trigger column(s) {bad}")
    return numeric.to_numpy(dtype=np.float32), tuple(str(c) for c in numeric.columns), rate, t0


def _read_hdf5(path: Path, group: str | None):
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with handle:
        node = handle[group] if group else handle
        if group and group not in handle:
            raise FileFormatError(f"{path}: no group {group!r}")

        def find_rate(*objs):
            for obj in objs:
                for key in _RATE_ATTRS:
                    if key in obj.attrs:
                        return float(np.asarray(obj.attrs[key]).ravel()[0])
            return None

        if "traces" in node and node["traces"].ndim == 2:
            ds = node["traces"]
            names = ds.attrs.get("channels")
            names = (
                None
                if names is None
                else tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
            )
            return ds[()], names, find_rate(ds, node, handle), 0.0
        datasets = [k for k, v in node.items() if hasattr(v, "shape") and v.ndim == 1]
        if not datasets:
            raise FileFormatError(f"{path}: no 1-D channel datasets and no 2-D 'traces' in {node.name}")
        lengths = {node[k].shape[0] for k in datasets}
        if len(lengths) != 1:
            raise FileFormatError(f"{path}: channel datasets differ in length {sorted(lengths)}")
        rate = find_rate(*(node[k] for k in datasets), node, handle)
        return np.stack([node[k][()] for k in datasets], axis=1), tuple(datasets), rate, 0.0
