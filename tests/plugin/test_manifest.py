"""The npe2 manifest is valid, discoverable through the entry point, and every command resolves."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytest.importorskip("napari")
npe2 = pytest.importorskip("npe2")

pytestmark = pytest.mark.napari

import napari_imagingkit  # noqa: E402

MANIFEST = Path(napari_imagingkit.__file__).with_name("napari.yaml")


def test_manifest_validates_and_names_every_contribution():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "imagingkit"  # must equal the distribution name for npe2 discovery
    contrib = manifest.contributions
    assert {w.display_name for w in contrib.widgets} == {
        "Recording",
        "Neurons",
        "Stimulation",
        "Spines",
        "Spine review",
    }
    assert {s.key for s in contrib.sample_data} == {"functional", "structural"}
    assert len(contrib.readers) == 2
    assert any(r.accepts_directories for r in contrib.readers)


def test_manifest_is_found_through_the_entry_point():
    pm = npe2.PluginManager()
    pm.discover()
    assert "imagingkit" in {m.name for m in pm.iter_manifests()}


def test_every_command_python_name_resolves():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    for command in manifest.contributions.commands:
        module_name, attr = command.python_name.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attr)), command.id
