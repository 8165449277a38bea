"""Loaders for multiphoton recordings; each returns a lazy :class:`Recording`.

Formats: plain/multi-page TIFF and BigTIFF, ImageJ hyperstacks and numbered
TIFF series, ScanImage 3.x and 5.x/2016+, Scanbox ``.sbx``+``.mat``, HDF5 and
suite2p output folders (0.14 and 1.x layouts), read without suite2p.
"""

from imagingkit.io.open import open_recording
from imagingkit.io.recording import DIMS, ArraySource, LazyArray, Recording, from_array
from imagingkit.io.suite2p_folder import load_suite2p_results

__all__ = [
    "DIMS",
    "ArraySource",
    "LazyArray",
    "Recording",
    "from_array",
    "load_suite2p_results",
    "open_recording",
]
