"""Provenance of step outputs: what went in, with which parameters and versions.

A finished step folder holds ``step.json``: its inputs (path, size, content
hash), parameters, package versions and one ``key`` hashing them all. A re-run
computes the key again and skips the step when it matches; any change of an
input file or parameter gives a new key and the step runs again. The folder
is written under a temporary name and renamed when complete, so a killed run
never leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from imagingkit._atomic import atomic_dir

RECORD_NAME = "step.json"
TRACKED_PACKAGES = ("imagingkit", "numpy", "scipy", "scikit-image", "tifffile", "pandas", "skan", "laptrack")


def file_digest(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's content (or of every file in a folder, in name order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk_bytes):
                digest.update(block)
    return digest.hexdigest()


def input_digest(path: Path) -> str:
    """Identity of a step input: the ``key`` of a finished step folder, else the content hash.

    A step folder's key already hashes everything that made it, so using it
    avoids re-reading large outputs (a registered movie) on every run.
    """
    record = read_record(path) if path.is_dir() else None
    if record is not None and "key" in record:
        return "step:" + record["key"]
    return file_digest(path)


def remove_stale_parts(folder: Path) -> list[Path]:
    """Delete temporary ``.*.part`` files and folders a killed run left in ``folder``.

    They are never results (a result exists only under its final name); this only
    reclaims their space. Call it where no other process is writing.
    """
    removed = []
    if folder.is_dir():
        for part in folder.glob(".*.part"):
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def package_versions() -> dict[str, str]:
    """Versions of the packages whose change may change results."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def step_key(inputs: Mapping[str, str], params: Mapping[str, Any], versions: Mapping[str, str]) -> str:
    """One hash over input digests, parameters and versions."""
    blob = json.dumps({"inputs": inputs, "params": params, "versions": versions}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_record(step_dir: Path) -> dict[str, Any] | None:
    """The ``step.json`` of a finished step folder, or None."""
    record = step_dir / RECORD_NAME
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def _input_path(path: Path, step_dir: Path) -> str:
    """Upstream step folders relative to the step (the run folder stays relocatable), files absolute."""
    if read_record(path) is not None:
        return os.path.relpath(path, step_dir)
    return str(path)


def run_step(
    step_dir: Path,
    inputs: Mapping[str, Path],
    params: Mapping[str, Any],
    work: Callable[[Path], Mapping[str, Any] | None],
) -> tuple[bool, dict[str, Any]]:
    """Run ``work(tmp_dir)`` unless ``step_dir`` already holds the same result.

    Parameters
    ----------
    step_dir : Path
        Final folder of the step's outputs.
    inputs : mapping of str to Path
        Files or folders the step reads; their contents (or, for a finished
        step folder, its key) enter the key.
    params : mapping
        The step's parameters (JSON-able); they enter the key.
    work : callable
        Writes the outputs into the folder it is given; may return a dict of
        summary values stored in the record.

    Returns
    -------
    ran : bool
        False when the step was skipped because its key matched.
    record : dict
        The step record (also saved as ``step.json``).
    """
    digests = {name: input_digest(Path(p)) for name, p in sorted(inputs.items())}
    versions = package_versions()
    key = step_key(digests, params, versions)
    previous = read_record(step_dir)
    if previous is not None and previous.get("key") == key:
        return False, previous
    started = time.time()
    with atomic_dir(step_dir) as tmp:
        summary = work(tmp) or {}
        record = {
            "key": key,
            "inputs": {
                name: {"path": _input_path(Path(inputs[name]), step_dir), "sha256": d}
                for name, d in digests.items()
            },
            "params": dict(params),
            "versions": versions,
            "summary": dict(summary),
            "started": started,
            "seconds": round(time.time() - started, 3),
        }
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2, default=str))
    return True, record
