"""Experiment configuration: a TOML file, validated with messages that name the key.

An experiment is a list of sessions (each belonging to an animal, with its time
relative to the first practice session, in hours) and the parameters of each
step. Paths in the file are relative to the file's folder.

Example
-------
.. code-block:: toml

    [experiment]
    name = "thalamocortical-learning"

    [[sessions]]
    animal = "m01"
    id = "day0"
    time_h = 0.0
    functional = "m01/day0/func_00001.tif"
    triggers = "m01/day0/triggers.npz"
    structural = "m01/day0/dendrite.tif"
    behaviour = "m01/behaviour.csv"
    # field = 1   (ScanImage multi-ROI file: one field per session entry; 0-based)

    [subjects.m01]
    age = "P90D"
    sex = "M"

    [parameters.register]
    nonrigid = false

    [parameters.stim.window]
    baseline_s = [-1.0, 0.0]
    response_s = [0.0, 1.0]

    [parameters.spines.detect]
    sensitivity = 1.2

Every step's parameters and defaults: :data:`imagingkit.pipeline.params.STEP_DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from imagingkit.errors import MissingFileError, ParameterError
from imagingkit.pipeline.params import STEP_DEFAULTS, merge_parameters

__all__ = ["STEP_DEFAULTS", "ExperimentConfig", "SessionConfig", "load_config", "parse_config"]

SESSION_KEYS: dict[str, type | tuple[type, ...]] = {
    "animal": str,
    "id": str,
    "time_h": (int, float),
    "functional": str,
    "triggers": str,
    "events": str,
    "structural": str,
    "structural_spines": str,
    "behaviour": str,
    "frame_rate_hz": (int, float),
    "pixel_size_um": (int, float),
    "z_step_um": (int, float),
    "field": int,
}
SESSION_FILE_KEYS = ("functional", "triggers", "events", "structural", "structural_spines", "behaviour")
TOP_KEYS = {"experiment", "sessions", "parameters", "subjects"}
#: Optional per-animal subject metadata (``[subjects.ANIMAL]``), written into NWB files.
SUBJECT_KEYS = {"age", "sex", "species", "genotype", "strain", "description"}
SEXES = ("M", "F", "U", "O")


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """One imaging session of one animal; file paths absolute (or None)."""

    animal: str
    id: str
    time_h: float
    functional: Path | None = None
    triggers: Path | None = None
    events: Path | None = None
    structural: Path | None = None
    structural_spines: Path | None = None
    behaviour: Path | None = None
    frame_rate_hz: float | None = None
    pixel_size_um: float | None = None
    z_step_um: float | None = None
    field: int | None = None  # one field of a ScanImage multi-ROI functional recording

    @property
    def key(self) -> str:
        """Folder name of the session in a run: ``ANIMAL/SESSION``."""
        return f"{self.animal}/{self.id}"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment: its sessions and the parameters of every step."""

    name: str
    sessions: tuple[SessionConfig, ...]
    parameters: dict[str, dict[str, Any]]
    source: Path | None = None
    subjects: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def animals(self) -> list[str]:
        return sorted({s.animal for s in self.sessions})

    def sessions_of(self, animal: str) -> list[SessionConfig]:
        """Sessions of one animal, in time order."""
        return sorted((s for s in self.sessions if s.animal == animal), key=lambda s: s.time_h)

    def to_record(self) -> dict[str, Any]:
        """JSON-able record of the whole configuration with every default filled in."""
        return {
            "name": self.name,
            "source": None if self.source is None else str(self.source),
            "sessions": [
                {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(s).items()}
                for s in self.sessions
            ],
            "parameters": self.parameters,
            "subjects": self.subjects,
        }


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment TOML file.

    Raises
    ------
    MissingFileError
        The config file, or a file it names, does not exist.
    ParameterError
        Unknown keys, wrong types, duplicate sessions, bad TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: experiment config not found")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, base_dir=path.parent, source=path)


