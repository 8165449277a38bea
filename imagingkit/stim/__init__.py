"""Optogenetic stimulation: from raw triggers to tested thalamocortical responses.

Event sources (:mod:`.triggers`, :mod:`.sources`) give one events table
(:mod:`.events`); :mod:`.clock` puts events and frames on one clock and
:mod:`.timing` gives each ROI its sub-frame sample times; :mod:`.artifacts`
masks light-contaminated lines; :mod:`.responses` cuts trials;
:mod:`.stats` tests each ROI (latency by a fit of the indicator kernel at
every light pulse, :mod:`.latency`); :mod:`.sessions` follows responses across
sessions and against behaviour; :mod:`.figures` draws them.
:mod:`.analysis` chains them for one session (``events_for_session``,
``analyse_responses``, ``write_response_outputs``): what the CLI, the
pipeline and the napari plugin call.
"""

from imagingkit.stim.analysis import (
    EventSource,
    ResponseAnalysis,
    analyse_responses,
    events_for_session,
    load_neurons_outdir,
    write_response_outputs,
)
from imagingkit.stim.artifacts import ArtifactParams, detect_light_artifacts, roi_artifact_mask
from imagingkit.stim.clock import ClockFit, fit_clock, frame_times_from_clock
from imagingkit.stim.events import (
    EVENT_COLUMNS,
    assign_frames,
    make_events,
    select_in_recording,
    validate_events,
)
from imagingkit.stim.responses import TrialResponses, WindowParams, trial_responses
from imagingkit.stim.stats import (
    RESPONSE_COLUMNS,
    StatsParams,
    dose_response,
    response_statistics,
    shuffled_events_test,
)
from imagingkit.stim.timing import roi_sample_times
from imagingkit.stim.triggers import PulseParams, TriggerData, events_from_triggers, read_trigger_file

__all__ = [
    "EVENT_COLUMNS",
    "RESPONSE_COLUMNS",
    "ArtifactParams",
    "ClockFit",
    "EventSource",
    "PulseParams",
    "ResponseAnalysis",
    "StatsParams",
    "TriggerData",
    "TrialResponses",
    "WindowParams",
    "analyse_responses",
    "assign_frames",
    "detect_light_artifacts",
    "dose_response",
    "events_for_session",
    "events_from_triggers",
    "fit_clock",
    "frame_times_from_clock",
    "load_neurons_outdir",
    "make_events",
    "read_trigger_file",
    "response_statistics",
    "roi_artifact_mask",
    "roi_sample_times",
    "select_in_recording",
    "shuffled_events_test",
    "trial_responses",
    "validate_events",
    "write_response_outputs",
]
