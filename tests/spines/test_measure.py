"""Re-measuring edited spine tables without re-detecting; table files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagingkit.errors import MissingFileError, ParameterError
from imagingkit.spines import (
    add_spine,
    detect_spines,
    measure_spines,
    move_spine,
    read_spine_table,
    remove_spine,
    write_tables,
)


@pytest.fixture(scope="module")
def detected(fake2d):
    return detect_spines(fake2d.image, pixel_size_um=0.2)


def test_unchanged_table_remeasures_identically(fake2d, detected):
    again = measure_spines(fake2d.image, detected.spines, pixel_size_um=0.2, dendrites=detected)
    pd.testing.assert_frame_equal(again.spines, detected.spines)
    pd.testing.assert_frame_equal(again.dendrites, detected.dendrites)


def test_edited_table_add_remove_move(fake2d, detected):
    spines = detected.spines
    truth = fake2d.truth
    gone = int(spines.spine_id.iloc[0])
    edited = remove_spine(spines, gone)
    # add a spine by hand at a true head position the detector may or may not have found
    far = truth.iloc[int(np.argmax(truth.x))]
    edited = add_spine(edited, far.y, far.x)
    # move a spine 3 pixels further from the shaft along x
    moved_id = int(spines.spine_id.iloc[1])
    before = spines.set_index("spine_id").loc[moved_id]
    edited = move_spine(edited, moved_id, before.y, before.x + 3)
    result = measure_spines(fake2d.image, edited, pixel_size_um=0.2, dendrites=detected.trace)
    out = result.spines.set_index("spine_id")
    assert gone not in out.index
    new_id = int(spines.spine_id.max()) + 1
    assert new_id in out.index and out.loc[new_id].intensity_ratio > 0.1
    assert out.loc[moved_id].x == pytest.approx(before.x + 3)
    assert out.loc[moved_id].distance_um != pytest.approx(before.distance_um)
    # untouched spines keep their measurements
    same = spines.spine_id.iloc[2:].to_numpy()
    pd.testing.assert_frame_equal(
        out.loc[same].reset_index(), spines.set_index("spine_id").loc[same].reset_index()
    )
    assert result.dendrites.n_spines.sum() == len(edited)


def test_remeasure_without_trace_and_rows_without_ids(fake2d, detected):
    table = detected.spines[["y", "x"]].copy()  # ids dropped: new ones are given
    result = measure_spines(fake2d.image, table, pixel_size_um=0.2)
    assert result.spines.spine_id.tolist() == list(range(len(table)))
    np.testing.assert_allclose(result.spines.arc_um, detected.spines.arc_um, atol=0.05)


def test_bad_edits_are_clear_errors(fake2d, detected):
    with pytest.raises(ParameterError, match="outside the image"):
        measure_spines(
            fake2d.image, pd.DataFrame({"y": [1e4], "x": [3.0]}), pixel_size_um=0.2, dendrites=detected
        )
    with pytest.raises(ParameterError, match="lacks column"):
        measure_spines(fake2d.image, pd.DataFrame({"y": [3.0]}), pixel_size_um=0.2, dendrites=detected)
    dup = pd.concat([detected.spines.iloc[:1], detected.spines.iloc[:1]])
    with pytest.raises(ParameterError, match="duplicate"):
        measure_spines(fake2d.image, dup, pixel_size_um=0.2, dendrites=detected)


def test_csv_round_trip(tmp_path, fake2d, detected):
    spines_path, dendrites_path = write_tables(detected, tmp_path / "spines.csv")
    assert dendrites_path == tmp_path / "dendrites.csv"
    table = read_spine_table(spines_path)
    assert table["z"].isna().all()  # empty cells for 2D
    assert "z" in open(spines_path).readline()
    again = measure_spines(fake2d.image, table, pixel_size_um=0.2, dendrites=detected)
    np.testing.assert_allclose(again.spines.intensity_ratio, detected.spines.intensity_ratio, rtol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dendrites.csv",
        "spines.csv",
    ]  # no temporaries left
    with pytest.raises(MissingFileError):
        read_spine_table(tmp_path / "nope.csv")
