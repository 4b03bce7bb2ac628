"""bench/screenshots.py: recordings framed as screenshots, the boxes found counted against the true ones, and the
screens analysed beside the panels alone."""
import json
import shutil
from pathlib import Path

import pytest

from bench import screenshots
from mmode.cli import run_main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "sim_s7_001"


def test_box_offsets_and_their_summary():
    assert screenshots.edge_offsets((60, 52, 1860, 560), (60, 50, 1860, 570)) == dict(left=0, top=2, right=0,
                                                                                        bottom=-10)
    offsets = [dict(left=0, top=0, right=0, bottom=0), dict(left=-1, top=2, right=0, bottom=-10), None]
    summary = screenshots.box_summary(offsets)
    assert summary == dict(n=3, exact=1, none_found=1,
                           edges=dict(left=[-1, 0], top=[0, 2], right=[0, 0], bottom=[-10, 0]))


def test_differences_are_absolute_and_over_the_recordings_both_measured():
    reference = {stem: dict(status="ok", lvid_d_mm="3.0", lvid_s_mm="1.5", ef_pct="70", hr_bpm="600", n_beats="9")
                 for stem in "abc"}
    rows = dict(a=dict(reference["a"], lvid_d_mm="3.01", n_beats="8"), b=dict(reference["b"], lvid_d_mm="2.97"),
                c=dict(status="error"))
    result = screenshots.differences(rows, reference)
    assert result["n"] == 2 and result["n_beats"] == dict(max=1)
    assert result["lvid_d_mm"]["max"] == pytest.approx(0.03) and result["lvid_d_mm"]["median"] == pytest.approx(0.02)
    assert result["ef_pct"] == dict(max=0.0, median=0.0)


@pytest.mark.usefixtures("one_torch_thread")
def test_screens_of_an_example_are_found_and_measure_as_the_panel(tmp_path):
    """On a grey backdrop the box is exact, so the study of the screen is the panel's to the last digit; the JPEG
    screen and its cut at the true box are measured too."""
    pytest.importorskip("torch")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / f"{EXAMPLE}.png", folder)
    rows = (ROOT / "examples" / "calibration.csv").read_text().splitlines()
    (folder / "calibration.csv").write_text("\n".join([rows[0], *(r for r in rows if r.startswith(EXAMPLE))]) + "\n")
    out = tmp_path / "out"
    argv = ["--recordings", folder, "--backdrops", "30", "--jpeg", "90", "--analyse", "--no-refine", "--out-dir",
            out, "--quiet"]
    assert run_main(screenshots.main, [str(arg) for arg in argv]) == 0
    report = json.loads((out / "screenshots.json").read_text())
    assert report["boxes"]["backdrop 30, PNG"] == dict(n=1, exact=1, none_found=0,
                                                        edges=dict(left=[0, 0], top=[0, 0], right=[0, 0],
                                                                   bottom=[0, 0]))
    assert report["boxes"]["backdrop 30, JPEG 90"]["none_found"] == 0
    same = report["differences"]["backdrop 30, PNG"]
    assert same["n"] == 1 and same["n_beats"]["max"] == 0
    assert all(same[key]["max"] == 0 for key in ("lvid_d_mm", "lvid_s_mm", "ef_pct", "hr_bpm"))
    assert report["differences"]["backdrop 30, JPEG 90, cut at the true box"]["n"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["backdrop30_JPEG90", "backdrop30_JPEG90_truebox",
                                                     "backdrop30_PNG", "panels", "screenshots.json", "studies"]


def test_a_folder_without_its_calibration_is_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    shutil.copy(ROOT / "examples" / f"{EXAMPLE}.png", tmp_path / "in")
    with pytest.raises(SystemExit) as stopped:
        run_main(screenshots.main, ["--recordings", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out")])
    assert stopped.value.code == 2
    assert f"error: {tmp_path / 'in'}: no calibration.csv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
