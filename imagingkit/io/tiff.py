"""TIFF recordings: multi-page TIFF and BigTIFF, ImageJ hyperstacks, ScanImage, numbered series.

Opening reads headers only (page offsets, and for ScanImage 2016+ the per-frame
descriptions); pixels are read on demand. Uncompressed pages are read with
positioned reads at their byte offsets (runs of adjacent pages in one call);
compressed or otherwise encoded pages are decoded page by page with tifffile.

Numbered series
    A file named ``<stem><number>.tif`` whose stem is empty or ends with
    ``_``, ``-`` or ``.`` (ScanImage: ``name_00001_00002.tif``) is opened together
    with its siblings of the same stem and extension, in numeric order, as one
    recording. A gap in the numbering raises :class:`FileFormatError` naming the
    missing number. A folder opens the one numbered series it holds. Pass
    ``series=False`` to open a single file. ScanImage 3.x files are complete
    acquisitions (``framesPerFile=Inf``) and are not merged; ScanImage 2016+
    files are merged only when their frame numbers continue from file to file.

ImageJ headers that claim more images than the file holds (tifffile then falls
back to the pages that exist) are read as the pages that exist, with a note in
``metadata["warnings"]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import tifffile

from imagingkit.errors import FileFormatError, ImagingKitError, MissingFileError, ParameterError
from imagingkit.io import scanimage
from imagingkit.io._rawio import RawReader
from imagingkit.io.recording import Recording, make_recording

TIFF_SUFFIXES = (".tif", ".tiff", ".tf8", ".btf")
_NUMBERED = re.compile(r"^(?P<stem>(?:.*[_.\-])?)(?P<number>\d+)(?P<ext>\.[A-Za-z0-9]+)$")
_TIME_LIKE = "TIQ"


@dataclasses.dataclass
class _FileScan:
    """Header facts of one TIFF file."""

    path: Path
    kind: str  # "scanimage3", "scanimage", "imagej", "generic"
    lead_axes: str  # tifffile axes of the page sequence (before Y, X[, S])
    lead_shape: tuple[int, ...]
    page_shape: tuple[int, ...]  # (Y, X) or (Y, X, S)
    dtype: np.dtype  # with the file's byte order
    raw: bool  # pages can be read as raw bytes at `offsets`
    offsets: np.ndarray  # (n_pages,) int64 byte offsets (-1 when not raw)
    descriptions: list[str] | None  # ScanImage 2016+ per-page frame data
    first_page: dict  # description, software, artist, resolution...
    imagej: dict | None
    warnings: list[str]

    @property
    def n_pages(self) -> int:
        return len(self.offsets)


# -- reading pixels -------------------------------------------------------------------
class TiffPageSource:
    """A :class:`~imagingkit.io.recording.FrameSource` over pages of one or more TIFF files.

    Parameters
    ----------
    files : tuple of Path
    page_file, page_local, page_offset : (n_pages,) int arrays
        File index, page index within the file and byte offset of every page.
    page_index : (T, Z, Cp) int array
        Global page index of each time point, plane and page channel.
    page_shape : (Y, X) or (Y, X, S)
        Samples S of a page become extra channels.
    file_dtype : numpy dtype
        Pixel type with the files' byte order.
    raw : bool
        Read raw bytes at ``page_offset`` (uncompressed data) instead of decoding with tifffile.
    crop_yx : (slice, slice), optional
        The part of every page to return (one field of a ScanImage multi-ROI page).
    """

    def __init__(
        self, files, page_file, page_local, page_offset, page_index, page_shape, file_dtype, raw, crop_yx=None
    ):
        self.files = tuple(files)
        self.page_file = np.asarray(page_file, dtype=np.int64)
        self.page_local = np.asarray(page_local, dtype=np.int64)
        self.page_offset = np.asarray(page_offset, dtype=np.int64)
        self.page_index = np.asarray(page_index, dtype=np.int64)
        self.page_shape = tuple(page_shape)
        self.file_dtype = np.dtype(file_dtype)
        self.dtype = self.file_dtype.newbyteorder("=")
        self.raw = raw
        self.crop_yx = crop_yx or (slice(0, self.page_shape[0]), slice(0, self.page_shape[1]))
        samples = self.page_shape[2] if len(self.page_shape) == 3 else 1
        n_time, n_planes, n_page_channels = self.page_index.shape
        rows, cols = (len(range(self.page_shape[i])[self.crop_yx[i]]) for i in (0, 1))
        self.shape = (n_time, n_planes, n_page_channels * samples, rows, cols)
        self._tiffs: OrderedDict[int, tifffile.TiffFile] = OrderedDict()
        self._reader = RawReader(self.files)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tiffs"] = OrderedDict()  # open TiffFiles are not picklable; reopened on demand
        return state

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        pages = self.page_index[t_start:t_stop].reshape(-1)
        block = np.empty((len(pages), *self.page_shape), dtype=self.dtype)
        if self.raw:
            self._reader.read_pages(self.page_file[pages], self.page_offset[pages], block)
            if self.file_dtype.byteorder not in ("=", "|") and self.file_dtype != self.dtype:
                block.byteswap(inplace=True)
        else:
            for i, page in enumerate(pages):
                block[i] = self._decode(int(page))
        block = block[:, self.crop_yx[0], self.crop_yx[1]]
        n = t_stop - t_start
        _, n_planes, n_channels, ny, nx = self.shape
        if len(self.page_shape) == 3:  # (pages, Y, X, S) -> (n, Z, Cp*S, Y, X)
            block = block.reshape(n, n_planes, -1, ny, nx, self.page_shape[2])
            return np.ascontiguousarray(np.moveaxis(block, 5, 3).reshape(n, n_planes, n_channels, ny, nx))
        return np.ascontiguousarray(block).reshape(n, n_planes, n_channels, ny, nx)

    def _decode(self, page: int) -> np.ndarray:
        f = int(self.page_file[page])
        tif = self._tiffs.pop(f, None)
        if tif is None:
            tif = tifffile.TiffFile(self.files[f])
            while len(self._tiffs) >= 4:
                self._tiffs.popitem(last=False)[1].close()
        self._tiffs[f] = tif
        try:
            array = tif.pages[int(self.page_local[page])].asarray()
            if array.ndim == 3 and array.shape != self.page_shape:  # planar samples (S, Y, X)
                array = np.moveaxis(array, 0, -1)
            return array.reshape(self.page_shape)
        except Exception as exc:
            raise FileFormatError(
                f"{self.files[f]}: page {self.page_local[page]} cannot be decoded: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the files kept open for reading."""
        self._reader.close()
        while self._tiffs:
            self._tiffs.popitem()[1].close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# -- finding the files --------------------------------------------------------------------
