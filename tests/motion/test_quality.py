"""Bad frames are flagged, not smeared: recall against simulator truth, few false alarms."""

from __future__ import annotations

import numpy as np

from imagingkit.motion import RigidParams, register_movie
from imagingkit.motion.quality import crispness, flag_bad_frames


def test_bad_frame_recall_on_simulated_movie(rigid_sim):
    truth = rigid_sim.truth.bad_frames
    assert truth.sum() >= 5
    res = register_movie(rigid_sim.recording, None, RigidParams())
    flagged = res.shifts["bad"].to_numpy()
    recall = (flagged & truth).sum() / truth.sum()
    false_alarms = (flagged & ~truth).sum() / (~truth).sum()
    assert recall >= 0.95, recall
    assert false_alarms <= 0.02, false_alarms


def test_flag_rules_each_fire():
    n = 100
    rng = np.random.default_rng(0)
    corr = 0.8 + 0.01 * rng.standard_normal(n)
    dy, dx = 0.1 * rng.standard_normal(n), 0.1 * rng.standard_normal(n)
    mean = 100 + rng.standard_normal(n)
    valid = np.ones(n, bool)
    corr[10] = 0.3
    dy[20] = 7.0
    mean[30] = 400.0
    valid[40] = False
    dx[50] = 9.8
    bad, reason = flag_bad_frames(corr, dy, dx, mean, valid, max_shift_px=10)
    assert set(np.flatnonzero(bad)) == {10, 20, 30, 40, 50}
    assert reason[10] == "low_corr" and reason[20] == "jump" and reason[30] == "intensity"
    assert reason[40] == "invalid" and reason[50] == "shift_limit"


def test_crispness_drops_with_blur(camera_image):
    import scipy.ndimage as ndi

    sharp = crispness(camera_image)
    blurred1 = crispness(ndi.gaussian_filter(camera_image, 1))
    blurred2 = crispness(ndi.gaussian_filter(camera_image, 2))
    assert sharp > blurred1 > blurred2
    assert blurred2 < 0.8 * sharp
