"""`python -m preprocess build` end to end in a subprocess: success, bad input, no leftovers."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def preprocess(*args):
    return subprocess.run([sys.executable, "-m", "preprocess", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def tiny_recording(folder, lower_y=14):
    """One 20 x 64 recording `mouse1.png` and its annotation CSV (cavity rows 5 < r < lower_y, columns 2..61)."""
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 256, size=(20, 64), dtype=np.uint8)
    Image.fromarray(image).save(folder / "mouse1.png")
    csv = folder / "clicks.csv"
    csv.write_text("image,trace,x,y\n"
                   "mouse1,upper,2,5\nmouse1,upper,30,5\nmouse1,upper,61,5\n"
                   f"mouse1,lower,2,{lower_y}\nmouse1,lower,61,{lower_y}\n")
    return image, csv


def test_build_writes_windows_and_masks(tmp_path):
    image, csv = tiny_recording(tmp_path / "in")
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data",
                        "--stride", 15)
    assert result.returncode == 0, result.stderr
    # side 20, span 2..61: starts 2, 17, 32 and the last aligned to the end, 42
    names = [f"mouse1_win{k}.png" for k in range(4)]
    assert sorted(p.name for p in (tmp_path / "data" / "img").iterdir()) == names
    assert sorted(p.name for p in (tmp_path / "data" / "mask").iterdir()) == names
    last_mask = np.asarray(Image.open(tmp_path / "data" / "mask" / "mouse1_win3.png"))
    expected = np.zeros((20, 20), dtype=np.uint8)
    expected[6:14] = 255
    np.testing.assert_array_equal(last_mask, expected)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "data" / "img" / "mouse1_win3.png")),
                                  image[:, 42:62])
    assert "1 recordings, 4 windows, 60 columns covered" in result.stderr


def test_build_strips_writes_border_strips_that_hold_the_annotated_borders(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = np.arange(300)[:, None]  # a cavity wider than a strip plus the largest guide offset
    image = np.where((rows > 80.5) & (rows < 200.5), 10, 200).astype(np.uint8) * np.ones((1, 300), np.uint8)
    Image.fromarray(image).save(folder / "mouse2.png")
    csv = folder / "clicks.csv"
    csv.write_text("image,trace,x,y\nmouse2,upper,0,80.5\nmouse2,upper,299,80.5\n"
                   "mouse2,lower,0,200.5\nmouse2,lower,299,200.5\n")
    result = preprocess("build", "--strips", "--images", folder, "--annotations", csv, "--out", tmp_path / "strips",
                        "--seed", 4, "--quiet")
    assert result.returncode == 0, result.stderr
    # span 0..299, strips 128 wide every 128 columns: 2 per border, the upper border's first
    names = [f"mouse2_win{k}.png" for k in range(4)]
    assert sorted(p.name for p in (tmp_path / "strips" / "img").iterdir()) == names
    summary = json.loads((tmp_path / "strips" / "summary.json").read_text())
    assert summary["kind"] == "border-strips" and summary["strip_rows"] == 96 and summary["windows"] == 4
    for name in names:
        strip = np.asarray(Image.open(tmp_path / "strips" / "img" / name))
        mask = np.asarray(Image.open(tmp_path / "strips" / "mask" / name))
        assert strip.shape == (96, 128)
        np.testing.assert_array_equal(mask, np.where(strip < 100, 255, 0))  # tissue above, cavity below


def test_bad_annotation_exits_2_with_one_error_line_and_no_output(tmp_path):
    _, csv = tiny_recording(tmp_path / "in", lower_y=3)  # lower trace above the upper one
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "mouse1" in errors[0] and "lower trace lies above" in errors[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_non_empty_output_is_refused(tmp_path):
    _, csv = tiny_recording(tmp_path / "in")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.png").write_bytes(b"")
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data",
                        "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "--overwrite" in result.stderr
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["old.png"]


def test_help_imports_no_torch():
    code = ("import sys, runpy; sys.argv = ['preprocess', '--help']\n"
            "try:\n    runpy.run_module('preprocess', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "import preprocess.build\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "build" in result.stdout and "simulate" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"
