"""Model-based response latency: fit the known response shape to trial-averaged dF/F.

The response of a ROI to one stimulation event is modelled as the indicator
kernel (a double exponential, rise and decay time constants) started at every
light pulse of the event's train, shifted by the latency ``L`` and scaled by an
amplitude ``A``::

    model(t) = A * sum_p k(t - L - t_p),   k(t) = exp(-t / decay) - exp(-t / rise)  (t >= 0)

with ``t_p`` the pulse starts relative to the event onset (``k / frequency_hz``
for ``k < n_pulses``). The latency is thus the delay from a pulse's start to
the start of its calcium transient (the truth ``latency_s`` of
:mod:`imagingkit.synth`).

Trials are cut by linear interpolation of each ROI's samples (at their own
sub-frame times) onto a common axis; with event onsets spread over the frame
the trial average is the true response smoothed by a triangle of half-width
one sample period, so the model is smoothed the same way before fitting.
Masked samples (NaN) are left out of the fit; when the events have different
trains, each sample's model is the mix of train shapes of the trials that are
finite there.

The fit is a grid search over ``L`` with the least-squares amplitude in closed
form at each shift: two matrix products for all ROIs at once
(:func:`fit_model_latency`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imagingkit.errors import DataError, ParameterError

#: points of the quadrature of the triangle smoothing (interpolation onto the trial axis)
_N_SMOOTH = 21


def indicator_kernel(t_s: np.ndarray, rise_s: float, decay_s: float) -> np.ndarray:
    """Double-exponential calcium transient started at ``t = 0``, peak 1 (0 for ``t < 0``).

    Parameters
    ----------
    t_s : ndarray
        Times (s) from the start of the transient.
    rise_s, decay_s : float
        Rise and decay time constants (s), ``0 < rise_s < decay_s``.
    """
    t = np.clip(np.asarray(t_s, dtype=float), 0.0, None)
    t_peak = np.log(decay_s / rise_s) * rise_s * decay_s / (decay_s - rise_s)
    peak = np.exp(-t_peak / decay_s) - np.exp(-t_peak / rise_s)
    return (np.exp(-t / decay_s) - np.exp(-t / rise_s)) / peak


def pulse_offsets(event, *, source: str = "events") -> np.ndarray:
    """Pulse starts (s from onset) of one event row: ``k / frequency_hz`` for ``k < n_pulses``.

    Raises
    ------
    DataError
        A train (``n_pulses > 1``) without a finite positive ``frequency_hz``.
    """
    n_pulses = event.get("n_pulses", 1)
    n = max(int(n_pulses), 1) if pd.notna(n_pulses) else 1
    if n == 1:
        return np.zeros(1)
    freq = float(event.get("frequency_hz", np.nan))
    if not (np.isfinite(freq) and freq > 0):
        raise DataError(
            f"{source}: event {event.get('event_id', '?')} has n_pulses={n} but frequency_hz={freq}; "
            "the model latency needs the pulse times of each train"
        )
    return np.arange(n) / freq


def train_groups(
    events: pd.DataFrame, *, per_pulse: bool = True, source: str = "events"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group events by their pulse train (one group with a single transient when not ``per_pulse``).

    Returns
    -------
    group : ndarray
        (n_events,) index into ``offsets`` of each event's train.
    offsets : list of ndarray
        Pulse starts (s from onset) of each distinct train.
    """
    if not per_pulse:
        return np.zeros(len(events), dtype=int), [np.zeros(1)]
    offsets: list[np.ndarray] = []
    group = np.empty(len(events), dtype=int)
    for k, (_, row) in enumerate(events.iterrows()):
        off = pulse_offsets(row, source=source)
        for g, known in enumerate(offsets):
            if known.shape == off.shape and np.allclose(known, off, atol=1e-6):
                group[k] = g
                break
        else:
            offsets.append(off)
            group[k] = len(offsets) - 1
    return group, offsets


def model_templates(
    time_s: np.ndarray,
    offsets_s: np.ndarray,
    latencies_s: np.ndarray,
    *,
    rise_s: float,
    decay_s: float,
    smooth_s: float = 0.0,
) -> np.ndarray:
    """(n_latencies, n_samples) unit-amplitude response to one train at every candidate latency.

    Parameters
    ----------
    time_s : ndarray
        (n_samples,) peri-stimulus time axis.
    offsets_s : ndarray
        Pulse starts from the event onset (s).
    latencies_s : ndarray
        Candidate latencies (s).
    rise_s, decay_s : float
        Kernel time constants (s).
    smooth_s : float
        Half-width (s) of the triangle the trial average was smoothed with (one
        sample period of the traces); 0 = none.
    """
    if smooth_s > 0:
        u = np.linspace(-smooth_s, smooth_s, _N_SMOOTH)
        w = 1.0 - np.abs(u) / smooth_s
    else:
        u, w = np.zeros(1), np.ones(1)
    w = w / w.sum()
    lag = time_s[None, :, None] - latencies_s[:, None, None] - u[None, None, :]  # (L, T, U)
    out = np.zeros((latencies_s.size, time_s.size))
    for t_p in offsets_s:
        out += indicator_kernel(lag - t_p, rise_s, decay_s) @ w
    return out


