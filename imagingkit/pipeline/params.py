"""Step parameters of the pipeline, built from the rooms' own frozen parameter dataclasses.

There is one copy of every default: the dataclass of the room that uses it.
:data:`STEP_DEFAULTS` is their ``dataclasses.asdict`` (nested tables for nested
dataclasses) plus the few choices the pipeline itself makes per step (engine,
channel names...). :func:`merge_parameters` checks a config's ``[parameters]``
against it, and the ``*_params`` builders turn a merged table back into the
dataclasses, so a wrong value is reported by the room's own validation.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from imagingkit.errors import ImagingKitError, ParameterError
from imagingkit.motion.params import NonRigidParams, RigidParams
from imagingkit.neurons.params import DetectionParams, ExtractionParams
from imagingkit.spines.params import SpineParams
from imagingkit.stim.artifacts import NEUROPIL_MARGIN_PX, ArtifactParams
from imagingkit.stim.responses import WindowParams
from imagingkit.stim.stats import StatsParams
from imagingkit.stim.triggers import PulseParams
from imagingkit.tracking import BootstrapParams, FateParams, LinkParams, RecheckParams


def _table(instance: Any) -> dict[str, Any]:
    """``asdict`` of a dataclass instance with tuples as lists (the TOML/JSON form)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(instance))


def _field_types(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


#: Every step's parameters with their defaults (JSON-able). Written into ``config.json``
#: and each step's ``step.json``, so a run says exactly what it did.
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "register": {
        "engine": "builtin",
        "channel": 0,
        "nonrigid": False,
        **_table(NonRigidParams()),
    },
    "neurons": {
        "engine": "builtin",
        "cell_threshold": 0.5,
        "detection": _table(DetectionParams()),
        "extraction": _table(ExtractionParams()),
    },
    "stim": {
        "trace": "dff",
        "stim_channel": "stim",
        "trial_channel": "trial",
        "frame_channel": "frame_clock",
        "trigger_rate_hz": None,
        "power_mw_per_unit": None,
        "detect_artifacts": True,
        "window": _table(WindowParams()),
        "stats": _table(StatsParams()),
        "pulses": _table(PulseParams()),
        "artifacts": {**_table(ArtifactParams()), "margin_px": NEUROPIL_MARGIN_PX},
    },
    "spines": {"channel": 0, **_table(SpineParams())},
    "tracking": {
        "reference_index": 0,
        "link": _table(LinkParams()),
        "fates": _table(FateParams()),
        "bootstrap": _table(BootstrapParams()),
        "recheck": _table(RecheckParams()),
    },
    "summary": {
        "confidence_level": 0.95,
        "n_resamples": 2000,
        "seed": 0,
        "behaviour_method": "spearman",
        "match_distance_px": 4.0,
        "cells_only": True,
    },
}

#: Field type annotations (as text) of the dataclass-backed tables, to accept e.g. a
#: string where a field is ``float | str`` although its default is a number.
_TYPES: dict[tuple[str, ...], dict[str, str]] = {
    ("register",): _field_types(NonRigidParams),
    ("neurons", "detection"): _field_types(DetectionParams),
    ("neurons", "extraction"): _field_types(ExtractionParams),
    ("stim", "window"): _field_types(WindowParams),
    ("stim", "stats"): _field_types(StatsParams),
    ("stim", "pulses"): _field_types(PulseParams),
    ("stim", "artifacts"): _field_types(ArtifactParams),
    ("tracking", "link"): _field_types(LinkParams),
    ("tracking", "fates"): _field_types(FateParams),
    ("tracking", "bootstrap"): _field_types(BootstrapParams),
    ("tracking", "recheck"): _field_types(RecheckParams),
    ("stim",): {"trigger_rate_hz": "float | None", "power_mw_per_unit": "float | None"},
}