def parse_config(raw: dict[str, Any], base_dir: Path, source: Path | None = None) -> ExperimentConfig:
    """Validate a parsed TOML mapping; see :func:`load_config`."""
    where = str(source) if source else "config"
    _no_unknown(raw, TOP_KEYS, where, "top-level key")
    experiment = raw.get("experiment", {})
    _expect_type(experiment, dict, where, "[experiment]")
    _no_unknown(experiment, {"name"}, where, "[experiment] key")
    name = experiment.get("name", source.stem if source else "experiment")
    _expect_type(name, str, where, "experiment.name")
    sessions_raw = raw.get("sessions")
    if not sessions_raw:
        raise ParameterError(f"{where}: no [[sessions]] given; an experiment needs at least one session")
    _expect_type(sessions_raw, list, where, "sessions")
    sessions = tuple(_parse_session(s, i, base_dir, where) for i, s in enumerate(sessions_raw))
    keys = [s.key for s in sessions]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ParameterError(f"{where}: duplicate session(s) {duplicates}; each animal/id must be unique")
    return ExperimentConfig(
        name=name,
        sessions=sessions,
        parameters=merge_parameters(raw.get("parameters", {}), where),
        source=source,
        subjects=_parse_subjects(raw.get("subjects", {}), {s.animal for s in sessions}, where),
    )


def _parse_subjects(raw: Any, animals: set[str], where: str) -> dict[str, dict[str, str]]:
    """``[subjects.ANIMAL]`` tables: age (ISO 8601 duration, e.g. "P90D"), sex (M/F/U/O), species..."""
    _expect_type(raw, dict, where, "[subjects]")
    _no_unknown(raw, animals, where, "[subjects] animal")
    subjects = {}
    for animal, table in raw.items():
        _expect_type(table, dict, where, f"[subjects.{animal}]")
        _no_unknown(table, SUBJECT_KEYS, where, f"[subjects.{animal}] key")
        for key, value in table.items():
            _expect_type(value, str, where, f"subjects.{animal}.{key}")
        if "sex" in table and table["sex"] not in SEXES:
            raise ParameterError(
                f"{where}: subjects.{animal}.sex should be one of {list(SEXES)}, got {table['sex']!r}"
            )
        if "age" in table and not table["age"].startswith("P"):
            raise ParameterError(f"{where}: subjects.{animal}.age should be an ISO 8601 duration like 'P90D'")
        subjects[animal] = dict(table)
    return subjects


def _parse_session(raw: Any, index: int, base_dir: Path, where: str) -> SessionConfig:
    label = f"sessions[{index}]"
    _expect_type(raw, dict, where, label)
    _no_unknown(raw, set(SESSION_KEYS), where, f"{label} key")
    for required in ("animal", "id", "time_h"):
        if required not in raw:
            raise ParameterError(f"{where}: {label} is missing the required key {required!r}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        _expect_type(value, SESSION_KEYS[key], where, f"{label}.{key}")
        if key in SESSION_FILE_KEYS:
            file_path = (base_dir / value).resolve()
            if not file_path.exists():
                raise MissingFileError(f"{where}: {label}.{key} names {file_path}, which does not exist")
            value = file_path
        elif key in ("time_h", "frame_rate_hz", "pixel_size_um", "z_step_um"):
            value = float(value)
        elif key == "field" and value < 0:
            raise ParameterError(f"{where}: {label}.field should be a field number >= 0, got {value}")
        values[key] = value
    if not any(k in values for k in ("functional", "structural")):
        raise ParameterError(f"{where}: {label} has neither a 'functional' nor a 'structural' file")
    if "triggers" in values and "events" in values:
        raise ParameterError(f"{where}: {label} gives both 'triggers' and 'events'; give one")
    return SessionConfig(**values)


def _no_unknown(mapping: dict, allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ParameterError(f"{where}: unknown {what} {unknown[0]!r}; expected one of {sorted(allowed)}")


def _expect_type(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = " or ".join(k.__name__ for k in _as_tuple(kind))
        raise ParameterError(f"{where}: {what} should be {names}, got {type(value).__name__} {value!r}")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
