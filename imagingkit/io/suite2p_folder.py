"""suite2p output folders, read without importing suite2p.

Two layouts are understood, per plane folder (``suite2p/plane0``, ``plane1`` ...):

* 0.14 (and earlier): ``ops.npy`` (a pickled dict with ``Ly``, ``Lx``,
  ``nframes``, ``fs``, ``nplanes``, ``nchannels``, ``reg_file``,
  ``reg_file_chan2``...).
* 1.x: ``db.npy`` (recording facts: ``Ly``, ``Lx``, ``nframes``, ``nplanes``,
  ``nchannels``, ``reg_file``...), ``settings.npy`` (pipeline settings, ``fs``
  at the top level) and ``reg_outputs.npy`` / ``detect_outputs.npy``.

The registered movie ``data.bin`` is raw int16 ``(nframes, Ly, Lx)`` (and
``data_chan2.bin`` for a second channel, which becomes channel 1). The path
recorded in ``reg_file`` is used if it exists, else the file of that name in
the plane folder (outputs are often moved). Several plane folders become the
planes of one recording; they must share Ly and Lx, and when their frame counts
differ by the usual one frame the shortest count is used (noted in
``metadata["warnings"]``). ``fs`` is suite2p's per-plane rate, i.e. the volume
rate; the frame rate is ``fs * nplanes`` (flyback time unknown).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from imagingkit.errors import FileFormatError, MetadataError, MissingFileError
from imagingkit.io._rawio import RawReader
from imagingkit.io.recording import Recording, make_recording

RESULT_NAMES = ("stat", "F", "Fneu", "spks", "iscell")
OPTIONAL_RESULT_NAMES = ("F_chan2", "Fneu_chan2", "redcell")
_PLANE = re.compile(r"^plane(\d+)$")


def _load_npy(path: Path, *, item: bool = False):
    if not path.exists():
        raise MissingFileError(f"{path}: suite2p output file not found")
    try:
        value = np.load(path, allow_pickle=True)
    except Exception as exc:  # ValueError / UnpicklingError / EOFError on damaged files
        raise FileFormatError(f"{path}: not a readable .npy file ({exc})") from exc
    if item:
        if not (isinstance(value, np.ndarray) and value.dtype == object and value.shape == ()):
            raise FileFormatError(f"{path}: expected a pickled dict, got an array of shape {value.shape}")
        value = value.item()
        if not isinstance(value, dict):
            raise FileFormatError(f"{path}: expected a pickled dict, got {type(value).__name__}")
    return value


def plane_folders(folder: Path) -> list[Path]:
    """Plane folders of a suite2p output: ``folder`` itself if it is one, else its ``planeN`` children."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such folder")
    if _is_plane(folder):
        return [folder]
    for root in (folder, folder / "suite2p"):
        if root.is_dir():
            planes = [p for p in root.iterdir() if p.is_dir() and _PLANE.match(p.name) and _is_plane(p)]
            if planes:
                return sorted(planes, key=lambda p: int(_PLANE.match(p.name)[1]))
    raise MissingFileError(
        f"{folder}: not a suite2p output folder (no ops.npy or db.npy here or in plane0/, suite2p/plane0/)"
    )


def _is_plane(folder: Path) -> bool:
    return (folder / "ops.npy").exists() or (folder / "db.npy").exists()


def is_suite2p_folder(folder: Path) -> bool:
    """True when ``folder`` looks like a suite2p output (plane folder, ``suite2p/`` or its parent)."""
    try:
        plane_folders(folder)
    except MissingFileError:
        return False
    return True


