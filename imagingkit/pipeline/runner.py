"""Run a whole experiment: sessions in parallel, then per-animal steps, then the report.

Run folder layout (each step folder holds a ``step.json`` provenance record)::

    RUN_DIR/
      config.json                 the validated config with every default
      run.log                     log of the run
      summary.csv                 one row per session and per animal: status, seconds, error
      ANIMAL/SESSION/register/    registered.tif, shifts.csv, reference.tif, mean_image.tif, metrics.json,
                                  recording.json, frame_times_s.npy
      ANIMAL/SESSION/neurons/     rois.csv, roi_labels.tif, traces.npz
      ANIMAL/SESSION/stim/        events.csv, responses.csv, trial_responses.npz, responses.png, report.json
      ANIMAL/SESSION/spines/      spines.csv, dendrites.csv, image.json
      ANIMAL/tracking/            tracks.csv, turnover.csv, tracking.png, turnover_ci.csv, ...
      ANIMAL/summary/             responses_across_sessions.csv, changes_across_sessions.csv,
                                  roi_matches.csv, behaviour_correlation.csv, summary.json
      report/index.html           figures as PNG beside it

Steps are in :mod:`imagingkit.pipeline.steps`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from pathlib import Path

import pandas as pd

from imagingkit._atomic import atomic_path
from imagingkit.errors import ImagingKitError
from imagingkit.pipeline import steps
from imagingkit.pipeline.config import ExperimentConfig, SessionConfig
from imagingkit.pipeline.executors import map_sessions

log = logging.getLogger("imagingkit.pipeline")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one session or animal."""

    unit: str
    status: str  # "ok" or "failed"
    seconds: float
    steps_run: tuple[str, ...] = ()
    steps_skipped: tuple[str, ...] = ()
    error: str = ""


@dataclasses.dataclass(frozen=True)
class SessionJob:
    """A picklable unit of work for an executor."""

    session: SessionConfig
    parameters: dict
    run_dir: Path


def run_session_job(job: SessionJob) -> Outcome:
    """Run every per-session step; never raises (failures are reported in the Outcome)."""
    start = time.time()
    ran: list[str] = []
    skipped: list[str] = []
    try:
        for name, did_run in steps.run_session_steps(job.session, job.parameters, job.run_dir):
            (ran if did_run else skipped).append(name)
            log.debug("%s: %s %s", job.session.key, name, "done" if did_run else "skipped (up to date)")
        status, error = "ok", ""
    except Exception as exc:  # noqa: BLE001 - isolate any failure of one session
        status, error = "failed", _one_line(exc)
        _log_failure(job.session.key, exc)
    return Outcome(job.session.key, status, round(time.time() - start, 2), tuple(ran), tuple(skipped), error)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ImagingKitError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _log_failure(unit: str, exc: BaseException) -> None:
    """Warn on one line; the traceback goes to the log file only for unexpected errors (bugs)."""
    cause = exc.__cause__ if isinstance(exc, steps.StepError) else exc
    if cause is not None and not isinstance(cause, ImagingKitError):
        log.debug("%s traceback:\n%s", unit, "".join(traceback.format_exception(cause)))


def run_experiment(
    config: ExperimentConfig,
    run_dir: str | Path,
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    report: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Run the experiment and return the summary table (also saved as ``summary.csv``).

    Parameters
    ----------
    config : ExperimentConfig
        The validated experiment.
    run_dir : path
        Output folder; re-running into it skips finished steps.
    executor : {"local", "serial", "dask"}
        Where sessions run; see :mod:`imagingkit.pipeline.executors`.
    workers : int
        Parallel sessions (local pool size or local Dask cluster size).
    scheduler : str or None
        Dask scheduler address (implies ``executor="dask"``).
    report : bool
        Write the HTML report at the end.
    progress : bool
        Show a progress bar over sessions (tqdm, on stderr).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps(config.to_record(), indent=2))
    if scheduler:
        executor = "dask"
    jobs = [SessionJob(s, config.parameters, run_dir) for s in config.sessions]
    log.info("running %d session(s) on %s executor (%d worker(s))", len(jobs), executor, workers)
    outcomes = map_sessions(
        run_session_job, jobs, executor=executor, workers=workers, scheduler=scheduler, progress=progress
    )
    for outcome in outcomes:
        log.info("%s: %s in %.1f s (ran: %s; up to date: %s)", outcome.unit, outcome.status, outcome.seconds,
                 ",".join(outcome.steps_run) or "-", ",".join(outcome.steps_skipped) or "-")  # fmt: skip
        if outcome.error:
            log.debug(
                "%s failed: %s", outcome.unit, outcome.error
            )  # the CLI prints it; the log file keeps it
    failed_sessions = {o.unit for o in outcomes if o.status != "ok"}
    for animal in config.animals:
        sessions = [s for s in config.sessions_of(animal) if s.key not in failed_sessions]
        outcomes.append(_run_animal(animal, sessions, config.parameters, run_dir))
    table = pd.DataFrame([dataclasses.asdict(o) for o in outcomes])
    for column in ("steps_run", "steps_skipped"):
        table[column] = table[column].map(lambda v: ",".join(v))
    with atomic_path(run_dir / "summary.csv") as tmp:
        table.to_csv(tmp, index=False)
    if report:
        from imagingkit.pipeline.report import write_report

        write_report(run_dir, config, table)
    return table


def _run_animal(animal: str, sessions: list[SessionConfig], parameters: dict, run_dir: Path) -> Outcome:
    start = time.time()
    ran: list[str] = []
    skipped: list[str] = []
    try:
        for name, did_run in steps.run_animal_steps(animal, sessions, parameters, run_dir):
            (ran if did_run else skipped).append(name)
        status, error = "ok", ""
    except Exception as exc:  # noqa: BLE001 - isolate any failure of one animal
        status, error = "failed", _one_line(exc)
        _log_failure(animal, exc)
    return Outcome(animal, status, round(time.time() - start, 2), tuple(ran), tuple(skipped), error)
