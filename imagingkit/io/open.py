"""``open_recording``: pick the loader for a path and apply user overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagingkit.errors import FileFormatError, MissingFileError, ParameterError
from imagingkit.io.recording import Recording


def open_recording(path: str | Path, **overrides: Any) -> Recording:
    """Open a recording lazily, whatever microscope wrote it.

    Parameters
    ----------
    path : str or Path
        A TIFF file (plain, BigTIFF, ImageJ, ScanImage; any file of a
        numbered series ``name_00001.tif`` ... opens the whole series), a folder
        holding one numbered TIFF series, a glob pattern of TIFF files
        (``"run_*.tif"``, opened in sorted order), a Scanbox ``.sbx`` (its
        ``.mat`` beside it), an HDF5 file (``.h5``/``.hdf5``; pass
        ``dataset=`` and ``axes=`` if not inferable) or a suite2p output
        folder (``suite2p/``, its parent, or one ``plane0/``).
    **overrides
        Loader options — TIFF: ``series`` (False: this file only), ``axes``
        (meaning of the page axes, e.g. ``"Z"``), ``fov_um_at_zoom1``
        (ScanImage µm calibration), ``field`` (one field of a ScanImage
        multi-ROI file, 0-based); HDF5: ``dataset``, ``axes``; suite2p:
        ``plane`` — and any :class:`Recording` field to replace a wrong or
        missing value, e.g. ``frame_rate_hz=30.0`` or ``pixel_size_um=0.5``.

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
    loader_options = {k: overrides.pop(k) for k in LOADER_OPTIONS if k in overrides}
    rec = _open_with_loader(path, loader_options)
    return rec.with_overrides(**overrides)


LOADER_OPTIONS = ("dataset", "axes", "plane", "series", "fov_um_at_zoom1", "field")
_OPTIONS_BY_LOADER = {
    "tiff": ("axes", "series", "fov_um_at_zoom1", "field"),
    "hdf5": ("dataset", "axes"),
    "suite2p": ("plane",),
    "scanbox": (),
}


def _options_for(loader: str, options: dict[str, Any], path: Path) -> dict[str, Any]:
    allowed = _OPTIONS_BY_LOADER[loader]
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ParameterError(
            f"{path}: option(s) {extra} do not apply to a {loader} recording (it takes {list(allowed) or 'none'})"
        )
    return options


def _open_with_loader(path: Path, options: dict[str, Any]) -> Recording:
    from imagingkit.io import hdf5, scanbox, suite2p_folder, tiff

    if not path.exists():
        if any(ch in path.name for ch in "*?["):
            files = sorted(path.parent.glob(path.name))
            files = [f for f in files if f.suffix.lower() in tiff.TIFF_SUFFIXES]
            if not files:
                raise MissingFileError(f"{path}: no TIFF file matches the pattern")
            return tiff.open_tiff(files, **_options_for("tiff", options, path))
        raise MissingFileError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_dir():
        if suite2p_folder.is_suite2p_folder(path):
            return suite2p_folder.open_suite2p_folder(path, **_options_for("suite2p", options, path))
        if any(p.suffix.lower() in tiff.TIFF_SUFFIXES for p in path.iterdir()):
            return tiff.open_tiff(path, **_options_for("tiff", options, path))
        raise FileFormatError(f"{path}: folder is neither a suite2p output nor a folder of TIFF files")
    if suffix in tiff.TIFF_SUFFIXES:
        return tiff.open_tiff(path, **_options_for("tiff", options, path))
    if suffix == ".sbx":
        return scanbox.open_sbx(path)
    if suffix in (".h5", ".hdf5", ".hdf"):
        return hdf5.open_hdf5(path, **_options_for("hdf5", options, path))
    if suffix == ".mat":
        if not path.with_suffix(".sbx").exists():
            raise MissingFileError(
                f"{path.with_suffix('.sbx')}: Scanbox data file not found beside {path.name}"
            )
        return scanbox.open_sbx(path.with_suffix(".sbx"))
    if suffix == ".npy" and path.name in ("ops.npy", "db.npy"):
        return suite2p_folder.open_suite2p_folder(path.parent, **_options_for("suite2p", options, path))
    raise FileFormatError(
        f"{path}: unknown recording format {suffix!r}; expected .tif/.tiff, .sbx, .h5/.hdf5 or a suite2p folder"
    )
