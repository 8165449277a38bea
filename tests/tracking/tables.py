"""Hand-made track tables for the tracking tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def track_table(patterns, positions=None) -> pd.DataFrame:
    """Tracks from strings, one per track and one character per session.

    ``'1'`` detected, ``'0'`` absent, ``'o'`` not detected and out of view. Track t lies at
    (20, 20 + 10 t) px on dendrite 0, arc 2 t µm, unless ``positions[t][s]`` gives (y, x).
    The table has the columns :func:`imagingkit.tracking.fates.classify_fates` needs, unclassified.
    """
    rows = []
    for t, pattern in enumerate(patterns):
        for s, ch in enumerate(pattern):
            y, x = positions[t][s] if positions else (20.0, 20.0 + 10 * t)
            rows.append(
                {
                    "track_id": t,
                    "session": s,
                    "spine_id": 100 * t + s if ch == "1" else pd.NA,
                    "y": y,
                    "x": x,
                    "z": 0.0,
                    "present": ch == "1",
                    "in_view": ch != "o",
                    "reviewed": False,
                    "dendrite_id": 0,
                    "arc_um": 2.0 * t,
                    "intensity_ratio": 1.0 if ch == "1" else np.nan,
                    "time_h": float(s),
                }
            )
    return pd.DataFrame(rows).astype({"spine_id": "Int64"})
