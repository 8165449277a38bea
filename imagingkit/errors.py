"""The one exception family of imagingkit.

Every error a user can cause (a bad file, a wrong parameter, a missing field)
is raised as an :class:`ImagingKitError` subclass whose message names the file
or field and what was expected. The CLI prints such messages on one line and
exits non-zero, without a traceback.
"""

from __future__ import annotations


class ImagingKitError(Exception):
    """Base class of every error imagingkit raises on purpose."""


class FileFormatError(ImagingKitError):
    """A file exists but is not what it should be (truncated, malformed, wrong shape)."""


class MissingFileError(ImagingKitError, FileNotFoundError):
    """A file or folder the operation needs does not exist."""


class MetadataError(ImagingKitError):
    """A metadata field is missing, inconsistent or out of range."""


class ParameterError(ImagingKitError, ValueError):
    """A parameter given by the caller is invalid."""


class RegistrationError(ImagingKitError):
    """Images could not be registered (no overlap, different field of view...)."""


class DataError(ImagingKitError, ValueError):
    """Input data cannot be analysed (too few frames, all NaN, no events...)."""
