"""Exchange ROIs and traces with suite2p output folders and ImageJ ROI sets.

suite2p folders are read (through :func:`imagingkit.io.suite2p_folder.load_suite2p_results`)
and written with NumPy only (no suite2p import):
``stat.npy``, ``F.npy``, ``Fneu.npy``, ``spks.npy``, ``iscell.npy`` and
``ops.npy`` (0.14; suite2p 1.x keeps the same per-plane arrays and stores the
image size in ``db.npy`` and the settings in ``settings.npy``).
ImageJ ROI sets go through ``roifile``; polygons are rasterised the way FISSA
and SIMA do (a pixel belongs to the ROI when its centre lies strictly inside
the polygon, ImageJ coordinates having pixel (x, y) span [x, x + 1)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath

from imagingkit._atomic import atomic_dir
from imagingkit.errors import DataError, FileFormatError, MissingFileError
from imagingkit.neurons.extract import Traces
from imagingkit.neurons.roiset import RoiSet

SUITE2P_FILES = ("stat.npy", "F.npy", "Fneu.npy", "spks.npy", "iscell.npy")
SHAPE_FILES = ("ops.npy", "settings.npy", "db.npy", "reg_outputs.npy", "detect_outputs.npy")


# -- suite2p -----------------------------------------------------------------------------
def _plane_folder(path: Path, plane: int) -> Path:
    if (path / "stat.npy").exists() or not (path / f"plane{plane}").is_dir():
        return path
    return path / f"plane{plane}"


def read_suite2p_folder(path: str | Path, plane: int = 0) -> tuple[RoiSet, dict[str, np.ndarray]]:
    """Read a suite2p output folder (``suite2p/`` or one ``planeN/``) into a RoiSet and traces.

    Returns
    -------
    roi_set : RoiSet
        Pixels and weights from ``stat.npy``; ``cell_prob`` and ``is_cell`` from ``iscell.npy``.
    traces : dict
        ``F``, ``Fneu``, ``spikes`` as (n_rois, T) float32 and ``ops`` (dict, possibly empty).

    Raises
    ------
    MissingFileError
        The folder or any of stat/F/Fneu/spks/iscell.npy is missing (all missing names listed).
    FileFormatError
        The arrays disagree in ROI count or are malformed.
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such suite2p folder")
    folder = _plane_folder(path, plane)
    missing = [name for name in SUITE2P_FILES if not (folder / name).is_file()]
    if missing:
        raise MissingFileError(f"{folder}: suite2p folder is missing {', '.join(missing)}")
    from imagingkit.io.suite2p_folder import load_suite2p_results

    loaded = load_suite2p_results(folder)
    stat = loaded["stat"]
    arrays = {k: np.asarray(loaded[k]) for k in ("F", "Fneu", "spks", "iscell")}
    ops = _read_ops(folder)
    n = len(stat)
    iscell = np.atleast_2d(arrays["iscell"]).reshape(n, -1)
    try:
        ypix = [np.asarray(s["ypix"]) for s in stat]
        xpix = [np.asarray(s["xpix"]) for s in stat]
        lam = [np.asarray(s.get("lam", np.ones(len(s["ypix"])))) for s in stat]
    except (KeyError, TypeError, IndexError) as exc:
        raise FileFormatError(f"{folder / 'stat.npy'}: each ROI needs 'ypix' and 'xpix' ({exc})") from exc
    ops.setdefault("fs", loaded.get("fs"))
    if "Ly" in ops and "Lx" in ops:
        shape = (int(ops["Ly"]), int(ops["Lx"]))
    else:
        shape = (
            max((int(y.max()) for y in ypix), default=0) + 1,
            max((int(x.max()) for x in xpix), default=0) + 1,
        )
    skew = np.array([float(s.get("skew", np.nan)) for s in stat])
    prob = iscell[:, 1] if iscell.shape[1] > 1 else iscell[:, 0].astype(float)
    roi_set = RoiSet.from_pixels(
        shape,
        ypix,
        xpix,
        lam,
        cell_prob=prob,
        is_cell=iscell[:, 0] > 0.5,
        trace_skew=skew,
        engine="suite2p-folder",
    )
    traces = {
        "F": arrays["F"].astype(np.float32),
        "Fneu": arrays["Fneu"].astype(np.float32),
        "spikes": arrays["spks"].astype(np.float32),
        "ops": ops,
    }
    return roi_set, traces


def _read_ops(folder: Path) -> dict:
    ops: dict = {}
    for name in SHAPE_FILES:
        f = folder / name
        if f.is_file():
            try:
                item = np.load(f, allow_pickle=True).item()
            except (ValueError, OSError):
                continue
            if isinstance(item, dict):
                for key, value in item.items():
                    ops.setdefault(key, value)
    return ops


