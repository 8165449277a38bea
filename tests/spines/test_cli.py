"""``imagingkit spines detect`` on TIFF files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

from imagingkit.cli import main


def test_detect_2d_writes_both_tables(tmp_path, fake2d, capsys):
    image = tmp_path / "dendrite.tif"
    tifffile.imwrite(image, fake2d.image.astype(np.uint16))
    out = tmp_path / "res" / "spines.csv"
    assert main(["spines", "detect", str(image), "-o", str(out), "--pixel-size", "0.2"]) == 0
    spines = pd.read_csv(out)
    for column in (
        "spine_id",
        "y",
        "x",
        "z",
        "dendrite_id",
        "arc_um",
        "distance_um",
        "intensity_ratio",
        "confidence",
    ):
        assert column in spines.columns
    assert len(spines) > 5 and spines["z"].isna().all()
    assert "z" in out.read_text().splitlines()[0] and ",," in out.read_text().splitlines()[1]
    dendrites = pd.read_csv(out.with_name("dendrites.csv"))
    assert list(dendrites.columns[:4]) == ["dendrite_id", "length_um", "n_spines", "density_per_um"]
    assert dendrites.n_spines.sum() == len(spines)
    assert f"{len(spines)} spines" in capsys.readouterr().out


def test_detect_3d_reads_imagej_spacing(tmp_path, fake3d):
    image = tmp_path / "stack.tif"
    tifffile.imwrite(
        image,
        fake3d.image.astype(np.uint16),
        imagej=True,
        resolution=(5.0, 5.0),
        metadata={"unit": "um", "spacing": 1.0, "axes": "ZYX"},
    )
    out = tmp_path / "spines.csv"
    assert main(["spines", "detect", str(image), "-o", str(out)]) == 0
    spines = pd.read_csv(out)
    assert spines["z"].notna().all() and len(spines) > 5
    np.testing.assert_allclose(spines.x_um, spines.x * 0.2, atol=1e-3)


def test_stack_without_z_step_fails_on_one_line(tmp_path, capsys):
    image = tmp_path / "stack.tif"
    tifffile.imwrite(image, np.zeros((4, 64, 64), np.uint16))
    out = tmp_path / "spines.csv"
    assert main(["spines", "detect", str(image), "-o", str(out), "--pixel-size", "0.2"]) == 1
    err = capsys.readouterr().err
    assert "z_step_um" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_blank_image_says_no_spines(tmp_path, capsys):
    image = tmp_path / "blank.tif"
    tifffile.imwrite(image, np.zeros((96, 96), np.uint16))
    out = tmp_path / "spines.csv"
    assert main(["spines", "detect", str(image), "-o", str(out), "--pixel-size", "0.2"]) == 0
    assert "no dendrite" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 0


def test_missing_file(tmp_path, capsys):
    assert main(["spines", "detect", str(tmp_path / "none.tif"), "-o", str(tmp_path / "s.csv")]) == 1
    assert "no such image" in capsys.readouterr().err
