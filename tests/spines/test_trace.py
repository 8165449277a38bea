"""Dendrite tracing: curved, branching and crossing dendrites, arc lengths, 3D centrelines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imagingkit.spines import NoSpinesWarning, detect_spines, prepare_image, trace_dendrites
from imagingkit.spines.dendrite import TraceParams


def _inside(curve, shape, margin=2):
    ok = (curve[:, 0] >= margin) & (curve[:, 0] < shape[0] - margin)
    ok &= (curve[:, 1] >= margin) & (curve[:, 1] < shape[1] - margin)
    return curve[ok]


def test_curved_dendrite_centreline_and_length(fake2d):
    trace = trace_dendrites(prepare_image(fake2d.image, 0.2))
    assert trace.n_dendrites == 1
    truth = _inside(fake2d.centrelines[0], fake2d.image.shape)
    cl = trace.centreline[["y", "x"]].to_numpy()
    dist, _ = cKDTree(truth).query(cl)
    assert np.median(dist) < 0.5  # pixels: the centreline runs on the drawn curve
    assert np.percentile(dist, 95) < 1.5
    true_len = np.sum(np.linalg.norm(np.diff(truth, axis=0), axis=1)) * 0.2
    # traced length: hooked skeleton ends are trimmed, then extended along the shaft to the border
    assert abs(trace.dendrites.length_um.iloc[0] - true_len) < 1.0
    arc = trace.centreline["arc_um"].to_numpy()
    assert arc[0] == 0 and np.all(np.diff(arc) > 0)


def test_branching_dendrite_gives_main_and_side_branch(fake_branch):
    trace = trace_dendrites(prepare_image(fake_branch.image, 0.2))
    assert trace.n_dendrites == 2
    main, side = (trace.centreline[trace.centreline.dendrite_id == d][["y", "x"]].to_numpy() for d in (0, 1))
    # each traced dendrite follows one drawn curve
    for traced, curve in ((main, fake_branch.centrelines[0]), (side, fake_branch.centrelines[1])):
        dist, _ = cKDTree(curve).query(traced)
        assert np.percentile(dist, 90) < 1.5


def test_crossing_dendrites_stay_two_dendrites():
    from fake_dendrite import make_fake_dendrites

    fake = make_fake_dendrites(shape=(192, 192), kind="cross", seed=3)
    trace = trace_dendrites(prepare_image(fake.image, 0.2))
    assert trace.n_dendrites == 2
    for d in range(2):
        traced = trace.centreline[trace.centreline.dendrite_id == d][["y", "x"]].to_numpy()
        # a dendrite passes straight through the crossing rather than turning into the other one
        dist = min(np.percentile(cKDTree(curve).query(traced)[0], 95) for curve in fake.centrelines)
        assert dist < 2.0


def test_ridge_filters_and_denoisers_all_trace(fake2d):
    for ridge, denoise in (("meijering", "gaussian"), ("frangi", "gaussian"), ("sato", "nl_means")):
        trace = trace_dendrites(
            prepare_image(fake2d.image, 0.2), TraceParams(ridge_filter=ridge, denoise=denoise)
        )
        assert trace.n_dendrites == 1, (ridge, denoise)


def test_stack_centreline_follows_the_shaft_in_z(fake3d):
    trace = trace_dendrites(prepare_image(fake3d.image, 0.2, 1.0))
    assert trace.n_dendrites == 1
    # the drawn shaft centre is at z = 4.5 planes + 1.5 um * sin(...) (see fake_dendrite)
    z = trace.centreline["z"].to_numpy()
    assert np.all((z > 2.5) & (z < 7.0))
    bases = fake3d.truth.dropna(subset=["base_z"])
    tree = cKDTree(trace.centreline[["y", "x"]].to_numpy())
    _, idx = tree.query(bases[["base_y", "base_x"]].to_numpy())
    assert np.median(np.abs(z[idx] - bases["base_z"].to_numpy())) < 0.4


def test_stack_centreline_keeps_to_its_shaft_under_a_brighter_crossing_one():
    # a shaft at z = 4 along x; over x = 40..60 a brighter shaft runs exactly above it (z = 10),
    # so both overlap in the projection: the lifted centreline must stay on its own shaft
    from scipy import ndimage as ndi

    from imagingkit.spines.dendrite import _lift_to_3d

    stack = np.zeros((15, 40, 100), np.float32)
    stack[4, 20, :] = 1.0
    stack[10, 20, 40:61] = 1.6
    stack = ndi.gaussian_filter(stack, (1.0, 1.5, 1.5))
    chain = np.column_stack([np.full(100, 20.0), np.arange(100.0)])
    z = _lift_to_3d(stack, chain, (1.0, 0.2, 0.2), 0.5, TraceParams())
    np.testing.assert_allclose(z, 4.0, atol=0.3)
    # without the continuity constraints it would jump to the brighter shaft there
    free = _lift_to_3d(
        stack, chain, (1.0, 0.2, 0.2), 0.5, TraceParams(lift_jump_cost=0.0, lift_max_slope=100.0)
    )
    assert np.abs(free[45:56] - 10.0).max() < 0.5


def _crossing_stack(angle_deg: float = 25.0, depths=(5.0, 10.0), shape=(16, 128, 256), seed: int = 0):
    """Two equally bright straight shafts through the centre, ``angle_deg`` apart in the
    projection and at different depths (planes): the overlap in the projection is ~7 um long."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    light = np.zeros(shape)
    for angle, depth in zip((0.0, angle_deg), depths, strict=True):
        t = np.deg2rad(angle)
        across = -(y - ny / 2) * np.cos(t) + (x - nx / 2) * np.sin(t)
        light += np.exp(-0.5 * (across / 2.5) ** 2 - 0.5 * (z - depth) ** 2)
    image = np.random.default_rng(seed).poisson(40.0 * light + 2.0).astype(np.float32)
    return image, [(np.deg2rad(a), d) for a, d in zip((0.0, angle_deg), depths, strict=True)]