def suite2p_stat(roi_set: RoiSet, traces: Traces | None = None) -> list[dict]:
    """The ``stat.npy`` list of dicts for a RoiSet (fields the suite2p GUI reads)."""
    shape = roi_set.shape_stats()
    cent = roi_set.centroids_yx
    label_owner = roi_set.to_label_image()
    skew = np.asarray(roi_set.trace_skew, float)
    if traces is not None and traces.n_rois:
        from scipy import stats as sstats

        skew = sstats.skew(traces.dff, axis=1, nan_policy="omit")
    out = []
    for i in range(roi_set.n_rois):
        y, x, w = roi_set.ypix[i], roi_set.xpix[i], np.asarray(roi_set.lam[i], np.float32)
        overlap = label_owner[y, x] != i + 1
        std = float(np.nanstd(traces.F[i])) if traces is not None and traces.n_rois else 0.0
        out.append(
            {
                "ypix": y.astype(np.int32),
                "xpix": x.astype(np.int32),
                "lam": w / max(float(w.sum()), 1e-12),
                "med": [float(np.median(y)), float(np.median(x))],
                "npix": int(len(y)),
                "npix_norm": float(len(y)),
                "radius": float(shape["radius_px"].iloc[i]),
                "aspect_ratio": float(shape["aspect_ratio"].iloc[i]),
                "compact": float(shape["compactness"].iloc[i]),
                "footprint": 1.0,
                "overlap": overlap,
                "skew": float(skew[i]) if np.isfinite(skew[i]) else 0.0,
                "std": std,
                "centroid": [float(cent[i, 0]), float(cent[i, 1])],
            }
        )
    return out


def write_suite2p_folder(
    roi_set: RoiSet,
    traces: Traces,
    out_dir: str | Path,
    mean_image: np.ndarray | None = None,
    frame_rate_hz: float | None = None,
) -> Path:
    """Write ``out_dir/plane0/`` in the suite2p 0.14 layout the suite2p GUI opens.

    Files: ops.npy (meanImg, meanImgE, max_proj, Vcorr, Ly, Lx, fs, nframes,
    nchannels, nplanes, xrange, yrange, save_path...), stat.npy, F.npy,
    Fneu.npy, spks.npy (float32, NaN frames written as 0 since suite2p does not
    expect NaN) and iscell.npy ((n, 2): is_cell, cell_prob).
    """
    out_dir = Path(out_dir)
    ly, lx = roi_set.shape_yx
    mean = np.zeros((ly, lx), np.float32) if mean_image is None else np.asarray(mean_image, np.float32)
    if mean.shape != (ly, lx):
        raise DataError(f"mean_image must be {ly}x{lx}, got {mean.shape}")
    fs = (
        float(frame_rate_hz)
        if frame_rate_hz
        else (float(1 / np.median(np.diff(traces.time_s))) if traces.n_frames > 1 else 30.0)
    )
    with atomic_dir(out_dir) as tmp:
        plane = tmp / "plane0"
        plane.mkdir()
        ops = {
            "Ly": ly,
            "Lx": lx,
            "fs": fs,
            "nframes": int(traces.n_frames),
            "nplanes": 1,
            "nchannels": 1,
            "functional_chan": 1,
            "meanImg": mean,
            "meanImgE": mean,
            "max_proj": mean,
            "Vcorr": mean,
            "xrange": [0, lx],
            "yrange": [0, ly],
            "save_path": str(out_dir / "plane0"),
            "save_path0": str(out_dir.parent),
            "save_folder": out_dir.name,
            "data_path": [],
            "filelist": [],
            "tau": 1.0,
            "diameter": [int(round(2 * np.median(roi_set.radius_px))) if roi_set.n_rois else 12] * 2,
            "aspect": 1.0,
            "neucoeff": float(np.median(traces.neuropil_coefficient)) if traces.n_rois else 0.7,
            "reg_file": str(out_dir / "plane0" / "data.bin"),
            "imagingkit": True,
        }
        np.save(plane / "ops.npy", np.array(ops, dtype=object), allow_pickle=True)
        stat = np.empty(roi_set.n_rois, dtype=object)
        stat[:] = suite2p_stat(roi_set, traces)
        np.save(plane / "stat.npy", stat, allow_pickle=True)
        for name, arr in (("F", traces.F), ("Fneu", traces.Fneu), ("spks", traces.spikes)):
            np.save(plane / f"{name}.npy", np.nan_to_num(np.asarray(arr, np.float32), nan=0.0))
        iscell = np.stack([roi_set.is_cell.astype(np.float64), roi_set.cell_prob.astype(np.float64)], axis=1)
        np.save(plane / "iscell.npy", iscell.reshape(roi_set.n_rois, 2))
    return out_dir


