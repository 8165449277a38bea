"""Dendritic spines: trace dendrites, detect spines, measure them, re-measure edited tables.

Main entry points: :func:`detect_spines` (image or z-stack to spine and dendrite tables),
:func:`measure_spines` (re-measure a corrected table without re-detecting),
:func:`trace_dendrites`, and :func:`detect_spines_log` (the plain LoG baseline).
"""

from imagingkit.spines.baseline import detect_spines_log
from imagingkit.spines.dendrite import DendriteTrace, TraceParams, trace_dendrites
from imagingkit.spines.detect import detect_spines
from imagingkit.spines.image import PreparedImage, prepare_image
from imagingkit.spines.measure import NoSpinesWarning, add_spine, measure_spines, move_spine, remove_spine
from imagingkit.spines.model import ModelParams
from imagingkit.spines.params import DetectParams, MeasureParams, SpineParams
from imagingkit.spines.table import (
    DENDRITE_COLUMNS,
    SPINE_COLUMNS,
    SpineResult,
    read_spine_table,
    write_tables,
)

__all__ = [
    "DENDRITE_COLUMNS",
    "SPINE_COLUMNS",
    "DendriteTrace",
    "DetectParams",
    "MeasureParams",
    "ModelParams",
    "NoSpinesWarning",
    "PreparedImage",
    "SpineParams",
    "SpineResult",
    "TraceParams",
    "add_spine",
    "detect_spines",
    "detect_spines_log",
    "measure_spines",
    "move_spine",
    "prepare_image",
    "read_spine_table",
    "remove_spine",
    "trace_dendrites",
    "write_tables",
]
