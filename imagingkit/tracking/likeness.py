"""Does a spine's place look like the spine where its track was detected? Patch likeness.

The image check (:mod:`imagingkit.tracking.recheck`) reads the evidence at a track's place one
number at a time: the strongest peak near it, the light at the place itself. A scorer looks at
more: whether the place, in this session, looks like the spine did in the sessions where it
was seen (the same head at the same side of the shaft, or only the shaft's edge). For every row
of a track table, :func:`measure_likeness` compares a small patch around the row's place
(radius :data:`PATCH_RADIUS_UM`) with the track's template, the mean of its patches over the
sessions where the input detected the spine:

- ``likeness``: Pearson correlation of the patch of the session's evidence map (the detector's
  score over its threshold, :func:`imagingkit.tracking.recheck.evidence_map`; unjudged pixels
  count as 0) with the template of those patches. Near 1: the spine's own shape is there;
  near 0 or below: it is not.
- ``image_likeness``: the same for the patch of the image itself (divided by the session
  image's median, so that a brighter session compares with a dimmer one).
- ``image_contrast``: how much of the template's contrast the image patch holds (projection of
  the mean-removed patch on the mean-removed template, over the template's own energy): about 1
  where the spine is as it was, 0 on a flat patch.

- ``likeness_level`` and ``image_likeness_level``: what the two likenesses are where the spine
  is there: the median, over the track's detected sessions, of each one's likeness with the
  template of the others (NaN for a track detected once). Noise, a misregistered session and a
  spine that changes shape lower the likeness of a present spine; the level shows by how much
  for this track, as the track's level does for the evidence readings.

A detected row's own patch is part of its template. NaN where the row is out of view or was
reviewed, and for a track the input never detected. These are readings for the presence model
(:mod:`imagingkit.tracking.presence`), which was fitted with them; 2D images only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

#: half-width of the compared patch (µm); the presence model was fitted with it
PATCH_RADIUS_UM = 0.8

#: ``patches(session, points_ref)`` -> evidence-map and image patches, each ``(n, k, k)``
PatchSampler = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: the columns :func:`measure_likeness` adds
LIKENESS_COLUMNS = ("likeness", "image_likeness", "image_contrast", "likeness_level", "image_likeness_level")


def patch_radius_px(pixel_size_um: float) -> int:
    """:data:`PATCH_RADIUS_UM` in whole pixels (at least 1)."""
    return max(1, round(PATCH_RADIUS_UM / pixel_size_um))


def sample_patches(image: np.ndarray, points_px: np.ndarray, radius_px: int) -> np.ndarray:
    """Square patches of a 2D image centred on points (linear interpolation; the nearest edge beyond the border).

    Parameters
    ----------
    image : ndarray
        2D image.
    points_px : ndarray
        ``(n, 2)`` (y, x) pixels of that image (sub-pixel allowed).
    radius_px : int
        Half-width: patches are ``2 * radius_px + 1`` pixels square, in steps of one pixel.

    Returns
    -------
    ndarray
        ``(n, 2 * radius_px + 1, 2 * radius_px + 1)``.
    """
    points_px = np.nan_to_num(np.asarray(points_px, float).reshape(-1, 2))
    offsets = np.arange(-radius_px, radius_px + 1, dtype=float)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    y = points_px[:, 0, None, None] + dy
    x = points_px[:, 1, None, None] + dx
    values = ndi.map_coordinates(np.asarray(image, float), [y.ravel(), x.ravel()], order=1, mode="nearest")
    return values.reshape(y.shape)


def _products(patches: np.ndarray, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patch: the mean-removed patch dotted with its mean-removed template, and both energies.

    ``templates`` is one ``(k, k)`` template for every patch or one per patch, ``(n, k, k)``.
    """
    a = patches - patches.mean(axis=(-2, -1), keepdims=True)
    b = templates - templates.mean(axis=(-2, -1), keepdims=True)
    dot = (a * b).sum(axis=(-2, -1))
    patch_energy = (a * a).sum(axis=(-2, -1))
    template_energy = np.broadcast_to((b * b).sum(axis=(-2, -1)), dot.shape)
    return dot, patch_energy, template_energy


def correlation(patches: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of each patch ``(n, k, k)`` with a template (``(k, k)``, or one per patch).

    0 for a flat patch (none of the template's shape is there), NaN for a flat template.
    """
    dot, patch_energy, template_energy = _products(patches, template)
    norm = np.sqrt(patch_energy * template_energy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(template_energy > 0, np.where(norm > 0, dot / norm, 0.0), np.nan)


def contrast(patches: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Projection of each mean-removed patch on the mean-removed template, over the template's energy."""
    dot, _, template_energy = _products(patches, template)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(template_energy > 0, dot / template_energy, np.nan)


def _level(seen: np.ndarray) -> float:
    """Median correlation of each of a track's detected patches with the mean of its others (NaN below two)."""
    if len(seen) < 2:
        return np.nan
    others = (seen.sum(axis=0) - seen) / (len(seen) - 1)
    values = correlation(seen, others)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else np.nan


def measure_likeness(tracks: pd.DataFrame, patches: PatchSampler) -> pd.DataFrame:
    """Add :data:`LIKENESS_COLUMNS` to a track table (see the module docstring).

    Parameters
    ----------
    tracks : DataFrame
        Track table (``track_id, session, spine_id, y, x, z, present, in_view, reviewed``),
        positions in reference-frame pixels.
    patches : callable
        ``patches(session, points)`` with ``points`` ``(n, 3)`` reference-frame pixels
        ``y, x, z``: the evidence-map and the (median-scaled) image patches of that session
        around them, each ``(n, k, k)``.

    Returns
    -------
    DataFrame
        A copy with the :data:`LIKENESS_COLUMNS` (NaN where not measured).
    """
    out = tracks.assign(**{name: np.nan for name in LIKENESS_COLUMNS})
    measured = out["in_view"].to_numpy(bool) & ~out["reviewed"].to_numpy(bool)
    if not measured.any():
        return out
    rows = np.flatnonzero(measured)
    sessions = out["session"].to_numpy(int)[rows]
    points = out[["y", "x", "z"]].to_numpy(float)[rows]
    evidence_patches, image_patches = None, None
    for session in np.unique(sessions):
        here = np.flatnonzero(sessions == session)
        evidence_here, image_here = patches(int(session), points[here])
        if evidence_patches is None:
            evidence_patches = np.empty((len(rows), *evidence_here.shape[1:]))
            image_patches = np.empty_like(evidence_patches)
        evidence_patches[here], image_patches[here] = evidence_here, image_here
    detected = out["present"].to_numpy(bool)[rows] & out["spine_id"].notna().to_numpy()[rows]
    values = {name: np.full(len(rows), np.nan) for name in LIKENESS_COLUMNS}
    by_track = pd.Series(np.arange(len(rows))).groupby(out["track_id"].to_numpy()[rows]).indices
    for members in by_track.values():
        seen = members[detected[members]]
        if not len(seen):
            continue
        evidence_template = evidence_patches[seen].mean(axis=0)
        image_template = image_patches[seen].mean(axis=0)
        values["likeness"][members] = correlation(evidence_patches[members], evidence_template)
        values["image_likeness"][members] = correlation(image_patches[members], image_template)
        values["image_contrast"][members] = contrast(image_patches[members], image_template)
        values["likeness_level"][members] = _level(evidence_patches[seen])
        values["image_likeness_level"][members] = _level(image_patches[seen])
    for name in LIKENESS_COLUMNS:
        out.loc[out.index[rows], name] = values[name]
    return out