def test_stack_dendrites_crossing_at_a_shallow_angle_at_different_depths_stay_whole():
    # In the projection the two shafts overlap over ~7 um and the skeleton runs one branch
    # along the overlap, whose depth switches between the shafts: each dendrite must still
    # be traced as one centreline on its own shaft, through the crossing, at its own depth.
    image, lines = _crossing_stack()
    trace = trace_dendrites(prepare_image(image, 0.2, 1.0))
    assert trace.n_dendrites == 2
    ny, nx = image.shape[1:]
    followed = []
    for _, points in trace.centreline.groupby("dendrite_id"):
        yx, z = points[["y", "x"]].to_numpy(), points["z"].to_numpy()
        on = [
            np.mean(
                (np.abs(-(yx[:, 0] - ny / 2) * np.cos(t) + (yx[:, 1] - nx / 2) * np.sin(t)) < 1.5)
                & (np.abs(z - depth) < 0.6)
            )
            for t, depth in lines
        ]
        followed.append(int(np.argmax(on)))
        assert max(on) > 0.98  # on one shaft (within 0.3 um laterally and 0.6 planes) all along
        assert np.ptp(yx[:, 1]) > 0.9 * (nx - 1)  # and across the whole field, through the crossing
    assert sorted(followed) == [0, 1]
    # without the depth rules (projection graph only) the crossing breaks the deeper dendrite
    off = TraceParams(gap_join_um=0.0, depth_recentre_um=0.0, gap_join_depth_um=np.inf)
    assert trace_dendrites(prepare_image(image, 0.2, 1.0), off).n_dendrites != 2


def test_recentring_at_depth_follows_its_own_shaft_not_the_projection():
    # two parallel shafts 0.6 um apart laterally, at z = 4 and z = 10: in the projection they
    # merge and the centroid lies between them; in the planes at z = 4 only the first is there
    from scipy import ndimage as ndi

    from imagingkit.spines.dendrite import _recentre

    stack = np.zeros((15, 40, 100), np.float32)
    stack[4, 20, :] = 1.0
    stack[10, 23, :] = 1.0
    stack = ndi.gaussian_filter(stack, (1.0, 2.0, 2.0))
    chain = np.column_stack([np.full(100, 21.5), np.arange(100.0)])
    at_depth = _recentre(chain, stack, 2.5, 2.0, depth=np.full(100, 4.0))
    np.testing.assert_allclose(at_depth[10:-10, 0], 20.0, atol=0.3)
    projected = _recentre(chain, stack.max(axis=0), 2.5, 2.0)
    assert np.all(np.abs(projected[10:-10, 0] - 21.5) < 0.5)  # the projection alone cannot separate them


def _shaft_leaving_the_field(shape=(256, 256), seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A straight shaft (Gaussian cross-section, photon noise) leaving the image through its right
    border at a shallow angle (16 degrees): its centre passes the border while its flank is still
    in view. Returns the image, a point on the shaft and its direction (pixels, y x)."""
    start, direction = np.array([40.0, 200.0]), np.array([216.0, 62.0])
    direction /= np.linalg.norm(direction)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    offset = np.stack([yy - start[0], xx - start[1]], axis=-1)
    across = np.abs(offset @ np.array([direction[1], -direction[0]]))
    image = 20.0 + 400.0 * np.exp(-0.5 * (across / 3.0) ** 2)
    return np.random.default_rng(seed).poisson(image).astype(np.float32), start, direction


def test_centreline_of_a_shaft_leaving_the_field_stops_at_the_border():
    for seed in range(3):
        image, start, direction = _shaft_leaving_the_field(seed=seed)
        trace = trace_dendrites(prepare_image(image, 0.2))
        assert trace.n_dendrites == 1
        cl = trace.centreline[["y", "x"]].to_numpy()
        # no stretch of the centreline runs along the border beside the shaft (before, 15-17 points
        # were clipped onto it, 2.5-3 px off the shaft's centre): at most its end point touches it
        assert np.sum(cl[:, 1] >= image.shape[1] - 1.01) <= 1
        off = (cl - start) @ np.array([direction[1], -direction[0]])
        assert np.max(np.abs(off)) < 2.0
    # and the shaft's flank at the border, left unmodelled, is no spine (before: one at 6.6 sigma)
    image, _, _ = _shaft_leaving_the_field(seed=0)
    with pytest.warns(NoSpinesWarning):
        assert len(detect_spines(image, 0.2).spines) == 0