def merge_parameters(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with a config's ``[parameters]`` table, checked key by key.

    Raises
    ------
    ParameterError
        Unknown step or key, a value of the wrong kind, or a value the room's
        parameter dataclass rejects; the message names ``parameters.STEP.KEY``.
    """
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: [parameters] should be a table, got {type(raw).__name__}")
    merged = _merge(STEP_DEFAULTS, raw, where, ("parameters",))
    for step, build in BUILDERS.items():
        try:
            build(merged[step])
        except ImagingKitError as exc:
            raise ParameterError(f"{where}: parameters.{step}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{where}: parameters.{step}: invalid value ({exc})") from exc
    return merged


def _merge(defaults: dict, given: Any, where: str, path: tuple[str, ...]) -> dict:
    label = ".".join(path)
    if not isinstance(given, dict):
        raise ParameterError(f"{where}: {label} should be a table, got {type(given).__name__} {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        what = "[parameters] step" if len(path) == 1 else f"[{label}] key"
        raise ParameterError(f"{where}: unknown {what} {unknown[0]!r}; expected one of {sorted(defaults)}")
    merged = copy.deepcopy(defaults)
    types = _TYPES.get(path[1:], {})
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, dict):
            merged[key] = _merge(default, value, where, (*path, key))
            continue
        if not _same_kind(value, default, types.get(key, "")):
            expected = "list" if isinstance(default, list) else type(default).__name__
            if isinstance(default, list):
                expected = f"list of {len(default)}"
            raise ParameterError(f"{where}: {label}.{key} should be {expected}, got {value!r}")
        merged[key] = value
    return merged


def _same_kind(value: Any, default: Any, type_text: str) -> bool:
    if default is None:
        return True  # the room's dataclass checks it
    if isinstance(value, str) and "str" in type_text:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list) and len(value) == len(default)
    return isinstance(value, type(default))


def _build(cls: type, table: dict[str, Any]) -> Any:
    """A dataclass from its table: lists back to tuples, nested tables to nested dataclasses."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in table:
            continue
        value = table[f.name]
        default = None if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _build(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def register_params(table: dict[str, Any]) -> RigidParams:
    """:class:`RigidParams` or, with ``nonrigid = true``, :class:`NonRigidParams`."""
    cls = NonRigidParams if table["nonrigid"] else RigidParams
    names = {f.name for f in dataclasses.fields(cls)}
    return _build(cls, {k: v for k, v in table.items() if k in names})


def neurons_params(table: dict[str, Any]) -> tuple[DetectionParams, ExtractionParams]:
    """Detection and extraction parameters of the neurons step."""
    return _build(DetectionParams, table["detection"]), _build(ExtractionParams, table["extraction"])


def stim_params(table: dict[str, Any]) -> tuple[WindowParams, StatsParams, PulseParams, ArtifactParams]:
    """Window, statistics, pulse-detection and artifact parameters of the stim step."""
    from imagingkit.stim.analysis import TRACE_CHOICES

    if table["trace"] not in TRACE_CHOICES:
        raise ParameterError(f"trace must be one of {TRACE_CHOICES}, got {table['trace']!r}")
    raw = table["trace"] != "dff"
    window = _build(WindowParams, {**table["window"], "input_kind": "raw" if raw else "dff"})
    return (
        window,
        _build(StatsParams, table["stats"]),
        _build(PulseParams, table["pulses"]),
        _build(ArtifactParams, table["artifacts"]),
    )


def spine_params(table: dict[str, Any]) -> SpineParams:
    """Nested :class:`SpineParams` (trace, model, detect, measure)."""
    return _build(SpineParams, {k: v for k, v in table.items() if k != "channel"})


def tracking_params(table: dict[str, Any], pixel_size_um: float | None = None, z_step_um: float = 1.0):
    """:class:`TrackingParams` with the animal's pixel size and z step."""
    from imagingkit.tracking import TrackingParams

    return TrackingParams(
        pixel_size_um=pixel_size_um,
        z_step_um=z_step_um,
        reference_index=int(table["reference_index"]),
        link=_build(LinkParams, table["link"]),
        fates=_build(FateParams, table["fates"]),
        bootstrap=_build(BootstrapParams, table["bootstrap"]),
        recheck=_build(RecheckParams, table.get("recheck", {})),
    )


def _check_summary(table: dict[str, Any]) -> None:
    if not 0 < table["confidence_level"] < 1:
        raise ParameterError(f"confidence_level must be in (0, 1), got {table['confidence_level']}")
    if table["behaviour_method"] not in ("spearman", "pearson"):
        raise ParameterError(
            f"behaviour_method must be 'spearman' or 'pearson', got {table['behaviour_method']!r}"
        )
    if table["n_resamples"] < 100:
        raise ParameterError(f"n_resamples must be >= 100, got {table['n_resamples']}")


BUILDERS = {
    "register": register_params,
    "neurons": neurons_params,
    "stim": stim_params,
    "spines": spine_params,
    "tracking": tracking_params,
    "summary": _check_summary,
}