def plane_facts(plane: Path, need_binary: bool = True) -> dict:
    """Layout-independent facts of one plane folder: Ly, Lx, nframes, fs, nplanes, nchannels, files."""
    if (plane / "ops.npy").exists():
        ops = _load_npy(plane / "ops.npy", item=True)
        layout, db, settings = "0.14", ops, ops
    else:
        db = _load_npy(plane / "db.npy", item=True)
        settings_path = plane / "settings.npy"
        if not settings_path.exists() and (plane.parent / "settings.npy").exists():
            settings_path = plane.parent / "settings.npy"
        settings = _load_npy(settings_path, item=True)
        layout = "1.x"
    facts = {"layout": layout, "plane_folder": plane}
    for key in ("Ly", "Lx"):
        if key not in db:
            source = "ops.npy" if layout == "0.14" else "db.npy"
            raise MetadataError(f"{plane / source}: no {key!r} entry")
        facts[key] = int(db[key])
    facts["nframes"] = int(db["nframes"]) if "nframes" in db else None
    fs = settings.get("fs", db.get("fs"))
    facts["fs"] = float(fs) if fs else None
    facts["nplanes"] = int(db.get("nplanes", settings.get("nplanes", 1)) or 1)
    facts["nchannels"] = int(db.get("nchannels", settings.get("nchannels", 1)) or 1)
    facts["reg_file"] = _binary(plane, db.get("reg_file"), "data.bin", required=need_binary)
    chan2 = _binary(plane, db.get("reg_file_chan2"), "data_chan2.bin", required=False)
    facts["reg_file_chan2"] = chan2 if facts["nchannels"] > 1 else None
    facts["settings"] = settings if layout == "1.x" else None
    facts["db"] = db
    return facts


def _binary(plane: Path, recorded, default_name: str, *, required: bool) -> Path | None:
    candidates = []
    if recorded:
        recorded = Path(str(recorded))
        candidates += [recorded, plane / recorded.name]
    candidates.append(plane / default_name)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    if required:
        shown = " or ".join(str(c) for c in dict.fromkeys(candidates))
        raise MissingFileError(f"{plane}: registered binary not found ({shown})")
    return None


class BinarySource:
    """A :class:`~imagingkit.io.recording.FrameSource` over suite2p ``.bin`` files.

    ``binaries[z][c]`` is the int16 ``(nframes, Ly, Lx)`` file of plane z, channel c.
    """

    def __init__(self, binaries: list[list[Path]], n_frames: int, shape_yx: tuple[int, int]):
        self.binaries = binaries
        self.dtype = np.dtype(np.int16)
        self.shape = (n_frames, len(binaries), len(binaries[0]), *shape_yx)
        self.frame_nbytes = shape_yx[0] * shape_yx[1] * 2
        self._paths = [p for plane in binaries for p in plane]
        self._reader = RawReader(self._paths)

    def read(self, t_start: int, t_stop: int) -> np.ndarray:
        n = max(t_stop - t_start, 0)
        out = np.empty((self.shape[1], self.shape[2], n, *self.shape[3:]), dtype="<i2")
        for k in range(len(self._paths) if n else 0):
            z, c = divmod(k, self.shape[2])
            self._reader.read_into(k, t_start * self.frame_nbytes, out[z, c])
        return np.ascontiguousarray(np.moveaxis(out, 2, 0)).astype(self.dtype, copy=False)


def _frames_in(path: Path, frame_nbytes: int) -> int:
    size = path.stat().st_size
    if size % frame_nbytes:
        raise FileFormatError(
            f"{path}: size {size} bytes is not a whole number of int16 frames of {frame_nbytes} bytes"
        )
    return size // frame_nbytes