def numbered_series(path: Path) -> list[Path]:
    """The numbered TIFF series ``path`` belongs to, in numeric order (``[path]`` if none).

    Raises
    ------
    FileFormatError
        A number between the first and the last is missing.
    """
    match = _NUMBERED.match(path.name)
    if match is None or match["ext"].lower() not in TIFF_SUFFIXES:
        return [path]
    stem, ext = match["stem"], match["ext"]
    members: dict[int, Path] = {}
    for sibling in path.parent.iterdir():
        m = _NUMBERED.match(sibling.name)
        if m and m["stem"] == stem and m["ext"] == ext and sibling.is_file():
            members.setdefault(int(m["number"]), sibling)
    return _check_gaps(members, path.parent / f"{stem}*{ext}")


def _check_gaps(members: dict[int, Path], pattern: Path) -> list[Path]:
    numbers = sorted(members)
    expected = set(range(numbers[0], numbers[-1] + 1))
    missing = sorted(expected - set(numbers))
    if missing:
        width = len(_NUMBERED.match(members[numbers[0]].name)["number"])
        shown = ", ".join(f"{m:0{width}d}" for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileFormatError(
            f"{pattern}: series has a gap: file number {shown} is missing "
            f"(found {numbers[0]:0{width}d} to {numbers[-1]:0{width}d})"
        )
    return [members[n] for n in numbers]


def series_in_folder(folder: Path) -> list[Path]:
    """The one numbered TIFF series (or single TIFF) in ``folder``."""
    tiffs = sorted(p for p in folder.iterdir() if p.suffix.lower() in TIFF_SUFFIXES and p.is_file())
    if not tiffs:
        raise MissingFileError(f"{folder}: folder holds no TIFF files")
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    singles = []
    for p in tiffs:
        m = _NUMBERED.match(p.name)
        if m is None:
            singles.append(p)
        else:
            groups.setdefault((m["stem"], m["ext"]), {})[int(m["number"])] = p
    if len(groups) + len(singles) != 1:
        names = [f"{stem}*{ext}" for stem, ext in groups] + [p.name for p in singles]
        raise FileFormatError(
            f"{folder}: folder holds {len(names)} TIFF recordings ({', '.join(names[:6])}); open one file"
        )
    if singles:
        return singles
    (stem, ext), members = next(iter(groups.items()))
    return _check_gaps(members, folder / f"{stem}*{ext}")


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's logged warnings and errors while scanning; the loader reports problems itself."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- scanning headers -----------------------------------------------------------------------
def _open_tiff(path: Path) -> tifffile.TiffFile:
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: empty file (0 bytes), expected a TIFF")
    try:
        return tifffile.TiffFile(path)
    except Exception as exc:  # TiffFileError, struct.error, ValueError on garbage
        raise FileFormatError(f"{path}: not a readable TIFF file ({exc})") from exc


def _page_facts(page) -> tuple[tuple[int, ...], np.dtype]:
    if page.dtype is None:
        raise FileFormatError(
            f"{page.parent.filehandle.path}: page {page.index} has an unsupported pixel type"
        )
    shape = tuple(int(s) for s in page.shape)
    if len(shape) == 3 and page.axes == "SYX":  # planar samples
        shape = (shape[1], shape[2], shape[0])
    if len(shape) not in (2, 3) or (len(shape) == 3 and page.axes not in ("YXS", "SYX")):
        raise FileFormatError(
            f"{page.parent.filehandle.path}: page {page.index} has axes {page.axes} shape {page.shape}; "
            "expected a (Y, X) or (Y, X, samples) image"
        )
    return shape, np.dtype(page.dtype).newbyteorder(page.parent.byteorder)


def _check_page(path: Path, index: int, page, shape0, dtype0, file_size: int, raw: bool) -> int:
    """Check one page against the first; return its data offset (-1 if not raw)."""
    shape, dtype = _page_facts(page)
    if shape != shape0 or dtype != dtype0:
        raise FileFormatError(
            f"{path}: pages disagree in shape: page 0 is {shape0} {dtype0.name}, "
            f"page {index} is {shape} {dtype.name}"
        )
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or not any(counts):
        raise FileFormatError(f"{path}: page {index} has no image data (truncated or corrupt file)")
    end = max(o + c for o, c in zip(offsets, counts, strict=False))
    if end > file_size:
        raise FileFormatError(
            f"{path}: truncated: page {index} data ends at byte {end} but the file has {file_size} bytes"
        )
    return int(offsets[0]) if raw else -1


def _scan_file(path: Path) -> _FileScan:
    """Read the headers of one TIFF file (no pixel data)."""
    file_size = path.stat().st_size if path.exists() else 0
    tif = _open_tiff(path)
    try:
        with tif:
            return _scan_open_file(path, tif, file_size)
    except ImagingKitError:
        raise
    except Exception as exc:  # anything tifffile raises on a malformed file
        raise FileFormatError(f"{path}: malformed TIFF ({type(exc).__name__}: {exc})") from exc


def _first_page_facts(tif: tifffile.TiffFile) -> dict:
    page = tif.pages.first
    tags = page.tags
    return {
        "description": page.description,
        "software": page.software,
        "x_resolution": tags.valueof(282),
        "y_resolution": tags.valueof(283),
        "resolution_unit": tags.valueof(296),
    }


def _scan_open_file(path: Path, tif: tifffile.TiffFile, file_size: int) -> _FileScan:
    warnings: list[str] = []
    first = tif.pages.first
    page_shape, dtype = _page_facts(first)
    raw = bool(first.is_final) and (first.samplesperpixel == 1 or first.planarconfig == 1)
    facts = _first_page_facts(tif)
    tif.pages.cache = False
    if tif.is_scanimage:
        si3 = scanimage.is_scanimage3(first.description)
        tif.pages.useframes = False
        offsets, descriptions = [], []
        for i, page in enumerate(tif.pages):
            offsets.append(_check_page(path, i, page, page_shape, dtype, file_size, raw))
            if not si3:
                descriptions.append(page.description)
        return _FileScan(
            path,
            "scanimage3" if si3 else "scanimage",
            "I",
            (len(offsets),),
            page_shape,
            dtype,
            raw,
            np.asarray(offsets, dtype=np.int64),
            None if si3 else descriptions,
            facts,
            None,
            warnings,
        )
    series = tif.series
    imagej = tif.imagej_metadata if tif.is_imagej else None
    if imagej is not None and series[0].kind != "imagej":
        warnings.append(
            f"{path.name}: ImageJ header claims {imagej.get('images', '?')} images but the file holds "
            f"{len(tif.pages)} page(s); using the pages that exist"
        )
    if len(series) == 1 and series[0].kind in ("imagej", "shaped", "generic", "uniform", "ome"):
        s = series[0]
        lead_axes, lead_shape = _lead_axes(s, page_shape)
        n_pages = int(np.prod(lead_shape)) if lead_shape else 1
        if s.dataoffset is not None and raw:
            n_ifds = len(tif.pages)  # walks the IFD chain; stops early in a truncated file
            if 1 < n_ifds < n_pages:
                raise FileFormatError(
                    f"{path}: truncated: the header describes {n_pages} pages but the file holds "
                    f"only {n_ifds} page directories"
                )
            offsets = s.dataoffset + np.arange(n_pages, dtype=np.int64) * first.nbytes
            if n_pages and offsets[-1] + first.nbytes > file_size:
                raise FileFormatError(
                    f"{path}: truncated: {n_pages} pages need {offsets[-1] + first.nbytes} bytes, "
                    f"the file has {file_size}"
                )
        else:
            pages = s.pages
            if len(pages) != n_pages:
                raise FileFormatError(f"{path}: series needs {n_pages} pages, the file holds {len(pages)}")
            offsets = np.asarray(
                [_check_page(path, i, p, page_shape, dtype, file_size, raw) for i, p in enumerate(pages)],
                dtype=np.int64,
            )
        return _FileScan(
            path,
            "imagej" if s.kind == "imagej" else "generic",
            lead_axes,
            lead_shape,
            page_shape,
            dtype,
            raw,
            offsets,
            None,
            facts,
            imagej,
            warnings,
        )
    # several series (pages written one by one, or pages that disagree): every main page
    tif.pages.useframes = False
    offsets = []
    for i, page in enumerate(tif.pages):
        if page.is_reduced:  # thumbnails and pyramid levels are not frames
            continue
        offsets.append(_check_page(path, i, page, page_shape, dtype, file_size, raw))
    return _FileScan(
        path,
        "generic",
        "I",
        (len(offsets),),
        page_shape,
        dtype,
        raw,
        np.asarray(offsets, dtype=np.int64),
        None,
        facts,
        imagej,
        warnings,
    )


def _lead_axes(series, page_shape) -> tuple[str, tuple[int, ...]]:
    """Axes and shape of the page sequence of a tifffile series (without Y, X, S)."""
    axes, shape = series.axes, tuple(int(s) for s in series.shape)
    n_tail = len(page_shape)
    if axes[-n_tail:] not in ("YX", "YXS", "SYX"):
        raise FileFormatError(f"{series.parent.filehandle.path}: unsupported TIFF axes {axes}")
    return axes[:-n_tail], shape[:-n_tail]


# -- layout: pages -> (T, Z, C) ----------------------------------------------------------------
def _generic_page_index(lead_axes: str, lead_shape: tuple[int, ...], path: Path) -> np.ndarray:
    """(T, Z, Cp) page indices for pages in C order of ``lead_shape`` with axes ``lead_axes``."""
    letters = []
    for letter in lead_axes:
        mapped = "T" if letter in _TIME_LIKE else letter
        if mapped not in "TZC":
            raise FileFormatError(
                f"{path}: cannot map TIFF axis {letter!r} of {lead_axes!r} to time/plane/channel; "
                "pass axes= (e.g. axes='TZC')"
            )
        if mapped in letters:
            raise FileFormatError(f"{path}: TIFF axes {lead_axes!r} have two {mapped} axes; pass axes=")
        letters.append(mapped)
    index = np.arange(int(np.prod(lead_shape)) if lead_shape else 1).reshape(lead_shape or ())
    for letter in "TZC":
        if letter not in letters:
            index = index[..., None]
            letters.append(letter)
    return np.transpose(index, [letters.index(letter) for letter in "TZC"])


def _scanimage_page_index(
    info: scanimage.ScanImageInfo, n_pages: int, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(T, Z, C) page indices and (T, Z) acquisition frame numbers of a ScanImage file."""
    n_planes, n_channels, per_slice = info.n_planes, info.n_channels, info.frames_per_slice
    z_saved = n_planes + info.n_flyback_saved
    per_volume = info.pages_per_volume
    if n_pages % per_volume:
        raise FileFormatError(
            f"{path}: {n_pages} pages do not divide into volumes of {per_volume} pages "
            f"({n_planes} plane(s) + {info.n_flyback_saved} flyback frame(s)) x {per_slice} frame(s) per slice "
            f"x {n_channels} channel(s))"
        )
    n_volumes = n_pages // per_volume
    t = np.arange(n_volumes * per_slice)
    v, f = t // per_slice, t % per_slice
    z = np.arange(n_planes)
    c = np.arange(n_channels)
    index = ((v[:, None, None] * z_saved + z[None, :, None]) * per_slice + f[:, None, None]) * n_channels + c[
        None, None, :
    ]
    frames = (v[:, None] * (n_planes + info.n_flyback_frames) + z[None, :]) * per_slice + f[:, None]
    return index, frames


# -- pixel size and timing of non-ScanImage files -------------------------------------------------
def _generic_pixel_size(scan: _FileScan) -> tuple[float, float] | None:
    facts = scan.first_page
    xres, yres = facts["x_resolution"], facts["y_resolution"]
    if not xres or not yres:
        return None
    x = xres[0] / xres[1] if isinstance(xres, tuple) else float(xres)
    y = yres[0] / yres[1] if isinstance(yres, tuple) else float(yres)
    if x <= 0 or y <= 0:
        return None
    unit = str((scan.imagej or {}).get("unit", "")).lower()
    if unit in ("micron", "um", "µm", "\\u00b5m", "microns"):
        return 1.0 / y, 1.0 / x
    if int(facts["resolution_unit"] or 0) == 3:  # centimetre
        return 1e4 / y, 1e4 / x
    return None


def _imagej_timing(imagej: dict | None, n_planes: int) -> dict:
    if not imagej:
        return {}
    out: dict = {}
    interval = imagej.get("finterval")
    if interval and float(interval) > 0:
        if n_planes == 1:
            out["frame_rate_hz"] = 1.0 / float(interval)
        else:
            out["volume_rate_hz"] = 1.0 / float(interval)
    spacing = imagej.get("spacing")
    unit = str(imagej.get("unit", "")).lower()
    if spacing and n_planes > 1 and unit in ("micron", "um", "µm", "\\u00b5m", "microns"):
        out["z_step_um"] = float(spacing)
    return out


# -- the loader ------------------------------------------------------------------------------
def open_tiff(
    path: str | Path | list,
    *,
    series: bool = True,
    axes: str | None = None,
    fov_um_at_zoom1: float | tuple[float, float] | None = None,
    field: int | None = None,
) -> Recording:
    """Open a TIFF recording (one file, a numbered series, or a folder holding one series).

    Parameters
    ----------
    path : str, Path or list of Path
        A TIFF file, a folder with one numbered series, or the files of a series in order.
    series : bool
        Open the numbered series the file belongs to (default) or only this file.
    axes : str or None
        Meaning of the page sequence axes for non-ScanImage files, letters among
        T, Z, C (e.g. ``"Z"`` for a z-stack saved as a plain multi-page file,
        ``"TZC"`` for pages ordered time-plane-channel). Default: tifffile's axes
        (generic page sequences are time).
    fov_um_at_zoom1 : float or (float, float) or None
        Field of view (µm, scalar or (y, x)) of the microscope at zoom 1, used
        for ScanImage files whose header has no µm calibration.
    field : int or None
        For a ScanImage multi-ROI (mROI) file, the 0-based field (imaging ROI) to open;
        the fields are listed in ``metadata["scanfields"]`` (and by ``imagingkit info``).
        Without it such a file opens as whole pages, fly-to lines included, with a warning.

    Returns
    -------
    Recording
        ``format`` is ``"scanimage"`` for ScanImage files, else ``"tiff"``.
    """
    files = _resolve_files(path, series)
    with _quiet_tifffile():
        if len(files) > 1 and not isinstance(path, (list, tuple)) and Path(path).is_file():
            chosen = _scan_file(Path(path))
            if chosen.kind == "scanimage3":  # one file = one complete ScanImage 3 acquisition
                files = [Path(path)]
            scans = [chosen if f == Path(path) else _scan_file(f) for f in files]
        else:
            scans = [_scan_file(f) for f in files]
    _check_consistent(scans)
    first = scans[0]
    n_per_file = np.array([s.n_pages for s in scans])
    page_file = np.repeat(np.arange(len(scans)), n_per_file)
    page_local = np.concatenate([np.arange(n) for n in n_per_file])
    page_offset = np.concatenate([s.offsets for s in scans])
    shape_yx = first.page_shape[:2]
    warnings = [w for s in scans for w in s.warnings]
    metadata: dict = {"tiff_kind": first.kind, "warnings": warnings, "first_page": first.first_page}
    fields: dict = {}
    crop_yx = None
    if first.kind in ("scanimage", "scanimage3"):
        page_index, fields, metadata = _scanimage_layout(scans, shape_yx, fov_um_at_zoom1, metadata)
        crop_yx = _choose_field(metadata, fields, field, first.path)
        fmt = "scanimage"
    else:
        if field not in (None, 0):
            raise ParameterError(
                f"field={field}: {first.path} is no ScanImage multi-ROI file; it has one field"
            )
        page_index = _multi_file_page_index(scans, axes)
        fmt = "tiff"
        metadata["imagej"] = first.imagej
        fields["pixel_size_um"] = _generic_pixel_size(first)
        fields.update(_imagej_timing(first.imagej, page_index.shape[1]))
    crop_yx = _choose_field(metadata, fields, field, first.path)
    source = TiffPageSource(
        [s.path for s in scans],
        page_file,
        page_local,
        page_offset,
        page_index,
        first.page_shape,
        first.dtype,
        first.raw,
        crop_yx,
    )
    return make_recording(source, fmt, source_files=tuple(s.path for s in scans), metadata=metadata, **fields)


def _resolve_files(path, series: bool) -> list[Path]:
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        if not files:
            raise ParameterError("open_tiff needs at least one file")
        return files
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    if path.is_dir():
        return series_in_folder(path)
    return numbered_series(path) if series else [path]


def _check_consistent(scans: list[_FileScan]) -> None:
    first = scans[0]
    for scan in scans[1:]:
        if scan.page_shape != first.page_shape or scan.dtype != first.dtype:
            raise FileFormatError(
                f"{scan.path}: page 0 is {scan.page_shape} {scan.dtype.name} but the series' first file "
                f"{first.path.name} has {first.page_shape} {first.dtype.name} pages"
            )
        if scan.kind != first.kind or scan.raw != first.raw:
            raise FileFormatError(
                f"{scan.path}: a {scan.kind} TIFF in a series that starts with a {first.kind} TIFF ({first.path.name})"
            )


def _multi_file_page_index(scans: list[_FileScan], axes: str | None) -> np.ndarray:
    first = scans[0]
    lead_axes, lead_shape = first.lead_axes, first.lead_shape
    if len(scans) > 1:
        for scan in scans[1:]:
            if scan.lead_axes != lead_axes or scan.lead_shape[1:] != lead_shape[1:]:
                raise FileFormatError(
                    f"{scan.path}: axes {scan.lead_axes} {scan.lead_shape} do not match "
                    f"{first.path.name} ({lead_axes} {lead_shape})"
                )
        if lead_axes and lead_axes[0] in _TIME_LIKE:
            lead_shape = (sum(s.lead_shape[0] for s in scans), *lead_shape[1:])
        else:
            if any(s.lead_shape != lead_shape for s in scans):
                raise FileFormatError(f"{first.path.parent}: series files hold different numbers of pages")
            lead_axes, lead_shape = "T" + lead_axes, (len(scans), *lead_shape)
    if axes is not None:
        axes = axes.upper()
        if len(axes) != len(lead_axes) or set(axes) - set("TZC"):
            raise ParameterError(
                f"axes={axes!r}: {first.path} has {len(lead_axes)} page axes ({lead_axes or 'none'} "
                f"{lead_shape}); give one letter among T, Z, C for each"
            )
        lead_axes = axes
    if len(first.page_shape) == 3 and "C" in lead_axes.replace("S", ""):
        if lead_shape[lead_axes.index("C")] > 1:
            raise FileFormatError(f"{first.path}: pages with samples and a channel axis are not supported")
    return _generic_page_index(lead_axes, lead_shape, first.path)


def _scanimage_layout(scans, shape_yx, fov_um_at_zoom1, metadata):
    first = scans[0]
    n_pages = sum(s.n_pages for s in scans)
    if first.kind == "scanimage3":
        header = scanimage.parse_header(first.first_page["description"])
        info = scanimage.info_from_scanimage3(header, shape_yx, fov_um_at_zoom1)
        frame_data = None
    else:
        with tifffile.TiffFile(first.path) as tif:
            header, roi_groups = scanimage.static_metadata(tif)
        info = scanimage.info_from_scanimage2016(header, roi_groups, shape_yx, fov_um_at_zoom1)
        scanfields = scanimage.multiroi_fields(header, roi_groups, shape_yx, first.path)
        metadata["scanfields"] = [dataclasses.asdict(f) for f in scanfields]
        descriptions = [d for s in scans for d in s.descriptions]
        frame_data = scanimage.parse_frame_descriptions(descriptions)
        _check_frame_continuity(scans, frame_data["frame_numbers"])
    page_index, frames = _scanimage_page_index(info, n_pages, first.path)
    fields = {
        "frame_rate_hz": info.frame_rate_hz,
        "volume_rate_hz": info.volume_rate_hz,
        "pixel_size_um": info.pixel_size_um,
        "z_step_um": info.z_step_um,
        "line_period_s": info.line_period_s,
        "bidirectional": info.bidirectional,
    }
    if frame_data is not None and np.all(np.isfinite(frame_data["timestamps_s"][page_index[:, :, 0]])):
        fields["frame_times_s"] = frame_data["timestamps_s"][page_index[:, :, 0]]
        fields["trigger_times_s"] = scanimage.trigger_times(frame_data)
    elif info.frame_rate_hz and (info.n_planes > 1 and not info.fast_z):
        fields["frame_times_s"] = frames / info.frame_rate_hz  # slow stack: explicit per-frame times
    metadata.update(
        scanimage_version=info.version,
        channels_saved=list(info.channels_saved),
        n_flyback_frames=info.n_flyback_frames,
        n_flyback_dropped=info.n_flyback_saved,
        fast_z=info.fast_z,
        zoom=info.zoom,
        header=info.header,
        roi_groups=info.roi_groups,
    )
    if frame_data is not None:
        metadata["frame_numbers"] = frame_data["frame_numbers"][page_index[:, :, 0]]
    if first.kind == "scanimage3":
        metadata["trigger_time"] = info.header.get("state.internal.triggerTimeString")
    return page_index, fields, metadata


def _choose_field(metadata: dict, fields: dict, field: int | None, path: Path):
    """The page crop of the chosen multi-ROI field (and its pixel size), or None for whole pages."""
    scanfields = metadata.get("scanfields") or []
    if not scanfields:
        if field not in (None, 0):
            raise ParameterError(f"field={field}: {path} is no ScanImage multi-ROI file; it has one field")
        return None
    if field is None:
        sizes = {f["pixel_size_um"] for f in scanfields}
        fields["pixel_size_um"] = sizes.pop() if len(sizes) == 1 else None
        metadata["warnings"].append(
            f"{path}: {len(scanfields)} ScanImage multi-ROI fields are stacked in each page "
            f"({', '.join(f['name'] for f in scanfields)}); open one with field=0..{len(scanfields) - 1}"
        )
        return None
    if not 0 <= field < len(scanfields):
        raise ParameterError(
            f"field={field}: {path} has {len(scanfields)} multi-ROI fields (0..{len(scanfields) - 1})"
        )
    chosen = scanfields[field]
    fields["pixel_size_um"] = chosen["pixel_size_um"]
    metadata["field"] = field
    return slice(chosen["row_start"], chosen["row_start"] + chosen["n_rows"]), slice(0, chosen["n_cols"])


def _check_frame_continuity(scans: list[_FileScan], frame_numbers: np.ndarray) -> None:
    """ScanImage frame numbers must continue from one file of a series to the next."""
    start = 0
    for prev, scan in zip(scans, scans[1:], strict=False):
        start += prev.n_pages
        last, nxt = frame_numbers[start - 1], frame_numbers[start]
        if last >= 0 and nxt >= 0 and nxt not in (last, last + 1):
            raise FileFormatError(
                f"{scan.path}: starts at ScanImage frame {nxt} but {prev.path.name} ends at frame {last}: "
                "the files are not one acquisition (open one file with series=False)"
            )
