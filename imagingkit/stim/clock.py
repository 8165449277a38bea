"""Put stimulation events and imaging frames on one clock.

The trigger file and the microscope keep their own clocks. A frame-clock
channel recorded with the triggers (one pulse per frame) ties them: its pulse
onsets are the frame start times on the trigger clock, the recording's
``frame_times_s`` are the same frames on the imaging clock, and a linear fit
``t_imaging = slope * t_trigger + offset`` absorbs a start offset and clock
drift. The fit's residual is reported; a frame-clock count that disagrees with
the recording's frame count is an error (never silently truncated).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from imagingkit.errors import DataError
from imagingkit.stim.triggers import PulseParams, detect_pulses


@dataclasses.dataclass(frozen=True)
class ClockFit:
    """A linear map from the trigger clock to the imaging clock.

    Attributes
    ----------
    slope : float
        Imaging seconds per trigger second (1 + drift).
    offset_s : float
        Imaging time at trigger time 0.
    residual_rms_s, residual_max_s : float
        Root-mean-square and largest absolute residual of the fit (s).
    n_points : int
        Number of matched frame times used.
    """

    slope: float
    offset_s: float
    residual_rms_s: float
    residual_max_s: float
    n_points: int

    @property
    def drift_ppm(self) -> float:
        """Clock drift in parts per million."""
        return (self.slope - 1.0) * 1e6

    def to_imaging(self, times_s: np.ndarray) -> np.ndarray:
        """Map trigger-clock times to the imaging clock."""
        return self.slope * np.asarray(times_s, dtype=float) + self.offset_s

    def report(self) -> dict:
        """JSON-able summary."""
        return {
            "slope": self.slope,
            "offset_s": self.offset_s,
            "drift_ppm": self.drift_ppm,
            "residual_rms_s": self.residual_rms_s,
            "residual_max_s": self.residual_max_s,
            "n_points": self.n_points,
        }


IDENTITY = ClockFit(slope=1.0, offset_s=0.0, residual_rms_s=0.0, residual_max_s=0.0, n_points=0)


def frame_times_from_clock(
    trace: np.ndarray,
    rate_hz: float,
    *,
    n_frames_expected: int | None = None,
    params: PulseParams = PulseParams(),
    t0_s: float = 0.0,
    source: str = "frame clock",
) -> np.ndarray:
    """Frame start times (trigger clock) from a frame-clock channel: one pulse per frame.

    Parameters
    ----------
    trace : ndarray
        (n_samples,) frame-clock channel.
    rate_hz : float
        Sample rate.
    n_frames_expected : int or None
        Frames (planes x volumes for fast-z) the recording has; a different
        pulse count raises :class:`DataError` naming both counts.
    params : PulseParams
        Pulse detection (the default threshold suits TTL clocks).

    Returns
    -------
    ndarray
        (n_frames,) pulse onsets in seconds on the trigger clock.
    """
    pulses = detect_pulses(
        trace, rate_hz, dataclasses.replace(params, max_gap_s=0.0), t0_s=t0_s, source=source
    )
    onsets = pulses["onset_s"].to_numpy()
    if n_frames_expected is not None and len(onsets) != n_frames_expected:
        period = float(np.median(np.diff(onsets))) if len(onsets) > 1 else float("nan")
        raise DataError(
            f"{source}: {len(onsets)} frame-clock pulses but the recording has {n_frames_expected} frames "
            f"(mismatch {len(onsets) - n_frames_expected:+d}; clock period {period * 1e3:.3f} ms, "
            f"first {onsets[0]:.4f} s, last {onsets[-1]:.4f} s); refusing to truncate - check the channel, "
            "the threshold or whether acquisition was stopped early"
        )
    return onsets


def fit_clock(trigger_times_s: np.ndarray, imaging_times_s: np.ndarray, *, source: str = "clock") -> ClockFit:
    """Least-squares linear fit mapping trigger-clock times onto imaging-clock times.

    Parameters
    ----------
    trigger_times_s, imaging_times_s : ndarray
        (n,) the same instants (e.g. frame starts) measured on each clock.

    Raises
    ------
    DataError
        Different lengths or fewer than two points.
    """
    x = np.asarray(trigger_times_s, dtype=float).ravel()
    y = np.asarray(imaging_times_s, dtype=float).ravel()
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} trigger-clock times but {len(y)} imaging times; cannot fit")
    if len(x) < 2:
        raise DataError(f"{source}: need at least 2 matched times to fit a clock, got {len(x)}")
    slope, offset = np.polynomial.polynomial.polyfit(x - x[0], y, 1)[::-1]
    offset = offset - slope * x[0]
    residual = y - (slope * x + offset)
    return ClockFit(
        slope=float(slope),
        offset_s=float(offset),
        residual_rms_s=float(np.sqrt(np.mean(residual**2))),
        residual_max_s=float(np.max(np.abs(residual))),
        n_points=len(x),
    )


def align_events(events: pd.DataFrame, fit: ClockFit) -> pd.DataFrame:
    """Return a copy of ``events`` with onsets and durations on the imaging clock."""
    out = events.copy()
    out["onset_s"] = fit.to_imaging(out["onset_s"].to_numpy(dtype=float))
    out["duration_s"] = out["duration_s"].to_numpy(dtype=float) * fit.slope
    return out


def recording_frame_times(
    frame_times_s: np.ndarray | None, n_frames: int, frame_rate_hz: float | None
) -> np.ndarray:
    """(T, Z) frame start times from a recording's ``frame_times_s`` or, failing that, its rate."""
    if frame_times_s is not None:
        times = np.asarray(frame_times_s, dtype=float)
        return times.reshape(len(times), -1)
    if frame_rate_hz is None or not frame_rate_hz > 0:
        raise DataError("the recording has neither frame times nor a frame rate; pass frame_rate_hz")
    return (np.arange(n_frames) / frame_rate_hz)[:, None]
