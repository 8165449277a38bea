"""Bad and unusual inputs: blank, noise, missing z step, RGB, one-plane stacks, NaN, Recordings."""

from __future__ import annotations

import numpy as np
import pytest

from imagingkit.errors import DataError, ParameterError
from imagingkit.io import from_array
from imagingkit.spines import NoSpinesWarning, detect_spines, prepare_image


def test_blank_image_gives_no_spines_and_says_so():
    with pytest.warns(NoSpinesWarning, match="no dendrite"):
        result = detect_spines(np.zeros((128, 128), np.uint16), pixel_size_um=0.2)
    assert len(result.spines) == 0 and len(result.dendrites) == 0
    assert "no dendrite" in result.message
    assert list(result.spines.columns)[:4] == ["spine_id", "y", "x", "z"]


@pytest.mark.parametrize("seed", [0, 1])
def test_pure_poisson_noise_gives_no_spines(seed):
    noise = np.random.default_rng(seed).poisson(5.0, (256, 256)).astype(np.float32)
    with pytest.warns(NoSpinesWarning):
        result = detect_spines(noise, pixel_size_um=0.2)
    assert len(result.spines) == 0
    assert result.message


def test_stack_without_z_step_names_the_field():
    with pytest.raises(ParameterError, match="z_step_um"):
        detect_spines(np.zeros((5, 64, 64), np.float32), pixel_size_um=0.2)


def test_missing_pixel_size_names_the_field():
    with pytest.raises(ParameterError, match="pixel_size_um"):
        detect_spines(np.zeros((64, 64), np.float32))


def test_rgb_image_is_a_clear_error():
    with pytest.raises(ParameterError, match="RGB"):
        detect_spines(np.zeros((64, 64, 3), np.uint8), pixel_size_um=0.2)


def test_nan_pixels_are_a_clear_error(fake2d):
    image = fake2d.image.copy()
    image[10:12, 10:12] = np.nan
    with pytest.raises(DataError, match="4 NaN"):
        detect_spines(image, pixel_size_um=0.2)


def test_one_plane_stack_is_treated_as_2d(fake2d):
    flat = detect_spines(fake2d.image, pixel_size_um=0.2)
    stacked = detect_spines(fake2d.image[None], pixel_size_um=0.2)  # no z step needed
    assert len(flat.spines) > 5
    np.testing.assert_allclose(stacked.spines[["y", "x"]], flat.spines[["y", "x"]])
    assert stacked.spines["z"].isna().all()


def test_recording_mean_image_and_pixel_size(fake2d):
    rng = np.random.default_rng(0)
    movie = np.stack([rng.poisson(fake2d.image.clip(0)) for _ in range(4)]).astype(np.uint16)
    recording = from_array(movie, "TYX", frame_rate_hz=30.0, pixel_size_um=0.2)
    prepared = prepare_image(recording)
    assert prepared.spacing_um == (0.2, 0.2)
    np.testing.assert_allclose(prepared.data, movie.mean(axis=0), rtol=1e-5)
    result = detect_spines(recording)
    assert len(result.spines) > 5


def test_bad_parameters():
    with pytest.raises(ParameterError, match="sensitivity"):
        detect_spines(np.zeros((64, 64)), pixel_size_um=0.2, sensitivity=0)
    with pytest.raises(ParameterError, match="z_step_um"):
        prepare_image(np.zeros((3, 64, 64)), pixel_size_um=0.2, z_step_um=-1)
    with pytest.raises(ParameterError, match="pixel_size_um"):
        prepare_image(np.zeros((64, 64)), pixel_size_um=(0.2, 0.2, 0.2))
    from imagingkit.spines.params import DetectParams

    with pytest.raises(ParameterError, match="min_isotropy"):
        DetectParams(min_isotropy=1.5)
    from imagingkit.spines.dendrite import TraceParams

    with pytest.raises(ParameterError, match="lift_max_slope"):
        TraceParams(lift_max_slope=0.0)
    with pytest.raises(ParameterError, match="gap_join_um"):
        TraceParams(gap_join_um=-1.0)
    with pytest.raises(ParameterError, match="gap_join_angle_deg"):
        TraceParams(gap_join_angle_deg=120.0)
    with pytest.raises(ParameterError, match="deblend_rounds"):
        DetectParams(deblend_rounds=-1)
    with pytest.raises(ParameterError, match="deblend_min_own_fraction"):
        DetectParams(deblend_min_own_fraction=0.0)
