"""Experiment config validation: every mistake named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagingkit.errors import MissingFileError, ParameterError
from imagingkit.pipeline.config import STEP_DEFAULTS, load_config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "movie.tif").write_bytes(b"")
    (tmp_path / "dendrite.tif").write_bytes(b"")
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    return path


GOOD = """
[experiment]
name = "learning"

[[sessions]]
animal = "m01"
id = "day0"
time_h = 0
functional = "movie.tif"
structural = "dendrite.tif"

[[sessions]]
animal = "m01"
id = "day1"
time_h = 24.0
structural = "dendrite.tif"

[parameters.stim.window]
response_s = [0.0, 2.0]

[parameters.spines.detect]
sensitivity = 1.5
"""


def test_good_config_fills_defaults_and_resolves_paths(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.name == "learning"
    assert [s.key for s in config.sessions] == ["m01/day0", "m01/day1"]
    assert config.sessions[0].functional == (tmp_path / "movie.tif").resolve()
    assert config.sessions[1].functional is None
    assert config.sessions[0].field is None
    assert (
        load_config(write(tmp_path, GOOD.replace("time_h = 0\n", "time_h = 0\nfield = 2\n")))
        .sessions[0]
        .field
        == 2
    )
    assert config.parameters["stim"]["window"]["response_s"] == [0.0, 2.0]
    assert config.parameters["stim"]["window"]["baseline_s"] == STEP_DEFAULTS["stim"]["window"]["baseline_s"]
    assert config.parameters["spines"]["detect"]["sensitivity"] == 1.5
    assert (
        config.parameters["spines"]["detect"]["threshold_sigma"]
        == STEP_DEFAULTS["spines"]["detect"]["threshold_sigma"]
    )
    assert set(config.parameters) == set(STEP_DEFAULTS)
    record = config.to_record()
    assert record["parameters"]["register"]["nonrigid"] is False
    assert record["sessions"][0]["functional"].endswith("movie.tif")


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (
            ("time_h = 0\n", "time_h = 0\ncolour = 'red'\n"),
            ParameterError,
            "unknown sessions[0] key 'colour'",
        ),
        (("time_h = 24.0", "time_h = 'late'"), ParameterError, "sessions[1].time_h should be int or float"),
        (('functional = "movie.tif"', 'functional = "nope.tif"'), MissingFileError, "nope.tif"),
        (
            ("response_s = [0.0, 2.0]", "response_s = 2.0"),
            ParameterError,
            "parameters.stim.window.response_s should be list",
        ),
        (
            ("[parameters.stim.window]", "[parameters.stimulus]"),
            ParameterError,
            "unknown [parameters] step 'stimulus'",
        ),
        (
            ("response_s = [0.0, 2.0]", "respons_s = [0.0, 2.0]"),
            ParameterError,
            "unknown [parameters.stim.window] key",
        ),
        (
            ("sensitivity = 1.5", "sensitivity = -1.0"),
            ParameterError,
            "parameters.spines: sensitivity must be positive",
        ),
        (("response_s = [0.0, 2.0]", "response_s = [2.0, 0.0]"), ParameterError, "parameters.stim:"),
        (('id = "day1"', 'id = "day0"'), ParameterError, "duplicate session(s) ['m01/day0']"),
        (('animal = "m01"\nid = "day1"', 'id = "day1"'), ParameterError, "missing the required key 'animal'"),
        (
            ("time_h = 0\n", "time_h = 0\nfield = -1\n"),
            ParameterError,
            "sessions[0].field should be a field number",
        ),
        (("time_h = 0\n", "time_h = 0\nfield = 1.5\n"), ParameterError, "sessions[0].field should be int"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, edit, error, message):
    old, new = edit
    assert old in GOOD
    with pytest.raises(error) as info:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    assert message in str(info.value)
    assert "experiment.toml" in str(info.value) or "nope.tif" in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(MissingFileError, match="experiment config not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sessions]\nanimal=")
    with pytest.raises(ParameterError, match="not valid TOML"):
        load_config(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("[experiment]\nname='x'\n")
    with pytest.raises(ParameterError, match="no \\[\\[sessions\\]\\]"):
        load_config(empty)


def test_demo_config_is_valid():
    from imagingkit.commands.run import SAMPLE_DATA

    config = load_config(SAMPLE_DATA / "experiment.toml")
    assert config.animals == ["demo"]
    assert [s.time_h for s in config.sessions_of("demo")] == [0.0, 1.0, 6.0, 24.0, 48.0]
    assert config.subjects["demo"]["sex"] == "U"


def test_subjects_are_checked(tmp_path):
    with pytest.raises(ParameterError, match="subjects.m01.sex should be one of"):
        load_config(write(tmp_path, GOOD + '\n[subjects.m01]\nsex = "male"\n'))
    with pytest.raises(ParameterError, match="unknown \\[subjects\\] animal 'm02'"):
        load_config(write(tmp_path, GOOD + '\n[subjects.m02]\nsex = "M"\n'))
