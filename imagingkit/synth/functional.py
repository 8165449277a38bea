"""Simulated functional two-photon recordings with ground truth.

:func:`simulate_functional` builds a field of view (somata with dark nuclei,
optional dendrite and bouton ROIs, neuropil, blood vessels), spike trains and
their calcium transients, optogenetic responses, motion, the stimulation-light
artifact and photon-counting noise, and returns the movie with a
:class:`FunctionalTruth`. The same model streams to disk chunk by chunk in
:func:`imagingkit.synth.writers.write_functional`; every frame's noise comes
from its own seed, so in-memory and streamed movies are identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from imagingkit.errors import ParameterError
from imagingkit.io.recording import Recording, derive_frame_times, from_array
from imagingkit.synth import cells, noise
from imagingkit.synth.indicators import Indicator, get_indicator, spikes_to_calcium
from imagingkit.synth.motion import (
    NO_MOTION,
    MotionSpec,
    nonrigid_basis,
    shift_frame,
    simulate_shifts,
    warp_frame,
)
from imagingkit.synth.stimulation import (
    TRIGGER_CHANNELS,
    StimProtocol,
    artifact_lines,
    make_events,
    pulse_table,
    trigger_traces,
)


@dataclasses.dataclass(frozen=True)
class FunctionalSpec:
    """Every parameter of a functional simulation (see :func:`simulate_functional`).

    Photon budget and detector defaults are calibrated on the real CA1 movie in
    ``realdata/sima_example`` (benchmarks/realism.py): ~1-3 photons per pixel
    per frame, ~600 ADU per photon with a PMT pulse-height spread (CV 0.6),
    offset 80 ADU, read noise 40 ADU.
    """

    n_frames: int = 1000
    shape_yx: tuple[int, int] = (128, 128)
    n_cells: int = 30
    frame_rate_hz: float = 30.0
    indicator: str | Indicator = "GCaMP6f"
    n_planes: int = 1
    n_channels: int = 1
    seed: int = 0
    snr: float | None = None
    motion: MotionSpec | None = None
    stim: StimProtocol | None = None
    pixel_size_um: float = 1.0
    z_step_um: float = 30.0
    line_period_s: float | None = None
    bidirectional: bool = True
    cell_radius_um: tuple[float, float] = (4.0, 7.0)
    n_dendrites: int = 0
    n_boutons: int = 0
    spike_rate_hz: float = 0.5
    burst_probability: float = 0.1
    psf_sigma_um: float = 0.6
    soma_photons: float = 3.0
    background_photons: float = 1.2
    neuropil_dff: float = 0.15
    n_vessels: int = 2
    photon_gain_adu: float = 600.0
    offset_adu: float = 80.0
    read_noise_adu: float = 40.0
    excess_noise_cv: float = 0.6
    dtype: str = "uint16"
    bleach_time_constant_s: float = 3000.0
    drift_amplitude: float = 0.03
    excited_fraction: float = 0.3
    inhibited_fraction: float = 0.1
    response_amplitude_dff: float = 0.6
    response_latency_s: tuple[float, float] = (0.01, 0.06)
    response_cv: float = 0.3
    response_failure_probability: float = 0.1
    artifact_photons_per_mw: float = 4.0
    trigger_rate_hz: float = 10_000.0
    trigger_noise_v: float = 0.01
    session_index: int = 0
    learning_gain: float = 1.0
    cell_seed: int | None = None

    def __post_init__(self):
        if self.n_frames < 1 or self.n_planes < 1 or self.n_channels < 1:
            raise ParameterError("n_frames, n_planes and n_channels must be >= 1")
        if len(self.shape_yx) != 2 or min(self.shape_yx) < 16:
            raise ParameterError(f"shape_yx must be two sizes >= 16, got {self.shape_yx}")
        if self.frame_rate_hz <= 0 or self.pixel_size_um <= 0:
            raise ParameterError("frame_rate_hz and pixel_size_um must be positive")
        if self.dtype not in ("uint16", "int16"):
            raise ParameterError(f"dtype must be 'uint16' or 'int16', got {self.dtype!r}")
        if self.n_cells < 0 or self.n_dendrites < 0 or self.n_boutons < 0:
            raise ParameterError("n_cells, n_dendrites and n_boutons must be >= 0")
        if self.excited_fraction + self.inhibited_fraction > 1:
            raise ParameterError("excited_fraction + inhibited_fraction must be <= 1")
        if (
            self.line_period_s is not None
            and self.line_period_s * self.shape_yx[0] > 1.0 / self.frame_rate_hz
        ):
            raise ParameterError(
                f"line_period_s {self.line_period_s} x {self.shape_yx[0]} lines exceeds the frame period "
                f"{1.0 / self.frame_rate_hz:.4g} s"
            )
        get_indicator(self.indicator)

    @property
    def volume_rate_hz(self) -> float:
        return self.frame_rate_hz / self.n_planes

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.volume_rate_hz

    @property
    def line_period(self) -> float:
        """Line period (s): given, or 95 % of the frame period spread over the lines."""
        if self.line_period_s is not None:
            return float(self.line_period_s)
        return 0.95 / (self.frame_rate_hz * self.shape_yx[0])


@dataclasses.dataclass
class FunctionalTruth:
    """Ground truth of a functional simulation (architecture.md, section synth).

    ROI arrays are indexed by ``roi_id`` (somata first, then dendrites, then
    boutons). Footprints are stored sparse (``footprints_sparse``, n_rois x Y*X);
    ``footprints`` gives the dense (n_rois, Y, X) array.
    """

    footprints_sparse: sparse.csr_matrix
    shape_yx: tuple[int, int]
    roi_plane: np.ndarray
    labels_per_plane: np.ndarray
    centroids_yx: np.ndarray
    roi_kind: np.ndarray
    baseline_photons: np.ndarray
    spike_times_s: list
    spike_rates_hz: np.ndarray
    calcium: np.ndarray
    roi_time_offset_s: np.ndarray
    frame_times_s: np.ndarray
    line_period_s: float
    shifts_yx: np.ndarray
    jump_frames: np.ndarray
    bad_frames: np.ndarray
    corrupt_kind: np.ndarray
    nonrigid_modes: np.ndarray | None
    nonrigid_weights: np.ndarray | None
    events: pd.DataFrame
    pulses: pd.DataFrame
    responsive: np.ndarray
    latency_s: np.ndarray
    response_amplitude: np.ndarray
    trial_amplitudes: np.ndarray
    artifact_mask: np.ndarray
    artifact_power: np.ndarray
    triggers: np.ndarray
    trigger_rate_hz: float
    trigger_channels: tuple
    neuropil: np.ndarray
    drift: np.ndarray
    reference_photons: np.ndarray
    photon_gain_adu: float
    offset_adu: float
    read_noise_adu: float
    excess_noise_cv: float
    session_index: int
    learning_factor: float
    indicator: str
    spec: FunctionalSpec

    @property
    def n_rois(self) -> int:
        return int(self.centroids_yx.shape[0])

    @property
    def footprints(self) -> np.ndarray:
        """(n_rois, Y, X) float32 footprint weights (peak 1)."""
        return np.asarray(self.footprints_sparse.todense(), dtype=np.float32).reshape(-1, *self.shape_yx)

    @property
    def labels(self) -> np.ndarray:
        """(Y, X) int32 label image of plane 0: ``roi_id + 1``, 0 = background."""
        return self.labels_per_plane[0]

    @property
    def mean_image(self) -> np.ndarray:
        """(Z, C, Y, X) float32 expected mean image in ADU at rest (no motion, no activity)."""
        return self.offset_adu + self.photon_gain_adu * self.reference_photons

    def displacement_field(self, t: int) -> np.ndarray:
        """(2, Y, X) total displacement of frame ``t`` (rigid + non-rigid), architecture sign convention.

        Defined on the frame grid: ``frame(y, x) = reference(y - d[0], x - d[1])``.
        """
        field = np.zeros((2, *self.shape_yx), dtype=np.float32)
        field += self.shifts_yx[t].astype(np.float32)[:, None, None]
        if self.nonrigid_modes is not None:
            field += np.tensordot(self.nonrigid_weights[t], self.nonrigid_modes, axes=1)
        return field

    def roi_sample_times_s(self) -> np.ndarray:
        """(n_rois, T) time each ROI is scanned: frame start of its plane + centroid row x line period."""
        starts = self.frame_times_s[:, self.roi_plane].T
        return starts + self.roi_time_offset_s[:, None]

    def roi_table(self) -> pd.DataFrame:
        """One row per ROI: roi_id, kind, plane, y, x, npix, rate, responsive, latency, amplitude."""
        return pd.DataFrame(
            {
                "roi_id": np.arange(self.n_rois),
                "kind": self.roi_kind,
                "plane": self.roi_plane,
                "y": self.centroids_yx[:, 0],
                "x": self.centroids_yx[:, 1],
                "npix": np.diff(self.footprints_sparse.indptr),
                "baseline_photons": self.baseline_photons,
                "spike_rate_hz": self.spike_rates_hz,
                "n_spikes": [len(s) for s in self.spike_times_s],
                "responsive": self.responsive,
                "latency_s": self.latency_s,
                "response_amplitude": self.response_amplitude,
                "time_offset_s": self.roi_time_offset_s,
            }
        )


@dataclasses.dataclass
class FunctionalSim:
    """A simulated functional recording: movie, recording view and truth."""

    movie: np.ndarray
    truth: FunctionalTruth
    spec: FunctionalSpec

    @property
    def recording(self) -> Recording:
        """The movie as a :class:`Recording` with its frame rate, pixel size and line period."""
        return recording_from_movie(self.movie, self.spec)


def recording_from_movie(movie: np.ndarray, spec: FunctionalSpec) -> Recording:
    """Wrap a (T, Z, C, Y, X) movie as a Recording with the simulation's metadata."""
    return from_array(
        movie,
        "TZCYX",
        frame_rate_hz=spec.frame_rate_hz,
        volume_rate_hz=spec.volume_rate_hz,
        pixel_size_um=(spec.pixel_size_um, spec.pixel_size_um),
        z_step_um=spec.z_step_um if spec.n_planes > 1 else None,
        line_period_s=spec.line_period,
        bidirectional=spec.bidirectional,
    )


