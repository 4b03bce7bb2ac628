"""test.py --borders (mmode.borders): recordings measured from borders traced by hand, the network not run, against
the simulator's exact truth of the quick-start recording."""
import csv
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.screenshots import screenshot
from mmode import analysis
from mmode.cli import run_main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAME = "sim_s7_002"
TRUTH = json.loads((EXAMPLES / "truth" / f"{NAME}.json").read_text())
CALIBRATION = ("--mm-per-px", TRUTH["mm_per_px"], "--s-per-px", TRUTH["s_per_px"])


def run(*argv):
    """Run test.py in this process; returns its exit status."""
    try:
        return run_main(analysis.main, [str(arg) for arg in argv])
    except SystemExit as exit_:
        return exit_.code


def write_borders(path, name=NAME, left=0, top=0, columns=None, swap=False):
    """The truth's two traces as annotation points at every column (or `columns`), moved by (`left`, `top`): the
    pixels of an image the recording lies in at that offset. `swap` labels each trace as the other."""
    columns = range(TRUTH["width_px"]) if columns is None else columns
    labels = ("lower", "upper") if swap else ("upper", "lower")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("image", "trace", "x", "y"))
        for label, key in zip(labels, ("upper_px", "lower_px")):
            writer.writerows((name, label, x + left, TRUTH[key][x] + top) for x in columns)
    return path


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_truth_traced_at_every_column_is_measured_as_the_truth(tmp_path):
    """No network is loaded (the checkpoint named does not exist); the trace file holds the truth's borders, and every
    beat of the truth is found at its end-diastole with its LVIDd and LVIDs."""
    borders = write_borders(tmp_path / "traced.csv")
    out = tmp_path / "out"
    assert run("-d", EXAMPLES / f"{NAME}.png", "--borders", borders, "-m", tmp_path / "no-such-model.pt", "-o", out,
               "--quiet", *CALIBRATION) == 0
    trace = read_rows(out / f"{NAME}_trace.csv")
    np.testing.assert_allclose([float(row["upper_px"]) for row in trace], TRUTH["upper_px"], atol=0.005)
    np.testing.assert_allclose([float(row["lower_px"]) for row in trace], TRUTH["lower_px"], atol=0.005)
    np.testing.assert_allclose([float(row["lvid_mm"]) for row in trace], TRUTH["lvid_mm"], atol=0.0006)
    beats = read_rows(out / f"{NAME}_beats.csv")
    for beat in TRUTH["beats"]:
        found = [row for row in beats if abs(float(row["t_ed_s"]) - beat["t_ed_s"]) <= TRUTH["s_per_px"] * 1.01]
        assert len(found) == 1, beat
        assert float(found[0]["lvid_d_mm"]) == pytest.approx(beat["lvid_d_mm"], abs=2e-4)
        assert float(found[0]["lvid_s_mm"]) == pytest.approx(beat["lvid_s_mm"], abs=2e-4)
    assert all(row["uncertainty"] == "" and "uncertain" not in row["flags"] for row in beats)
    summary = json.loads((out / f"{NAME}_summary.json").read_text())
    assert summary["borders_file"] == str(borders)
    assert summary["model"] is summary["model_sha256"] is summary["refiner"] is summary["threshold"] is None
    assert summary["n_beats"] == len(beats) >= len(TRUTH["beats"])
    mask = np.asarray(Image.open(out / f"{NAME}_mask.png"))
    assert ((mask > 0).sum(axis=0) == np.ceil(TRUTH["lower_px"]) - np.floor(TRUTH["upper_px"]) - 1).all()


def test_borders_traced_on_the_whole_screen_follow_crop_and_time(tmp_path):
    """Traced in the pixels of a screenshot, the borders are cut to the --crop box and the --time stretch: the trace
    file's rows are the whole recording's rows of that stretch (to the last digit written: the box's offset added and
    taken off again, and the stretch's start added to the times, round differently)."""
    whole = tmp_path / "whole"
    assert run("-d", EXAMPLES / f"{NAME}.png", "--borders", write_borders(tmp_path / "panel.csv"), "-o", whole,
               "--quiet", *CALIBRATION) == 0
    screen, (left, top, right, bottom) = screenshot(np.asarray(Image.open(EXAMPLES / f"{NAME}.png").convert("L")), 30)
    Image.fromarray(screen).save(tmp_path / "shot.png")
    borders = write_borders(tmp_path / "screen.csv", name="shot", left=left, top=top)
    cut = tmp_path / "cut"
    assert run("-d", tmp_path / "shot.png", "--borders", borders, "--crop", f"{left},{top},{right},{bottom}",
               "--time", "0.3,1.1", "-o", cut, "--quiet", *CALIBRATION) == 0
    start, end = round(0.3 / TRUTH["s_per_px"]), round(1.1 / TRUTH["s_per_px"])
    expected, got = read_rows(whole / f"{NAME}_trace.csv")[start:end], read_rows(cut / "shot_trace.csv")
    assert len(got) == len(expected) == end - start
    for key, last_digit in (("time_s", 1e-6), ("lvid_mm", 1e-4), ("upper_px", 0.01), ("lower_px", 0.01)):
        np.testing.assert_allclose([float(row[key]) for row in got], [float(row[key]) for row in expected],
                                   atol=last_digit * 1.01)


