"""Longitudinal spine tracking: cross-session identity, fates, turnover statistics and review.

Main entry points: :func:`track_spines` (spine tables + registration mappings -> tracks and
statistics), :func:`track_sessions` (images: registers, detects, tracks),
:func:`compute_turnover` / :func:`summarize` (statistics of a, possibly reviewed, track table),
the review edits :func:`relink`, :func:`split_track`, :func:`mark_presence`,
:func:`mark_event`, :func:`reject_track`, and :func:`list_events` (every gain and loss, those to
review first: the ones no image confirmed). With the session images at hand every absence of a
track is checked on the image (:mod:`imagingkit.tracking.recheck`, :class:`RecheckParams`).
"""

from imagingkit.tracking.bootstrap import BootstrapParams, bootstrap_turnover
from imagingkit.tracking.events import EVENT_COLUMNS, list_events
from imagingkit.tracking.fates import FATES, STATES, FateParams, build_tracks, classify_fates
from imagingkit.tracking.link import LinkParams, link_detections
from imagingkit.tracking.recheck import RecheckParams
from imagingkit.tracking.review import mark_event, mark_presence, reject_track, relink, split_track
from imagingkit.tracking.session import (
    TRACK_COLUMNS,
    TrackingParams,
    TrackingResult,
    summarize,
    track_sessions,
    track_spines,
)
from imagingkit.tracking.turnover import TURNOVER_COLUMNS, cohort_survival, compute_turnover

__all__ = [
    "EVENT_COLUMNS",
    "FATES",
    "STATES",
    "TRACK_COLUMNS",
    "TURNOVER_COLUMNS",
    "BootstrapParams",
    "FateParams",
    "LinkParams",
    "RecheckParams",
    "TrackingParams",
    "TrackingResult",
    "bootstrap_turnover",
    "build_tracks",
    "classify_fates",
    "cohort_survival",
    "compute_turnover",
    "link_detections",
    "list_events",
    "mark_event",
    "mark_presence",
    "reject_track",
    "relink",
    "split_track",
    "summarize",
    "track_sessions",
    "track_spines",
]
