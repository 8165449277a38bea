"""Calcium indicator presets and the spike-to-fluorescence kernel.

Each :class:`Indicator` is a double exponential (rise and decay time constants)
scaled to a peak dF/F per action potential, with values from the GCaMP
characterisation papers (Chen et al. 2013 for GCaMP6s/6f, Zhang et al. 2023 for
jGCaMP8m; layer 2/3 cortex in vivo, rounded).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

from imagingkit.errors import ParameterError


@dataclasses.dataclass(frozen=True)
class Indicator:
    """A genetically encoded calcium indicator.

    Attributes
    ----------
    name : str
    rise_s : float
        Rise time constant of the double exponential (s).
    decay_s : float
        Decay time constant (s).
    peak_dff_per_spike : float
        Peak dF/F of the response to one action potential.
    """

    name: str
    rise_s: float
    decay_s: float
    peak_dff_per_spike: float

    def kernel(self, t_s: np.ndarray) -> np.ndarray:
        """Response to one spike at ``t = 0`` sampled at ``t_s`` (dF/F; 0 for t < 0)."""
        t = np.asarray(t_s, dtype=float)
        shape = np.where(
            t >= 0,
            np.exp(-np.clip(t, 0, None) / self.decay_s) - np.exp(-np.clip(t, 0, None) / self.rise_s),
            0.0,
        )
        return self.peak_dff_per_spike * shape / self._peak_shape()

    def _peak_shape(self) -> float:
        r, d = self.rise_s, self.decay_s
        t_peak = np.log(d / r) * r * d / (d - r)
        return float(np.exp(-t_peak / d) - np.exp(-t_peak / r))

    @property
    def time_to_peak_s(self) -> float:
        r, d = self.rise_s, self.decay_s
        return float(np.log(d / r) * r * d / (d - r))


INDICATORS: dict[str, Indicator] = {
    "GCaMP6s": Indicator("GCaMP6s", rise_s=0.18, decay_s=1.8, peak_dff_per_spike=0.25),
    "GCaMP6f": Indicator("GCaMP6f", rise_s=0.05, decay_s=0.55, peak_dff_per_spike=0.18),
    "GCaMP8m": Indicator("GCaMP8m", rise_s=0.01, decay_s=0.25, peak_dff_per_spike=0.30),
}


def get_indicator(indicator: str | Indicator) -> Indicator:
    """Return the preset named ``indicator`` (GCaMP6s, GCaMP6f, GCaMP8m) or the object itself."""
    if isinstance(indicator, Indicator):
        return indicator
    for name, preset in INDICATORS.items():
        if name.lower() == str(indicator).lower().replace("jgcamp", "gcamp"):
            return preset
    raise ParameterError(
        f"unknown indicator {indicator!r}; expected one of {sorted(INDICATORS)} or an Indicator"
    )


def spikes_to_calcium(
    spike_times_s: np.ndarray, sample_times_s: np.ndarray, indicator: Indicator
) -> np.ndarray:
    """Noiseless dF/F of one cell sampled at regularly spaced times.

    Exact (no time binning): each spike at a continuous time contributes
    ``kernel(t - spike)`` at every later sample. Computed with two first-order
    recursive filters (one per exponential), so the cost is O(T + n_spikes).

    Parameters
    ----------
    spike_times_s : ndarray
        Spike times (s), any order.
    sample_times_s : ndarray
        (T,) regularly spaced sample times (s).
    indicator : Indicator

    Returns
    -------
    ndarray
        (T,) float64 dF/F.
    """
    t = np.asarray(sample_times_s, dtype=float)
    out = np.zeros(t.size)
    spikes = np.asarray(spike_times_s, dtype=float)
    if t.size == 0 or spikes.size == 0:
        return out
    dt = (t[-1] - t[0]) / (t.size - 1) if t.size > 1 else 1.0
    first = np.searchsorted(t, spikes, side="left")  # first sample at or after the spike
    keep = first < t.size
    first, spikes = first[keep], spikes[keep]
    lag = t[first] - spikes
    for tau, sign in ((indicator.decay_s, 1.0), (indicator.rise_s, -1.0)):
        impulses = np.zeros(t.size)
        np.add.at(impulses, first, np.exp(-lag / tau))
        out += sign * signal.lfilter([1.0], [1.0, -np.exp(-dt / tau)], impulses)
    return indicator.peak_dff_per_spike * out / indicator._peak_shape()
