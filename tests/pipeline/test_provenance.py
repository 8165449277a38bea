"""Step provenance: skip when nothing changed, re-run when inputs or parameters change."""

from __future__ import annotations

import json

import pytest

from imagingkit.pipeline.provenance import RECORD_NAME, run_step


def make_work(calls):
    def work(out):
        calls.append(out)
        (out / "result.txt").write_text("done")
        return {"n": len(calls)}

    return work


def test_skips_unchanged_and_reruns_on_change(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("a")
    step = tmp_path / "run" / "step"
    calls = []
    ran, record = run_step(step, {"input": source}, {"k": 1}, make_work(calls))
    assert ran and (step / "result.txt").read_text() == "done"
    assert json.loads((step / RECORD_NAME).read_text())["key"] == record["key"]
    ran, _ = run_step(step, {"input": source}, {"k": 1}, make_work(calls))
    assert not ran and len(calls) == 1
    ran, _ = run_step(step, {"input": source}, {"k": 2}, make_work(calls))
    assert ran and len(calls) == 2
    source.write_text("b")
    ran, new = run_step(step, {"input": source}, {"k": 2}, make_work(calls))
    assert ran and new["key"] != record["key"] and len(calls) == 3


def test_failed_step_leaves_no_output(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("a")
    step = tmp_path / "step"

    def crash(out):
        (out / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_step(step, {"input": source}, {}, crash)
    assert not step.exists()
    assert list(tmp_path.iterdir()) == [source]
