"""Simulators with ground truth: functional recordings with optogenetics, and dendrite sessions.

Every accuracy claim of imagingkit is measured against these simulators; the
writers save their output in the real microscope formats (ScanImage TIFF,
plain TIFF, Scanbox) so loaders and the pipeline run on the same bytes.
"""

from imagingkit.synth.dendrites import (
    DendriteSim,
    DendriteTruth,
    SessionTransform,
    simulate_dendrite_sessions,
)
from imagingkit.synth.functional import (
    FunctionalSim,
    FunctionalSpec,
    FunctionalTruth,
    simulate_functional,
    simulate_functional_sessions,
)
from imagingkit.synth.indicators import INDICATORS, Indicator
from imagingkit.synth.motion import MotionSpec
from imagingkit.synth.stimulation import StimProtocol
from imagingkit.synth.writers import (
    write_dendrite_sessions,
    write_functional,
    write_functional_truth,
    write_sbx,
    write_scanimage_tiff_series,
    write_tiff,
)

__all__ = [
    "INDICATORS",
    "DendriteSim",
    "DendriteTruth",
    "FunctionalSim",
    "FunctionalSpec",
    "FunctionalTruth",
    "Indicator",
    "MotionSpec",
    "SessionTransform",
    "StimProtocol",
    "simulate_dendrite_sessions",
    "simulate_functional",
    "simulate_functional_sessions",
    "write_dendrite_sessions",
    "write_functional",
    "write_functional_truth",
    "write_sbx",
    "write_scanimage_tiff_series",
    "write_tiff",
]