def test_a_study_measures_the_traced_recordings_and_reads_the_others(tmp_path, caplog):
    """Listed: measured from the file's borders; not listed: read by the shipped network; a row naming no recording of
    the study is said once. study.csv names the borders file in the traced recording's row only."""
    study = tmp_path / "study"
    study.mkdir()
    for name in (NAME, "sim_s7_001"):
        shutil.copy(EXAMPLES / f"{name}.png", study)
    borders = write_borders(tmp_path / "traced.csv")
    with open(borders, "a", newline="") as handle:
        handle.write("sim_s7_009,upper,0,10\nsim_s7_009,upper,5,10\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert run("-d", study, "--borders", borders, "--no-refine", "-o", out, "--quiet", *CALIBRATION) == 0
    assert "lists 1 recording(s) not analysed here: sim_s7_009" in caplog.text
    rows = {row["recording"]: row for row in read_rows(out / analysis.STUDY_FILE)}
    assert rows[f"{NAME}.png"]["borders_file"] == str(borders) and rows["sim_s7_001.png"]["borders_file"] == ""
    read = json.loads((out / "sim_s7_001_summary.json").read_text())
    assert read["model"] == str(analysis.DEFAULT_CHECKPOINT) and read["borders_file"] is None
    assert json.loads((out / f"{NAME}_summary.json").read_text())["model"] is None


def one_upper_point(path):
    path.write_text(f"image,trace,x,y\n{NAME},upper,5,200\n{NAME},lower,5,400\n{NAME},lower,9,400\n")
    return path


@pytest.mark.parametrize("traced, options, expected", [
    (lambda path: write_borders(path, swap=True), (),
     r"traced\.csv: recording sim_s7_002: the lower trace lies above the upper trace at 1800 column"),
    (write_borders, ("--crop", "0,300,1800,664"),
     r"traced\.csv: recording sim_s7_002: the upper trace runs outside rows 300\.\.663 of the image analysed"),
    (lambda path: write_borders(path, columns=range(600)), ("--time", "1.0,"),
     r"traced\.csv: recording sim_s7_002: the upper and lower traces share none of the columns analysed, x 1200"),
    (one_upper_point, (), r"traced\.csv: recording sim_s7_002: the upper trace has 1 point\(s\), at least 2"),
], ids=["swapped", "crop through the septum", "stretch not traced", "one point"])
def test_traces_that_cannot_be_measured_are_refused_naming_the_file(tmp_path, capsys, traced, options, expected):
    out = tmp_path / "out"
    assert run("-d", EXAMPLES / f"{NAME}.png", "--borders", traced(tmp_path / "traced.csv"), "-o", out, "--quiet",
               *options, *CALIBRATION) == 2
    assert re.search(expected, capsys.readouterr().err)
    assert not out.exists() or not any(out.iterdir())


def test_borders_are_refused_for_a_test_set(tmp_path, capsys):
    for sub in ("img", "mask"):
        (tmp_path / "set" / sub).mkdir(parents=True)
    assert run("-d", tmp_path / "set", "--borders", write_borders(tmp_path / "traced.csv"), "-o", tmp_path / "o") == 2
    assert "--borders measures recordings from traced borders; a test set scores the network" in capsys.readouterr().err


def test_the_trace_file_given_back_measures_what_the_network_measured(tmp_path):
    """README's recipe: a point per row of <stem>_trace.csv, x its index and y its border, read back by --borders,
    gives the network's own summary (to the two decimals the trace file keeps of each border)."""
    read = tmp_path / "read"
    assert run("-d", EXAMPLES / f"{NAME}.png", "--no-refine", "-o", read, "--quiet", *CALIBRATION) == 0
    rows = read_rows(read / f"{NAME}_trace.csv")
    borders = tmp_path / "from_trace.csv"
    with open(borders, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("image", "trace", "x", "y"))
        for trace in ("upper", "lower"):
            writer.writerows((NAME, trace, x, row[f"{trace}_px"]) for x, row in enumerate(rows) if row[f"{trace}_px"])
    again = tmp_path / "again"
    assert run("-d", EXAMPLES / f"{NAME}.png", "--borders", borders, "-o", again, "--quiet", *CALIBRATION) == 0
    network, traced = (json.loads((folder / f"{NAME}_summary.json").read_text()) for folder in (read, again))
    assert traced["n_beats"] == network["n_beats"] > 5
    for key, tolerance in (("lvid_d_mm", 2e-4), ("lvid_s_mm", 2e-4), ("ef_pct", 0.01), ("hr_bpm", 0.05)):
        assert traced[key] == pytest.approx(network[key], abs=tolerance), key


def test_a_study_with_recordings_to_read_needs_its_checkpoint_before_anything_is_written(tmp_path, capsys):
    """Only a run with no recording left to read may do without a checkpoint: one left stops the study up front."""
    study = tmp_path / "study"
    study.mkdir()
    for name in (NAME, "sim_s7_001"):
        shutil.copy(EXAMPLES / f"{name}.png", study)
    borders, out = write_borders(tmp_path / "traced.csv"), tmp_path / "out"
    assert run("-d", study, "--borders", borders, "-m", tmp_path / "no-such-model.pt", "-o", out, "--quiet",
               *CALIBRATION) == 2
    assert "no-such-model.pt: checkpoint not found" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    (study / "sim_s7_001.png").unlink()
    assert run("-d", study, "--borders", borders, "-m", tmp_path / "no-such-model.pt", "-o", out, "--quiet",
               *CALIBRATION) == 0
