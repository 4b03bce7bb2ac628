"""`python -m preprocess build` end to end in a subprocess: success, bad input, no leftovers."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmode.errors import InputError
from preprocess import build

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


def test_windows_cut_by_time_span_the_same_seconds_at_any_height(tmp_path):
    # 20 rows, 1 ms per column: 0.032 s = 32 columns, a 20 x 32 window stepping by 16 over the span 2..61
    image, csv = tiny_recording(tmp_path / "in")
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data",
                        "--window-seconds", 0.032, "--s-per-px", 0.001, "--quiet")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "data" / "img").iterdir())
    assert names == [f"mouse1_win{k}.png" for k in range(3)]  # starts 2, 18 and 30 (aligned to the end)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "data" / "img" / "mouse1_win1.png")),
                                  image[:, 18:50])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "data" / "img" / "mouse1_win2.png")),
                                  image[:, 30:62])
    summary = json.loads((tmp_path / "data" / "summary.json").read_text())
    assert summary["window_s"] == 0.032
    assert summary["per_recording"]["mouse1"]["window_columns"] == 32
    assert summary["per_recording"]["mouse1"]["s_per_px"] == 0.001
    # at twice the time per column the same seconds are half the columns
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "half",
                        "--window-seconds", 0.032, "--s-per-px", 0.002, "--quiet")
    assert result.returncode == 0, result.stderr
    window = np.asarray(Image.open(tmp_path / "half" / "img" / "mouse1_win0.png"))
    np.testing.assert_array_equal(window, image[:, 2:18])


def test_a_calibration_csv_cuts_each_recording_at_its_own_time_scale(tmp_path):
    # mouse1 at 1 ms per column (32 columns in 0.032 s), mouse2 at 2 ms (16 columns)
    image, csv = tiny_recording(tmp_path / "in")
    Image.fromarray(image).save(tmp_path / "in" / "mouse2.png")
    csv.write_text(csv.read_text() + "mouse2,upper,2,5\nmouse2,upper,61,5\nmouse2,lower,2,14\nmouse2,lower,61,14\n")
    calibration = tmp_path / "in" / "calibration.csv"
    calibration.write_text("image,mm_per_px,s_per_px\nmouse1.png,0.02,0.001\nmouse2,0.03,0.002\n")
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data",
                        "--window-seconds", 0.032, "--calibration", calibration, "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "data" / "summary.json").read_text())["per_recording"]
    assert summary["mouse1"]["window_columns"] == 32 and summary["mouse2"]["window_columns"] == 16
    assert (summary["mouse1"]["mm_per_px"], summary["mouse2"]["s_per_px"]) == (0.02, 0.002)
    for name, columns in (("mouse1", 32), ("mouse2", 16)):
        window = np.asarray(Image.open(tmp_path / "data" / "img" / f"{name}_win0.png"))
        np.testing.assert_array_equal(window, image[:, 2:2 + columns])


@pytest.mark.parametrize("flags, message", [
    (["--window-seconds", 0.024, "--strips"], "--window-seconds cuts training windows"),
    (["--s-per-px", 0.001, "--calibration", "in/cal.csv"], "--s-per-px and --calibration both"),
    (["--calibration", "in/other.csv"], "no calibration for recording(s) mouse1"),
    (["--calibration", "in/bad.csv"], "bad.csv line 2: mm_per_px and s_per_px must be positive"),
    (["--calibration", "in/missing.csv"], "missing.csv: calibration file not found"),
    (["--window-seconds", 0.01, "--s-per-px", 0.001], "mouse1.png: --window-seconds 0.01 spans 10 columns"),
])
def test_bad_window_seconds_or_calibration_exit_2_and_write_nothing(tmp_path, flags, message):
    _, csv = tiny_recording(tmp_path / "in")
    (tmp_path / "in" / "cal.csv").write_text("image,mm_per_px,s_per_px\nmouse1,0.01,0.001\n")
    (tmp_path / "in" / "other.csv").write_text("image,mm_per_px,s_per_px\nmouse2,0.01,0.001\n")
    (tmp_path / "in" / "bad.csv").write_text("image,mm_per_px,s_per_px\nmouse1,0.01,-0.001\n")
    flags = [tmp_path / flag if str(flag).startswith("in/") else flag for flag in flags]
    result = preprocess("build", "--images", tmp_path / "in", "--annotations", csv, "--out", tmp_path / "data",
                        *flags)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


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


def test_strips_of_a_coarse_recording_are_cut_at_the_zoom_the_refiner_reads_it_with(tmp_path):
    # at 0.03 mm per row (coarser than the refiner's 0.0081-0.0150) test.py reads strips zoomed 2x
    # (mmode.refine.strip_zoom); training strips of such a recording must show the same
    folder = tmp_path / "in"
    folder.mkdir()
    rows = np.arange(300)[:, None]
    image = np.where((rows > 80.5) & (rows < 200.5), 10, 200).astype(np.uint8) * np.ones((1, 300), np.uint8)
    Image.fromarray(image).save(folder / "mouse2.png")
    csv = folder / "clicks.csv"
    csv.write_text("image,trace,x,y\nmouse2,upper,0,80.5\nmouse2,upper,299,80.5\n"
                   "mouse2,lower,0,200.5\nmouse2,lower,299,200.5\n")
    (folder / "calibration.csv").write_text("image,mm_per_px,s_per_px\nmouse2,0.03,0.001\n")
    summary = build.build_dataset(folder, csv, tmp_path / "strips", strips=True, seed=4, progress=False,
                                  calibration_csv=folder / "calibration.csv")
    assert summary["per_recording"]["mouse2"]["strip_zoom"] == pytest.approx(2.0)
    for k in range(4):
        strip = np.asarray(Image.open(tmp_path / "strips" / "img" / f"mouse2_win{k}.png"))
        mask = np.asarray(Image.open(tmp_path / "strips" / "mask" / f"mouse2_win{k}.png"))
        # two strip rows per image row: the strip row centred on the wall's edge (image row 80.5 or 200.5)
        # reads half-way (105), one per column; the mask's first cavity row is that row or the next (a strip
        # row's centre on the border itself is a tie the annotation's last bit decides)
        columns = np.arange(strip.shape[1])
        ramp_row = np.argmax(strip == 105, axis=0)
        assert np.all(strip[ramp_row, columns] == 105) and np.all(np.sum(strip == 105, axis=0) == 1)
        edge_row = np.argmax(mask > 0, axis=0)
        assert np.all((edge_row == ramp_row) | (edge_row == ramp_row + 1))
        np.testing.assert_array_equal(mask[strip == 10], 255)
        np.testing.assert_array_equal(mask[strip == 200], 0)
        # the guide's offsets are in strip rows: the border stays well inside the strip
        assert edge_row.min() >= 48 - 36 and edge_row.max() <= 48 + 36


def band_recording(folder, width, annotated_upper_px):
    """`mouse3.png`, 320 rows: cavity (grey 10) at rows 81..200, tissue (200) around it; its annotation CSV with
    the lower border where the image has it (200.5) and the upper one at `annotated_upper_px` [(x, y), ...]."""
    folder.mkdir()
    rows = np.arange(320)[:, None]
    image = np.where((rows > 80.5) & (rows < 200.5), 10, 200).astype(np.uint8) * np.ones((1, width), np.uint8)
    Image.fromarray(image).save(folder / "mouse3.png")
    csv = folder / "clicks.csv"
    csv.write_text("image,trace,x,y\n" + "".join(f"mouse3,upper,{x},{y}\n" for x, y in annotated_upper_px)
                   + f"mouse3,lower,0,200.5\nmouse3,lower,{width - 1},200.5\n")
    return csv


def test_guide_model_strips_follow_the_networks_border_and_hold_the_annotated_one(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")

    class DarkIsCavity(torch.nn.Module):  # finds the image's edges: the upper one at row 80.5
        def forward(self, x):
            return 8.0 * (105 / 255 - x)

    # the annotator put the upper border 6 rows deeper (a blurred septum) over columns 0-149
    csv = band_recording(tmp_path / "in", 400, [(0, 86.5), (149, 86.5), (150, 80.5), (399, 80.5)])
    monkeypatch.setattr(build, "load_guide_model", lambda path: (DarkIsCavity().eval(), (320, 320), None))
    out = tmp_path / "strips"
    summary = build.build_dataset(tmp_path / "in", csv, out, strips=True, seed=4, progress=False,
                                  guide_model=tmp_path / "net.pt", guide_easy_fraction=1.0)
    # perturbed strips every 128 columns: 3 per border; guide strips at 0, 96 and 192: 3 per border (all kept),
    # the upper ones at 0 and 96 hard (their guide 6 rows off the annotation)
    assert summary["guide_strips"] == 6 and summary["hard_strips"] == 2 and summary["windows"] == 12
    assert summary["per_recording"]["mouse3"]["windows"] == 12 and summary["guide_model"] == str(tmp_path / "net.pt")
    assert json.loads((out / "summary.json").read_text())["windows"] == 12
    names = [f"mouse3_win{k}.png" for k in range(12)]
    assert sorted(p.name for p in (out / "img").iterdir()) == sorted(names)
    first_guide_strip = np.asarray(Image.open(out / "img" / "mouse3_win6.png"))
    first_guide_mask = np.asarray(Image.open(out / "mask" / "mouse3_win6.png")) > 0
    image_edge = np.argmax(first_guide_strip < 100, axis=0)  # the strip runs along the network's border ...
    label_edge = np.argmax(first_guide_mask, axis=0)  # ... and its mask starts at the annotated one
    assert np.all(np.abs(image_edge - 48) <= 4)  # the guide's 1-row SD jitter
    np.testing.assert_array_equal(label_edge[:128] - image_edge[:128], 6)


def test_guide_model_reads_each_recording_at_its_own_time_scale(tmp_path, monkeypatch):
    """The guide network sees a recording as `test.py` does: resized so one network column spans the
    checkpoint's ms_per_column at the recording's own time calibration (here --s-per-px)."""
    pytest.importorskip("torch")
    import mmode.analysis

    csv = band_recording(tmp_path / "in", 400, [(0, 80.5), (399, 80.5)])
    monkeypatch.setattr(build, "load_guide_model", lambda path: ("net", (320, 64), 2.5))
    seen = []

    def spy(net, image, img_size, **options):
        seen.append(options["stretch"])
        return mmode.analysis.borders_from_probability(np.where(image < 100, 1.0, 0.0))

    monkeypatch.setattr(mmode.analysis, "segment_borders", spy)
    summary = build.build_dataset(tmp_path / "in", csv, tmp_path / "strips", strips=True, seed=4, progress=False,
                                  guide_model=tmp_path / "net.pt", guide_easy_fraction=1.0, s_per_px=0.001)
    # 320 rows at 1 ms per column span 320 ms; 64 network columns at 2.5 ms span 160 ms: twice as wide
    assert seen == [pytest.approx(2.0)]
    assert summary["guide_ms_per_column"] == 2.5 and summary["guide_strips"] > 0


@pytest.mark.parametrize("guide, with_strips, message", [
    ("refiner", True, "a border refiner"),
    ("missing", True, "checkpoint not found"),
    ("refiner", False, "go with --strips"),
    (None, True, "need --guide-model"),
])
def test_a_bad_guide_model_exits_2_naming_it_and_writes_nothing(tmp_path, guide, with_strips, message):
    torch = pytest.importorskip("torch")
    from mmode.checkpoint import save_checkpoint
    from quicknat import QuickNat

    csv = band_recording(tmp_path / "in", 300, [(0, 80.5), (299, 80.5)])
    path = tmp_path / f"{guide}.pt"
    if guide == "refiner":
        torch.manual_seed(0)
        net = QuickNat(dict(num_filters=4))
        save_checkpoint(path, net, net.params, 96, epoch=1, optimizer=None, loss=0.5, dice=0.5, mse=0.1,
                        best_dice=0.5, best_mse=0.1, task="border-strips")
    strips = ["--strips"] if with_strips else []
    guide_flags = ["--guide-model", path] if guide else ["--guide-easy-fraction", 1]
    result = preprocess("build", *strips, *guide_flags, "--images", tmp_path / "in", "--annotations", csv,
                        "--out", tmp_path / "data", "--quiet")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    if guide and with_strips:
        assert str(path) in errors[0]
    assert not (tmp_path / "data").exists()


def framed(tmp_path, image, clicks, left, top):
    """`image` as the M-mode panel of a screenshot `screen/mouse1.png` (a bright frame) and `clicks` [(trace, x,
    y)] moved into the screenshot's pixels, in `screen/clicks.csv`; and the same unframed in `panel/`."""
    for folder, (dx, dy) in (("panel", (0, 0)), ("screen", (left, top))):
        (tmp_path / folder).mkdir()
        canvas = np.full((image.shape[0] + dy + 9 * (dy > 0), image.shape[1] + dx + 11 * (dx > 0)), 240, np.uint8)
        canvas[dy:dy + image.shape[0], dx:dx + image.shape[1]] = image
        Image.fromarray(canvas).save(tmp_path / folder / "mouse1.png")
        rows = [f"mouse1,{trace},{x + dx},{y + dy}" for trace, x, y in clicks]
        (tmp_path / folder / "clicks.csv").write_text("image,trace,x,y\n" + "\n".join(rows) + "\n")
    return tmp_path / "panel", tmp_path / "screen"