# -- ImageJ ----------------------------------------------------------------------------------
def polygon_mask(polygon_xy: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """(Y, X) bool mask of the pixels whose centre lies strictly inside an ImageJ polygon.

    ``polygon_xy`` is (n, 2) in ImageJ (x, y) coordinates where pixel (x, y)
    spans [x, x + 1) x [y, y + 1); the centre tested is (x + 0.5, y + 0.5).
    Centres exactly on an edge are outside (as FISSA/SIMA with shapely).
    """
    poly = np.asarray(polygon_xy, dtype=np.float64)
    ny, nx = shape_yx
    mask = np.zeros((ny, nx), bool)
    if len(poly) < 3:
        return mask
    x0, y0 = max(0, int(np.floor(poly[:, 0].min()))), max(0, int(np.floor(poly[:, 1].min())))
    x1, y1 = min(nx, int(np.ceil(poly[:, 0].max())) + 1), min(ny, int(np.ceil(poly[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1]
    centres = np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5])
    path = MplPath(poly)
    # inside for both a slightly grown and a slightly shrunk outline = strictly inside
    inside = path.contains_points(centres, radius=1e-9) & path.contains_points(centres, radius=-1e-9)
    mask[y0:y1, x0:x1] = inside.reshape(yy.shape)
    return mask


def read_imagej_rois(path: str | Path, shape_yx: tuple[int, int]) -> RoiSet:
    """Read an ImageJ ROI file (``.roi``) or set (``.zip``) as a RoiSet on a (Y, X) image.

    Polygon, freehand, traced, rectangle and oval ROIs are rasterised with
    :func:`polygon_mask` (ovals via roifile's polygon approximation). Parts
    of an ROI beyond the image are clipped.

    Raises
    ------
    MissingFileError
        No such file.
    FileFormatError
        Not an ImageJ ROI file, or an ROI type without an area (line, point).
    DataError
        An ROI lies entirely outside the image (named by index and name).
    """
    import roifile

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such ImageJ ROI file")
    try:
        rois = roifile.ImagejRoi.fromfile(path)
    except Exception as exc:  # roifile raises plain ValueError/struct errors on junk
        raise FileFormatError(f"{path}: not an ImageJ ROI file or set ({exc})") from exc
    rois = rois if isinstance(rois, list) else [rois]
    area_types = {
        roifile.ROI_TYPE.POLYGON,
        roifile.ROI_TYPE.FREEHAND,
        roifile.ROI_TYPE.TRACED,
        roifile.ROI_TYPE.RECT,
        roifile.ROI_TYPE.OVAL,
    }
    ypix, xpix = [], []
    for i, roi in enumerate(rois):
        label = f"ROI {i} ({roi.name or 'unnamed'})"
        if roi.roitype not in area_types and roi.composite is None:
            raise FileFormatError(f"{path}: {label} is a {roi.roitype.name} ROI, which has no area")
        coords = roi.coordinates()
        mask = polygon_mask(coords, shape_yx)
        if not mask.any():
            raise DataError(
                f"{path}: {label} lies outside the {shape_yx[0]}x{shape_yx[1]} image "
                f"(x {coords[:, 0].min():g}..{coords[:, 0].max():g}, y {coords[:, 1].min():g}..{coords[:, 1].max():g})"
            )
        y, x = np.nonzero(mask)
        ypix.append(y)
        xpix.append(x)
    return RoiSet.from_pixels(shape_yx, ypix, xpix, engine="imagej")


def mask_outline_xy(mask: np.ndarray) -> np.ndarray:
    """(n, 2) ImageJ (x, y) polygon around a 2-D mask's largest outline.

    Contours from ``skimage.measure.find_contours`` at level 0.5 run half-way
    between inside and outside pixel centres; +0.5 converts centre coordinates
    to ImageJ's corner-based ones, so :func:`polygon_mask` gives the mask back.
    """
    from skimage.measure import find_contours

    padded = np.pad(np.asarray(mask, float), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        raise DataError("cannot outline an empty mask")
    outline = max(contours, key=len) - 1.0  # undo the padding
    return np.column_stack([outline[:, 1] + 0.5, outline[:, 0] + 0.5])


def write_imagej_rois(roi_set: RoiSet, path: str | Path) -> Path:
    """Write the ROIs as an ImageJ ROI set (``.zip``) of sub-pixel polygon ROIs named ``roi_0001``...

    ROIs made of several pieces are written as their largest piece's outline.
    """
    import roifile

    from imagingkit._atomic import atomic_path

    path = Path(path)
    rois = []
    for i, mask in enumerate(roi_set.masks()):
        roi = roifile.ImagejRoi.frompoints(mask_outline_xy(mask).astype(np.float32), name=f"roi_{i + 1:04d}")
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    with atomic_path(path) as tmp:
        tmp.unlink()
        if rois:
            roifile.roiwrite(tmp, rois)
        else:
            import zipfile

            zipfile.ZipFile(tmp, "w").close()
    return path
