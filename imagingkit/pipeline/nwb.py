"""NWB export of a run's session (the ``nwb`` extra: pynwb).

One NWB file per session holds: the imaging plane and a two-photon series that
*links* to the registered movie on disk (``external_file``, never copied), ROIs
as a plane segmentation, fluorescence, neuropil, dF/F and inferred spikes,
optogenetic stimulation (a stimulus site and the events as a time-intervals
table with power, pulses and condition), and the spine and track tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from imagingkit._atomic import atomic_path
from imagingkit.errors import DataError, MissingFileError, ParameterError


def _import_pynwb():
    try:
        import pynwb
    except ImportError as exc:
        raise ParameterError("NWB export needs the 'nwb' extra: pip install 'imagingkit[nwb]'") from exc
    return pynwb


def session_dirs(run_dir: Path) -> dict[str, Path]:
    """Session folders of a run (``ANIMAL/SESSION``) from its ``config.json``."""
    config = run_dir / "config.json"
    if not config.is_file():
        raise MissingFileError(f"{run_dir}: not an imagingkit run folder (no config.json)")
    record = json.loads(config.read_text())
    return {f"{s['animal']}/{s['id']}": run_dir / s["animal"] / s["id"] for s in record["sessions"]}


def _subject(run_dir: Path, animal: str) -> dict:
    """The ``[subjects.ANIMAL]`` table of the run's config (age, sex, species, ...), or {}."""
    record = json.loads((run_dir / "config.json").read_text())
    return dict(record.get("subjects", {}).get(animal, {}))


def _session_record(run_dir: Path, key: str) -> dict:
    record = json.loads((run_dir / "config.json").read_text())
    for session in record["sessions"]:
        if f"{session['animal']}/{session['id']}" == key:
            return session
    raise ParameterError(f"{run_dir}: no session {key!r}; sessions: {sorted(session_dirs(run_dir))}")


def export_session_nwb(
    run_dir: str | Path,
    session_key: str,
    out_file: str | Path,
    species: str = "Mus musculus",
    location: str = "Primary motor area",
    indicator: str = "GCaMP",
    excitation_wavelength_nm: float = 920.0,
    stim_wavelength_nm: float = 470.0,
    session_start_time: dt.datetime | None = None,
) -> Path:
    """Write one session of a run as an NWB file.

    Parameters
    ----------
    run_dir : path
        A folder written by :func:`imagingkit.pipeline.runner.run_experiment`.
    session_key : str
        ``ANIMAL/SESSION``.
    out_file : path
        The ``.nwb`` file to write (atomically).
    species, indicator : str
        Subject species (unless the config's ``[subjects.ANIMAL]`` says) and calcium indicator.
    location : str
        Imaged and stimulated area, as a term of the Allen Mouse Brain CCF.
    excitation_wavelength_nm, stim_wavelength_nm : float
        Two-photon excitation and optogenetic light wavelengths.
    session_start_time : datetime, optional
        Defaults to the time the registered movie was written.
    """
    pynwb = _import_pynwb()
    from pynwb.file import Subject
    from pynwb.ophys import (
        DfOverF,
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
        RoiResponseSeries,
        TwoPhotonSeries,
    )

    run_dir = Path(run_dir)
    session = _session_record(run_dir, session_key)
    sdir = run_dir / session_key
    reg, neu, stim, spines = sdir / "register", sdir / "neurons", sdir / "stim", sdir / "spines"
    if not (reg / "registered.tif").is_file() and not (spines / "spines.csv").is_file():
        raise DataError(f"{sdir}: session has neither a registered movie nor spines to export")
    start = session_start_time or dt.datetime.fromtimestamp(os.path.getmtime(sdir), tz=dt.UTC).replace(
        microsecond=0
    )
    nwbfile = pynwb.NWBFile(
        session_description=f"imagingkit session {session_key} at {session['time_h']:g} h of practice",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"imagingkit:{run_dir.resolve()}:{session_key}")),
        session_start_time=start,
        session_id=session["id"],
        experiment_description="Two-photon imaging with optogenetic stimulation during motor learning",
        source_script="imagingkit",
        source_script_file_name="imagingkit/pipeline/nwb.py",
        keywords=["two-photon imaging", "optogenetics", "dendritic spines", "motor learning"],
    )
    subject = {
        "species": species,
        "sex": "U",
        "description": "imaged animal",
        **_subject(run_dir, session["animal"]),
    }
    nwbfile.subject = Subject(subject_id=session["animal"], **subject)
    if (reg / "registered.tif").is_file():
        device = nwbfile.create_device(name="Microscope", description="two-photon microscope")
        optical_channel = OpticalChannel(name="green", description="green PMT", emission_lambda=520.0)
        info = _recording_info(reg)
        rate = _frame_rate(info, session)
        pixel = (
            float(np.mean(info["pixel_size_um"]))
            if info.get("pixel_size_um")
            else session.get("pixel_size_um") or 1.0
        )
        plane = nwbfile.create_imaging_plane(
            name="ImagingPlane",
            optical_channel=optical_channel,
            imaging_rate=rate,
            description="registered imaging plane",
            device=device,
            excitation_lambda=excitation_wavelength_nm,
            indicator=indicator,
            location=location,
            grid_spacing=[pixel, pixel],
            grid_spacing_unit="micrometers",
        )
        with tifffile.TiffFile(reg / "registered.tif") as tif:
            n_frames = len(tif.pages)
            page_shape = tif.pages[0].shape
        series = TwoPhotonSeries(
            name="TwoPhotonSeries",
            imaging_plane=plane,
            external_file=[os.path.relpath(reg / "registered.tif", Path(out_file).resolve().parent)],
            format="external",
            starting_frame=[0],
            num_samples=n_frames,
            dimension=[int(page_shape[-1]), int(page_shape[-2])],
            rate=rate,
            starting_time=_start_time(reg),
            unit="n.a.",
            description=f"motion-corrected movie, {n_frames} frames, linked not copied",
        )
        nwbfile.add_acquisition(series)
        if (neu / "traces.npz").is_file():
            _add_rois(
                nwbfile, plane, series, neu, rate, ImageSegmentation, Fluorescence, DfOverF, RoiResponseSeries
            )
    if (stim / "events.csv").is_file():
        _add_stimulation(nwbfile, stim / "events.csv", stim_wavelength_nm, location)
    _add_tables(nwbfile, sdir, run_dir / session["animal"] / "tracking", session_key)
    out_file = Path(out_file)
    with atomic_path(out_file) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The file path provided", category=UserWarning)  # temp name
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)
    return out_file