@pytest.mark.parametrize("kind", [[], ["--strips"]])
def test_a_cropped_screenshot_builds_the_panels_own_windows(tmp_path, kind):
    image = np.random.default_rng(1).integers(0, 256, size=(40, 300), dtype=np.uint8)
    clicks = [("upper", 2, 10), ("upper", 150, 12), ("upper", 290, 10), ("lower", 2, 30), ("lower", 290, 28)]
    panel, screen = framed(tmp_path, image, clicks, left=7, top=4)
    plain = preprocess("build", "--images", panel, "--annotations", panel / "clicks.csv", "--out",
                       tmp_path / "plain", *kind, "--quiet")
    cropped = preprocess("build", "--images", screen, "--annotations", screen / "clicks.csv", "--out",
                         tmp_path / "cropped", "--crop", "7,4,307,44", *kind, "--quiet")
    found = preprocess("build", "--images", screen, "--annotations", screen / "clicks.csv", "--out",
                       tmp_path / "found", "--crop", "auto", *kind, "--quiet")
    assert plain.returncode == 0 and cropped.returncode == 0 and found.returncode == 0, cropped.stderr + found.stderr
    for sub in ("img", "mask"):
        names = sorted(p.name for p in (tmp_path / "plain" / sub).iterdir())
        for built in ("cropped", "found"):  # the box given, and the box --crop auto finds in the bright frame
            assert names and names == sorted(p.name for p in (tmp_path / built / sub).iterdir())
            for name in names:
                np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / built / sub / name)),
                                              np.asarray(Image.open(tmp_path / "plain" / sub / name)))
    assert json.loads((tmp_path / "cropped" / "summary.json").read_text())["crop"] == [7, 4, 307, 44]
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["crop"] is None
    summary = json.loads((tmp_path / "found" / "summary.json").read_text())
    assert summary["crop"] == "auto" and summary["per_recording"]["mouse1"]["crop"] == [7, 4, 307, 44]