def fit_model_latency(
    trial_dff: np.ndarray,
    time_s: np.ndarray,
    events: pd.DataFrame,
    sign: np.ndarray,
    *,
    rise_s: float,
    decay_s: float,
    latency_range_s: tuple[float, float] = (0.0, 0.3),
    step_s: float = 0.001,
    sample_period_s: float | None = None,
    per_pulse: bool = True,
    source: str = "events",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares latency, amplitude and R^2 of the train response model for every ROI.

    Parameters
    ----------
    trial_dff : ndarray
        (n_rois, n_trials, n_samples) per-trial dF/F re-referenced to each
        trial's baseline (NaN = masked); the stimulation trials only.
    time_s : ndarray
        (n_samples,) peri-stimulus time axis (s).
    events : DataFrame
        The ``n_trials`` events (``n_pulses``, ``frequency_hz``).
    sign : ndarray
        (n_rois,) +1 excited, -1 inhibited: the fitted amplitude must have this sign.
    rise_s, decay_s : float
        Indicator kernel time constants (s).
    latency_range_s : (float, float)
        Grid searched (s), inclusive, in steps of ``step_s``.
    sample_period_s : float or None
        Sample period of the traces the trials were interpolated from (sets the
        smoothing; default: the step of ``time_s``).
    per_pulse : bool
        True: a transient at every pulse of each event's train; False: one
        transient per event, started at its onset (cells that fire once per burst).

    Returns
    -------
    latency_s, amplitude, r2 : ndarray
        (n_rois,) each. ``r2`` = 1 - SSE / sum(y^2) over the finite samples of
        the trial average (baseline-referenced, so the no-response model is 0);
        ``latency_s`` equals ``latency_range_s[1]`` when the best shift lies at
        the end of the grid. NaN where a ROI has no finite sample or no shift
        gives an amplitude of the right sign.
    """
    x = np.asarray(trial_dff, dtype=np.float64)
    n_rois, n_trials, n_samples = x.shape
    if len(events) != n_trials:
        raise DataError(f"{source}: {len(events)} events for {n_trials} trials")
    time_s = np.asarray(time_s, dtype=float)
    if sample_period_s is None:
        sample_period_s = float(np.median(np.diff(time_s))) if time_s.size > 1 else 0.0
    lo, hi = latency_range_s
    grid = lo + step_s * np.arange(int(np.floor((hi - lo) / step_s + 1e-9)) + 1)
    group, offsets = train_groups(events, per_pulse=per_pulse, source=source)
    finite = np.isfinite(x)
    count = finite.sum(axis=1)  # (n_rois, n_samples)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(finite, x, 0.0).sum(axis=1) / count
    ok = count > 0
    y = np.where(ok, y, 0.0)
    templates = [
        model_templates(time_s, off, grid, rise_s=rise_s, decay_s=decay_s, smooth_s=sample_period_s)
        for off in offsets
    ]
    # share of each train among the finite trials at every (ROI, sample)
    weights = [
        np.where(ok, (finite & (group == g)[None, :, None]).sum(axis=1) / np.maximum(count, 1), 0.0)
        for g in range(len(offsets))
    ]
    # einsum, not BLAS matmul: the sums must not depend on how many threads BLAS uses (a pipeline run gives the
    # same figures serially, in a process pool and on Dask workers, which run BLAS on one thread)
    num = sum(
        np.einsum("rs,gs->rg", y * w, tpl) for w, tpl in zip(weights, templates, strict=True)
    )  # (n_rois, n_grid)
    den = sum(
        np.einsum("rs,gs->rg", weights[g] * weights[h], templates[g] * templates[h])
        for g in range(len(offsets))
        for h in range(len(offsets))
    )
    sign = np.where(np.asarray(sign, dtype=float) < 0, -1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where((num * sign[:, None] > 0) & (den > 0), num**2 / den, -np.inf)  # SSE reduction
    best = np.argmax(gain, axis=1)
    rows = np.arange(n_rois)
    found = np.isfinite(gain[rows, best]) & ok.any(axis=1)
    total = (y**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = num[rows, best] / den[rows, best]
        r2 = gain[rows, best] / total
    return (
        np.where(found, grid[best], np.nan),
        np.where(found, amplitude, np.nan),
        np.where(found, r2, np.nan),
    )


def check_latency_params(rise_s: float, decay_s: float, range_s: tuple[float, float], step_s: float) -> None:
    """Raise :class:`~imagingkit.errors.ParameterError` for unusable model-latency parameters."""
    if not (0 < rise_s < decay_s):
        raise ParameterError(
            f"kernel time constants need 0 < kernel_rise_s < kernel_decay_s, got {rise_s} and {decay_s}"
        )
    if len(range_s) != 2 or not (np.isfinite(range_s).all() and range_s[0] < range_s[1]):
        raise ParameterError(f"latency_range_s must be (start, end) with start < end, got {range_s}")
    if not 0 < step_s <= (range_s[1] - range_s[0]):
        raise ParameterError(
            f"latency_step_ms must be in (0, {1e3 * (range_s[1] - range_s[0]):g}], got {1e3 * step_s:g}"
        )