# ----------------------------------------------------------------------------- model
class FunctionalModel:
    """Everything needed to render any frame of a simulation; built once, rendered in chunks."""

    def __init__(self, spec: FunctionalSpec):
        self.spec = spec
        s = spec
        self.indicator = get_indicator(s.indicator)
        cell_seed = s.seed if s.cell_seed is None else s.cell_seed
        layout_rng = np.random.default_rng(np.random.SeedSequence([cell_seed, 11]))
        self.activity_seed = np.random.SeedSequence([s.seed, s.session_index, 22])
        activity_rng = np.random.default_rng(self.activity_seed)
        self.noise_seed = (s.seed, s.session_index)

        ny, nx = s.shape_yx
        motion = s.motion if s.motion is not None else NO_MOTION
        self.motion = motion
        self.pad = (
            int(np.ceil(motion.max_shift_px + 3 * motion.nonrigid_amplitude_px + motion.jump_size_px * 0)) + 3
        )
        self.padded_shape = (ny + 2 * self.pad, nx + 2 * self.pad)
        self.frame_times = derive_frame_times(s.n_frames, s.n_planes, s.frame_rate_hz, s.volume_rate_hz)
        self.line_period = s.line_period

        self._build_layout(layout_rng)
        self._build_activity(activity_rng)
        self._build_motion(activity_rng)
        self._build_stimulation(activity_rng)

    # -- layout --------------------------------------------------------------------
    def _build_layout(self, rng: np.random.Generator) -> None:
        s = self.spec
        ny, nx = s.shape_yx
        pad = self.pad
        psf_px = s.psf_sigma_um / s.pixel_size_um
        fps, kinds, centres, f0 = [], [], [], []
        r_lo, r_hi = (r / s.pixel_size_um for r in s.cell_radius_um)
        soma_photons = s.soma_photons
        if s.snr is not None:
            # snr = peak of a 1-spike transient / noise sd in the mean trace of a median soma
            n_pix = np.pi * ((r_lo + r_hi) / 2) ** 2
            soma_photons = (s.snr / self.indicator.peak_dff_per_spike) ** 2 / n_pix
        for _ in range(s.n_cells):
            c = np.array([rng.uniform(2, ny - 2), rng.uniform(2, nx - 2)])
            r = rng.uniform(r_lo, r_hi)
            radii = (r * rng.uniform(0.8, 1.0), r * rng.uniform(1.0, 1.25))
            fp = cells.soma_footprint(
                self.padded_shape,
                c + pad,
                radii,
                rng.uniform(0, np.pi),
                rng.uniform(0.45, 0.65),
                rng.uniform(0.25, 0.5),
                psf_px,
            )
            fps.append(fp), kinds.append("soma"), centres.append(c)
            f0.append(soma_photons * rng.lognormal(0.0, 0.35))
        for _ in range(s.n_dendrites):
            start = np.array([rng.uniform(0, ny), rng.uniform(0, nx)])
            length = rng.uniform(20, 60) / s.pixel_size_um
            fp = cells.dendrite_footprint(
                self.padded_shape,
                start + pad,
                length,
                rng.uniform(0, 2 * np.pi),
                1.5 / s.pixel_size_um,
                rng.uniform(-1.5, 1.5),
                psf_px,
            )
            fps.append(fp), kinds.append("dendrite"), centres.append(None)
            f0.append(0.8 * soma_photons * rng.lognormal(0.0, 0.3))
        for _ in range(s.n_boutons):
            c = np.array([rng.uniform(1, ny - 1), rng.uniform(1, nx - 1)])
            fp = cells.bouton_footprint(
                self.padded_shape, c + pad, rng.uniform(0.8, 1.5) / s.pixel_size_um, psf_px
            )
            fps.append(fp), kinds.append("bouton"), centres.append(c)
            f0.append(1.2 * soma_photons * rng.lognormal(0.0, 0.3))
        n = len(fps)
        self.roi_kind = np.array(kinds, dtype=object).astype(str) if n else np.zeros(0, dtype="<U8")
        self.roi_plane = rng.integers(0, s.n_planes, n) if s.n_planes > 1 else np.zeros(n, dtype=int)
        self.f0 = np.asarray(f0, dtype=np.float32)
        self.fp_padded = cells.to_sparse(fps, self.padded_shape)
        self.fp_padded_t = self.fp_padded.T.tocsr()  # (pixels, n_rois) for per-frame products
        self.fp_truth = cells.to_sparse([p.shifted(-pad, -pad) for p in fps], (ny, nx))
        cent = np.zeros((n, 2))
        for k, p in enumerate(fps):
            cent[k] = (
                p.centroid() - pad if p.values.size else (centres[k] if centres[k] is not None else np.nan)
            )
        self.centroids = cent
        self.labels = np.stack(
            [
                cells.label_image(self.fp_truth, np.flatnonzero(self.roi_plane == z), (ny, nx))
                for z in range(s.n_planes)
            ]
        )

        # background per plane and channel: neuropil field with vessels; neuropil modes
        self.np_base = np.zeros((s.n_planes, *self.padded_shape), dtype=np.float32)
        self.np_modes = []
        n_modes = 4
        for z in range(s.n_planes):
            field = cells.smooth_positive_field(self.padded_shape, 25.0 / s.pixel_size_um, rng, 0.3)
            vessels = cells.vessel_mask(self.padded_shape, s.n_vessels, 8.0 / s.pixel_size_um, rng)
            self.np_base[z] = s.background_photons * field * (1.0 - 0.8 * vessels)
            modes = (
                np.stack(
                    [
                        cells.smooth_positive_field(self.padded_shape, 40.0 / s.pixel_size_um, rng, 0.5)
                        for _ in range(n_modes)
                    ]
                )
                / n_modes
            )
            self.np_modes.append((modes * self.np_base[z][None]).reshape(n_modes, -1).astype(np.float32))
        self.static = np.zeros((s.n_planes, s.n_channels, *self.padded_shape), dtype=np.float32)
        for z in range(s.n_planes):
            idx = np.flatnonzero(self.roi_plane == z)
            soma_img = (self.fp_padded_t @ np.where(self.roi_plane == z, self.f0, 0)).reshape(
                self.padded_shape
            )
            self.static[z, 0] = self.np_base[z] + soma_img
            for c in range(1, s.n_channels):
                # structural channel: every soma visible without dynamics, dimmer neuropil
                red = rng.lognormal(0.0, 0.3, idx.size).astype(np.float32) * s.soma_photons
                red_all = np.zeros(self.f0.size, dtype=np.float32)
                red_all[idx] = red
                red_img = (self.fp_padded_t @ red_all).reshape(self.padded_shape)
                self.static[z, c] = 0.5 * self.np_base[z] + red_img

        # responsive ROIs (somata only), fixed across sessions
        self.responsive = np.zeros(n, dtype=int)
        soma_idx = np.flatnonzero(self.roi_kind == "soma")
        order = rng.permutation(soma_idx)
        n_exc = int(round(s.excited_fraction * soma_idx.size))
        n_inh = int(round(s.inhibited_fraction * soma_idx.size))
        self.responsive[order[:n_exc]] = 1
        self.responsive[order[n_exc : n_exc + n_inh]] = -1
        self.latency = np.where(self.responsive != 0, rng.uniform(*s.response_latency_s, n), np.nan)
        base_amp = s.response_amplitude_dff * rng.lognormal(0.0, 0.3, n)
        base_amp = np.where(self.responsive == -1, 0.4 * base_amp, base_amp)
        self.base_amplitude = np.where(self.responsive != 0, self.responsive * base_amp, 0.0)
        self.rate_factor = rng.lognormal(-0.32, 0.8, n)  # mean 1

    # -- activity ------------------------------------------------------------------
    def _build_activity(self, rng: np.random.Generator) -> None:
        s = self.spec
        n = self.roi_kind.size
        duration = s.duration_s
        self.time_offset = self.centroids[:, 0] * self.line_period
        self.sample_times = self.frame_times[:, self.roi_plane].T + self.time_offset[:, None]  # (n, T)
        mean_extra = 2.0
        event_rate = self.rate_factor * s.spike_rate_hz / (1.0 + s.burst_probability * mean_extra)
        self.spikes = []
        calcium = np.zeros((n, s.n_frames), dtype=np.float64)
        for k in range(n):
            n_ev = rng.poisson(event_rate[k] * duration)
            times = rng.uniform(0, duration, n_ev)
            burst = rng.random(n_ev) < s.burst_probability
            extra = [t + np.cumsum(rng.uniform(0.008, 0.02, rng.integers(1, 4))) for t in times[burst]]
            allspk = np.sort(np.concatenate([times, *extra])) if extra else np.sort(times)
            allspk = allspk[allspk < duration]
            self.spikes.append(allspk)
            calcium[k] = spikes_to_calcium(allspk, self.sample_times[k], self.indicator)
        self.spontaneous = calcium
        self.spike_rates = np.array([len(sp) / duration for sp in self.spikes]) if n else np.zeros(0)
        # neuropil: slow shared activity + population calcium
        t = np.arange(s.n_frames) / s.volume_rate_hz
        pop = calcium.mean(axis=0) if n else np.zeros(s.n_frames)
        pop = pop / max(pop.std(), 1e-9)
        n_modes = self.np_modes[0].shape[0]
        slow = np.stack(
            [self._slow_noise(rng, s.n_frames, 2.0 * s.volume_rate_hz) for _ in range(n_modes)], axis=1
        )
        self.neuropil = (s.neuropil_dff * (0.6 * pop[:, None] + 0.8 * slow)).astype(np.float32)  # (T, K)
        wander = self._slow_noise(rng, s.n_frames, 20.0 * s.volume_rate_hz)
        self.drift = (np.exp(-t / s.bleach_time_constant_s) * (1.0 + s.drift_amplitude * wander)).astype(
            np.float32
        )

    @staticmethod
    def _slow_noise(rng: np.random.Generator, n: int, scale_frames: float) -> np.ndarray:
        from scipy.ndimage import gaussian_filter1d

        pad = int(4 * scale_frames) + 1
        x = gaussian_filter1d(rng.normal(size=n + 2 * pad), scale_frames)[pad : pad + n]
        return x * np.sqrt(2.0 * np.sqrt(np.pi) * scale_frames)  # unit variance for a stationary process

    def _build_motion(self, rng: np.random.Generator) -> None:
        s, m = self.spec, self.motion
        self.shifts, self.jumps = simulate_shifts(s.n_frames, m, rng)
        if m.nonrigid_amplitude_px > 0:
            self.nr_modes, self.nr_weights = nonrigid_basis(s.n_frames, s.shape_yx, m, rng)
        else:
            self.nr_modes = self.nr_weights = None
        n_bad = int(round(m.corrupt_frame_fraction * s.n_frames))
        self.bad = np.zeros(s.n_frames, dtype=bool)
        self.corrupt_kind = np.full(s.n_frames, "", dtype="<U9")
        if n_bad:
            frames = rng.choice(s.n_frames, n_bad, replace=False)
            self.bad[frames] = True
            self.corrupt_kind[frames] = rng.choice(["dropout", "tear", "flash"], n_bad)
        self.tear_params = {
            int(t): (
                int(rng.integers(s.shape_yx[0] // 4, 3 * s.shape_yx[0] // 4)),
                float(rng.uniform(8, 25) * rng.choice([-1, 1])),
            )
            for t in np.flatnonzero(self.bad)
        }

    def _build_stimulation(self, rng: np.random.Generator) -> None:
        s = self.spec
        n = self.roi_kind.size
        self.learning_factor = float(s.learning_gain)
        if s.stim is None:
            self.events = make_events(StimProtocol(), 0.0, rng)
            self.pulses = pulse_table(self.events)
            self.trial_amp = np.zeros((n, 0))
        else:
            self.events = make_events(s.stim, s.duration_s, rng)
            self.pulses = pulse_table(self.events)
            self.trial_amp = self._responses(rng)
        self.calcium = (
            np.clip(self.spontaneous + self.evoked, -0.9, None).astype(np.float32)
            if s.stim
            else self.spontaneous.astype(np.float32)
        )
        self.art = artifact_lines(self.pulses, self.frame_times, self.line_period, s.shape_yx[0])
        max_power = max(s.stim.power_levels_mw) if s.stim else 1.0
        self.triggers = trigger_traces(
            self.events,
            self.frame_times,
            s.shape_yx[0] * self.line_period,
            s.duration_s,
            s.trigger_rate_hz,
            max_power_mw=max_power,
            max_command_v=s.stim.max_command_v if s.stim else 5.0,
            noise_v=s.trigger_noise_v,
            rng=rng,
        )

    def _responses(self, rng: np.random.Generator) -> np.ndarray:
        """Add evoked transients to ``self.evoked``; return the realised peak per ROI and event."""
        s = self.spec
        n, n_ev = self.roi_kind.size, len(self.events)
        self.evoked = np.zeros((n, s.n_frames))
        trial_amp = np.zeros((n, n_ev))
        ind = self.indicator
        stim = s.stim
        pulse_offsets = np.arange(stim.n_pulses) / stim.frequency_hz
        fine = np.arange(0, stim.train_duration_s + 10 * ind.decay_s, 1e-3)
        norm = (ind.kernel(fine[:, None] - pulse_offsets[None]).sum(1)).max() / ind.peak_dff_per_spike
        max_power = max(stim.power_levels_mw)
        window_s = stim.train_duration_s + 0.1 + 8 * ind.decay_s
        resp = np.flatnonzero(self.responsive != 0)
        shape_k = 1.0 / max(s.response_cv, 1e-3) ** 2
        for e, ev in enumerate(self.events.itertuples(index=False)):
            if ev.condition == "sham" or ev.power_mw <= 0:
                continue
            f0 = int(np.searchsorted(self.frame_times[:, 0], ev.onset_s - 1.0 / s.volume_rate_hz))
            f1 = int(np.searchsorted(self.frame_times[:, 0], ev.onset_s + window_s))
            if f1 <= f0:
                continue
            gain = rng.gamma(shape_k, 1.0 / shape_k, resp.size) if s.response_cv > 0 else np.ones(resp.size)
            gain *= rng.random(resp.size) >= s.response_failure_probability
            amp = self.base_amplitude[resp] * self.learning_factor * (ev.power_mw / max_power) * gain
            trel = self.sample_times[resp, f0:f1] - ev.onset_s - self.latency[resp, None]
            shape = (
                ind.kernel(trel[:, :, None] - pulse_offsets[None, None]).sum(-1)
                / ind.peak_dff_per_spike
                / norm
            )
            self.evoked[resp, f0:f1] += amp[:, None] * shape
            trial_amp[resp, e] = amp
        return trial_amp

    # -- rendering -----------------------------------------------------------------
    def render(self, t0: int, t1: int, n_threads: int = 1) -> np.ndarray:
        """Frames ``t0:t1`` as (n, Z, C, Y, X) in the output dtype."""
        s = self.spec
        ny, nx = s.shape_yx
        out = np.empty((t1 - t0, s.n_planes, s.n_channels, ny, nx), dtype=s.dtype)
        amplitude = (self.f0[:, None] * self.calcium[:, t0:t1]).astype(np.float32)  # (n_rois, n) photons

        def one(i: int) -> None:
            t = t0 + i
            for z in range(s.n_planes):
                on_plane = self.roi_plane == z
                for c in range(s.n_channels):
                    scene = self.static[z, c]
                    if c == 0:
                        dyn = self.fp_padded_t @ np.where(on_plane, amplitude[:, i], 0.0).astype(np.float32)
                        for weight, mode in zip(self.neuropil[t], self.np_modes[z], strict=True):
                            dyn += weight * mode  # K axpy passes: much faster than a (K,)@(K, P) gemv
                        scene = scene + dyn.reshape(self.padded_shape)
                    out[i, z, c] = self._frame(t, z, c, scene)

        if n_threads > 1:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(one, range(t1 - t0)))
        else:
            for i in range(t1 - t0):
                one(i)
        return out

    def _artifact_scale(self, c: int) -> float:
        return self.spec.artifact_photons_per_mw * (1.0 if c == 0 else 0.3)

    @property
    def _artifact_profile(self) -> np.ndarray:
        return (0.8 + 0.4 * np.linspace(0, 1, self.spec.shape_yx[1])).astype(np.float32)

    def _frame(self, t: int, z: int, c: int, scene: np.ndarray) -> np.ndarray:
        s = self.spec
        ny, nx = s.shape_yx
        gain = float(self.drift[t])
        if self.nr_modes is not None:
            field = np.tensordot(self.nr_weights[t], self.nr_modes, axes=1)
            frame = warp_frame(scene, self.pad, self.shifts[t], field, s.shape_yx, gain)
        else:
            frame = shift_frame(scene, self.pad, self.shifts[t], s.shape_yx, self.motion.interpolation, gain)
        lines = self.art[t, z]
        if lines.any():
            art = (lines * self._artifact_scale(c)).astype(np.float32)
            frame = frame + art[:, None] * self._artifact_profile[None, :]
        kind = self.corrupt_kind[t]
        if kind == "dropout":
            frame = frame * 0.05
        elif kind == "flash":
            frame = frame + 30.0
        elif kind == "tear":
            row, dx = self.tear_params[t]
            frame = frame.copy()
            frame[row:] = np.roll(frame[row:], int(round(dx)), axis=1)
        key = noise.frame_key(*self.noise_seed, t, z, c, 33)
        return noise.photons_to_adu(
            frame, key, s.photon_gain_adu, s.offset_adu, s.read_noise_adu, s.excess_noise_cv, s.dtype
        )

    def iter_chunks(self, chunk_frames: int = 64, n_threads: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, block)`` with blocks of (n, Z, C, Y, X) frames, bounded memory."""
        for t0 in range(0, self.spec.n_frames, chunk_frames):
            yield t0, self.render(t0, min(t0 + chunk_frames, self.spec.n_frames), n_threads)

    # -- truth -----------------------------------------------------------------------
    def truth(self) -> FunctionalTruth:
        s = self.spec
        art_mask = self.art > 0
        mask = art_mask[:, 0] if s.n_planes == 1 else art_mask
        ny, nx = s.shape_yx
        p = self.pad
        ref = self.static[:, :, p : p + ny, p : p + nx].copy()
        full_art = art_mask.all(axis=2).any(axis=1)
        return FunctionalTruth(
            footprints_sparse=self.fp_truth,
            shape_yx=tuple(s.shape_yx),
            roi_plane=self.roi_plane,
            labels_per_plane=self.labels,
            centroids_yx=self.centroids,
            roi_kind=self.roi_kind,
            baseline_photons=self.f0,
            spike_times_s=self.spikes,
            spike_rates_hz=self.spike_rates,
            calcium=self.calcium,
            roi_time_offset_s=self.time_offset,
            frame_times_s=self.frame_times,
            line_period_s=self.line_period,
            shifts_yx=self.shifts,
            jump_frames=self.jumps,
            bad_frames=self.bad | full_art,
            corrupt_kind=self.corrupt_kind,
            nonrigid_modes=self.nr_modes,
            nonrigid_weights=self.nr_weights,
            events=self.events,
            pulses=self.pulses,
            responsive=self.responsive,
            latency_s=self.latency,
            response_amplitude=self.base_amplitude * self.learning_factor,
            trial_amplitudes=self.trial_amp,
            artifact_mask=mask,
            artifact_power=self.art,
            triggers=self.triggers,
            trigger_rate_hz=float(s.trigger_rate_hz),
            trigger_channels=TRIGGER_CHANNELS,
            neuropil=self.neuropil,
            drift=self.drift,
            reference_photons=ref,
            photon_gain_adu=s.photon_gain_adu,
            offset_adu=s.offset_adu,
            read_noise_adu=s.read_noise_adu,
            excess_noise_cv=s.excess_noise_cv,
            session_index=s.session_index,
            learning_factor=self.learning_factor,
            indicator=self.indicator.name,
            spec=s,
        )


# ----------------------------------------------------------------------------- API
def simulate_functional(
    n_frames: int = 1000,
    shape_yx: tuple[int, int] = (128, 128),
    n_cells: int = 30,
    frame_rate_hz: float = 30.0,
    indicator: str | Indicator = "GCaMP6f",
    n_planes: int = 1,
    n_channels: int = 1,
    seed: int = 0,
    snr: float | None = None,
    motion: MotionSpec | None = None,
    stim: StimProtocol | None = None,
    n_threads: int = 1,
    **options: Any,
) -> FunctionalSim:
    """Simulate a functional two-photon recording with its ground truth.

    Parameters
    ----------
    n_frames : int
        Time points (volumes when ``n_planes > 1``).
    shape_yx : (int, int)
        Frame size in pixels.
    n_cells : int
        Somata (ROIs 0..n_cells-1); add ``n_dendrites=``/``n_boutons=`` for small ROIs.
    frame_rate_hz : float
        Single-plane frame rate; the volume rate is ``frame_rate_hz / n_planes``.
    indicator : str or Indicator
        "GCaMP6s", "GCaMP6f", "GCaMP8m" or a custom :class:`Indicator`.
    n_planes, n_channels : int
        Planes (cells are spread over them) and channels (channel 0 is the
        calcium channel, further channels a static structural label).
    seed : int
        Seeds everything; the cell layout can be fixed separately with ``cell_seed=``.
    snr : float or None
        Peak of a one-spike transient over the noise s.d. of a median soma's
        mean trace; sets the soma brightness (else ``soma_photons=`` is used).
    motion : MotionSpec or None
        Brain motion; ``None`` = no motion.
    stim : StimProtocol or None
        Optogenetic stimulation; ``None`` = none.
    n_threads : int
        Threads used to render frames.
    **options
        Any other :class:`FunctionalSpec` field (``pixel_size_um``,
        ``line_period_s``, ``bidirectional``, ``spike_rate_hz``, ``photon_gain_adu``,
        ``offset_adu``, ``read_noise_adu``, ``dtype``, ``learning_gain``,
        ``session_index``, ``excited_fraction``, ``response_amplitude_dff`` ...).

    Returns
    -------
    FunctionalSim
        ``.movie`` (T, Z, C, Y, X), ``.recording``, ``.truth``.
    """
    spec = make_spec(
        n_frames=n_frames,
        shape_yx=tuple(shape_yx),
        n_cells=n_cells,
        frame_rate_hz=frame_rate_hz,
        indicator=indicator,
        n_planes=n_planes,
        n_channels=n_channels,
        seed=seed,
        snr=snr,
        motion=motion,
        stim=stim,
        **options,
    )
    model = FunctionalModel(spec)
    movie = np.empty((spec.n_frames, spec.n_planes, spec.n_channels, *spec.shape_yx), dtype=spec.dtype)
    for t0, block in model.iter_chunks(64, n_threads):
        movie[t0 : t0 + block.shape[0]] = block
    return FunctionalSim(movie=movie, truth=model.truth(), spec=spec)


def make_spec(**kwargs: Any) -> FunctionalSpec:
    """Build a :class:`FunctionalSpec`, naming unknown options in a :class:`ParameterError`."""
    names = {f.name for f in dataclasses.fields(FunctionalSpec)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ParameterError(f"unknown simulate_functional option(s) {unknown}; known: {sorted(names)}")
    return FunctionalSpec(**kwargs)


def simulate_functional_sessions(
    n_sessions: int = 4,
    gain_per_session: float = 1.3,
    seed: int = 0,
    max_gain: float | None = None,
    **kwargs: Any,
) -> list[FunctionalSim]:
    """Several sessions of the same cells with responses growing by a known factor.

    Session ``s`` has ``learning_gain = gain_per_session ** s`` (capped at
    ``max_gain``), the same cell layout, responsive set, latencies and base
    amplitudes (``cell_seed = seed``), and new spikes, motion and noise.
    """
    if n_sessions < 1:
        raise ParameterError(f"n_sessions must be >= 1, got {n_sessions}")
    sims = []
    for s in range(n_sessions):
        gain = gain_per_session**s
        if max_gain is not None:
            gain = min(gain, max_gain)
        sims.append(
            simulate_functional(seed=seed, cell_seed=seed, session_index=s, learning_gain=gain, **kwargs)
        )
    return sims
