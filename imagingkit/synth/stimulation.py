"""Optogenetic stimulation protocols, event tables, trigger traces and light artifacts.

A :class:`StimProtocol` describes trains of light pulses; :func:`make_events`
turns it into the events table (one row per train), :func:`pulse_table` lists
every pulse, :func:`trigger_traces` draws the DAQ traces (frame clock, stim
command, trial TTL) and :func:`artifact_lines` says which scan lines were being
acquired while the light was on.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from imagingkit.errors import ParameterError

EVENT_COLUMNS = [
    "event_id",
    "trial",
    "onset_s",
    "duration_s",
    "n_pulses",
    "frequency_hz",
    "power_mw",
    "site",
    "condition",
    "pulse_duration_s",
]
TRIGGER_CHANNELS = ("frame_clock", "stim", "trial")
TTL_HIGH_V = 5.0


@dataclasses.dataclass(frozen=True)
class StimProtocol:
    """Trains of light pulses delivered during a recording.

    Attributes
    ----------
    n_pulses : int
        Pulses per train.
    frequency_hz : float
        Pulse rate within a train.
    pulse_duration_s : float
        Width of each light pulse.
    inter_trial_interval_s : float
        Mean time from one train onset to the next.
    iti_jitter_s : float
        Uniform jitter (+/-) added to each interval.
    first_onset_s : float
        Onset of the first train.
    power_levels_mw : tuple of float
        Light powers, cycled in a shuffled order over trials.
    sham_fraction : float
        Fraction of trials with the light blocked (power 0, condition ``"sham"``):
        the trial TTL is sent, the stim command is not and there is no artifact.
    max_command_v : float
        Stim command voltage at the highest power (analog LED/laser command).
    site : str
        Name of the stimulated site, copied to the events table.
    n_trials : int or None
        Number of trains; ``None`` fills the recording.
    """

    n_pulses: int = 5
    frequency_hz: float = 20.0
    pulse_duration_s: float = 0.005
    inter_trial_interval_s: float = 4.0
    iti_jitter_s: float = 0.5
    first_onset_s: float = 2.0
    power_levels_mw: tuple[float, ...] = (5.0, 10.0)
    sham_fraction: float = 0.2
    max_command_v: float = 5.0
    site: str = "thalamus"
    n_trials: int | None = None

    def __post_init__(self):
        if self.n_pulses < 1 or self.frequency_hz <= 0 or self.pulse_duration_s <= 0:
            raise ParameterError(
                "StimProtocol needs n_pulses >= 1, frequency_hz > 0 and pulse_duration_s > 0"
            )
        if self.n_pulses > 1 and self.pulse_duration_s >= 1.0 / self.frequency_hz:
            raise ParameterError(
                f"StimProtocol.pulse_duration_s {self.pulse_duration_s} must be shorter than the pulse period "
                f"1/frequency_hz = {1.0 / self.frequency_hz:.4g} s"
            )
        if not 0.0 <= self.sham_fraction <= 1.0:
            raise ParameterError(f"StimProtocol.sham_fraction must be in [0, 1], got {self.sham_fraction}")
        if not self.power_levels_mw or min(self.power_levels_mw) <= 0:
            raise ParameterError(f"StimProtocol.power_levels_mw must be positive, got {self.power_levels_mw}")
        if self.inter_trial_interval_s <= self.train_duration_s + 2 * self.iti_jitter_s:
            raise ParameterError(
                "StimProtocol.inter_trial_interval_s must exceed the train duration plus jitter"
            )

    @property
    def train_duration_s(self) -> float:
        """From the first pulse onset to the end of the last pulse."""
        return (self.n_pulses - 1) / self.frequency_hz + self.pulse_duration_s


def make_events(protocol: StimProtocol, duration_s: float, rng: np.random.Generator) -> pd.DataFrame:
    """The events table of a recording lasting ``duration_s``.

    One row per train (sham trials included). ``duration_s`` is the train
    duration, ``pulse_duration_s`` the width of one pulse; sham rows have
    ``power_mw = 0`` and ``condition = "sham"``, others ``condition = "stim"``.
    """
    onsets = []
    t = protocol.first_onset_s
    last_start = duration_s - protocol.train_duration_s - 1.0
    while t <= last_start and (protocol.n_trials is None or len(onsets) < protocol.n_trials):
        onsets.append(t)
        t += protocol.inter_trial_interval_s + rng.uniform(-protocol.iti_jitter_s, protocol.iti_jitter_s)
    n = len(onsets)
    n_sham = int(round(protocol.sham_fraction * n))
    is_sham = np.zeros(n, dtype=bool)
    is_sham[rng.permutation(n)[:n_sham]] = True
    levels = np.asarray(protocol.power_levels_mw, dtype=float)
    powers = levels[rng.permutation(np.arange(n) % levels.size)] if n else np.zeros(0)
    powers = np.where(is_sham, 0.0, powers)
    return pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=int),
            "trial": np.arange(n, dtype=int),
            "onset_s": np.asarray(onsets, dtype=float),
            "duration_s": np.full(n, protocol.train_duration_s),
            "n_pulses": np.full(n, protocol.n_pulses, dtype=int),
            "frequency_hz": np.full(n, float(protocol.frequency_hz)),
            "power_mw": powers,
            "site": [protocol.site] * n,
            "condition": np.where(is_sham, "sham", "stim"),
            "pulse_duration_s": np.full(n, protocol.pulse_duration_s),
        },
        columns=EVENT_COLUMNS,
    )


def pulse_table(events: pd.DataFrame) -> pd.DataFrame:
    """Every light pulse of the non-sham events: columns event_id, start_s, stop_s, power_mw."""
    rows = []
    for ev in events.itertuples(index=False):
        if ev.condition == "sham" or ev.power_mw <= 0:
            continue
        starts = ev.onset_s + np.arange(ev.n_pulses) / ev.frequency_hz
        for s in starts:
            rows.append((ev.event_id, s, s + ev.pulse_duration_s, ev.power_mw))
    return pd.DataFrame(rows, columns=["event_id", "start_s", "stop_s", "power_mw"])


def trigger_traces(
    events: pd.DataFrame,
    frame_times_s: np.ndarray,
    frame_duration_s: float,
    duration_s: float,
    rate_hz: float = 10_000.0,
    max_power_mw: float | None = None,
    max_command_v: float = 5.0,
    noise_v: float = 0.01,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """DAQ traces sampled at ``rate_hz`` (float32 volts, columns :data:`TRIGGER_CHANNELS`).

    ``frame_clock`` is a 5 V TTL high while each frame is scanned (rising edge
    at every frame start, all planes); ``stim`` is the analog light command
    (``max_command_v`` at the highest power) during each pulse; ``trial`` is a
    5 V TTL high for every train, sham trials included.
    """
    n = int(np.ceil(duration_s * rate_hz))
    out = np.zeros((n, len(TRIGGER_CHANNELS)), dtype=np.float32)

    def fill(col: int, starts: np.ndarray, stops: np.ndarray, values: np.ndarray) -> None:
        a = np.clip(np.round(np.asarray(starts) * rate_hz).astype(np.int64), 0, n)
        b = np.clip(np.round(np.asarray(stops) * rate_hz).astype(np.int64), 0, n)
        b = np.maximum(b, np.minimum(a + 1, n))
        delta = np.zeros(n + 1, dtype=np.float64)
        np.add.at(delta, a, values)
        np.add.at(delta, b, -np.asarray(values, dtype=float))
        out[:, col] = np.cumsum(delta[:-1])

    starts = np.sort(np.asarray(frame_times_s, dtype=float).ravel())
    fill(0, starts, starts + frame_duration_s, np.full(starts.size, TTL_HIGH_V))
    pulses = pulse_table(events)
    if max_power_mw is None:
        max_power_mw = float(events["power_mw"].max()) if len(events) else 1.0
    if len(pulses):
        volts = max_command_v * pulses["power_mw"].to_numpy() / max(max_power_mw, 1e-12)
        fill(1, pulses["start_s"].to_numpy(), pulses["stop_s"].to_numpy(), volts)
    if len(events):
        onset = events["onset_s"].to_numpy()
        fill(2, onset, onset + events["duration_s"].to_numpy(), np.full(len(events), TTL_HIGH_V))
    if noise_v > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        out += rng.normal(0.0, noise_v, out.shape).astype(np.float32)
    return out


def artifact_lines(
    pulses: pd.DataFrame,
    frame_times_s: np.ndarray,
    line_period_s: float,
    n_lines: int,
) -> np.ndarray:
    """Fraction of each scan line's dwell time during which the light was on, times power.

    Line ``l`` of the frame starting at ``frame_times_s[t, z]`` is acquired during
    ``[start + l * line_period_s, start + (l + 1) * line_period_s)``.

    Returns
    -------
    ndarray
        (T, Z, n_lines) float32: sum over pulses of overlap fraction x power_mw.
    """
    ft = np.asarray(frame_times_s, dtype=float)
    if ft.ndim == 1:
        ft = ft[:, None]
    out = np.zeros((*ft.shape, n_lines), dtype=np.float32)
    if len(pulses) == 0:
        return out
    frame_len = n_lines * line_period_s
    flat_start = ft.ravel()
    order = np.argsort(flat_start)
    sorted_start = flat_start[order]
    lines = np.arange(n_lines)
    for p in pulses.itertuples(index=False):
        lo = np.searchsorted(sorted_start, p.start_s - frame_len, side="left")
        hi = np.searchsorted(sorted_start, p.stop_s, side="right")
        for k in order[lo:hi]:
            line_start = flat_start[k] + lines * line_period_s
            overlap = np.clip(
                np.minimum(line_start + line_period_s, p.stop_s) - np.maximum(line_start, p.start_s), 0, None
            )
            if overlap.any():
                t, z = np.unravel_index(k, ft.shape)
                out[t, z] += (overlap / line_period_s * p.power_mw).astype(np.float32)
    return out
