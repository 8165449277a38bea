"""Plain baseline: Laplacian-of-Gaussian blobs (skimage.feature.blob_log) near the traced shafts.

Used by the benchmarks to show what the shaft model adds. It uses the same dendrite
trace, so the comparison isolates the detection step: blobs are kept when they lie
between the shaft edge and ``max_distance_um`` of a centreline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from skimage.feature import blob_log

from imagingkit.spines.dendrite import DendriteTrace
from imagingkit.spines.image import PreparedImage


def detect_spines_log(
    image: PreparedImage,
    trace: DendriteTrace,
    max_distance_um: float = 3.5,
    min_distance_um: float = 0.5,
    threshold: float = 0.05,
    head_sigma_um: tuple[float, float] = (0.15, 0.6),
) -> pd.DataFrame:
    """LoG blobs near the dendrites.

    Parameters
    ----------
    image : PreparedImage
    trace : DendriteTrace
    max_distance_um, min_distance_um : float
        Kept blobs lie this far from the nearest centreline point (laterally).
    threshold : float
        ``blob_log`` threshold on the image scaled to 0..1 (1st-99.9th percentile).
    head_sigma_um : (float, float)
        Range of blob sigmas searched, laterally.

    Returns
    -------
    DataFrame
        ``y, x, z`` (z NaN in 2D) of the kept blobs.
    """
    data = image.data
    lo, hi = np.percentile(data, [1, 99.9])
    scaled = np.clip((data - lo) / max(hi - lo, 1e-9), 0, 1)
    px = float(np.mean(image.pixel_size_um))
    sig_lo, sig_hi = head_sigma_um[0] / px, head_sigma_um[1] / px
    if image.is_3d:
        ratio = px / image.spacing_um[0]
        min_sigma = (max(sig_lo * ratio, 0.5), sig_lo, sig_lo)
        max_sigma = (max(sig_hi * ratio, 1.0), sig_hi, sig_hi)
    else:
        min_sigma, max_sigma = sig_lo, sig_hi
    blobs = blob_log(scaled, min_sigma=min_sigma, max_sigma=max_sigma, num_sigma=5, threshold=threshold)
    columns = ["y", "x", "z"]
    if len(blobs) == 0 or trace.n_dendrites == 0:
        return pd.DataFrame(columns=columns, dtype=float)
    coords = blobs[:, : data.ndim]
    yx = coords[:, -2:]
    pts = trace.centreline[["y", "x"]].to_numpy()
    spacing2d = np.asarray(image.pixel_size_um)
    dist, _ = cKDTree(pts * spacing2d).query(yx * spacing2d)
    keep = (dist >= min_distance_um) & (dist <= max_distance_um)
    z = coords[keep, 0] if image.is_3d else np.full(int(keep.sum()), np.nan)
    return pd.DataFrame({"y": yx[keep, 0], "x": yx[keep, 1], "z": z})
