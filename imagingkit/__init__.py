"""imagingkit: two-photon calcium imaging and optogenetics toolkit.

Load multiphoton recordings lazily with their metadata, correct motion,
segment neurons and dendritic spines, track spines across sessions and align
optogenetic stimulation with cortical responses.
"""

from imagingkit.errors import (
    DataError,
    FileFormatError,
    ImagingKitError,
    MetadataError,
    MissingFileError,
    ParameterError,
    RegistrationError,
)
from imagingkit.io import Recording, open_recording

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "FileFormatError",
    "ImagingKitError",
    "MetadataError",
    "MissingFileError",
    "ParameterError",
    "Recording",
    "RegistrationError",
    "open_recording",
    "__version__",
]