def _recording_info(reg: Path) -> dict:
    """``register/recording.json`` (rates, pixel size of the raw recording), or {}."""
    path = reg / "recording.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _start_time(reg: Path) -> float:
    """Start of the first frame on the session clock (s), from ``frame_times_s.npy``."""
    path = reg / "frame_times_s.npy"
    return float(np.load(path).ravel()[0]) if path.is_file() else 0.0


def _frame_rate(info: dict, session: dict) -> float:
    rate = info.get("volume_rate_hz") or info.get("frame_rate_hz")
    if rate:
        return float(rate)
    if session.get("frame_rate_hz"):
        return float(session["frame_rate_hz"])
    return 1.0


TRACE_SERIES = (
    ("RoiResponseSeries", "F", "mean fluorescence of each ROI (weighted footprint) in the registered movie"),
    ("Neuropil", "Fneu", "fluorescence of each ROI's neuropil annulus"),
    ("Spikes", "spikes", "inferred spiking activity (OASIS deconvolution of dF/F), arbitrary units"),
)


def _add_rois(nwbfile, plane, series, neu, rate, ImageSegmentation, Fluorescence, DfOverF, RoiResponseSeries):
    labels = tifffile.imread(neu / "roi_labels.tif")
    rois = pd.read_csv(neu / "rois.csv")
    ophys = nwbfile.create_processing_module(name="ophys", description="ROIs and their activity")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(
        name="PlaneSegmentation",
        description="ROIs detected by imagingkit",
        imaging_plane=plane,
    )
    table.add_column(name="roi_id", description="imagingkit roi_id (label in roi_labels.tif)")
    table.add_column(name="cell_prob", description="classifier probability of being a cell")
    table.add_column(name="is_cell", description="classified as a cell")
    for row in rois.itertuples():
        mask = (labels == row.roi_id).astype(np.float32)
        if not mask.any():  # ROI fully overlapped by another: keep its centre pixel
            mask[int(round(row.y)), int(round(row.x))] = 1.0
        table.add_roi(
            image_mask=mask, roi_id=int(row.roi_id), cell_prob=float(row.cell_prob), is_cell=bool(row.is_cell)
        )
    if len(rois) == 0:
        return
    region = table.create_roi_table_region(region=list(range(len(rois))), description="all ROIs")
    with np.load(neu / "traces.npz") as traces:
        fluorescence = Fluorescence(name="Fluorescence")
        ophys.add(fluorescence)  # in the file before its series reference the ROI table
        for name, key, text in TRACE_SERIES:
            fluorescence.add_roi_response_series(
                RoiResponseSeries(
                    name=name, data=traces[key].T, rois=region, unit="a.u.", rate=rate, description=text
                )
            )
        dff = DfOverF(name="DfOverF")
        ophys.add(dff)
        dff.add_roi_response_series(
            RoiResponseSeries(
                name="DfOverF",
                data=traces["dff"].T,
                rois=region,
                unit="n.a.",
                rate=rate,
                description="dF/F of the neuropil-corrected fluorescence (running baseline); NaN on bad frames",
            )  # fmt: skip
        )


