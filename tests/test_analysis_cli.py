"""test.py (mmode.analysis): test-set mode, recording mode (PNG, DICOM), studies, and bad input."""
import csv
import hashlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from mmode import analysis  # noqa: E402
from mmode.checkpoint import save_checkpoint  # noqa: E402
from mmode.cli import run_main  # noqa: E402
from mmode.measure import BEAT_COLUMNS, SPREAD_KEYS, SUMMARY_KEYS  # noqa: E402
from mmode.plots import BOX_COLOUR, FLAGGED_BAND_COLOUR, draw_box  # noqa: E402
from mmode.version import __version__, git_commit  # noqa: E402
from preprocess.masks import traces_to_mask  # noqa: E402
from preprocess.simulate import simulate_recording  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG_SIZE_PX = 32
CAVITY_GREY, TISSUE_GREY = 25, 190


pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_default_refiner")


@pytest.fixture
def no_default_refiner(monkeypatch, tmp_path):
    """The tests below choose their refiner; the shipped one would otherwise re-read every border."""
    monkeypatch.setattr(analysis, "DEFAULT_REFINER", tmp_path / "absent" / "heart-seg-refine.pt")


class DarkIsCavity(torch.nn.Module):
    """A stand-in for a trained network on clean images: logit = slope (0.42 - grey), dark = cavity. The default
    slope 4 gives a smooth map (probability 0.78 on the clean image's cavity grey, 0.21 on its wall's) whose
    crossings interpolate well between coarse network columns, but a network that unsure has every beat flagged
    as uncertain; slope 12 (0.98 / 0.02) is about as sure as a trained network."""

    def __init__(self, slope=4.0):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        return self.slope * ((CAVITY_GREY + TISSUE_GREY) / 2 / 255 - x)


def tiny_checkpoint(path, num_filters=4, claimed_filters=None, **extra):
    """A QuickNat checkpoint with random weights; `claimed_filters` stores other model_params than the weights';
    `extra` keys (a refiner's `task`) are stored too."""
    from quicknat import QuickNat

    torch.manual_seed(0)
    net = QuickNat(dict(num_filters=num_filters))
    params = dict(net.params, num_filters=claimed_filters or num_filters)
    save_checkpoint(path, net, params, IMG_SIZE_PX, epoch=1, optimizer=None, loss=0.5, dice=0.5, mse=0.1,
                    best_dice=0.5, best_mse=0.1, **extra)
    return path


def clean_recording(seed):
    """A simulated recording's truth drawn as a clean image: dark cavity between its traces, bright tissue."""
    recording = simulate_recording(seed, duration_s=1.2)
    mask = traces_to_mask(recording.upper_px, recording.lower_px, recording.image.shape[0])
    noise = np.random.default_rng(seed).normal(0, 6, mask.shape)
    image = np.clip(np.where(mask > 0, CAVITY_GREY, TISSUE_GREY) + noise, 0, 255).astype(np.uint8)
    return recording, image


