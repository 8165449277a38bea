"""Small simulated optogenetic experiments for the stim tests and benchmarks.

Traces are generated at each ROI's true sub-frame sample time (frame start +
row x line period), so the tests can check what sub-frame timing buys.
Kernels and trigger traces come from :mod:`imagingkit.synth`.
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd

from imagingkit.synth.indicators import get_indicator
from imagingkit.synth.stimulation import trigger_traces


def simulate_trials(
    *,
    n_rois: int = 100,
    n_trials: int = 40,
    frame_rate_hz: float = 30.0,
    n_lines: int = 128,
    snr: float = 3.0,
    frac_excited: float = 0.3,
    frac_inhibited: float = 0.1,
    amplitude_dff: float = 0.3,
    latency_range_s: tuple[float, float] = (0.02, 0.15),
    iti_s: float = 3.0,
    first_onset_s: float = 2.0,
    sham_fraction: float = 0.0,
    indicator: str = "GCaMP6f",
    gain: float = 1.0,
    truth: types.SimpleNamespace | None = None,
    per_pulse: bool = False,
    seed: int = 0,
) -> types.SimpleNamespace:
    """A recording of dF/F traces with stimulus-locked responses.

    ``snr`` is the response peak (dF/F) over the per-frame noise SD. ``gain``
    scales every responder's amplitude (learning across sessions); pass the
    ``truth`` of an earlier session to keep the same cells, rows and latencies.
    Each event is a 45 ms burst (10 pulses at 200 Hz in the events table); it
    evokes one calcium transient, or with ``per_pulse`` one per pulse (as in
    :mod:`imagingkit.synth`; the peak of the summed train is scaled to the amplitude).
    """
    rng = np.random.default_rng(seed)
    line_period_s = 1.0 / frame_rate_hz / n_lines
    if truth is None:
        kind = rng.random(n_rois)
        responsive = np.where(kind < frac_excited, 1, np.where(kind < frac_excited + frac_inhibited, -1, 0))
        truth = types.SimpleNamespace(
            responsive=responsive,
            latency_s=rng.uniform(*latency_range_s, n_rois),
            base_amplitude=amplitude_dff * rng.uniform(0.8, 1.2, n_rois) * (responsive != 0),
            roi_y=rng.uniform(0, n_lines - 1, n_rois),
            roi_x=rng.uniform(0, n_lines - 1, n_rois),
        )
    duration_s = first_onset_s + n_trials * iti_s + 2.0
    n_frames = int(duration_s * frame_rate_hz)
    frame_times = np.arange(n_frames) / frame_rate_hz
    onsets = first_onset_s + np.arange(n_trials) * iti_s + rng.uniform(-0.3, 0.3, n_trials)
    is_sham = np.zeros(n_trials, dtype=bool)
    is_sham[rng.permutation(n_trials)[: int(round(sham_fraction * n_trials))]] = True
    events = pd.DataFrame(
        {
            "event_id": np.arange(n_trials),
            "trial": np.arange(n_trials),
            "onset_s": onsets,
            "duration_s": 0.045,
            "n_pulses": 10,
            "frequency_hz": 200.0,
            "power_mw": np.where(is_sham, 0.0, 10.0),
            "site": "thalamus",
            "condition": np.where(is_sham, "sham", "stim"),
            "pulse_duration_s": 0.004,
        }
    )
    sample_times = frame_times[None, :] + truth.roi_y[:, None] * line_period_s
    ind = get_indicator(indicator)
    pulses = np.arange(10) / 200.0 if per_pulse else np.zeros(1)

    def response(lag: np.ndarray) -> np.ndarray:
        return ind.kernel(lag[..., None] - pulses).sum(axis=-1)

    peak = response(np.arange(0.0, 1.0, 1e-4)).max()
    amplitude = truth.base_amplitude * gain
    calcium = np.zeros((n_rois, n_frames))
    for onset in onsets[~is_sham]:
        lag = sample_times - onset - truth.latency_s[:, None]
        near = (lag > -0.1) & (lag < 10 * ind.decay_s)
        calcium[near] += response(lag[near]) / peak * np.broadcast_to(amplitude[:, None], lag.shape)[near]
    calcium *= np.where(truth.responsive < 0, -1.0, 1.0)[:, None]
    noise_sd = amplitude_dff / snr
    dff = (calcium + rng.normal(0.0, noise_sd, calcium.shape)).astype(np.float32)
    return types.SimpleNamespace(
        dff=dff,
        frame_times_s=frame_times,
        sample_times_s=sample_times,
        line_period_s=line_period_s,
        n_lines=n_lines,
        frame_rate_hz=frame_rate_hz,
        events=events,
        truth=truth,
        amplitude=amplitude * np.where(truth.responsive < 0, -1, 1),
        noise_sd=noise_sd,
        duration_s=n_frames / frame_rate_hz,
    )


def simulate_triggers(sim: types.SimpleNamespace, rate_hz: float = 10_000.0, seed: int = 0) -> np.ndarray:
    """(n_samples, 3) frame_clock, stim, trial DAQ traces for a simulated recording."""
    frame_period = 1.0 / sim.frame_rate_hz
    return trigger_traces(
        sim.events,
        sim.frame_times_s,
        frame_period * 0.9,
        sim.duration_s,
        rate_hz=rate_hz,
        rng=np.random.default_rng(seed),
    )


def synth_traces(sim) -> types.SimpleNamespace:
    """ROI traces of an :mod:`imagingkit.synth` recording through its TRUE footprints.

    ``F``, ``Fneu``: :func:`imagingkit.neurons.extract_traces` with the true footprints
    as ROI weights, plain weighted means (``demix=False``; its neuropil annuli, no
    deconvolution). ``corrected``: ``F - 0.7 Fneu``. ``demixed``: the same extraction with
    ``demix=True`` (the library's least-squares demixing of overlapping footprints,
    :mod:`imagingkit.neurons.demix`), neuropil-corrected: the simulator's somata overlap
    (PSF-blurred, densely packed), so a ROI's weighted mean also holds a share of its
    neighbours' light, ``F_i = sum_j (w_i . a_j) f_j``, which demixing undoes.
    ``crosstalk``: (n_rois,) largest share of a responder's signal in each ROI's
    weighted mean (``(w_i . a_j) / (w_i . a_i)``, j responsive, j != i).
    """
    from imagingkit.neurons import extract_traces
    from imagingkit.neurons.params import ExtractionParams
    from imagingkit.neurons.roiset import RoiSet

    truth = sim.truth
    rois = RoiSet.from_masks(truth.footprints)
    plain = extract_traces(sim.recording, rois, ExtractionParams(deconvolve=False, demix=False))
    demixed = extract_traces(sim.recording, rois, ExtractionParams(deconvolve=False, demix=True))
    weights = rois.weight_matrix().toarray()
    footprints = truth.footprints.reshape(truth.n_rois, -1).astype(np.float64)
    overlap = weights @ footprints.T  # (i, j): light of cell j in ROI i's weighted mean, per unit f_j
    share = overlap / np.diag(overlap)[:, None]
    np.fill_diagonal(share, 0.0)
    return types.SimpleNamespace(
        F=plain.F,
        Fneu=plain.Fneu,
        corrected=(plain.F.astype(np.float64) - 0.7 * plain.Fneu).astype(np.float32),
        demixed=(demixed.F.astype(np.float64) - 0.7 * demixed.Fneu).astype(np.float32),
        crosstalk=(share * (truth.responsive != 0)[None, :]).max(axis=1),
        radius_px=rois.radius_px,
    )
