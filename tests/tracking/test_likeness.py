"""Patch likeness: does a spine's place look like the spine where its track was detected?"""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.tracking.likeness import (
    LIKENESS_COLUMNS,
    contrast,
    correlation,
    measure_likeness,
    patch_radius_px,
    sample_patches,
)
from tests.tracking.tables import track_table

SHAPE = (40, 60)
HEAD_YX = (20.0, 20.0)  # where track 0 of track_table lies


def session_images(head_there, gains):
    """Per session: background 10, a shaft along y = 14 and (where ``head_there``) a head at (20, 20), times a gain."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]].astype(float)
    shaft = 2.0 * np.exp(-((yy - 14.0) ** 2) / 2.0)
    head = np.exp(-((yy - HEAD_YX[0]) ** 2 + (xx - HEAD_YX[1]) ** 2) / (2 * 1.5**2))
    return [
        gain * (10.0 + shaft + (head if there else 0.0))
        for there, gain in zip(head_there, gains, strict=True)
    ]


def sampler(images, radius_px=4):
    """patches(session, points): the 'evidence' (the scaled image less its shaft and background, which
    are flat along x here) and the median-scaled image, as the tracker's sampler gives them."""

    def patches(session, points):
        scaled = images[session] / np.median(images[session])
        evidence = scaled - scaled[:, :1]
        return tuple(sample_patches(layer, points[:, :2], radius_px) for layer in (evidence, scaled))

    return patches


def test_patches_are_read_around_each_point_with_interpolation():
    yy, xx = np.mgrid[:20, :30].astype(float)
    image = 100 * yy + xx  # linear: interpolation is exact
    patches = sample_patches(image, np.array([[5.0, 7.0], [10.5, 12.25]]), 2)
    assert patches.shape == (2, 5, 5)
    assert patches[0, 2, 2] == 507.0
    assert patches[0, 0, 0] == 305.0  # (3, 5)
    assert patches[1, 2, 2] == pytest.approx(1062.25)
    assert patches[1, 4, 0] == pytest.approx(1260.25)  # (12.5, 10.25)


def test_the_patch_radius_is_a_fixed_size_in_micrometres():
    assert patch_radius_px(0.2) == 4
    assert patch_radius_px(0.1) == 8
    assert patch_radius_px(2.0) == 1  # never below one pixel


def test_correlation_and_contrast_against_a_template():
    rng = np.random.default_rng(0)
    template = rng.normal(size=(5, 5))
    patches = np.stack([template, 2 * template + 5, np.full((5, 5), 3.0), -template])
    assert correlation(patches, template) == pytest.approx([1.0, 1.0, 0.0, -1.0])  # a flat patch: none of it
    assert contrast(patches, template) == pytest.approx([1.0, 2.0, 0.0, -1.0])
    assert np.isnan(correlation(patches, np.ones((5, 5)))).all()  # a flat template has no shape to look for
    assert np.isnan(contrast(patches, np.ones((5, 5)))).all()


def test_a_place_that_holds_the_head_looks_like_the_spine_and_an_empty_one_does_not():
    # detected in sessions 0, 1 and 3; missed in 2 with the head there, gone in 4; session 3 twice as bright
    tracks = track_table(["11010", "00000"])
    images = session_images([True, True, True, True, False], gains=[1.0, 1.0, 1.0, 2.0, 1.0])
    out = measure_likeness(tracks, sampler(images))
    spine = out[out["track_id"] == 0].set_index("session")
    assert spine.loc[2, "likeness"] > 0.99 and spine.loc[2, "image_likeness"] > 0.99
    assert spine.loc[2, "image_contrast"] == pytest.approx(
        1.0, abs=0.05
    )  # the brighter session is scaled away
    assert spine.loc[4, "likeness"] < 0.2  # the evidence is flat there
    assert spine.loc[4, "image_likeness"] < 0.5 and spine.loc[4, "image_contrast"] < 0.2
    assert spine["likeness_level"].eq(spine.loc[0, "likeness_level"]).all()  # one level per track
    assert spine.loc[0, "likeness_level"] > 0.99  # the head looks the same wherever it was detected
    never_detected = out[out["track_id"] == 1]
    assert never_detected[list(LIKENESS_COLUMNS)].isna().all().all()


def test_noise_lowers_a_present_spines_likeness_and_its_level_both():
    # detected in 0, 1, 3 and 4; missed in 2 with the head there
    tracks = track_table(["11011", "10000"])
    rng = np.random.default_rng(1)
    clean = session_images([True] * 5, gains=[1.0] * 5)
    out = {}
    for sigma in (0.05, 0.3):
        images = [image + rng.normal(scale=sigma, size=SHAPE) for image in clean]
        out[sigma] = measure_likeness(tracks, sampler(images)).set_index(["track_id", "session"])
    for column in ("likeness", "image_likeness"):
        quiet, noisy = out[0.05].loc[(0, 2), column], out[0.3].loc[(0, 2), column]
        quiet_level, noisy_level = (out[sigma].loc[(0, 0), f"{column}_level"] for sigma in (0.05, 0.3))
        assert noisy < quiet - 0.1 and noisy_level < quiet_level - 0.1  # the level tells the model how much
        assert abs(quiet - quiet_level) < 0.05
    assert np.isnan(out[0.3].loc[(1, 0), "likeness_level"])  # detected once: nothing to compare with
    assert out[0.3].loc[(1, 0), "likeness"] == pytest.approx(1.0)  # its own patch is its template


def test_rows_out_of_view_or_reviewed_are_not_measured():
    tracks = track_table(["11o11"])
    tracks.loc[tracks["session"] == 4, "reviewed"] = True
    images = session_images([True] * 5, gains=[1.0] * 5)
    out = measure_likeness(tracks, sampler(images)).set_index("session")
    assert out.loc[[2, 4], "likeness"].isna().all()
    assert out.loc[[0, 1, 3], "likeness"].notna().all()