def open_suite2p_folder(path: str | Path, plane: int | None = None) -> Recording:
    """Open the registered movie of a suite2p output folder.

    Parameters
    ----------
    path : str or Path
        A plane folder (``.../suite2p/plane0``), a ``suite2p`` folder or its parent.
    plane : int or None
        Open only this plane (``planeN``); default: all planes as the Z axis.

    Returns
    -------
    Recording
        ``format="suite2p"``, int16, ``(T, Z, C, Ly, Lx)``.
    """
    planes = plane_folders(Path(path))
    if plane is not None:
        chosen = [p for p in planes if p.name == f"plane{int(plane)}"]
        if not chosen:
            raise MissingFileError(
                f"{path}: no plane{plane} folder (found {', '.join(p.name for p in planes)})"
            )
        planes = chosen
    facts = [plane_facts(p) for p in planes]
    first = facts[0]
    shape_yx = (first["Ly"], first["Lx"])
    frame_nbytes = shape_yx[0] * shape_yx[1] * 2
    warnings = []
    counts, binaries = [], []
    for f in facts:
        if (f["Ly"], f["Lx"]) != shape_yx:
            raise FileFormatError(
                f"{f['plane_folder']}: plane is {f['Ly']}x{f['Lx']} but {first['plane_folder'].name} is "
                f"{shape_yx[0]}x{shape_yx[1]}; open one plane with plane="
            )
        files = [f["reg_file"]] + ([f["reg_file_chan2"]] if first["reg_file_chan2"] else [])
        if None in files:
            raise MissingFileError(f"{f['plane_folder']}: second-channel binary data_chan2.bin not found")
        n = [_frames_in(b, frame_nbytes) for b in files]
        if f["nframes"] is not None and n[0] != f["nframes"]:
            raise FileFormatError(
                f"{files[0]}: holds {n[0]} frames of {shape_yx[0]}x{shape_yx[1]} int16 but "
                f"{'ops' if f['layout'] == '0.14' else 'db'}.npy says nframes={f['nframes']}"
            )
        counts.append(min(n))
        binaries.append(files)
    n_frames = min(counts)
    if len(set(counts)) > 1:
        warnings.append(f"planes hold {sorted(set(counts))} frames; using the first {n_frames} of each")
    fs = first["fs"]
    n_planes = len(planes)
    source = BinarySource(binaries, n_frames, shape_yx)
    return make_recording(
        source,
        "suite2p",
        frame_rate_hz=None if fs is None else fs * n_planes,
        volume_rate_hz=fs,
        metadata={
            "layout": first["layout"],
            "plane_folders": [str(p) for p in planes],
            "db": first["db"],
            "settings": first["settings"],
            "warnings": warnings,
        },
        source_files=tuple(p for files in binaries for p in files),
    )


def load_suite2p_results(folder: str | Path, plane: int | None = None) -> dict:
    """ROI results of a suite2p plane folder as arrays.

    Parameters
    ----------
    folder : str or Path
        A plane folder, or a ``suite2p`` folder / its parent (then ``plane`` or plane0).
    plane : int or None
        Which ``planeN`` to read when ``folder`` holds several (default 0).

    Returns
    -------
    dict
        ``stat`` (object array of per-ROI dicts with ``ypix``, ``xpix``, ``lam``...),
        ``F``, ``Fneu``, ``spks`` ((n_rois, T) float32), ``iscell`` ((n_rois, 2):
        label, probability), plus ``F_chan2``, ``Fneu_chan2``, ``redcell`` when
        present, and ``plane_folder``, ``layout``, ``fs``.

    Raises
    ------
    MissingFileError
        A required file is missing (named in the message).
    FileFormatError
        The arrays disagree in their number of ROIs.
    """
    planes = plane_folders(Path(folder))
    wanted = f"plane{0 if plane is None else int(plane)}"
    chosen = [p for p in planes if p.name == wanted] or (planes if len(planes) == 1 and plane is None else [])
    if not chosen:
        raise MissingFileError(f"{folder}: no {wanted} folder (found {', '.join(p.name for p in planes)})")
    plane_dir = chosen[0]
    out: dict = {name: _load_npy(plane_dir / f"{name}.npy") for name in RESULT_NAMES}
    for name in OPTIONAL_RESULT_NAMES:
        if (plane_dir / f"{name}.npy").exists():
            out[name] = _load_npy(plane_dir / f"{name}.npy")
    n_rois = len(out["stat"])
    for name in ("F", "Fneu", "spks", "iscell"):
        if out[name].shape[0] != n_rois:
            raise FileFormatError(
                f"{plane_dir / (name + '.npy')}: has {out[name].shape[0]} rows but stat.npy has {n_rois} ROIs"
            )
    facts = plane_facts(plane_dir, need_binary=False)
    out.update(plane_folder=plane_dir, layout=facts.get("layout"), fs=facts.get("fs"))
    return out