@pytest.mark.parametrize("crop, click, box", [("7,4,207,44", (290, 10), "--crop 7,4,207,44"),
                                              ("auto", (-3, 10), "the panel --crop auto found, 7,4,307,44")],
                         ids=["given", "found"])
def test_a_click_outside_the_box_exits_2_naming_it_and_writes_nothing(tmp_path, crop, click, box):
    """A click beyond the box given, or in the frame beside the panel found: the recording, trace, box and click."""
    clicks = [("upper", 2, 10), ("upper", *click), ("lower", 2, 30), ("lower", 200, 30)]
    image = np.random.default_rng(2).integers(0, 256, size=(40, 300), dtype=np.uint8)
    _, screen = framed(tmp_path, image, clicks, left=7, top=4)
    result = preprocess("build", "--images", screen, "--annotations", screen / "clicks.csv", "--out",
                        tmp_path / "data", "--crop", crop, "--quiet")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: recording mouse1: the upper trace has 1 point(s) outside {box}, "
                      f"e.g. x={click[0] + 7}, y={click[1] + 4}"]
    assert not (tmp_path / "data").exists()


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


def test_the_images_folder_lists_images_and_dicoms_of_any_name_and_refuses_two_of_one_name(tmp_path):
    list_recordings = build.list_recordings
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "mouse07.png")
    (tmp_path / "IM_0001").write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "notes.txt").write_text("not a recording")
    assert list_recordings(tmp_path) == {"mouse07": tmp_path / "mouse07.png", "IM_0001": tmp_path / "IM_0001"}
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "mouse07.tif")
    with pytest.raises(InputError, match=r"mouse07\.tif and .*mouse07\.png share the name 'mouse07'"):
        list_recordings(tmp_path)
