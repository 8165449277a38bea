"""The plugin's dock widgets, one module per step (imported on first use).

=================  ===============================  ==========================================
Widget             Module                           Library calls
=================  ===============================  ==========================================
RecordingWidget    ``_recording_widget``            ``Recording.summary``, ``motion.register_movie``
NeuronsWidget      ``_neurons_widget``              ``neurons.detect_rois``, ``neurons.extract_traces``
StimWidget         ``_stim_widget``                 ``stim`` events, trial responses, statistics
SpinesWidget       ``_spines_widget``               ``spines.detect_spines``, ``spines.measure_spines``
ReviewWidget       ``_review_widget``               ``tracking`` review edits and turnover
=================  ===============================  ==========================================

Each module imports only its own room of imagingkit, so one step's widget opens
even when another step's optional pieces are missing.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "RecordingWidget": "._recording_widget",
    "NeuronsWidget": "._neurons_widget",
    "StimWidget": "._stim_widget",
    "SpinesWidget": "._spines_widget",
    "ReviewWidget": "._review_widget",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name], __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
