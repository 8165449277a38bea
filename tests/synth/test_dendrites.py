"""The dendrite-session simulator: geometry, turnover rates, transforms, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import ParameterError
from imagingkit.synth import simulate_dendrite_sessions


@pytest.fixture(scope="module")
def dsim():
    return simulate_dendrite_sessions(n_sessions=6, shape=(192, 192), n_dendrites=3, seed=4)


def test_images_and_truth_columns(dsim):
    assert len(dsim.images) == 6 and dsim.images[0].shape == (192, 192) and dsim.images[0].dtype == np.uint16
    for col in [
        "spine_id",
        "session",
        "time_h",
        "present",
        "y",
        "x",
        "z",
        "y_ref",
        "x_ref",
        "z_ref",
        "dendrite_id",
        "arc_um",
        "head_radius_um",
        "neck_length_um",
        "intensity_ratio",
        "side",
        "in_fov",
    ]:
        assert col in dsim.truth.columns
    # every spine has one row per session
    counts = dsim.truth.groupby("spine_id").size()
    assert (counts == 6).all()
    assert list(dsim.truth.time_h.unique()) == [0, 1, 6, 24, 48, 96]


def test_heads_are_bright_in_noiseless_image(dsim):
    t = dsim.truth[(dsim.truth.session == 2) & dsim.truth.present & dsim.truth.in_fov & ~dsim.truth.dim]
    img = dsim.noiseless[2]
    bg = np.median(img)
    vals = img[np.round(t.y).astype(int).clip(0, 191), np.round(t.x).astype(int).clip(0, 191)]
    assert np.mean(vals > 3 * bg) > 0.9


def test_transforms_map_reference_to_session(dsim):
    tr = dsim.transforms[3]
    pts = np.array([[10.0, 20.0], [100.0, 150.0], [191.0, 0.0]])
    np.testing.assert_allclose(tr.inverse(tr(pts)), pts, atol=1e-6)
    rows = dsim.truth[dsim.truth.session == 3]
    np.testing.assert_allclose(
        tr(rows[["y_ref", "x_ref"]].to_numpy()), rows[["y", "x"]].to_numpy(), atol=1e-9
    )
    ident = dsim.transforms[0]
    np.testing.assert_allclose(ident(pts), pts)


def test_turnover_consistent_with_rates():
    """Pooled over seeds: elimination of old spines, of new spines and formation match the rates."""
    elim_old = elim_new = form = 0
    n_old = n_new = n_prev = 0
    for seed in range(6):
        d = simulate_dendrite_sessions(
            n_sessions=5,
            shape=(96, 96),
            n_dendrites=3,
            seed=seed,
            formation_rate=0.1,
            elimination_rate_old=0.05,
            elimination_rate_new=0.4,
            spine_density_per_um=0.8,
            pixel_size_um=0.3,
        )
        t = d.truth
        pres = t.pivot(index="spine_id", columns="session", values="present")
        formed = t.groupby("spine_id").formed_session.first()
        for s in range(1, 5):
            prev = pres[s - 1]
            old = prev & (formed == 0)
            new = prev & (formed > 0)
            n_old += old.sum()
            n_new += new.sum()
            elim_old += (old & ~pres[s]).sum()
            elim_new += (new & ~pres[s]).sum()
            n_prev += prev.sum()
            form += (pres[s] & (formed == s)).sum()
    assert elim_old / n_old == pytest.approx(0.05, abs=0.025)
    assert elim_new / n_new == pytest.approx(0.4, abs=0.12)
    assert form / n_prev == pytest.approx(0.1, abs=0.03)


def test_3d_stack_and_spines_pointing_in_z():
    d = simulate_dendrite_sessions(
        n_sessions=2, shape=(15, 96, 96), ndim=3, n_dendrites=2, seed=1, spine_density_per_um=1.0
    )
    assert d.images[0].shape == (15, 96, 96)
    t = d.truth
    assert t.z.notna().all() and (np.abs(t.elevation_deg) > 45).any()
    tr = d.transforms[1]
    pts = t[t.session == 1][["y_ref", "x_ref", "z_ref"]].to_numpy()
    np.testing.assert_allclose(tr(pts), t[t.session == 1][["y", "x", "z"]].to_numpy(), atol=1e-9)


def test_determinism():
    a = simulate_dendrite_sessions(n_sessions=2, shape=(64, 64), seed=9)
    b = simulate_dendrite_sessions(n_sessions=2, shape=(64, 64), seed=9)
    c = simulate_dendrite_sessions(n_sessions=2, shape=(64, 64), seed=10)
    np.testing.assert_array_equal(a.images[1], b.images[1])
    assert a.truth.equals(b.truth)
    assert not np.array_equal(a.images[1], c.images[1])


def test_bad_parameters():
    with pytest.raises(ParameterError, match="times_h"):
        simulate_dendrite_sessions(n_sessions=7)
    with pytest.raises(ParameterError, match="elimination_rate_new"):
        simulate_dendrite_sessions(n_sessions=3, elimination_rate_new=1.5)


def test_spine_heads_do_not_overlap():
    """Heads present in the same session stay apart (real heads cannot interpenetrate)."""
    d = simulate_dendrite_sessions(n_sessions=3, shape=(192, 192), seed=3, spine_density_per_um=1.0)
    t = d.truth
    for s in range(3):
        rows = t[(t.session == s) & t.present]
        p = rows[["y_ref", "x_ref"]].to_numpy() * d.pixel_size_um
        gap = np.linalg.norm(p[:, None] - p[None], axis=2)
        reach = rows.head_radius_um.to_numpy()[:, None] + rows.head_radius_um.to_numpy()[None]
        np.fill_diagonal(gap, np.inf)
        assert (gap > reach).all()


def test_3d_heads_between_planes_are_rendered():
    """Axial supersampling: heads of ordinary spines are bright at their (sub-plane) centre."""
    d = simulate_dendrite_sessions(
        n_sessions=1, times_h=(0,), shape=(15, 128, 128), ndim=3, seed=2, spine_density_per_um=1.0
    )
    t = d.truth[d.truth.present & d.truth.in_fov & ~d.truth.dim]
    frac = np.abs(t.z - np.round(t.z))
    between = t[frac > 0.3]  # head centres well between two planes
    assert len(between) >= 5
    assert (between.intensity_ratio > 0.2).mean() > 0.9


def test_border_spines_have_no_contrast():
    """A spine whose head is in view but whose base point on the shaft is not has no contrast.

    The contrast is head over the shaft it grows from; off the image it is undefined (it used
    to be head over the edge pixel, values of 3-40).
    """
    d = simulate_dendrite_sessions(
        n_sessions=1, times_h=(0,), shape=(128, 128), seed=9, spine_density_per_um=1.0
    )
    t = d.truth[d.truth.present & d.truth.in_fov]
    border = t[~t.base_in_fov]
    inner = t[t.base_in_fov]
    assert len(border) >= 1
    assert border.intensity_ratio.isna().all()
    assert inner.intensity_ratio.notna().all()
    assert inner.intensity_ratio.max() < 3
    # border heads lie near the image edge
    edge = np.minimum.reduce([border.y, border.x, 127 - border.y, 127 - border.x])
    assert (edge < 3 / d.pixel_size_um).all()