def write_dicom(path, image, delta_x_s, delta_y_cm):
    """A single-frame ultrasound DICOM whose M-mode region (the whole frame) carries the calibration."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows, dataset.Columns = image.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = image.astype(np.uint8).tobytes()
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 3, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = image.shape[1] - 1, image.shape[0] - 1
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 4, 3
    region.PhysicalDeltaX, region.PhysicalDeltaY = delta_x_s, delta_y_cm
    dataset.SequenceOfUltrasoundRegions = Sequence([region])
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoints, recordings (PNG, DICOM, broken) and a 12-image test set, made once."""
    folder = tmp_path_factory.mktemp("inputs")
    recording, image = clean_recording(3)
    Image.fromarray(image).save(folder / "clean.png")
    Image.fromarray(recording.image).save(folder / "sim.png")
    study = folder / "study"
    study.mkdir()
    Image.fromarray(image[:, :500]).save(study / "a.png")
    Image.fromarray(recording.image[:, :400]).save(study / "b.png")
    (study / "broken.png").write_bytes(b"not a png at all")
    (study / "notes.txt").write_text("ignored")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "trace.txt").write_text("0,1,2")
    write_dicom(folder / "scan.dcm", image[:, :600], delta_x_s=0.0009, delta_y_cm=0.00125)

    test_set = folder / "test_set"
    for sub in ("img", "mask"):
        (test_set / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        top, bottom = rng.integers(6, 14), rng.integers(24, 34)
        mask = np.zeros((40, 40), np.uint8)
        mask[top:bottom] = 255
        window = np.clip(np.where(mask > 0, CAVITY_GREY, TISSUE_GREY) + rng.normal(0, 6, mask.shape), 0, 255)
        Image.fromarray(window.astype(np.uint8)).save(test_set / "img" / f"rec{i // 3}_win{i % 3}.png")
        Image.fromarray(mask).save(test_set / "mask" / f"rec{i // 3}_win{i % 3}.png")
    return dict(folder=folder, recording=recording, clean=folder / "clean.png", sim=folder / "sim.png",
                dicom=folder / "scan.dcm", study=study, broken=folder / "broken.png", text=folder / "trace.txt",
                test_set=test_set, checkpoint=tiny_checkpoint(folder / "tiny.pt"),
                foreign=tiny_checkpoint(folder / "foreign.pt", num_filters=8, claimed_filters=4),
                refiner=tiny_checkpoint(folder / "refiner.pt", task="border-strips"))


@pytest.fixture
def dark_network(monkeypatch, files):
    """Make test.py use a sure DarkIsCavity, as a checkpoint of input size 256, in place of the checkpoint's network.
    (256: a 650-row recording then keeps a network pixel per 2.5 columns, enough for the fast systolic
    wall motion; at 64 px, 10 columns blur into one and a perfect segmenter still errs by 20 px there.)"""
    monkeypatch.setattr(analysis, "DEFAULT_CHECKPOINT", files["checkpoint"])
    monkeypatch.setattr("mmode.checkpoint.load_model",
                        lambda path, device="cpu": (DarkIsCavity(slope=12.0), dict(img_size=256)))


def run(*argv):
    """Run test.py in this process; returns its exit status."""
    try:
        return run_main(analysis.main, [str(arg) for arg in argv])
    except SystemExit as exit_:
        return exit_.code


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def file_names(folder):
    return sorted(path.name for path in Path(folder).iterdir()) if Path(folder).exists() else []


# --------------------------------------------------------------------------- help

def test_help_answers_without_importing_torch():
    code = ("import runpy, sys; sys.argv = ['test.py', '--help']\n"
            "try:\n    runpy.run_path('test.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "usage: test.py" in result.stdout and "--mm-per-px" in result.stdout
    assert result.stdout.strip().endswith("torch not loaded")


# --------------------------------------------------------------------------- test-set mode

def test_test_set_mode_prints_three_lines_and_writes_metrics_and_ten_triplets(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("-d", files["test_set"], "-m", files["checkpoint"], "-o", out, "-b", 5, "--quiet") == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["Average DICE", "Average MSE", "Measured loss"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 12 and metrics["img_size"] == IMG_SIZE_PX
    assert metrics["software_version"] == __version__ and metrics["software_commit"] == git_commit()
    columns, rows = read_csv(out / "per_image.csv")
    assert columns == ["index", "name", "dice", "mse", "loss"] and len(rows) == 12
    for key, line in zip(("dice", "mse", "loss"), printed):
        assert metrics[key] == pytest.approx(np.mean([float(row[key]) for row in rows]))
        assert float(line.split(":")[1]) == pytest.approx(metrics[key], abs=1e-6)
    expected = {f"{kind}_{i}.png" for kind in ("image", "mask", "pred") for i in range(10)}
    assert set(file_names(out)) == expected | {"metrics.json", "per_image.csv"}
    assert Image.open(out / "image_0.png").size == (IMG_SIZE_PX, IMG_SIZE_PX)


def test_test_set_scores_a_network_that_segments_it(files, tmp_path, capsys, dark_network):
    assert run("-d", files["test_set"], "-o", tmp_path / "out", "-s", 64, "--quiet") == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["dice"] > 0.95 and metrics["mse"] < 0.03 and metrics["img_size"] == 64
    printed = capsys.readouterr().out.splitlines()
    assert float(printed[0].split(":")[1]) == pytest.approx(metrics["dice"], abs=1e-6)


# --------------------------------------------------------------------------- recording mode

def check_recording_files(out, stem, width_px, cropped=False):
    names = [f"{stem}_{suffix}" for suffix in ("mask.png", "trace.csv", "beats.csv", "summary.json", "lvid.png",
                                               "volume.png", "overlay.png") + ("crop.png",) * cropped]
    assert file_names(out) == sorted(names)
    columns, trace = read_csv(out / f"{stem}_trace.csv")
    assert columns[:3] == ["time_s", "lvid_mm", "volume_ul"] and len(trace) == width_px
    columns, beats = read_csv(out / f"{stem}_beats.csv")
    assert columns == [*BEAT_COLUMNS, "uncertainty", "flags", "in_medians"]  # DESIGN.md's, then the flags
    summary = json.loads((out / f"{stem}_summary.json").read_text())
    assert set(SUMMARY_KEYS) | {"n_beats", "mm_per_px", "s_per_px", "model", "calibration_source"} <= set(summary)
    assert summary["n_beats"] == len(beats)
    return trace, beats, summary


def test_recording_mode_writes_every_file_with_the_calibration_from_flags(files, tmp_path, caplog):
    out = tmp_path / "out"
    height_px, width_px = files["recording"].image.shape
    assert run("-d", files["sim"], "-m", files["checkpoint"], "-o", out, "--mm-per-px", 0.02,
               "--s-per-px", 0.001, "--quiet") == 0
    trace, _, summary = check_recording_files(out, "sim", width_px)
    assert summary["mm_per_px"] == 0.02 and summary["s_per_px"] == 0.001
    assert summary["calibration_source"] == "user" and summary["img_size"] == IMG_SIZE_PX
    assert summary["model"] == str(files["checkpoint"])
    np.testing.assert_allclose([float(row["time_s"]) for row in trace], np.arange(width_px) * 0.001, atol=1e-6)
    assert Image.open(out / "sim_mask.png").size == (width_px, height_px)
    assert Image.open(out / "sim_overlay.png").size == (width_px, height_px)
    # the weights that made the result, whatever later happens to the file at that path, and the code
    assert summary["model_sha256"] == hashlib.sha256(files["checkpoint"].read_bytes()).hexdigest()
    assert summary["software_version"] == __version__ and summary["software_commit"] == git_commit()
    assert summary["refiner"] is None and summary["refiner_sha256"] is None
    # 0.02 mm per row is coarser than the training recordings: said in the summary (and the log)
    assert len(summary["pixel_warnings"]) == 1 and summary["pixel_warnings"][0].startswith("0.02 mm per row")
    assert f"{files['sim']}: 0.02 mm per row is coarser than" in caplog.text


def test_recording_mode_measures_a_segmented_recording(files, tmp_path, dark_network):
    recording = files["recording"]
    out = tmp_path / "out"
    assert run("-d", files["clean"], "-o", out, "--mm-per-px", recording.mm_per_px,
               "--s-per-px", recording.s_per_px, "--quiet") == 0
    trace, beats, summary = check_recording_files(out, "clean", recording.image.shape[1])
    lvid_mm = np.array([float(row["lvid_mm"]) for row in trace])
    error_px = np.abs(lvid_mm - recording.lvid_mm) / recording.mm_per_px
    assert error_px.mean() < 1.0 and error_px.max() < 5.0
    volume_ul = np.array([float(row["volume_ul"]) for row in trace])
    np.testing.assert_allclose(volume_ul, 7.0 / (2.4 + lvid_mm) * lvid_mm ** 3, rtol=1e-3)
    assert abs(len(beats) - len(recording.beats)) <= 1  # an end-diastole right at the start may count
    assert summary["hr_bpm"] == pytest.approx(recording.hr_bpm, rel=0.02)
    true_d = np.median([beat["lvid_d_mm"] for beat in recording.beats])
    assert summary["lvid_d_mm"] == pytest.approx(true_d, abs=3 * recording.mm_per_px)
    d, s = float(beats[0]["lvid_d_mm"]), float(beats[0]["lvid_s_mm"])
    assert float(beats[0]["fs_pct"]) == pytest.approx(100 * (d - s) / d, abs=0.01)
    assert summary["co_ml_min"] == pytest.approx(summary["sv_ul"] * summary["hr_bpm"] / 1000, rel=1e-3)
    # the spread beside each median: the beats' interquartile range (every beat is used here), near the truth's
    assert summary["n_beats_used"] == len(beats)
    measured_d = [float(row["lvid_d_mm"]) for row in beats]
    assert summary["lvid_d_mm_iqr"] == pytest.approx(np.subtract(*np.percentile(measured_d, [75, 25])), abs=1e-4)
    true_iqr = np.subtract(*np.percentile([beat["lvid_d_mm"] for beat in recording.beats], [75, 25]))
    assert summary["lvid_d_mm_iqr"] == pytest.approx(true_iqr, abs=recording.mm_per_px)


def test_a_calibration_far_off_the_recordings_own_is_warned_about_by_the_lvidd_it_gives(files, tmp_path,
                                                                                         dark_network, caplog):
    recording = files["recording"]
    true_d = np.median([beat["lvid_d_mm"] for beat in recording.beats])
    wrong_mm_per_px = recording.mm_per_px / 4  # a scale bar misread: every mm a quarter of what it is
    out = tmp_path / "out"
    caplog.set_level(logging.INFO)
    assert run("-d", files["clean"], "-o", out, "--mm-per-px", wrong_mm_per_px, "--s-per-px", recording.s_per_px) == 0
    summary = json.loads((out / "clean_summary.json").read_text())
    assert summary["lvid_d_mm"] == pytest.approx(true_d / 4, abs=3 * wrong_mm_per_px) and true_d / 4 < 1.5
    (note,) = summary["range_warnings"]
    assert float(note.split()[1]) == pytest.approx(summary["lvid_d_mm"], abs=0.01)  # three digits
    assert "mm is below the 1.5-7 mm of mouse hearts" in note and "given by --mm-per-px" in note
    assert f"{files['clean']}: {note}" in caplog.text
    assert "no calibration given" not in caplog.text  # one was given
    # the recording's own calibration: no warning; none given: the log says the default was assumed
    caplog.clear()
    assert run("-d", files["clean"], "-o", out, "--overwrite", "--mm-per-px", recording.mm_per_px) == 0
    assert json.loads((out / "clean_summary.json").read_text())["range_warnings"] == []
    assert "no calibration given" not in caplog.text and "mm of mouse hearts" not in caplog.text
    assert run("-d", files["clean"], "-o", out, "--overwrite") == 0
    assert f"{files['clean']}: no calibration given, so read at the default 0.011526 mm per row" in caplog.text


def test_border_offsets_move_each_border_and_every_lvid_by_their_sum(files, tmp_path, dark_network, caplog):
    recording = files["recording"]
    offsets = tmp_path / "lab.json"
    offsets.write_text(json.dumps(dict(upper_mm=0.02, lower_mm=-0.05, model_sha256="0" * 64, refiner_sha256="ab" * 32,
                                       basis="ours")))
    flags = ["-d", files["clean"], "--mm-per-px", recording.mm_per_px, "--s-per-px", recording.s_per_px, "--quiet"]
    assert run(*flags, "-o", tmp_path / "plain") == 0
    caplog.set_level(logging.INFO, logger="test")
    assert run(*flags, "-o", tmp_path / "moved", "--border-offsets", offsets) == 0
    width_px = recording.image.shape[1]
    (plain, plain_beats, plain_summary), (moved, moved_beats, summary) = (
        check_recording_files(tmp_path / name, "clean", width_px) for name in ("plain", "moved"))

    def column(rows, key):
        return np.array([float(row[key]) if row[key] else np.nan for row in rows])

    up_px, down_px = 0.02 / recording.mm_per_px, -0.05 / recording.mm_per_px  # outward: up, and down
    np.testing.assert_allclose(column(moved, "upper_px"), column(plain, "upper_px") - up_px, atol=0.01)
    np.testing.assert_allclose(column(moved, "lower_px"), column(plain, "lower_px") + down_px, atol=0.01)
    np.testing.assert_allclose(column(moved, "lvid_mm"), column(plain, "lvid_mm") - 0.03, atol=2e-4)
    # the same beats, each diameter 0.03 mm smaller; the uncertainty is the network's own, so no beat is flagged
    assert [row["t_ed_s"] for row in moved_beats] == [row["t_ed_s"] for row in plain_beats]
    np.testing.assert_allclose(column(moved_beats, "lvid_d_mm"), column(plain_beats, "lvid_d_mm") - 0.03, atol=2e-4)
    assert summary["flagged_beats"] == plain_summary["flagged_beats"]
    assert summary["lvid_s_mm"] == pytest.approx(plain_summary["lvid_s_mm"] - 0.03, abs=2e-4)
    assert summary["border_offsets_mm"] == dict(upper=0.02, lower=-0.05) and plain_summary["border_offsets_mm"] is None
    # fitted behind another model: said, since they correct that model's reading
    assert "lab.json: these offsets were fitted behind another model (SHA-256 000000000000...)" in caplog.text
    assert f"outward by +0.02 mm (upper) and -0.05 mm (lower): the convention in {offsets}" in caplog.text
    assert "lab.json: these offsets were fitted behind another refiner and this run measures without one" in caplog.text


def screenshot(image, left, top):
    """`image` as the M-mode panel of a scanner screenshot: a black frame around it (which a network reading dark as
    cavity takes for cavity), a bright title bar above and a grey scale bar to its right."""
    height, width = image.shape
    canvas = np.zeros((height + top + 50, width + left + 70), np.uint8)
    canvas[:top // 2] = 235
    canvas[top:top + height, left + width + 20:left + width + 30] = 160
    canvas[top:top + height, left:left + width] = image
    return canvas


def test_a_screenshot_cropped_to_its_panel_measures_as_the_panel_alone(files, tmp_path, dark_network):
    recording = files["recording"]
    image = np.array(Image.open(files["clean"]))
    left, top = 45, 70
    Image.fromarray(screenshot(image, left, top)).save(tmp_path / "screen.png")
    calibration = ["--mm-per-px", recording.mm_per_px, "--s-per-px", recording.s_per_px, "--quiet"]
    box = f"{left},{top},{left + image.shape[1]},{top + image.shape[0]}"
    assert run("-d", files["clean"], "-o", tmp_path / "panel", *calibration) == 0
    assert run("-d", tmp_path / "screen.png", "-o", tmp_path / "cropped", "--crop", box, *calibration) == 0
    assert run("-d", tmp_path / "screen.png", "-o", tmp_path / "whole", *calibration) == 0
    assert run("-d", tmp_path / "screen.png", "-o", tmp_path / "found", "--crop", "auto", *calibration) == 0
    panel_trace, panel_beats, panel = check_recording_files(tmp_path / "panel", "clean", image.shape[1])
    cropped_trace, cropped_beats, cropped = check_recording_files(tmp_path / "cropped", "screen", image.shape[1],
                                                                  cropped=True)
    assert cropped_trace == panel_trace and cropped_beats == panel_beats
    assert cropped["crop"] == [left, top, left + image.shape[1], top + image.shape[0]] and panel["crop"] is None
    assert not cropped["crop_auto"] and not panel["crop_auto"]
    # --crop auto finds the same box, so every file is the same but the summary's word on how the box was had
    found_trace, found_beats, found = check_recording_files(tmp_path / "found", "screen", image.shape[1], cropped=True)
    assert found_trace == panel_trace and found_beats == panel_beats
    assert found["crop_auto"] and found == dict(cropped, crop_auto=True)
    assert (cropped["height_px"], cropped["width_px"]) == image.shape
    for key in SUMMARY_KEYS:
        assert cropped[key] == panel[key]
    mask = np.array(Image.open(tmp_path / "cropped" / "screen_mask.png"))
    np.testing.assert_array_equal(mask, np.array(Image.open(tmp_path / "panel" / "clean_mask.png")))
    # uncropped, the frame is read as cavity: the numbers are not the panel's
    whole = json.loads((tmp_path / "whole" / "screen_summary.json").read_text())
    assert whole["lvid_d_mm"] != panel["lvid_d_mm"]
    # with --crop, given or found, the box is shown on the whole screenshot; without, there is no such file
    screen = np.array(Image.open(tmp_path / "screen.png"))
    for run_name in ("cropped", "found"):
        shown = np.array(Image.open(tmp_path / run_name / "screen_crop.png"))
        assert shown.shape == screen.shape + (3,)
        np.testing.assert_array_equal(shown, draw_box(screen, cropped["crop"]))
        inside = shown[top:top + image.shape[0], left:left + image.shape[1]]
        np.testing.assert_array_equal(inside, np.repeat(image[:, :, None], 3, axis=2))
        assert tuple(shown[top - 1, left]) == BOX_COLOUR and tuple(shown[top, left - 1]) == BOX_COLOUR
    assert not (tmp_path / "whole" / "screen_crop.png").exists()
    assert not list((tmp_path / "panel").glob("*_crop.png"))


def test_crop_auto_finds_each_screenshots_own_panel_in_a_study(files, tmp_path, dark_network):
    """Two screenshots of one panel in other layouts: each row of study.csv names its own box and measures as the
    panel; a screen without a panel is that recording's error row, named."""
    recording = files["recording"]
    image = np.array(Image.open(files["clean"]))
    study = tmp_path / "study"
    study.mkdir()
    boxes = {}
    for name, (left, top) in dict(near=(45, 70), far=(130, 90)).items():
        Image.fromarray(screenshot(image, left, top)).save(study / f"{name}.png")
        boxes[name] = [left, top, left + image.shape[1], top + image.shape[0]]
    blank = screenshot(np.zeros((40, 60), np.uint8), 45, 70)  # the frame, title bar and scale bar alone
    Image.fromarray(blank).save(study / "blank.png")
    calibration = ["--mm-per-px", recording.mm_per_px, "--s-per-px", recording.s_per_px, "--quiet"]
    assert run("-d", files["clean"], "-o", tmp_path / "panel", *calibration) == 0
    assert run("-d", study, "-o", tmp_path / "out", "--crop", "auto", *calibration) == 0
    _, rows = read_csv(tmp_path / "out" / "study.csv")
    by_name = {row["recording"]: row for row in rows}
    panel = json.loads((tmp_path / "panel" / "clean_summary.json").read_text())
    for name, box in boxes.items():
        row = by_name[f"{name}.png"]
        assert [int(row[key]) for key in ("crop_left", "crop_top", "crop_right", "crop_bottom")] == box
        assert row["lvid_d_mm"] == str(panel["lvid_d_mm"]) and row["ef_pct"] == str(panel["ef_pct"])
        summary = json.loads((tmp_path / "out" / f"{name}_summary.json").read_text())
        assert summary["crop"] == box and summary["crop_auto"]
        shown = np.array(Image.open(tmp_path / "out" / f"{name}_crop.png"))
        np.testing.assert_array_equal(shown, draw_box(np.array(Image.open(study / f"{name}.png")), box))
    assert not (tmp_path / "out" / "blank_crop.png").exists()  # not analysed: nothing of it is written
    assert by_name["blank.png"]["status"] == "error"
    assert "blank.png: --crop auto found no M-mode panel" in by_name["blank.png"]["error"]


def test_a_calibration_csv_gives_each_recording_its_own_pixel_sizes(files, tmp_path, dark_network, caplog):
    """The same image under two names at two depth calibrations: every row the same, so LVID doubles with the mm per
    row and nothing else changes; a recording the CSV does not list is refused, not read at the defaults."""
    caplog.set_level(logging.INFO)
    study = tmp_path / "study"
    study.mkdir()
    for name in ("a.png", "a2.png"):
        shutil.copy(files["study"] / "a.png", study / name)
    shutil.copy(files["study"] / "b.png", study / "b.png")
    (study / "calibration.csv").write_text("image,mm_per_px,s_per_px\na,0.01,0.0008\na2.png,0.02,0.0008\n"
                                           "ghost,0.01,0.0008\n")
    out = tmp_path / "out"
    assert run("-d", study, "-o", out, "--no-refine", "--quiet") == 0
    _, rows = read_csv(out / "study.csv")
    status = {row["recording"]: row for row in rows}
    assert status["a.png"]["status"] == status["a2.png"]["status"] == "ok"
    assert status["b.png"]["status"] == "error"
    assert f"b.png: not listed in {study / 'calibration.csv'}" in status["b.png"]["error"]
    assert not (out / "b_summary.json").exists()
    a, a2 = (json.loads((out / f"{stem}_summary.json").read_text()) for stem in ("a", "a2"))
    assert (a["mm_per_px"], a2["mm_per_px"], a["s_per_px"]) == (0.01, 0.02, 0.0008)
    assert a["calibration_source"] == "user" and a["n_beats"] > 0
    assert a2["lvid_d_mm"] == pytest.approx(2 * a["lvid_d_mm"], rel=1e-3)
    assert a2["lvid_s_mm"] == pytest.approx(2 * a["lvid_s_mm"], rel=1e-3)
    # FS is a ratio of diameters; EF is not (Teichholz's 2.4 mm makes volume no power of D)
    assert a2["hr_bpm"] == a["hr_bpm"] and a2["fs_pct"] == pytest.approx(a["fs_pct"], abs=0.01)
    # where the pixel sizes came from, in the summary, the study table and a range warning
    table = str(study / "calibration.csv")
    assert a["calibration_file"] == a2["calibration_file"] == status["a.png"]["calibration_file"] == table
    assert a2["range_warnings"] and f"0.02 mm per row, from {table})" in a2["range_warnings"][0]
    assert "calibration.csv lists 1 recording(s) not analysed here: ghost" in caplog.text
    assert "no calibration given" not in caplog.text

    # the flags serve the recordings the CSV does not list; the CSV's rows still win
    assert run("-d", study, "-o", tmp_path / "flags", "--no-refine", "--quiet", "--mm-per-px", "0.015") == 0
    b = json.loads((tmp_path / "flags" / "b_summary.json").read_text())
    assert b["mm_per_px"] == 0.015 and b["calibration_file"] is None
    assert json.loads((tmp_path / "flags" / "a_summary.json").read_text())["mm_per_px"] == 0.01
    # --calibration names another file, for a study or a single recording
    other = tmp_path / "lab.csv"
    other.write_text("image,mm_per_px,s_per_px\nb,0.03,0.001\n")
    assert run("-d", study / "b.png", "-o", tmp_path / "single", "--no-refine", "--quiet",
               "--calibration", other) == 0
    single = json.loads((tmp_path / "single" / "b_summary.json").read_text())
    assert (single["mm_per_px"], single["s_per_px"]) == (0.03, 0.001)
    caplog.clear()
    assert run("-d", study / "a.png", "-o", tmp_path / "unlisted", "--quiet", "--calibration", other) == 2
    assert file_names(tmp_path / "unlisted") == []


def test_one_recording_of_a_study_folder_is_read_at_its_row_of_the_folders_calibration(files, tmp_path, dark_network,
                                                                                       caplog):
    """Analysed alone, a recording gets the pixel sizes a study of its folder gives it, unless flags name others;
    a folder's CSV that does not list it leaves it at the defaults, with the usual note."""
    caplog.set_level(logging.INFO)
    study = tmp_path / "study"
    study.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(files["study"] / name, study / name)
    (study / "calibration.csv").write_text("image,mm_per_px,s_per_px\na,0.01,0.0008\n")
    assert run("-d", study, "-o", tmp_path / "whole", "--no-refine", "--quiet", "--mm-per-px", "0.015") == 0
    assert run("-d", study / "a.png", "-o", tmp_path / "alone", "--no-refine", "--quiet") == 0
    in_study, alone = (json.loads((tmp_path / out / "a_summary.json").read_text()) for out in ("whole", "alone"))
    assert (alone["mm_per_px"], alone["s_per_px"]) == (0.01, 0.0008)
    assert alone["calibration_file"] == str(study / "calibration.csv")
    for key in SUMMARY_KEYS:
        assert alone[key] == in_study[key]
    assert f"a.png: pixel sizes from its row in {study / 'calibration.csv'}" in caplog.text
    assert run("-d", study / "a.png", "-o", tmp_path / "flags", "--no-refine", "--quiet", "--mm-per-px", "0.02") == 0
    flags = json.loads((tmp_path / "flags" / "a_summary.json").read_text())
    assert flags["mm_per_px"] == 0.02 and flags["calibration_file"] is None
    caplog.clear()
    assert run("-d", study / "b.png", "-o", tmp_path / "unlisted", "--no-refine", "--quiet") == 0
    unlisted = json.loads((tmp_path / "unlisted" / "b_summary.json").read_text())
    assert unlisted["calibration_source"] == "default" and "no calibration given" in caplog.text


def test_a_stretch_is_measured_at_the_recordings_own_times(files, tmp_path, dark_network, caplog):
    caplog.set_level(logging.INFO)
    recording = files["recording"]
    s_per_px = recording.s_per_px
    calibration = ["--mm-per-px", recording.mm_per_px, "--s-per-px", s_per_px, "--quiet"]
    assert run("-d", files["clean"], "-o", tmp_path / "whole", *calibration) == 0
    assert run("-d", files["clean"], "-o", tmp_path / "stretch", "--time", "0.33,1.02", *calibration) == 0
    first, last = round(0.33 / s_per_px), round(1.02 / s_per_px)
    assert f"clean.png from {first * s_per_px:.3f} to {last * s_per_px:.3f} s: " in caplog.text  # the summary line
    trace, beats, summary = check_recording_files(tmp_path / "stretch", "clean", last - first)
    # the times written are the recording's: its column `first` onwards
    np.testing.assert_allclose([float(row["time_s"]) for row in trace], np.arange(first, last) * s_per_px, atol=1e-6)
    assert summary["time_range_s"] == pytest.approx([first * s_per_px, last * s_per_px], abs=1e-6)
    assert summary["width_px"] == last - first and summary["duration_s"] == pytest.approx((last - first) * s_per_px)
    assert Image.open(tmp_path / "stretch" / "clean_mask.png").size == (last - first, recording.image.shape[0])
    lvid_mm = np.array([float(row["lvid_mm"]) for row in trace])
    assert np.abs(lvid_mm - recording.lvid_mm[first:last]).mean() < recording.mm_per_px
    # each beat is the whole recording's beat at the same time, with the same LVIDd
    _, whole_beats, whole = check_recording_files(tmp_path / "whole", "clean", recording.image.shape[1])
    assert whole["time_range_s"] is None and len(beats) >= 5
    whole_ed_s = np.array([float(row["t_ed_s"]) for row in whole_beats])
    for row in beats:
        nearest = np.abs(whole_ed_s - float(row["t_ed_s"])).argmin()
        assert abs(whole_ed_s[nearest] - float(row["t_ed_s"])) <= 2 * s_per_px
        assert float(row["lvid_d_mm"]) == pytest.approx(float(whole_beats[nearest]["lvid_d_mm"]), abs=0.01)
    # "START," runs to the end
    assert run("-d", files["clean"], "-o", tmp_path / "rest", "--time", "0.5,", *calibration) == 0
    _, _, rest = check_recording_files(tmp_path / "rest", "clean", recording.image.shape[1] - round(0.5 / s_per_px))
    assert rest["time_range_s"][1] == pytest.approx(recording.image.shape[1] * s_per_px, abs=1e-6)


def test_one_stretch_serves_a_study_and_a_recording_too_short_for_it_is_listed(files, tmp_path, dark_network):
    out = tmp_path / "out"  # a.png is 500 columns of 0.83 ms (0.417 s), b.png 400 (0.333 s)
    assert run("-d", files["study"], "-o", out, "--time", "0.05,0.4", "--quiet") == 0
    _, rows = read_csv(out / "study.csv")
    status = {row["recording"]: (row["status"], row["error"]) for row in rows}
    assert status["a.png"] == ("ok", "")
    assert status["b.png"][0] == "error"
    assert "b.png: the stretch from 0.05 s to 0.4 s reaches past the recording's end at 0.333 s" in status["b.png"][1]
    assert json.loads((out / "a_summary.json").read_text())["width_px"] == round(0.4 / 0.00083334) - 60


def test_a_stretches_csv_gives_each_recording_of_a_study_its_own_stretch(files, tmp_path, dark_network, caplog):
    caplog.set_level(logging.INFO)
    stretches = tmp_path / "stretches.csv"
    stretches.write_text("image,start_s,end_s\na.png,0.1,0.3\nb,0.05,\nghost,0,1\n")
    out = tmp_path / "out"
    assert run("-d", files["study"], "-o", out, "--time", stretches) == 0
    a, b = (json.loads((out / f"{stem}_summary.json").read_text()) for stem in ("a", "b"))
    s_per_px = 0.00083334  # the default: the study has no calibration.csv
    assert a["time_range_s"] == pytest.approx([round(0.1 / s_per_px) * s_per_px, round(0.3 / s_per_px) * s_per_px],
                                              abs=1e-6)  # written to 6 decimals
    assert a["width_px"] == round(0.3 / s_per_px) - round(0.1 / s_per_px)
    assert b["time_range_s"][1] == pytest.approx(400 * s_per_px, abs=1e-6)
    assert b["width_px"] == 400 - round(0.05 / s_per_px)
    assert "stretches.csv lists 1 recording(s) not analysed here: ghost" in caplog.text
    _, rows = read_csv(out / "study.csv")
    stretch = {row["recording"]: (row["time_start_s"], row["time_end_s"]) for row in rows}
    assert stretch["a.png"] == tuple(str(t) for t in a["time_range_s"]) and stretch["broken.png"] == ("", "")
    # a recording the CSV does not list is analysed whole
    (tmp_path / "only_b.csv").write_text("image,start_s,end_s\nb,0.05,0.2\n")
    assert run("-d", files["study"] / "a.png", "-o", tmp_path / "single", "--time", tmp_path / "only_b.csv",
               "--quiet") == 0
    whole = json.loads((tmp_path / "single" / "a_summary.json").read_text())
    assert whole["time_range_s"] is None and whole["width_px"] == 500


def test_one_crop_serves_a_study_and_a_recording_it_does_not_fit_is_listed(files, tmp_path, dark_network):
    out = tmp_path / "out"
    assert run("-d", files["study"], "-o", out, "--crop", "0,0,450,300", "--quiet") == 0
    _, rows = read_csv(out / "study.csv")
    status = {row["recording"]: (row["status"], row["error"]) for row in rows}
    assert status["a.png"] == ("ok", "")
    assert status["b.png"][0] == "error" and "b.png: --crop 0,0,450,300 reaches outside" in status["b.png"][1]
    assert json.loads((out / "a_summary.json").read_text())["width_px"] == 450
    assert not (out / "b_summary.json").exists()


def test_beats_in_a_stretch_the_network_hesitates_on_are_flagged_and_left_out_of_the_medians(files, tmp_path,
                                                                                             dark_network):
    """The first half of the clean recording at a tenth of its contrast: DarkIsCavity still puts the borders
    in the right rows there (its threshold grey lies between the dimmed greys) but with probabilities of 0.2-0.8
    in every row, the picture of a network that cannot tell cavity from wall."""
    recording = files["recording"]
    image = np.asarray(Image.open(files["clean"])).astype(float)
    half = image.shape[1] // 2
    middle = (CAVITY_GREY + TISSUE_GREY) / 2
    image[:, :half] = middle + 0.1 * (image[:, :half] - middle)
    path = tmp_path / "hesitant.png"
    Image.fromarray(np.round(image).astype(np.uint8)).save(path)
    calibration = ("--mm-per-px", recording.mm_per_px, "--s-per-px", recording.s_per_px, "--quiet")
    assert run("-d", path, "-o", tmp_path / "out", *calibration) == 0
    _, beats, summary = check_recording_files(tmp_path / "out", "hesitant", image.shape[1])
    es_px = np.array([float(row["t_es_s"]) for row in beats]) / recording.s_per_px
    ed_px = np.array([float(row["t_ed_s"]) for row in beats]) / recording.s_per_px
    flagged = {entry["beat"] - 1: entry for entry in summary["flagged_beats"]}
    hesitant, sure = np.flatnonzero(es_px < half), np.flatnonzero(ed_px >= half)
    assert hesitant.size >= 3 and sure.size >= 3
    assert all("uncertain" in flagged[i]["reasons"] and flagged[i]["uncertainty"] > 0.15 for i in hesitant)
    assert not any(i in flagged for i in sure)
    used = [i for i in range(len(beats)) if i not in flagged]
    assert summary["n_beats"] == len(beats) and summary["n_beats_used"] == len(used)
    # the beats file says the same of every row, for a reader with a spreadsheet
    for i, row in enumerate(beats):
        reasons = flagged[i]["reasons"] if i in flagged else []
        assert row["flags"] == ";".join(reasons) and row["in_medians"] == ("0" if reasons else "1")
        if i in flagged:
            assert float(row["uncertainty"]) == flagged[i]["uncertainty"]
    assert all(float(beats[i]["uncertainty"]) <= 0.15 for i in sure)
    # the overlay marks the flagged beats' ED..ES columns along its top edge, and only those
    band = np.all(np.asarray(Image.open(tmp_path / "out" / "hesitant_overlay.png"))[0] == FLAGGED_BAND_COLOUR, axis=1)
    spans = [np.arange(round(ed_px[i]), round(es_px[i]) + 1) for i in range(len(beats))]
    assert all(band[spans[i]].all() for i in flagged) and not any(band[spans[i]].any() for i in sure)
    for key in ("lvid_d_mm", "lvid_s_mm", "ef_pct"):
        assert summary[key] == pytest.approx(np.median([float(beats[i][key]) for i in used]), abs=1e-3)

    assert run("-d", path, "-o", tmp_path / "all", "--keep-flagged", *calibration) == 0
    _, beats_all, summary_all = check_recording_files(tmp_path / "all", "hesitant", image.shape[1])
    assert [{**row, "in_medians": "1"} for row in beats] == beats_all  # the same beats, all of them in the medians
    assert summary_all["flagged_beats"] == summary["flagged_beats"]
    assert summary_all["n_beats_used"] == len(beats) and summary_all["keep_flagged"] is True
    assert summary_all["lvid_s_mm"] == pytest.approx(np.median([float(row["lvid_s_mm"]) for row in beats]), abs=1e-3)

    # a limit above every beat's uncertainty flags none of them for it
    assert run("-d", path, "-o", tmp_path / "loose", "--uncertainty-limit", 100, *calibration) == 0
    _, _, summary_loose = check_recording_files(tmp_path / "loose", "hesitant", image.shape[1])
    assert not any("uncertain" in entry["reasons"] for entry in summary_loose["flagged_beats"])
    assert summary_loose["uncertainty_limit"] == 100


def test_when_every_beat_is_flagged_the_medians_are_over_all_of_them_with_a_warning(files, tmp_path, monkeypatch,
                                                                                    caplog):
    # DarkIsCavity's default slope: probabilities of 0.2-0.8 everywhere, a network unsure of every beat
    monkeypatch.setattr(analysis, "DEFAULT_CHECKPOINT", files["checkpoint"])
    monkeypatch.setattr("mmode.checkpoint.load_model", lambda path, device="cpu": (DarkIsCavity(), dict(img_size=256)))
    recording = files["recording"]
    assert run("-d", files["clean"], "-o", tmp_path / "out", "--mm-per-px", recording.mm_per_px,
               "--s-per-px", recording.s_per_px, "--quiet") == 0
    _, beats, summary = check_recording_files(tmp_path / "out", "clean", recording.image.shape[1])
    assert len(beats) >= 5 and len(summary["flagged_beats"]) == len(beats) == summary["n_beats_used"]
    assert all("uncertain" in entry["reasons"] for entry in summary["flagged_beats"])
    assert all(row["flags"].startswith("uncertain") and row["in_medians"] == "1" for row in beats)
    assert summary["lvid_d_mm"] == pytest.approx(np.median([float(row["lvid_d_mm"]) for row in beats]), abs=1e-3)
    assert "every beat is flagged" in caplog.text


def test_when_only_a_few_beats_are_left_unflagged_the_log_says_the_medians_rest_on_them(files, tmp_path,
                                                                                        dark_network, caplog):
    """The clean recording at a tenth of its contrast but for its last beat or two: the medians are over those few
    sure beats, and the log says so."""
    recording = files["recording"]
    image = np.asarray(Image.open(files["clean"])).astype(float)
    truth_ed_px = [beat["t_ed_s"] / recording.s_per_px for beat in recording.beats]
    cut = int(truth_ed_px[-2]) - 5
    middle = (CAVITY_GREY + TISSUE_GREY) / 2
    image[:, :cut] = middle + 0.1 * (image[:, :cut] - middle)
    path = tmp_path / "mostly_hesitant.png"
    Image.fromarray(np.round(image).astype(np.uint8)).save(path)
    assert run("-d", path, "-o", tmp_path / "out", "--mm-per-px", recording.mm_per_px, "--s-per-px",
               recording.s_per_px) == 0
    _, beats, summary = check_recording_files(tmp_path / "out", "mostly_hesitant", image.shape[1])
    sound = [row for row in beats if not row["flags"]]
    assert 1 <= len(sound) <= 2 and len(beats) >= 5 and summary["n_beats_used"] == len(sound)
    assert summary["lvid_d_mm"] == pytest.approx(np.median([float(row["lvid_d_mm"]) for row in sound]), abs=1e-3)
    verb = "is" if len(sound) == 1 else "are"
    assert f"only {len(sound)} of {len(beats)} beats {verb} not flagged" in caplog.text

    caplog.clear()  # all of them in the medians: nothing to say
    assert run("-d", path, "-o", tmp_path / "all", "--mm-per-px", recording.mm_per_px, "--s-per-px",
               recording.s_per_px, "--keep-flagged") == 0
    assert "so the medians rest on" not in caplog.text


@pytest.mark.parametrize("flags, shape", [((), (256, 96)), (("-s", 128), (128, 48))])
def test_a_rows_by_columns_checkpoint_sets_the_input_and_minus_s_scales_it(files, tmp_path, monkeypatch, flags,
                                                                           shape):
    monkeypatch.setattr(analysis, "DEFAULT_CHECKPOINT", files["checkpoint"])
    monkeypatch.setattr("mmode.checkpoint.load_model",
                        lambda path, device="cpu": (DarkIsCavity(), dict(img_size=256, img_width=96)))
    recording = files["recording"]
    out = tmp_path / "out"
    assert run("-d", files["clean"], "-o", out, "--mm-per-px", recording.mm_per_px, "--s-per-px",
               recording.s_per_px, "--quiet", *flags) == 0
    trace, _, summary = check_recording_files(out, "clean", recording.image.shape[1])
    assert (summary["img_size"], summary["img_width"]) == shape
    error_px = np.abs(np.array([float(row["lvid_mm"]) for row in trace]) - recording.lvid_mm) / recording.mm_per_px
    assert error_px.mean() < (1.0 if not flags else 4.0)  # -s 128: 13 columns per network column blur systole


@pytest.mark.parametrize("stored, flags, used", [(None, (), None), (2.4, (), 2.4), (2.4, ("--ms-per-column", 0), None),
                                                 (None, ("--ms-per-column", 3), 3.0), (2.4, ("-s", 128), 4.8)])
def test_the_time_scale_is_the_checkpoint_s_unless_a_flag_says_otherwise(files, tmp_path, monkeypatch, stored,
                                                                         flags, used):
    # -s 128 halves the columns (96 -> 48), so a network column spans twice the milliseconds
    monkeypatch.setattr(analysis, "DEFAULT_CHECKPOINT", files["checkpoint"])
    monkeypatch.setattr("mmode.checkpoint.load_model", lambda path, device="cpu": (
        DarkIsCavity(), dict(img_size=256, img_width=96, ms_per_column=stored)))
    recording = files["recording"]
    out = tmp_path / "out"
    assert run("-d", files["clean"], "-o", out, "--mm-per-px", recording.mm_per_px, "--s-per-px",
               recording.s_per_px, "--quiet", *flags) == 0
    trace, _, summary = check_recording_files(out, "clean", recording.image.shape[1])
    assert summary["ms_per_column"] == (None if used is None else pytest.approx(used))
    error_px = np.abs(np.array([float(row["lvid_mm"]) for row in trace]) - recording.lvid_mm) / recording.mm_per_px
    assert error_px.mean() < 1.5


def test_dicom_calibration_wins_over_the_flags(files, tmp_path, dark_network):
    out = tmp_path / "out"
    assert run("-d", files["dicom"], "-o", out, "--mm-per-px", 0.5, "--quiet") == 0
    _, _, summary = check_recording_files(out, "scan", 600)
    assert summary["mm_per_px"] == pytest.approx(0.00125 * 10)
    assert summary["s_per_px"] == pytest.approx(0.0009)
    assert summary["calibration_source"] == "dicom"
    # a crop cuts the DICOM's image as read, and keeps its calibration
    cropped = tmp_path / "cropped"
    assert run("-d", files["dicom"], "-o", cropped, "--crop", "100,0,400,200", "--quiet") == 0
    _, _, summary = check_recording_files(cropped, "scan", 300, cropped=True)
    assert summary["crop"] == [100, 0, 400, 200] and summary["height_px"] == 200
    shown = np.array(Image.open(cropped / "scan_crop.png"))  # the box on the DICOM's whole image as read
    assert shown.shape[1] == 600
    assert (shown[:200, 98:100] == BOX_COLOUR).all() and (shown[:200, 400:402] == BOX_COLOUR).all()
    assert summary["mm_per_px"] == pytest.approx(0.00125 * 10) and summary["calibration_source"] == "dicom"


def test_a_dicom_named_without_dcm_is_known_by_its_bytes_alone_or_in_a_study(files, tmp_path, dark_network):
    """Scanner and PACS exports name DICOMs IM_0001 or by UID: read as DICOM, named by the whole file name (a UID's
    last dotted part is no suffix); a file of another kind without a known suffix is left out of a study."""
    study = tmp_path / "export"
    study.mkdir()
    for name in ("IM_0001", "1.2.840.10008.5", "1.2.840.10008.6"):
        shutil.copy(files["dicom"], study / name)
    (study / "DICOMDIR.txt").write_text("not a recording")
    (study / "NOTES").write_text("x" * 200)  # no suffix and no DICOM bytes
    out = tmp_path / "out"
    assert run("-d", study, "-o", out, "--quiet") == 0
    _, rows = read_csv(out / "study.csv")
    assert [row["recording"] for row in rows] == ["1.2.840.10008.5", "1.2.840.10008.6", "IM_0001"]
    assert all(row["status"] == "ok" and row["calibration_source"] == "dicom" for row in rows)
    assert run("-d", files["dicom"], "-o", tmp_path / "alone", "--quiet") == 0  # the same file named scan.dcm
    alone = json.loads((tmp_path / "alone" / "scan_summary.json").read_text())
    reference = json.loads((out / "IM_0001_summary.json").read_text())
    assert reference["lvid_d_mm"] == alone["lvid_d_mm"] and reference["mm_per_px"] == alone["mm_per_px"]
    assert (out / "1.2.840.10008.6_summary.json").is_file()
    # one such file on its own; a file that is neither image nor DICOM is refused by name
    assert run("-d", study / "IM_0001", "-o", tmp_path / "one", "--quiet") == 0
    assert (tmp_path / "one" / "IM_0001_overlay.png").is_file()
    assert run("-d", study / "NOTES", "-o", tmp_path / "notes", "--quiet") == 2
    assert file_names(tmp_path / "notes") == []


def test_a_recursive_study_reads_an_export_tree_and_mirrors_it_in_out(files, tmp_path, dark_network):
    export = tmp_path / "export"
    for series in ("A/S1", "A/S2"):  # a scanner names the images of every series alike
        (export / series).mkdir(parents=True)
        shutil.copy(files["dicom"], export / series / "IM_0001")
    (export / "B").mkdir()
    shutil.copy(files["study"] / "a.png", export / "B" / "mouse.png")
    shutil.copy(files["study"] / "b.png", export / "top.png")
    (export / ".trash").mkdir()
    shutil.copy(files["study"] / "a.png", export / ".trash" / "old.png")
    out = export / "results"  # inside the tree: its own PNGs must not be read back as recordings
    for again in ((), ("--overwrite",)):
        assert run("-d", export, "-o", out, "--recursive", "--quiet", *again) == 0
        _, rows = read_csv(out / "study.csv")
        assert [row["recording"] for row in rows] == ["A/S1/IM_0001", "A/S2/IM_0001", "B/mouse.png", "top.png"]
        assert all(row["status"] == "ok" for row in rows)
    for name in ("A/S1/IM_0001", "A/S2/IM_0001", "B/mouse", "top"):
        assert (out / f"{name}_summary.json").is_file() and (out / f"{name}_overlay.png").is_file()
    one, other = (json.loads((out / f"A/{series}/IM_0001_summary.json").read_text()) for series in ("S1", "S2"))
    assert one["lvid_d_mm"] == other["lvid_d_mm"] and one["calibration_source"] == "dicom"
    _, beats = read_csv(out / "study_beats.csv")
    assert {row["recording"] for row in beats} == {"A/S1/IM_0001", "A/S2/IM_0001", "B/mouse.png", "top.png"}
    # without --recursive only the folder's own files; a recording or a test set takes no --recursive
    assert run("-d", export, "-o", tmp_path / "flat", "--quiet") == 0
    assert [row["recording"] for row in read_csv(tmp_path / "flat" / "study.csv")[1]] == ["top.png"]
    assert run("-d", export / "top.png", "-o", tmp_path / "one", "--recursive", "--quiet") == 2
    assert file_names(tmp_path / "one") == []


def test_results_are_not_overwritten_without_overwrite(files, tmp_path, capsys):
    out = tmp_path / "out"
    arguments = ("-d", files["sim"], "-m", files["checkpoint"], "-o", out, "--quiet")
    assert run(*arguments) == 0
    before = (out / "sim_trace.csv").stat().st_mtime_ns
    assert run(*arguments) == 2
    error = capsys.readouterr().err
    assert "sim_mask.png" in error and "--overwrite" in error
    assert (out / "sim_trace.csv").stat().st_mtime_ns == before
    assert run(*arguments, "--overwrite") == 0
    assert not [name for name in file_names(out) if name.startswith(".")]


# --------------------------------------------------------------------------- study mode

def test_study_analyses_each_recording_and_lists_the_bad_one(files, tmp_path, dark_network, caplog):
    out = tmp_path / "out"
    caplog.set_level(logging.INFO)
    assert run("-d", files["study"], "-o", out) == 0
    # the two PNGs read at the default calibration: said once for the study, not once per recording
    assert caplog.text.count("no calibration given") == 1
    assert "2 of 3 recordings: no calibration given, so read at the default" in caplog.text
    columns, rows = read_csv(out / "study.csv")
    assert columns[:3] == ["recording", "status", "error"] and set(SUMMARY_KEYS) <= set(columns)
    assert [(row["recording"], row["status"]) for row in rows] == [("a.png", "ok"), ("b.png", "ok"),
                                                                    ("broken.png", "error")]
    assert "broken.png" in rows[2]["error"]
    assert float(rows[0]["n_beats"]) > 0 and rows[0]["hr_bpm"] != ""
    assert len(file_names(out)) == 2 * 7 + 3 and (out / "study_overview.png").is_file()  # + the study's three
    # every beat of the study in one table: the two beats files, row for row, each row naming its recording
    beat_columns, beat_rows = read_csv(out / "study_beats.csv")
    assert beat_columns == ["recording", *analysis.BEAT_FILE_COLUMNS]
    for name in ("a", "b"):
        _, own = read_csv(out / f"{name}_beats.csv")
        assert len(own) > 0
        in_study = [row for row in beat_rows if row["recording"] == f"{name}.png"]
        assert [{key: row[key] for key in analysis.BEAT_FILE_COLUMNS} for row in in_study] == own
    overview = Image.open(out / "study_overview.png")
    assert overview.size[1] > 3 * 0.9 * 80  # a row for each of the three recordings, the unreadable one too
    summary = json.loads((out / "a_summary.json").read_text())
    assert rows[0]["lvid_d_mm"] == str(summary["lvid_d_mm"])
    assert columns[-len(SPREAD_KEYS) - 10:-10] == list(SPREAD_KEYS)  # after the columns of earlier versions
    # after the columns of earlier versions
    assert columns[-10:] == ["pixel_warnings", "range_warnings", "calibration_file", "time_start_s", "time_end_s",
                             "crop_left", "crop_top", "crop_right", "crop_bottom", "borders_file"]
    assert rows[0]["borders_file"] == "" and summary["borders_file"] is None  # no --borders: the network's
    assert rows[0]["calibration_file"] == "" and summary["calibration_file"] is None  # no CSV: none
    assert rows[0]["pixel_warnings"] == "" and summary["pixel_warnings"] == []  # default calibration: none
    assert rows[0]["range_warnings"] == "" and summary["range_warnings"] == []  # a mouse's LVIDd
    assert rows[0]["time_start_s"] == rows[0]["time_end_s"] == "" and summary["time_range_s"] is None  # whole
    assert rows[0]["crop_left"] == rows[0]["crop_bottom"] == "" and summary["crop"] is None  # the whole image
    assert rows[0]["ef_pct_iqr"] == str(summary["ef_pct_iqr"]) and rows[2]["ef_pct_iqr"] == ""


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("case, named", [
    ("unreadable", "broken.png"),
    ("unknown extension", "trace.txt"),
    ("other architecture", "foreign.pt"),
    ("a refiner as the model", "refiner.pt: a border refiner"),
    ("missing path", "nowhere.png"),
    ("mm-per-px zero", "--mm-per-px"),
    ("s-per-px negative", "--s-per-px"),
    ("test set without a mask", "rec0_win0.png"),
    ("crop outside the image", "sim.png: --crop 0,0,100000,10 reaches outside the image"),
    ("blank image", "blank.png: every pixel has the grey level 0, so there are no echoes"),
    ("calibration of a test set", "--calibration gives recordings' pixel sizes"),
    ("calibration file missing", "nowhere.csv: calibration file not found"),
    ("calibration not a number", "lab.csv line 2: mm_per_px 'deep' is not a number"),
    ("crop not a box", "argument --crop: must be LEFT,TOP,RIGHT,BOTTOM"),
    ("crop of a test set", "--crop cuts recordings"),
    ("time past the end", "sim.png: the stretch from 1 s to 99 s reaches past the recording's end at"),
    ("time backwards", "argument --time: must be START,END in seconds with 0 <= START < END"),
    ("time of a test set", "--time cuts recordings"),
    ("stretches file missing", "nowhere.csv: stretches file not found"),
    ("border offsets too large", "lab.json: upper_mm 0.8 mm is more than 0.5 mm"),
    ("border offsets not a number", "lab.json: lower_mm must be a number of mm, got 'wide'"),
    ("border offsets missing", "nowhere.json: border offsets file not found"),
    ("border offsets of a test set", "--border-offsets moves the borders of recordings"),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(files, tmp_path, capsys, case, named):
    out = tmp_path / "out"
    data, model, extra = files["sim"], files["checkpoint"], []
    if case == "unreadable":
        data = files["broken"]
    elif case == "unknown extension":
        data = files["text"]
    elif case == "other architecture":
        model = files["foreign"]
    elif case == "a refiner as the model":
        model = files["refiner"]
    elif case == "missing path":
        data = files["folder"] / "nowhere.png"
    elif case == "test set without a mask":
        data = tmp_path / "incomplete"
        shutil.copytree(files["test_set"], data)
        (data / "mask" / "rec0_win0.png").unlink()
    elif case == "crop outside the image":
        extra = ["--crop", "0,0,100000,10"]
    elif case.startswith("calibration"):
        table = tmp_path / ("nowhere.csv" if case.endswith("missing") else "lab.csv")
        if case.endswith("number"):
            table.write_text("image,mm_per_px,s_per_px\nsim,deep,0.0008\n")
        elif not case.endswith("missing"):
            table.write_text("image,mm_per_px,s_per_px\nsim,0.01,0.0008\n")
        if case.endswith("test set"):
            data = files["test_set"]
        extra = ["--calibration", table]
    elif case == "blank image":  # a network draws a cavity even on this; the beats on it would be made up
        data = tmp_path / "blank.png"
        Image.fromarray(np.zeros((300, 900), dtype=np.uint8)).save(data)
    elif case == "crop not a box":
        extra = ["--crop", "10,10,5,20"]
    elif case == "crop of a test set":
        data, extra = files["test_set"], ["--crop", "0,0,10,10"]
    elif case == "time past the end":
        extra = ["--time", "1,99"]
    elif case == "time backwards":
        extra = ["--time", "3,2"]
    elif case == "time of a test set":
        data, extra = files["test_set"], ["--time", "0,1"]
    elif case == "stretches file missing":
        extra = ["--time", tmp_path / "nowhere.csv"]
    elif case.startswith("border offsets"):
        offsets = tmp_path / ("nowhere.json" if case.endswith("missing") else "lab.json")
        if case.endswith("too large"):
            offsets.write_text(json.dumps(dict(upper_mm=0.8, lower_mm=0.0)))
        elif case.endswith("not a number"):
            offsets.write_text(json.dumps(dict(upper_mm=0.0, lower_mm="wide")))
        elif case.endswith("test set"):
            data = files["test_set"]
            offsets.write_text(json.dumps(dict(upper_mm=0.0, lower_mm=0.0)))
        extra = ["--border-offsets", offsets]
    elif case == "mm-per-px zero":
        extra = ["--mm-per-px", "0"]
    else:
        extra = ["--s-per-px=-1"]
    assert run("-d", data, "-m", model, "-o", out, "--quiet", *extra) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and named in error_lines[0]
    assert file_names(out) == []


def test_a_missing_default_checkpoint_says_to_pass_one(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(analysis, "DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "heart-seg-net.pt")
    assert run("-d", files["sim"], "-o", tmp_path / "out", "--quiet") == 2
    error = capsys.readouterr().err
    assert "heart-seg-net.pt" in error and "-m" in error
    assert file_names(tmp_path / "out") == []


# --------------------------------------------------------------------------- border refiner

def dark_refiner(monkeypatch, refiner_path):
    """DarkIsCavity as the segmentation network (input 64 rows: coarse) and as the refiner at `refiner_path`."""
    def load_model(path, device="cpu"):
        if Path(path) == refiner_path:
            return DarkIsCavity(), dict(img_size=32, task="border-strips")
        return DarkIsCavity(), dict(img_size=64)

    monkeypatch.setattr("mmode.checkpoint.load_model", load_model)


def test_the_refiner_reads_the_borders_at_full_resolution(files, tmp_path, monkeypatch):
    recording = files["recording"]
    refiner_path = tmp_path / "refiner.pt"
    dark_refiner(monkeypatch, refiner_path)
    errors_px = {}
    for name, flags in (("coarse", ["--no-refine"]), ("refined", ["--refiner", refiner_path])):
        out = tmp_path / name
        assert run("-d", files["clean"], "-m", files["checkpoint"], "-o", out, "--mm-per-px", recording.mm_per_px,
                   "--s-per-px", recording.s_per_px, "--quiet", *flags) == 0
        trace, _, summary = check_recording_files(out, "clean", recording.image.shape[1])
        lvid_mm = np.array([float(row["lvid_mm"]) for row in trace])
        errors_px[name] = np.abs(lvid_mm - recording.lvid_mm) / recording.mm_per_px
        assert summary["refiner"] == (None if name == "coarse" else str(refiner_path))
        mask = np.asarray(Image.open(out / "clean_mask.png")) > 0
        np.testing.assert_allclose(mask.sum(axis=0), np.round(lvid_mm / recording.mm_per_px), atol=1)
    # 64 network rows for a ~650-row image: the segmentation alone is several rows off where the walls move
    assert errors_px["coarse"].mean() > 2.0
    assert errors_px["refined"].mean() < 0.8 and errors_px["refined"].max() < 3.0


@pytest.mark.parametrize("flags, message", [
    (["--refiner", "MODEL"], "not a border refiner"),
    (["--refiner", "MISSING"], "checkpoint not found"),
    (["--refiner", "MODEL", "--no-refine"], "exclude each other"),
])
def test_a_bad_refiner_exits_2_naming_it_and_writes_nothing(files, tmp_path, capsys, flags, message):
    paths = dict(MODEL=files["checkpoint"], MISSING=tmp_path / "none.pt")
    flags = [paths.get(flag, flag) for flag in flags]
    out = tmp_path / "out"
    assert run("-d", files["sim"], "-m", files["checkpoint"], "-o", out, "--quiet", *flags) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert file_names(out) == []


def test_beats_phrase_is_singular_for_one_beat():
    assert [analysis.beats_phrase(n) for n in (0, 1, 2, 12)] == ["0 beats", "1 beat", "2 beats", "12 beats"]


def read_decimal_comma_csv(path):
    """(header, rows) of a CSV written with --decimal-comma: semicolons between fields, numbers with a comma."""
    with open(path, newline="") as handle:
        header, *rows = list(csv.reader(handle, delimiter=";"))
    return header, [dict(zip(header, row)) for row in rows]


def test_decimal_comma_csvs_hold_the_same_values_and_leave_text_alone(files, tmp_path, dark_network):
    """A study written both ways: every CSV has the same columns and rows; each number reads back the same with its
    comma taken for the point, and text (file names, the broken file's error) keeps its dots."""
    recording = files["recording"]
    calibration = ["--mm-per-px", recording.mm_per_px, "--s-per-px", recording.s_per_px, "--quiet"]
    assert run("-d", files["study"], "-o", tmp_path / "plain", *calibration) == 0
    assert run("-d", files["study"], "-o", tmp_path / "comma", "--decimal-comma", *calibration) == 0
    numbers = 0
    for name in ("study.csv", "study_beats.csv", "a_beats.csv", "a_trace.csv", "b_beats.csv"):
        plain_header, plain_rows = read_csv(tmp_path / "plain" / name)
        comma_header, comma_rows = read_decimal_comma_csv(tmp_path / "comma" / name)
        assert comma_header == plain_header and len(comma_rows) == len(plain_rows) > 0
        for plain_row, comma_row in zip(plain_rows, comma_rows):
            for key, plain_value in plain_row.items():
                if analysis.NUMBER_CELL.fullmatch(plain_value):
                    assert float(comma_row[key].replace(",", ".")) == float(plain_value)
                    assert "." not in comma_row[key]
                    numbers += 1
                else:
                    assert comma_row[key] == plain_value
    assert numbers > 1000
    _, rows = read_decimal_comma_csv(tmp_path / "comma" / "study.csv")
    assert [row["recording"] for row in rows] == ["a.png", "b.png", "broken.png"]
    assert "broken.png" in rows[2]["error"]
    # the JSON is JSON whatever the CSVs' style
    assert json.loads((tmp_path / "comma" / "a_summary.json").read_text()) == \
        json.loads((tmp_path / "plain" / "a_summary.json").read_text())


def test_the_csv_style_turns_only_whole_numbers_to_decimal_commas():
    assert analysis.DECIMAL_COMMA_CSV.cells(["a.png", "2.45", 3.25, -0.5, 12, "", "0.0332 mm per row", None]) == \
        ["a.png", "2,45", "3,25", "-0,5", "12", "", "0.0332 mm per row", None]
    assert analysis.PLAIN_CSV.cells(["2.45", 3.25]) == ["2.45", 3.25]


def test_a_test_sets_per_image_file_takes_the_decimal_comma_too(files, tmp_path):
    assert run("-d", files["test_set"], "-m", files["checkpoint"], "-o", tmp_path / "plain", "--quiet") == 0
    assert run("-d", files["test_set"], "-m", files["checkpoint"], "-o", tmp_path / "comma", "--quiet",
               "--decimal-comma") == 0
    _, plain = read_csv(tmp_path / "plain" / "per_image.csv")
    header, comma = read_decimal_comma_csv(tmp_path / "comma" / "per_image.csv")
    assert header == ["index", "name", "dice", "mse", "loss"] and len(comma) == len(plain) == 12
    for plain_row, comma_row in zip(plain, comma):
        assert comma_row["name"] == plain_row["name"]  # rec0_win0.png keeps its dot
        for key in ("dice", "mse", "loss"):
            assert float(comma_row[key].replace(",", ".")) == pytest.approx(float(plain_row[key]), abs=1e-12)