def _add_stimulation(nwbfile, events_csv: Path, wavelength_nm: float, location: str) -> None:
    from pynwb.epoch import TimeIntervals
    from pynwb.ogen import OptogeneticStimulusSite

    events = pd.read_csv(events_csv)
    device = nwbfile.create_device(
        name="StimulationLight", description="light source for optogenetic stimulation"
    )
    site = OptogeneticStimulusSite(
        name="OptogeneticStimulusSite",
        device=device,
        description="thalamic axons in motor cortex (ChR2)",
        excitation_lambda=wavelength_nm,
        location=location,
    )
    nwbfile.add_ogen_site(site)
    _add_light_series(nwbfile, site, events)
    intervals = TimeIntervals(name="optogenetic_stimulation", description="optogenetic stimulation trials")
    columns = {
        "trial": "trial number",
        "n_pulses": "pulses in the train",
        "frequency_hz": "pulse frequency (Hz)",
        "power_mw": "light power (mW)",
        "condition": "stim or sham",
    }
    present = [c for c in columns if c in events.columns]
    for column in present:
        intervals.add_column(name=column, description=columns[column])
    for row in events.itertuples():
        values = {c: _plain(getattr(row, c)) for c in present}
        duration = float(getattr(row, "duration_s", 0.0) or 0.0)
        intervals.add_interval(
            start_time=float(row.onset_s), stop_time=float(row.onset_s) + duration, **values
        )
    nwbfile.add_time_intervals(intervals)


def _add_light_series(nwbfile, site, events: pd.DataFrame) -> None:
    """Light power (W) stepping up at each train onset and back to 0 at its end, when powers are known."""
    from pynwb.ogen import OptogeneticSeries

    if "power_mw" not in events.columns or not np.isfinite(events["power_mw"]).all() or not len(events):
        return  # power unknown (no mW calibration of the light command): the intervals table still has the trains
    onset = events["onset_s"].to_numpy(float)
    stop = onset + events["duration_s"].fillna(0.0).to_numpy(float)
    times = np.column_stack([onset, stop]).ravel()
    power_w = np.column_stack([events["power_mw"].to_numpy(float) / 1000.0, np.zeros(len(events))]).ravel()
    order = np.argsort(times, kind="stable")
    nwbfile.add_stimulus(
        OptogeneticSeries(
            name="OptogeneticSeries",
            data=power_w[order],
            timestamps=times[order],
            site=site,
            description="light power per train (step at onset, 0 at train end)",
        )  # fmt: skip
    )


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, float) and np.isnan(value):
        return float("nan")
    return value if not isinstance(value, str) else str(value)


def _add_tables(nwbfile, sdir: Path, tracking_dir: Path, session_key: str) -> None:
    from hdmf.common import DynamicTable

    tables = []
    if (sdir / "spines" / "spines.csv").is_file():
        tables.append(
            ("spines", "dendritic spines of this session", pd.read_csv(sdir / "spines" / "spines.csv"))
        )
    if (tracking_dir / "tracks.csv").is_file():
        tracks = pd.read_csv(tracking_dir / "tracks.csv")
        tables.append(("spine_tracks", "spine tracks across the animal's sessions", tracks))
    if not tables:
        return
    module = nwbfile.processing.get("ophys") or nwbfile.create_processing_module(
        name="ophys", description="optical physiology: ROIs, activity, dendritic spines and their tracks"
    )
    for name, description, frame in tables:
        frame = _hdf5_columns(frame)
        module.add(
            DynamicTable.from_dataframe(
                df=frame.reset_index(drop=True), name=name, table_description=description
            )
        )


def _hdf5_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns HDF5 can store: text as Python str (missing -> ""), nullable numbers as float (NA -> NaN)."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) and not values.hasnans:
            out[column] = values.to_numpy(bool)
        elif pd.api.types.is_numeric_dtype(values):
            has_na = values.isna().any()
            out[column] = values.to_numpy(
                float if has_na or values.dtype.kind == "f" else np.int64, na_value=np.nan
            )
        else:
            out[column] = np.array([("" if pd.isna(v) else str(v)) for v in values], dtype=object)
    return pd.DataFrame(out)


def export_run_nwb(run_dir: str | Path, out_file: str | Path, session_key: str | None = None) -> list[Path]:
    """Export one session (``session_key``), or every session of a run, to NWB.

    With several sessions and no ``session_key``, files are named
    ``<stem>_<animal>_<session>.nwb`` beside ``out_file``.
    """
    run_dir, out_file = Path(run_dir), Path(out_file)
    sessions = session_dirs(run_dir)
    if session_key is not None:
        return [export_session_nwb(run_dir, session_key, out_file)]
    if len(sessions) == 1:
        return [export_session_nwb(run_dir, next(iter(sessions)), out_file)]
    written = []
    for key in sessions:
        name = f"{out_file.stem}_{key.replace('/', '_')}{out_file.suffix or '.nwb'}"
        written.append(export_session_nwb(run_dir, key, out_file.with_name(name)))
    return written
