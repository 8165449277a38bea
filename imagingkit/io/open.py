"""``open_recording``: pick the loader for a path and apply user overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagingkit.errors import FileFormatError, MissingFileError
from imagingkit.io.recording import Recording


def open_recording(path: str | Path, **overrides: Any) -> Recording:
    """Open a recording lazily, whatever microscope wrote it.

    Parameters
    ----------
    path : str or Path
        A TIFF file (plain, BigTIFF, ImageJ, ScanImage; the first file of a
        numbered series opens the whole series), a Scanbox ``.sbx`` (its
        ``.mat`` beside it), an HDF5 file (``.h5``/``.hdf5``; pass
        ``dataset=`` and ``axes=`` if not inferable) or a suite2p output
        folder (``suite2p/`` or one ``plane0/``).
    **overrides
        Loader options (``dataset``, ``axes`` for HDF5; ``plane`` for suite2p)
        and any :class:`Recording` field to replace a wrong or missing value,
        e.g. ``frame_rate_hz=30.0`` or ``pixel_size_um=0.5``.

    Returns
    -------
    Recording

    Raises
    ------
    MissingFileError
        The path does not exist.
    FileFormatError
        The file is of an unknown kind or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    from imagingkit.io import hdf5, scanbox, suite2p_folder, tiff

    loader_options = {k: overrides.pop(k) for k in ("dataset", "axes", "plane") if k in overrides}
    suffix = path.suffix.lower()
    if path.is_dir():
        rec = suite2p_folder.open_suite2p_folder(path, **loader_options)
    elif suffix in (".tif", ".tiff", ".tf8", ".btf"):
        rec = tiff.open_tiff(path)
    elif suffix == ".sbx":
        rec = scanbox.open_sbx(path)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        rec = hdf5.open_hdf5(path, **loader_options)
    elif suffix == ".mat" and path.with_suffix(".sbx").exists():
        rec = scanbox.open_sbx(path.with_suffix(".sbx"))
    else:
        raise FileFormatError(
            f"{path}: unknown recording format {suffix!r}; expected .tif/.tiff, .sbx, .h5/.hdf5 or a suite2p folder"
        )
    return rec.with_overrides(**overrides)
