"""The `imagingkit neurons` command."""

import numpy as np
import pandas as pd
import tifffile

from imagingkit.cli import main
from imagingkit.neurons.io import read_label_image, read_rois_csv, read_traces
from tests.neurons.fixtures import small_movie


def test_cli_on_register_folder_uses_bad_frames(tmp_path, capsys):
    movie, fp, _, _ = small_movie(n_frames=900, noise_sd=5.0)
    reg = tmp_path / "reg"
    reg.mkdir()
    tifffile.imwrite(reg / "registered.tif", movie.astype(np.float32))
    bad = np.zeros(900, bool)
    bad[[10, 11, 500]] = True
    pd.DataFrame({"frame": np.arange(900), "plane": 0, "dy": 0.0, "dx": 0.0, "corr": 1.0, "bad": bad}).to_csv(
        reg / "shifts.csv", index=False
    )
    code = main(
        ["neurons", str(reg), "-o", str(tmp_path / "out"), "--diameter", "10", "--frame-rate-hz", "30"]
    )
    assert code == 0
    table = read_rois_csv(tmp_path / "out" / "rois.csv")
    assert len(table) >= 4
    labels = read_label_image(tmp_path / "out" / "roi_labels.tif")
    assert labels.shape == (64, 64) and labels.max() == len(table)
    traces = read_traces(tmp_path / "out" / "traces.npz")
    assert traces["F"].shape == (len(table), 900)
    assert np.isnan(traces["dff"][:, bad]).all() and np.isfinite(traces["dff"][:, ~bad]).all()
    np.testing.assert_allclose(traces["time_s"][:3], [0, 1 / 30, 2 / 30])
    assert "ROIs" in capsys.readouterr().out


def test_cli_blank_movie_gives_empty_outputs(tmp_path):
    path = tmp_path / "blank.tif"
    tifffile.imwrite(path, np.full((100, 32, 40), 7, np.uint16))
    assert main(["neurons", str(path), "-o", str(tmp_path / "out"), "--frame-rate-hz", "10"]) == 0
    table = read_rois_csv(tmp_path / "out" / "rois.csv")
    assert len(table) == 0
    assert list(table.columns) == ["roi_id", "y", "x", "npix", "radius_px", "cell_prob", "is_cell"]
    labels = read_label_image(tmp_path / "out" / "roi_labels.tif")
    assert labels.shape == (32, 40) and not labels.any()
    traces = read_traces(tmp_path / "out" / "traces.npz")
    assert traces["F"].shape == (0, 100) and traces["spikes"].dtype == np.float32


def test_cli_missing_input_is_one_line_error(tmp_path, capsys):
    assert main(["neurons", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "nope.tif" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_shows_progress_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    import sys

    movie, _, _, _ = small_movie(n_frames=300, noise_sd=5.0)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    args = ["neurons", str(path), "--diameter", "10", "--frame-rate-hz", "30"]
    assert main([*args, "-o", str(tmp_path / "log")]) == 0
    assert "frame" not in capsys.readouterr().err  # captured stderr is no terminal: no bar in logs
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*args, "-o", str(tmp_path / "tty")]) == 0
    err = capsys.readouterr().err
    assert "detecting ROIs" in err and "extracting traces" in err and "/300" in err


def test_cli_field_of_a_multiroi_file(tmp_path):
    from tests.io.si_writer import write_mroi_series

    movie, _, _, _ = small_movie(n_frames=300, noise_sd=5.0)
    # ScanImage stores the fields stacked in each page: 64 lines of cells, 8 fly-to lines, a second field
    pages = np.full((300, 96, 64), 30000, np.int16)
    pages[:, :64, :] = np.round(movie).astype(np.int16)
    pages[:, 72:, :40] = 100
    fields = [("cells", (0.0, 0.0), (2.0, 2.0), (64, 64)), ("other", (4.0, 1.0), (1.6, 1.2), (40, 24))]
    files = write_mroi_series(tmp_path / "raw", pages, fields, fov_um=(400.0, 400.0))
    args = ["neurons", str(files[0]), "--diameter", "10", "--field", "0", "-o", str(tmp_path / "out")]
    assert main(args) == 0
    labels = read_label_image(tmp_path / "out" / "roi_labels.tif")
    assert labels.shape == (64, 64)  # the field alone, not the page with its fly-to lines
    table = read_rois_csv(tmp_path / "out" / "rois.csv")
    centres = table[["y", "x"]].to_numpy()
    for cell in [(16, 16), (16, 44), (44, 30)]:
        assert np.hypot(*(centres - cell).T).min() < 3
    assert read_traces(tmp_path / "out" / "traces.npz")["F"].shape == (len(table), 300)
    assert main([*args[:-2], "-o", str(tmp_path / "bad"), "--field", "2"]) == 1
    assert not (tmp_path / "bad").exists()
