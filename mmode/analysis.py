"""test.py: evaluate a test set, or analyse recordings into LVID, volumes, beats and cardiac parameters.

Three modes, chosen by what `-d` names:
- a folder holding `img/` and `mask/`: a test set (average Dice, MSE and loss; the first ten triplets);
- a recording file (PNG, JPEG, TIFF, BMP or DICOM): whole-recording analysis, the files of DESIGN.md;
- any other folder: a study, every recording in it analysed, plus `study.csv`.

Outputs are computed first and written into a hidden staging folder inside OUTPUT, then moved into
OUTPUT together, so an error leaves nothing half-written; files already in OUTPUT are only replaced
with --overwrite. torch, matplotlib and pydicom load only after the arguments are checked.
"""
import argparse
import csv
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from mmode.calibration import DEFAULT_MM_PER_PX, DEFAULT_S_PER_PX, calibration_from_options, coarser_than_trained
from mmode.cli import crop_box_or_auto, float_between, positive_float, positive_int, setup_logging, time_range
from mmode.errors import InputError
from mmode.measure import (BEAT_COLUMNS, RR_TOLERANCE, SPREAD_KEYS, SUMMARY_KEYS, UNCERTAINTY_LIMIT, VOLUME_FORMULAS,
                           beat_parameters, beat_uncertainty, cavity_borders_px, detect_beats, disagreement_px,
                           few_beats_in_medians, flag_beats, outside_mouse_range, summarise, traces_to_mask, volume_ul,
                           without_crossed)
from mmode.version import VersionAction, software

log = logging.getLogger("test")

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "heart-seg-net.pt"
DEFAULT_REFINER = Path(__file__).resolve().parents[1] / "checkpoints" / "heart-seg-refine.pt"
DEFAULT_OUTPUT = Path("results")
N_SAVED_TRIPLETS = 10
RECORDING_OUTPUTS = ("mask.png", "trace.csv", "beats.csv", "summary.json", "lvid.png", "volume.png", "overlay.png")
# A CSV cell that is a number in full (`CsvStyle`): 12, -0.5, 3.2e-05; not a file name or a sentence
NUMBER_CELL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
PER_IMAGE_COLUMNS = ("index", "name", "dice", "mse", "loss")
CROP_OUTPUT = "crop.png"  # with --crop: the image as read, the box analysed outlined on it
TRACE_COLUMNS = ("time_s", "lvid_mm", "volume_ul", "upper_px", "lower_px")
# The beats file: DESIGN.md's parameters, then whether each beat is doubted, so a spreadsheet shows which rows the
# summary's medians left out: its `uncertainty`, the `flags` ("uncertain", "rr", both joined by ";", or empty) and
# `in_medians` (1 or 0).
BEAT_FILE_COLUMNS = (*BEAT_COLUMNS, "uncertainty", "flags", "in_medians")
STUDY_FILE = "study.csv"
STUDY_BEATS_FILE = "study_beats.csv"  # every beat of a study, a row each beside its recording's name
OVERVIEW_FILE = "study_overview.png"  # a study's recordings on one page: LVID over time and the summary each
CALIBRATION_FILE = "calibration.csv"  # a study folder's own pixel sizes, read unless --calibration names others
DEFAULT_CALIBRATION_NOTE = (f"no calibration given, so read at the default {DEFAULT_MM_PER_PX:.6g} mm per row and "
                            f"{DEFAULT_S_PER_PX * 1000:.4g} ms per column (the seed's scanner); if yours differs, "
                            "give --mm-per-px and --s-per-px from its scale bars (or each recording's in a "
                            "calibration.csv, --calibration), or every mm, µL and bpm is off")
STUDY_COLUMNS = ("recording", "status", "error", *SUMMARY_KEYS, "n_beats", "n_beats_used", "mm_per_px", "s_per_px",
                 "calibration_source", *SPREAD_KEYS, "pixel_warnings", "range_warnings", "calibration_file",
                 "time_start_s", "time_end_s", "crop_left", "crop_top", "crop_right", "crop_bottom", "borders_file")
# the options measure_borders takes, of those _analysis_options gathers (a traced recording's)
MEASURE_OPTIONS = ("max_hr_bpm", "min_hr_bpm", "volume_formula", "keep_flagged", "uncertainty_limit")

DESCRIPTION = """\
Evaluate the segmentation network on a test set, or analyse M-mode recordings.

  -d FOLDER with img/ and mask/   test set: prints Average DICE, Average MSE and Measured loss;
                                  writes metrics.json, per_image.csv and the first ten
                                  image_<i>.png / mask_<i>.png / pred_<i>.png
  -d RECORDING (.png, .dcm, ...)  the whole recording is segmented (resized to the model's input
                                  height, tiled along time with blended overlaps, probabilities back
                                  at full resolution) and measured: <stem>_mask.png, _trace.csv (LVID
                                  and volume per column), _beats.csv (per-beat LVIDd, LVIDs, volumes,
                                  EF, FS, SV, HR), _summary.json (medians, CO), _lvid.png, _volume.png,
                                  _overlay.png; with --crop, _crop.png (the box analysed, outlined
                                  in green on the whole image)
  -d FOLDER of recordings         every recording in it as above, plus study.csv (one row each),
                                  study_beats.csv (every beat, with its recording) and
                                  study_overview.png (each one's LVID over time and summary)

Calibration: --mm-per-px / --s-per-px (default: the seed's 0.011525974 mm/px, 0.00083334 s/px), or each
recording's row of a calibration.csv (--calibration; by default the one in a study's folder, or beside a single
recording that it lists); a DICOM's own ultrasound-region calibration wins."""

EPILOG = """\
examples:
  python test.py -d data/test -o results/test
  python test.py -d examples/sim_a.png -o results/sim_a --mm-per-px 0.0115 --s-per-px 0.00083
  python test.py -d scan.dcm -o results/scan
  python test.py -d recordings/ -o results/study --max-hr 700

Volumes: V [µL] = 7.0 / (2.4 + D) * D^3 with D = LVID in mm (--volume-formula clinical: D in cm
gives mL, reported in µL). EF % = 100 (Vd - Vs) / Vd, FS % = 100 (LVIDd - LVIDs) / LVIDd,
SV µL = Vd - Vs, HR bpm = 60 / RR, CO mL/min = SV * HR / 1000 (summary: product of the medians)."""


# --------------------------------------------------------------------------- arguments


def _input_size(text):
    value = int(text)
    if value < 16 or value % 16:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 16 (QuickNat pools 4 times), got {text}")
    return value


def _device_name(text):
    if text not in ("auto", "cpu", "cuda", "mps") and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:<index> or mps, got {text}")
    return text


def build_parser():
    """The argument parser of test.py."""
    parser = argparse.ArgumentParser(prog="test.py", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("-d", "--data", type=Path, required=True, metavar="PATH",
                        help="a test set (folder with img/ and mask/), a recording file, or a folder of recordings")
    parser.add_argument("-m", "--model", type=Path, default=None, metavar="CKPT",
                        help="checkpoint to use (default: checkpoints/heart-seg-net.pt in the project)")
    parser.add_argument("-s", "--img-size", type=_input_size, default=None, metavar="PX",
                        help="network input rows: the height test-set images and recordings are resized to, the "
                             "columns scaled as the checkpoint's; a multiple of 16 (default: the checkpoint's "
                             "img_size)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, metavar="OUT",
                        help="output folder, created if missing (default: results)")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=None, metavar="B",
                        help="images (test set) or tiles (recordings) per forward pass (default: on a CPU as "
                             "many as fit in 131,072 pixels, the fastest here: 1 recording tile, 2 test "
                             "windows; on a GPU 8)")
    parser.add_argument("--threshold", type=float_between(0, 1), default=0.5, metavar="P",
                        help="cavity where the predicted probability exceeds P; with the refiner, where its "
                             "guides lie; measure another P on your own recordings with bench/accuracy.py "
                             "--threshold (default: 0.5)")

    measure = parser.add_argument_group("recordings")
    measure.add_argument("--mm-per-px", type=positive_float, default=None, metavar="MM",
                         help=f"depth calibration, mm per row (default: {DEFAULT_MM_PER_PX}; a DICOM's own wins)")
    measure.add_argument("--s-per-px", type=positive_float, default=None, metavar="S",
                         help=f"time calibration, s per column (default: {DEFAULT_S_PER_PX}; a DICOM's own wins)")
    measure.add_argument("--calibration", type=Path, default=None, metavar="CSV",
                         help="each recording's own pixel sizes: a CSV `image,mm_per_px,s_per_px` (the format "
                              "preprocess simulate writes and preprocess build reads), its rows winning over "
                              "--mm-per-px/--s-per-px, which then serve only the recordings it does not list; a "
                              "recording neither gives is refused (a DICOM's own calibration still wins) "
                              "(default: for a folder of recordings, its calibration.csv when it has one; for one "
                              "recording without --mm-per-px/--s-per-px, the calibration.csv beside it when it lists "
                              "the recording)")
    measure.add_argument("--recursive", action="store_true",
                         help="with a folder of recordings: those in its sub-folders too (a scanner's export tree, "
                              "PATIENT/STUDY/SERIES/IM_0001), each one's files written under its sub-folder's path "
                              "in OUT; the output folder itself is left out")
    measure.add_argument("--crop", type=crop_box_or_auto, default=None, metavar="L,T,R,B|auto",
                         help="analyse only this box of each recording: left, top, right, bottom in the pixels of "
                              "the image as read (a DICOM's M-mode region, frames stitched), right and bottom "
                              "exclusive; e.g. the M-mode panel of a scanner's screenshot (the calibration is the "
                              "panel's pixel size); or 'auto': each image's M-mode panel found in it, the box "
                              "logged and written to the summary; either way <stem>_crop.png shows the box on the "
                              "whole image (default: the whole image)")
    measure.add_argument("--time", type=time_range, default=None, metavar="START,END|CSV",
                         help="analyse only this stretch of each recording, in seconds from its first column (of "
                              "the --crop box, if any), e.g. 2,6.5, or 2, for the rest; or each recording's own "
                              "stretch from a CSV image,start_s,end_s (an empty end_s: to the end; a recording it "
                              "does not list is analysed whole); the times written stay the recording's own "
                              "(default: the whole recording)")
    measure.add_argument("--max-hr", type=positive_float, default=900.0, metavar="BPM",
                         help="fastest heart rate the beat detector looks for; sets the smoothing and the "
                              "shortest beat (default: 900)")
    measure.add_argument("--min-hr", type=positive_float, default=250.0, metavar="BPM",
                         help="slowest heart rate the beat detector looks for (default: 250)")
    measure.add_argument("--volume-formula", choices=sorted(VOLUME_FORMULAS), default="mouse",
                         help="Teichholz convention: mouse (D in mm -> µL, the small-animal scanners') or "
                              "clinical (D in cm -> mL); volumes are written in µL either way (default: mouse)")
    measure.add_argument("--keep-flagged", action="store_true",
                         help="summary medians over every detected beat, also those flagged for an uncertain "
                              "segmentation or an irregular RR (they are flagged in the summary JSON either way)")
    measure.add_argument("--uncertainty-limit", type=positive_float, default=UNCERTAINTY_LIMIT, metavar="U",
                         help="flag a beat as uncertain when, from end-diastole to end-systole, the network's cavity "
                              "probability disagrees with the reported cavity by more than U of its LVIDd on "
                              f"average (default: {UNCERTAINTY_LIMIT}, set for the shipped model; a less sure model "
                              "of your own may need more)")
    measure.add_argument("--border-offsets", type=Path, default=None, metavar="JSON",
                         help="move the two cavity borders outward by your lab's convention before measuring: "
                              "upper_mm and lower_mm, as bench/accuracy.py --fit-offsets fits them on your own "
                              "measured recordings (README, \"Your lab's border convention\") (default: none)")
    measure.add_argument("--borders", type=Path, default=None, metavar="FILE",
                         help="measure the recordings it lists from the cavity borders traced in it, the network not "
                              "run: an annotation CSV (image,trace,x,y), a LabelMe JSON or a folder of them, in the "
                              "pixels of the image as read; the recordings it does not list are read by the network "
                              "(README, \"Measuring borders you traced\") (default: none)")
    measure.add_argument("--refiner", type=Path, default=None, metavar="CKPT",
                         help="border refiner: a second network that re-reads each border at the recording's "
                              "full resolution (default: checkpoints/heart-seg-refine.pt in the project)")
    measure.add_argument("--no-refine", action="store_true",
                         help="borders straight from the segmentation network, without the refiner")
    measure.add_argument("--ms-per-column", type=float_between(0, 1000, include_low=True), default=None, metavar="MS",
                         help="time one network column spans: each recording's time axis is resized so, "
                              "whatever its height; 0: the height rule (a square window of the recording's "
                              "height is the input's columns wide) (default: the checkpoint's ms_per_column, "
                              "the height rule for checkpoints without one)")
    measure.add_argument("--tile-width", type=_input_size, default=None, metavar="PX",
                         help="tile width in network pixels, a multiple of 16 (default: twice the input size)")
    measure.add_argument("--show", action="store_true",
                         help="open a single recording's figures after writing them (needs a display)")

    machine = parser.add_argument_group("machine and output")
    machine.add_argument("--device", type=_device_name, default="auto",
                         help="auto (CUDA when present, else CPU), cpu, cuda, cuda:<index> or mps (default: auto)")
    machine.add_argument("--decimal-comma", action="store_true",
                         help="write the CSV files with decimal commas and semicolons between fields, as "
                              "spreadsheets set to German, French and other such locales open them (JSON stays as "
                              "it is)")
    machine.add_argument("--overwrite", action="store_true", help="replace result files already in OUT")
    machine.add_argument("--quiet", action="store_true", help="no progress bars; warnings and errors only")
    return parser


# --------------------------------------------------------------------------- staged output

class StagedOutput:
    """Files written into a hidden folder inside `out_dir` and moved into `out_dir` on `commit()`.

    `names`: the files this run will write; any of them already in `out_dir` is refused (InputError)
    unless `overwrite`. Leaving the `with` block without a commit removes everything written (and
    `out_dir` itself when this run created it and it is empty).
    """

    def __init__(self, out_dir, names, overwrite=False):
        self.out_dir = Path(out_dir)
        self.names = list(names)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(f"{self.out_dir}: output path exists and is not a folder")
        existing = [name for name in self.names if (self.out_dir / name).exists()]
        if existing and not overwrite:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise InputError(f"{self.out_dir / existing[0]}{more} already exist; choose another -o or pass --overwrite")
        self.stage = None
        self._created = False

    def __enter__(self):
        self._created = not self.out_dir.exists()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.out_dir))
        return self

    def path(self, name):
        """Where to write output `name` (a file name, or a path within the output folder) before the commit."""
        staged = self.stage / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def commit(self):
        """Move every staged file into the output folder (into its sub-folder, for a name with a path)."""
        for name in self.names:
            if (self.stage / name).exists():
                (self.out_dir / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.stage / name, self.out_dir / name)
        shutil.rmtree(self.stage)
        self.stage = None

    def __exit__(self, *exc_info):
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            if self._created and not any(self.out_dir.iterdir()):
                self.out_dir.rmdir()
        return False


# --------------------------------------------------------------------------- helpers

def _resolve_device(name):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name}: MPS is not available on this machine")
    return device


def _load_network(args, device):
    """(net, input (rows, columns), checkpoint path, ms per network column or None for the height rule)
    from -m, -s and --ms-per-column."""
    from mmode.checkpoint import input_shape, load_model, ms_per_column
    from mmode.refine import check_segmentation

    path = args.model if args.model is not None else DEFAULT_CHECKPOINT
    if args.model is None and not path.is_file():
        raise InputError(f"{path}: the default checkpoint is not there; pass one with -m "
                         f"(run.py writes CP_best_e<N>.pt)")
    net, checkpoint = load_model(path, device)
    check_segmentation(checkpoint, path)
    rows, columns = input_shape(checkpoint)
    time_ms = ms_per_column(checkpoint, args.ms_per_column)
    if args.img_size:  # -s: new rows, the columns scaled alike (to a multiple of 16), a window as wide in time
        trained_columns = columns
        rows, columns = args.img_size, max(16, int(round(args.img_size * columns / rows / 16)) * 16)
        time_ms = None if time_ms is None else time_ms * trained_columns / columns
    if rows % 16 or columns % 16:
        raise InputError(f"{path}: its input size {rows} x {columns} px is not a multiple of 16; pass -s")
    return net, (rows, columns), path, time_ms


def _load_refiner(args, device):
    """((refiner net, strip rows), checkpoint path) from --refiner / --no-refine; (None, None) without one."""
    from mmode.checkpoint import load_model
    from mmode.refine import check_refiner

    if args.no_refine:
        if args.refiner is not None:
            raise InputError("--refiner and --no-refine exclude each other")
        return None, None
    path = args.refiner if args.refiner is not None else DEFAULT_REFINER
    if args.refiner is None and not path.is_file():
        log.warning("%s: the default border refiner is not there; borders come from the segmentation alone", path)
        return None, None
    net, checkpoint = load_model(path, device)
    return (net, check_refiner(checkpoint, path)), path


def _number(value, digits):
    """A float for JSON/CSV, rounded; None for NaN or None."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _format_column(values, digits):
    """Float array -> strings with `digits` decimals, empty where NaN."""
    values = np.asarray(values, dtype=float)
    text = np.char.mod(f"%.{digits}f", np.nan_to_num(values))
    return np.where(np.isfinite(values), text, "")


@dataclass(frozen=True)
class CsvStyle:
    """How the CSV files are written: the `delimiter` between fields and the `decimal` mark of numbers
    (`--decimal-comma`: ";" and ","). Text cells keep their dots (file names, warnings); a cell is a number when
    it reads as one in full (`NUMBER_CELL`)."""

    delimiter: str = ","
    decimal: str = "."

    def cells(self, row):
        """`row`'s values as the strings to write."""
        if self.decimal == ".":
            return list(row)
        return [text.replace(".", self.decimal) if NUMBER_CELL.fullmatch(text := str(value)) else value
                for value in row]


PLAIN_CSV = CsvStyle()
DECIMAL_COMMA_CSV = CsvStyle(delimiter=";", decimal=",")


def write_csv(path, header, rows, style=PLAIN_CSV, lineterminator="\r\n"):
    """Write `header` and `rows` (iterables of values) as CSV in `style`, every output CSV file of test.py."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=style.delimiter, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(style.cells(row) for row in rows)


def _write_csv_columns(path, columns, style=PLAIN_CSV):
    """Write {name: string array} as CSV, one row per array element (lines end in "\\n")."""
    names = list(columns)
    rows = np.column_stack([columns[name] for name in names]) if names else np.zeros((0, 0))
    write_csv(path, names, rows.tolist(), style, lineterminator="\n")


def _write_json(path, content):
    Path(path).write_text(json.dumps(content, indent=2) + "\n")


def _save_grey_png(path, array_uint8):
    Image.fromarray(np.asarray(array_uint8, dtype=np.uint8)).save(path, format="PNG")


# --------------------------------------------------------------------------- test set

def evaluate_test_set(net, folder, img_size, device="cpu", batch_size=None, threshold=0.5, progress=False,
                      n_saved=N_SAVED_TRIPLETS, names=None):
    """Dice, MSE and BCE-with-logits loss of `net` on the test set in `folder` (img/ and mask/), its
    images and masks resized to `img_size` (an int: square; or (rows, columns)); `names`: the checked
    PNG names (None: check here).

    Returns (metrics dict `dice, mse, loss, n_images` (averages over images; Dice and MSE of the
    prediction thresholded at `threshold`, loss the mean per-pixel BCE with logits), per-image rows
    `index, name, dice, mse, loss`, and up to `n_saved` (image, mask, prediction) uint8 triplets at
    the network's input size). `batch_size` None: `mmode.inference.default_batch_size`.
    """
    import torch

    from mmode.dataset import SegmentationDataset
    from mmode.inference import default_batch_size, input_rows_columns
    from mmode.metrics import dice_per_image, mse_per_image

    rows, columns = input_rows_columns(img_size)
    dataset = SegmentationDataset(folder, rows, names=names, img_width=columns)
    if batch_size is None:
        batch_size = default_batch_size(device, rows * columns)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="test set", unit="batch")
    dice, mse, loss, triplets = [], [], [], []
    with torch.inference_mode():
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            logits = net(images)
            per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks, reduction="none")
            loss.append(per_pixel.flatten(1).mean(dim=1).cpu().numpy())
            predictions = (torch.sigmoid(logits) > threshold).float()
            dice.append(dice_per_image(predictions, masks))
            mse.append(mse_per_image(predictions, masks))
            for image, mask, prediction in zip(images, masks, predictions):
                if len(triplets) < n_saved:
                    triplets.append(tuple((tensor[0].cpu().numpy() * 255).round().astype(np.uint8)
                                          for tensor in (image, mask, prediction)))
    dice, mse, loss = (np.concatenate(values) for values in (dice, mse, loss))
    rows = [dict(index=i, name=name, dice=float(dice[i]), mse=float(mse[i]), loss=float(loss[i]))
            for i, name in enumerate(dataset.names)]
    metrics = dict(dice=float(dice.mean()), mse=float(mse.mean()), loss=float(loss.mean()), n_images=len(rows))
    return metrics, rows, triplets


def _run_test_set(args, folder):
    from mmode.dataset import check_dataset

    if args.crop is not None:
        raise InputError(f"{folder}: --crop cuts recordings; a test set's windows are used whole")
    if args.time is not None:
        raise InputError(f"{folder}: --time cuts recordings; a test set's windows are used whole")
    if args.calibration is not None:
        raise InputError(f"{folder}: --calibration gives recordings' pixel sizes; a test set is scored in pixels")
    if args.border_offsets is not None:
        raise InputError(f"{folder}: --border-offsets moves the borders of recordings; a test set is scored by "
                         "its windows' masks")
    if args.borders is not None:
        raise InputError(f"{folder}: --borders measures recordings from traced borders; a test set scores the network")
    image_names = check_dataset(folder)
    n_saved = min(N_SAVED_TRIPLETS, len(image_names))
    names = ["metrics.json", "per_image.csv"] + [f"{kind}_{i}.png" for i in range(n_saved)
                                                 for kind in ("image", "mask", "pred")]
    staged = StagedOutput(args.output, names, args.overwrite)
    device = _resolve_device(args.device)
    net, img_size, model_path, _ = _load_network(args, device)
    metrics, rows, triplets = evaluate_test_set(net, folder, img_size, device, args.batch_size, args.threshold,
                                                progress=not args.quiet, n_saved=n_saved, names=image_names)
    print(f"Average DICE: {metrics['dice']:.6f}")
    print(f"Average MSE: {metrics['mse']:.6f}")
    print(f"Measured loss: {metrics['loss']:.6f}")
    with staged:
        _write_json(staged.path("metrics.json"), dict(metrics, model=str(model_path),
                                                      model_sha256=file_sha256(model_path), img_size=img_size[0],
                                                      img_width=img_size[1],
                                                      threshold=args.threshold, data=str(folder), **software()))
        write_csv(staged.path("per_image.csv"), PER_IMAGE_COLUMNS,
                  ([row[key] for key in PER_IMAGE_COLUMNS] for row in rows), _csv_style(args))
        for i, (image, mask, prediction) in enumerate(triplets):
            _save_grey_png(staged.path(f"image_{i}.png"), image)
            _save_grey_png(staged.path(f"mask_{i}.png"), mask)
            _save_grey_png(staged.path(f"pred_{i}.png"), prediction)
        staged.commit()
    log.info("wrote metrics.json, per_image.csv and %d image/mask/pred triplets to %s", len(triplets), args.output)
    return 0


# --------------------------------------------------------------------------- recordings

@dataclass
class RecordingAnalysis:
    """Everything measured on one recording.

    `mask` uint8 (H, W) 0/1: the thresholded prediction, or with a refiner or border offsets the rows strictly
    between the reported borders; `upper_px`, `lower_px` (W,) cavity borders (rows, NaN where no cavity); `lvid_mm`,
    `volume_ul` (W,); `beats` (measure.Beats); `parameters` per-beat dict of arrays (measure.BEAT_COLUMNS);
    `uncertainty` per beat (measure.beat_uncertainty); `beat_flags` per beat, the reasons it is doubted
    (measure.flag_beats; empty for a sound beat); `summary` medians over the unflagged beats (all beats with
    `keep_flagged`) and counts (measure.summarise).
    """

    recording: object
    mask: np.ndarray
    upper_px: np.ndarray
    lower_px: np.ndarray
    lvid_mm: np.ndarray
    volume_ul: np.ndarray
    beats: object
    parameters: dict
    uncertainty: np.ndarray
    beat_flags: list
    summary: dict
    borders_file: Path = None  # the --borders file the borders were traced in; None where the network read them

    @property
    def time_s(self):
        return self.recording.start_s + np.arange(self.lvid_mm.size) * self.recording.calibration.s_per_px


def segment_borders(net, image_uint8, img_size, device="cpu", batch_size=None, threshold=0.5, tile_width=None,
                    progress=False, stretch=1.0):
    """The segmentation network's reading of a recording (H, W): (uint8 0/1 mask, upper_px, lower_px), the
    borders (W,) in rows, NaN where no cavity; the guides the refiner and `preprocess build --guide-model`
    straighten strips along. `stretch`: `mmode.inference.time_stretch`."""
    from mmode.inference import predict_probability

    probability = predict_probability(net, image_uint8, img_size, device, tile_width=tile_width,
                                      batch_size=batch_size, progress=progress, stretch=stretch)
    return borders_from_probability(probability, threshold)


def borders_from_probability(probability, threshold=0.5):
    """(uint8 0/1 mask, upper_px, lower_px) of a cavity probability map (H, W)."""
    mask = (probability > threshold).astype(np.uint8)
    upper_px, lower_px = cavity_borders_px(mask, probability, threshold)
    return mask, upper_px, lower_px


def analyse_recording(recording, net, img_size, device="cpu", batch_size=None, threshold=0.5, max_hr_bpm=900.0,
                      min_hr_bpm=250.0, volume_formula="mouse", tile_width=None, progress=False, refiner=None,
                      ms_per_column=None, keep_flagged=False, uncertainty_limit=UNCERTAINTY_LIMIT,
                      border_offsets=None):
    """Segment and measure one `mmode.io.Recording` -> RecordingAnalysis; `img_size` the network input,
    an int (square) or (rows, columns); `refiner` None or (refiner net, strip rows): the segmentation's
    borders are then re-read at full resolution (`mmode.refine`); `ms_per_column` the time one network
    column spans (None: the height rule, `mmode.inference.time_stretch`); `keep_flagged`: the summary's
    medians over all beats, not only the unflagged ones (so they are when every beat is flagged);
    `uncertainty_limit`: above it a beat is flagged "uncertain" (`mmode.measure.flag_beats`); `border_offsets`
    a `mmode.convention.BorderOffsets` added to both borders before they are measured (a lab's convention;
    the uncertainty still compares the network's own borders with its probability)."""
    from mmode.inference import predict_probability, time_stretch

    calibration = recording.calibration
    stretch = time_stretch(recording.image.shape[0], calibration.s_per_px, img_size, ms_per_column)
    probability = predict_probability(net, recording.image, img_size, device, tile_width=tile_width,
                                      batch_size=batch_size, progress=progress, stretch=stretch)
    mask, upper_px, lower_px = borders_from_probability(probability, threshold)
    if refiner is not None:
        from mmode.refine import refine_borders

        refiner_net, strip_rows = refiner
        upper_px, lower_px = refine_borders(refiner_net, recording.image, upper_px, lower_px, strip_rows, device,
                                            batch_size, calibration.mm_per_px)
        upper_px, lower_px = without_crossed(upper_px, lower_px)
        mask = traces_to_mask(upper_px, lower_px, mask.shape[0])
    disagreement_mm = disagreement_px(probability, upper_px, lower_px, threshold) * calibration.mm_per_px
    if border_offsets is not None:
        from mmode.convention import shift_borders

        upper_px, lower_px = shift_borders(upper_px, lower_px, border_offsets, calibration.mm_per_px)
        mask = traces_to_mask(upper_px, lower_px, mask.shape[0])
    return measure_borders(recording, mask, upper_px, lower_px, disagreement_mm, max_hr_bpm, min_hr_bpm,
                           volume_formula, keep_flagged, uncertainty_limit)


def analyse_traced(recording, upper_px, lower_px, borders_file, max_hr_bpm=900.0, min_hr_bpm=250.0,
                   volume_formula="mouse", keep_flagged=False, uncertainty_limit=UNCERTAINTY_LIMIT):
    """Measure one `mmode.io.Recording` from borders traced by hand in `borders_file` (`mmode.borders.traced_borders`),
    the network not run -> RecordingAnalysis, as `analyse_recording` measures the network's: the same beats,
    parameters, RR flags and medians. No beat is flagged uncertain, and its uncertainty is empty: no network read it."""
    mask = traces_to_mask(upper_px, lower_px, recording.image.shape[0])
    analysis = measure_borders(recording, mask, upper_px, lower_px, np.full(upper_px.size, np.nan), max_hr_bpm,
                               min_hr_bpm, volume_formula, keep_flagged, uncertainty_limit)
    return replace(analysis, borders_file=borders_file)


def measure_borders(recording, mask, upper_px, lower_px, disagreement_mm, max_hr_bpm, min_hr_bpm, volume_formula,
                    keep_flagged, uncertainty_limit):
    """RecordingAnalysis of a recording's cavity borders (W,) and `mask`: LVID and volume per column, beats, their
    parameters, uncertainty (from `disagreement_mm` per column, NaN for borders no network read) and flags, and the
    summary's medians."""
    calibration = recording.calibration
    lvid_mm = (lower_px - upper_px) * calibration.mm_per_px
    beats = detect_beats(lvid_mm, calibration.s_per_px, max_hr_bpm=max_hr_bpm, min_hr_bpm=min_hr_bpm)
    parameters = beat_parameters(beats, calibration.s_per_px, volume_formula, recording.start_s)
    uncertainty = beat_uncertainty(disagreement_mm, beats)
    beat_flags = flag_beats(parameters, uncertainty, min_hr_bpm, max_hr_bpm, uncertainty_limit)
    sound = [not reasons for reasons in beat_flags]
    # Every beat doubted: medians over all of them, as before flags existed, with the warning of _log_summary.
    used = None if keep_flagged or not any(sound) else sound
    return RecordingAnalysis(recording, mask, upper_px, lower_px, lvid_mm, volume_ul(lvid_mm, volume_formula),
                             beats, parameters, uncertainty, beat_flags, summarise(parameters, used))


def recording_output_names(stem, crop=False):
    """The files written for a recording with file stem `stem`; `crop`: with --crop, which adds CROP_OUTPUT."""
    return [f"{stem}_{suffix}" for suffix in RECORDING_OUTPUTS + (CROP_OUTPUT,) * bool(crop)]


def summary_content(analysis, model_path, img_size, options, refiner_path=None):
    """The `<stem>_summary.json` dict: the medians (DESIGN.md), n_beats, calibration and settings;
    `img_size` the network input (rows, columns); `refiner_path` the border refiner used, if any. Where the borders
    were traced (`analysis.borders_file`), the network's settings are null."""
    calibration = analysis.recording.calibration
    summary = {key: _number(analysis.summary[key], 4) for key in SUMMARY_KEYS + SPREAD_KEYS}
    measured = np.isfinite(analysis.lvid_mm)
    network = analysis.borders_file is None
    offsets = options.get("border_offsets") if network else None
    summary.update(
        n_beats=analysis.summary["n_beats"],
        n_beats_used=analysis.summary["n_beats_used"],
        flagged_beats=flagged_beats(analysis),
        mm_per_px=calibration.mm_per_px,
        s_per_px=calibration.s_per_px,
        calibration_source=calibration.source,
        calibration_file=calibration.origin,
        pixel_warnings=coarser_than_trained(calibration),
        range_warnings=outside_mouse_range(analysis.summary["lvid_d_mm"], calibration),
        borders_file=None if network else str(analysis.borders_file),
        model=str(model_path) if network else None,
        model_sha256=file_sha256(model_path) if network else None,
        img_size=int(img_size[0]) if network else None,
        img_width=int(img_size[1]) if network else None,
        ms_per_column=options["ms_per_column"] if network else None,
        refiner=None if refiner_path is None else str(refiner_path),
        refiner_sha256=None if refiner_path is None else file_sha256(refiner_path),
        recording=str(analysis.recording.path),
        crop=None if analysis.recording.crop is None else list(analysis.recording.crop),
        crop_auto=analysis.recording.crop_auto,
        time_range_s=None if (cut := analysis.recording.time_cut) is None else [round(t, 6) for t in cut],
        height_px=int(analysis.mask.shape[0]),
        width_px=int(analysis.mask.shape[1]),
        duration_s=round(analysis.mask.shape[1] * calibration.s_per_px, 6),
        columns_without_cavity=int((~measured).sum()),
        volume_formula=options["volume_formula"],
        threshold=options["threshold"] if network else None,
        max_hr_bpm=options["max_hr_bpm"],
        min_hr_bpm=options["min_hr_bpm"],
        keep_flagged=options["keep_flagged"],
        uncertainty_limit=options["uncertainty_limit"],
        rr_tolerance=RR_TOLERANCE,
        border_offsets_mm=None if offsets is None else dict(upper=offsets.upper_mm, lower=offsets.lower_mm),
        **software(),
    )
    return summary


def file_sha256(path):
    """SHA-256 (hex) of the file at `path`: which weights made a result, even after the file at that path
    is replaced; None when it can no longer be read (the network is in memory already). Computed once per
    file and version."""
    try:
        status = os.stat(path)
        return _sha256(str(Path(path).resolve()), status.st_mtime_ns, status.st_size)
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _sha256(path, mtime_ns, size):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def flagged_beats(analysis):
    """The doubted beats, one dict each: `beat` (its row in <stem>_beats.csv, from 1), `t_ed_s`, `reasons`,
    `uncertainty` and `hr_bpm`."""
    parameters = analysis.parameters
    return [dict(beat=index + 1, t_ed_s=_number(parameters["t_ed_s"][index], 6), reasons=list(reasons),
                 uncertainty=_number(analysis.uncertainty[index], 3), hr_bpm=_number(parameters["hr_bpm"][index], 1))
            for index, reasons in enumerate(analysis.beat_flags) if reasons]


def write_recording_outputs(analysis, stem, staged, model_path, img_size, options, refiner_path=None,
                            csv_style=PLAIN_CSV):
    """Write the seven files of DESIGN.md "Analysis outputs" for one analysed recording into `staged`, and, for a
    recording cut with --crop (it keeps its `uncut_image`), <stem>_crop.png: the box analysed on the whole image;
    the CSV files in `csv_style`."""
    from mmode.plots import plot_lvid, plot_volume, save_box, save_overlay

    _save_grey_png(staged.path(f"{stem}_mask.png"), analysis.mask * 255)
    _write_csv_columns(staged.path(f"{stem}_trace.csv"), {
        "time_s": _format_column(analysis.time_s, 6),
        "lvid_mm": _format_column(analysis.lvid_mm, 4),
        "volume_ul": _format_column(analysis.volume_ul, 3),
        "upper_px": _format_column(analysis.upper_px, 2),
        "lower_px": _format_column(analysis.lower_px, 2),
    }, csv_style)
    _write_csv_columns(staged.path(f"{stem}_beats.csv"), beat_file_columns(analysis), csv_style)
    flagged = np.array([bool(reasons) for reasons in analysis.beat_flags], dtype=bool)
    _write_json(staged.path(f"{stem}_summary.json"),
                summary_content(analysis, model_path, img_size, options, refiner_path))
    name = analysis.recording.path.name
    plot_lvid(staged.path(f"{stem}_lvid.png"), analysis.time_s, analysis.lvid_mm, analysis.beats.ed_index,
              analysis.beats.es_index, title=f"{name}: LVID", flagged=flagged)
    plot_volume(staged.path(f"{stem}_volume.png"), analysis.time_s, analysis.volume_ul, analysis.beats.ed_index,
                analysis.beats.es_index, title=f"{name}: LV volume ({options['volume_formula']} Teichholz)",
                flagged=flagged)
    save_overlay(staged.path(f"{stem}_overlay.png"), analysis.recording.image, analysis.upper_px, analysis.lower_px,
                 flagged_columns(analysis))
    if analysis.recording.uncut_image is not None:
        save_box(staged.path(f"{stem}_{CROP_OUTPUT}"), analysis.recording.uncut_image, analysis.recording.analysed_box)


def beat_file_columns(analysis):
    """The beats file's columns (BEAT_FILE_COLUMNS) of an analysed recording as {name: string array}, a row per
    beat: DESIGN.md's parameters, then the beat's uncertainty, why it is doubted and whether the medians used it."""
    digits = dict(t_ed_s=6, t_es_s=6, lvid_d_mm=4, lvid_s_mm=4)
    columns = {key: _format_column(analysis.parameters[key], digits.get(key, 3)) for key in BEAT_COLUMNS}
    columns.update(uncertainty=_format_column(analysis.uncertainty, 3),
                   flags=np.array([";".join(reasons) for reasons in analysis.beat_flags], dtype=str),
                   in_medians=np.where(beats_in_medians(analysis), "1", "0"))
    return {key: columns[key] for key in BEAT_FILE_COLUMNS}


def beats_in_medians(analysis):
    """Which beats of an analysed recording its summary's medians are over (bool per beat): the unflagged ones, or
    all where the summary took all (`keep_flagged`, or every beat flagged)."""
    flagged = np.array([bool(reasons) for reasons in analysis.beat_flags], dtype=bool)
    return (analysis.summary["n_beats_used"] == analysis.summary["n_beats"]) | ~flagged


def _write_study_beats(path, tables, style=PLAIN_CSV):
    """Write `tables` ([(recording name, `beat_file_columns`)]) as one CSV, `recording` first: every beat of a
    study in one long table, for statistics across animals."""
    write_csv(path, ("recording", *BEAT_FILE_COLUMNS),
              ((name, *row) for name, columns in tables for row in zip(*(columns[key] for key in BEAT_FILE_COLUMNS))),
              style)


def flagged_columns(analysis):
    """Bool (W,): the columns from end-diastole to end-systole of each flagged beat (the overlay's band)."""
    columns = np.zeros(analysis.lvid_mm.size, dtype=bool)
    for index in np.flatnonzero([bool(reasons) for reasons in analysis.beat_flags]):
        columns[analysis.beats.ed_index[index]:analysis.beats.es_index[index] + 1] = True
    return columns


def _csv_style(args):
    return DECIMAL_COMMA_CSV if args.decimal_comma else PLAIN_CSV


def _analysis_options(args):
    if not args.min_hr < args.max_hr:
        raise InputError(f"--min-hr {args.min_hr:g} must be below --max-hr {args.max_hr:g}")
    offsets = None
    if args.border_offsets is not None:
        from mmode.convention import read_border_offsets

        offsets = read_border_offsets(args.border_offsets)
    return dict(threshold=args.threshold, max_hr_bpm=args.max_hr, min_hr_bpm=args.min_hr,
                volume_formula=args.volume_formula, keep_flagged=args.keep_flagged,
                uncertainty_limit=args.uncertainty_limit, border_offsets=offsets)


def report_offsets(offsets_path, offsets, model_path, refiner_path):
    """Log the border offsets a run applies, and warn when they were fitted behind another segmentation
    checkpoint or another border refiner (or with one where this run has none, or the other way round) than
    this run's: they correct that pair's reading, which another may not share."""
    from mmode.convention import REFINER_NOT_RECORDED

    if offsets is None:
        return
    log.info("every cavity border moved outward by %+g mm (upper) and %+g mm (lower): the convention in %s",
             offsets.upper_mm, offsets.lower_mm, offsets_path)
    if offsets.model_sha256 is not None and offsets.model_sha256 != file_sha256(model_path):
        log.warning("%s: these offsets were fitted behind another model (SHA-256 %s...) than %s; refit them with "
                    "bench/accuracy.py --fit-offsets behind this one", offsets_path,
                    offsets.model_sha256[:12], model_path)
    refiner_sha256 = None if refiner_path is None else file_sha256(refiner_path)
    if offsets.refiner_sha256 != REFINER_NOT_RECORDED and offsets.refiner_sha256 != refiner_sha256:
        fitted = "without a refiner" if offsets.refiner_sha256 is None else "behind another refiner"
        used = "without one" if refiner_path is None else f"with {refiner_path}"
        log.warning("%s: these offsets were fitted %s and this run measures %s; refit them with "
                    "bench/accuracy.py --fit-offsets as this run measures", offsets_path, fitted, used)


def beats_phrase(n_beats):
    """'1 beat', '12 beats': a count of beats as the log and the overview titles write it."""
    return f"{n_beats} beat" + ("" if n_beats == 1 else "s")


def _log_summary(analysis):
    for note in coarser_than_trained(analysis.recording.calibration):
        log.warning("%s: %s; check the tool on a few measured recordings of your own (README, \"Checking the "
                    "model on your own recordings\")", analysis.recording.path, note)
    summary = analysis.summary
    for note in outside_mouse_range(summary["lvid_d_mm"], analysis.recording.calibration):
        log.warning("%s: %s", analysis.recording.path, note)
    if summary["n_beats"] == 0:
        log.warning("%s: no complete beat found in the LVID curve; per-beat values are empty",
                    analysis.recording.path)
        return
    n_flagged = sum(bool(reasons) for reasons in analysis.beat_flags)
    if n_flagged == summary["n_beats"]:
        log.warning("%s: every beat is flagged (uncertain segmentation or irregular RR, see flagged_beats in the "
                    "summary JSON), so the medians are over all of them: check the overlay before using them",
                    analysis.recording.path)
    elif few_beats_in_medians(analysis.beat_flags) and summary["n_beats_used"] < summary["n_beats"]:
        verb, pronoun = ("is", "it") if summary["n_beats_used"] == 1 else ("are", "them")
        log.warning("%s: only %d of %d beats %s not flagged (see flagged_beats in the summary JSON), so the medians "
                    "rest on %s alone: check the overlay before using them", analysis.recording.path,
                    summary["n_beats_used"], summary["n_beats"], verb, pronoun)
    counts = beats_phrase(summary["n_beats"])
    if n_flagged:
        reasons = [reason for beat in analysis.beat_flags for reason in beat]
        medians = "in" if summary["n_beats_used"] == summary["n_beats"] else "not in"
        counts += (f" ({n_flagged} flagged: {reasons.count('uncertain')} uncertain segmentation, "
                   f"{reasons.count('rr')} irregular RR; {medians} the medians)")
    values = {key: "n/a" if summary[key] is None else f"{summary[key]:.4g}" for key in SUMMARY_KEYS}
    cut = analysis.recording.time_cut
    where = "" if cut is None else " from {:.3f} to {:.3f} s".format(*cut)
    log.info("%s%s: %s, LVIDd %s mm, LVIDs %s mm, EF %s %%, FS %s %%, HR %s bpm, CO %s mL/min",
             analysis.recording.path, where, counts, values["lvid_d_mm"], values["lvid_s_mm"],
             values["ef_pct"], values["fs_pct"], values["hr_bpm"], values["co_ml_min"])


def _run_recording(args, path):
    from mmode.io import check_recording_type, read_recording, recording_name

    check_recording_type(path)
    options = _analysis_options(args)
    stem = recording_name(path)
    names = recording_output_names(stem, args.crop is not None)
    staged = StagedOutput(args.output, names, args.overwrite)
    table = _calibration_table(args)  # a lab's whole table may serve one recording: its other rows are not typos
    if table is None and args.mm_per_px is None and args.s_per_px is None:
        table = _sibling_calibration(path)
    recording = read_recording(path, _recording_calibration(args, path, table), args.crop,
                               _recording_stretch(args, path, _stretch_table(args)))
    _note_ignored_calibration(args, recording, table)
    if recording.calibration.source == "default":
        log.info("%s: %s", path, DEFAULT_CALIBRATION_NOTE)
    borders = _borders_table(args)
    networks = Networks(args, options)
    if borders is None or recording.name not in borders:
        if borders is not None:
            log.warning("%s: %s lists no traces of %s, so the network reads its borders", path, args.borders,
                        recording.name)
        networks.load()  # a checkpoint that cannot be used stops the run here, before anything is written
    with staged:
        analysis = _analyse_and_write(args, recording, stem, staged, options, networks, borders,
                                      progress=not args.quiet)
        staged.commit()
    _log_summary(analysis)
    log.info("wrote %s to %s", ", ".join(names), args.output)
    if args.show:
        for name in names[4:]:
            Image.open(args.output / name).show()
    return 0


@dataclass
class Networks:
    """The segmentation network and refiner a run reads borders with, loaded once, and only by a run that has a
    recording to read: one whose recordings are all measured from traced borders (--borders) loads neither. Loading
    sets `options["ms_per_column"]`."""

    args: argparse.Namespace
    options: dict
    loaded: tuple = None

    def load(self):
        """(device, net, input (rows, columns), checkpoint path, (refiner net, strip rows) or None, refiner path)."""
        if self.loaded is None:
            device = _resolve_device(self.args.device)
            net, img_size, model_path, self.options["ms_per_column"] = _load_network(self.args, device)
            refiner, refiner_path = _load_refiner(self.args, device)
            report_offsets(self.args.border_offsets, self.options["border_offsets"], model_path, refiner_path)
            self.loaded = device, net, img_size, model_path, refiner, refiner_path
        return self.loaded


def _borders_table(args):
    """{recording stem: traces} from --borders, or None without it."""
    if args.borders is None:
        return None
    from mmode.borders import read_borders

    return read_borders(args.borders)


def _analyse_and_write(args, recording, stem, staged, options, networks, borders=None, progress=False):
    """Measure `recording` and write its files as `stem` into `staged` -> RecordingAnalysis: from its traced borders
    when `borders` (`_borders_table`) lists it, else as `networks` read it."""
    if borders is not None and recording.name in borders:
        from mmode.borders import traced_borders

        upper_px, lower_px = traced_borders(recording, borders[recording.name], args.borders)
        log.info("%s: borders traced in %s, measured without the network", recording.path, args.borders)
        analysis = analyse_traced(recording, upper_px, lower_px, args.borders,
                                  **{key: options[key] for key in MEASURE_OPTIONS})
        write_recording_outputs(analysis, stem, staged, None, None, options, csv_style=_csv_style(args))
        return analysis
    device, net, img_size, model_path, refiner, refiner_path = networks.load()
    analysis = analyse_recording(recording, net, img_size, device, args.batch_size, tile_width=args.tile_width,
                                 progress=progress, refiner=refiner, **options)
    write_recording_outputs(analysis, stem, staged, model_path, img_size, options, refiner_path, _csv_style(args))
    return analysis


def _note_ignored_calibration(args, recording, table=None):
    listed = table is not None and recording.name in table.calibrations
    given = args.mm_per_px is not None or args.s_per_px is not None
    if (given or listed) and recording.calibration.source == "dicom":
        log.info("%s: using the DICOM's own calibration (%.6g mm/px, %.6g s/px), not %s", recording.path,
                 recording.calibration.mm_per_px, recording.calibration.s_per_px,
                 f"its row in {table.path}" if listed else "--mm-per-px/--s-per-px")


@dataclass
class CalibrationTable:
    """Per-recording pixel sizes read from `path` (`--calibration`): {recording stem: Calibration}."""

    path: Path
    calibrations: dict


def _calibration_table(args, folder=None):
    """The `--calibration` CSV, or for a study `folder` its calibration.csv when there is one and no --calibration
    was given; None without either. InputError naming the file when it cannot be read."""
    from preprocess.annotations import read_calibration_csv

    path = args.calibration
    if path is None and folder is not None and (folder / CALIBRATION_FILE).is_file():
        path = folder / CALIBRATION_FILE
    if path is None:
        return None
    table = CalibrationTable(path, read_calibration_csv(path))
    log.info("pixel sizes of %d recordings from %s", len(table.calibrations), path)
    return table


def _sibling_calibration(path):
    """The calibration.csv beside recording file `path` when it lists the recording, else None: one recording of a
    study folder then gets the pixel sizes a study of that folder would give it. InputError naming the CSV when it
    cannot be read."""
    from mmode.io import recording_name
    from preprocess.annotations import read_calibration_csv

    csv_path = Path(path).parent / CALIBRATION_FILE
    if not csv_path.is_file():
        return None
    calibrations = read_calibration_csv(csv_path)
    if recording_name(path) not in calibrations:
        return None
    log.info("%s: pixel sizes from its row in %s", path, csv_path)
    return CalibrationTable(csv_path, calibrations)


def _recording_calibration(args, path, table):
    """The calibration `read_recording` is given for recording file `path`: its row of `table`, else the
    --mm-per-px/--s-per-px flags (or the seed's defaults without a table); InputError for an image file a table
    does not list when no flag was given, rather than mm at a calibration the user did not mean. A DICOM not
    listed falls back as before (its own calibration wins when it has one)."""
    from mmode.io import is_dicom_file, recording_name

    listed = None if table is None else table.calibrations.get(recording_name(path))
    if listed is not None:
        return listed
    given = args.mm_per_px is not None or args.s_per_px is not None
    if table is not None and not given and not is_dicom_file(path):
        raise InputError(f"{path}: not listed in {table.path}; add its row (image,mm_per_px,s_per_px) or give "
                         f"--mm-per-px and --s-per-px for the recordings it does not list")
    return calibration_from_options(args.mm_per_px, args.s_per_px)


def _warn_unused_rows(path, listed, files):
    """Rows of the table at `path` (`listed`: the recordings it names) that name no recording of a study: most
    likely a typo in a name, so said once."""
    from mmode.io import recording_name

    unused = sorted(set(listed) - {recording_name(file) for file in files})
    if unused:
        log.warning("%s lists %d recording(s) not analysed here: %s", path, len(unused),
                    ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else ""))


def _stretch_table(args):
    """--time's CSV read: {recording: (start_s, end_s or None)}, or None when --time is no file."""
    if not isinstance(args.time, Path):
        return None
    from preprocess.annotations import read_stretches_csv

    stretches = read_stretches_csv(args.time)
    log.info("stretches of %d recordings from %s", len(stretches), args.time)
    return stretches


def _recording_stretch(args, path, stretches):
    """The stretch `read_recording` cuts recording file `path` to: --time's range, its row of the --time CSV
    (`stretches`), or None for the whole recording (a recording the CSV does not list, which the log says)."""
    if stretches is None:
        return args.time
    from mmode.io import recording_name

    stretch = stretches.get(recording_name(path))
    if stretch is None:
        log.info("%s: not listed in %s, analysed whole", path, args.time)
    return stretch


def _study_recordings(folder, recursive=False, output=None):
    from mmode.io import RECORDING_SUFFIXES, recording_files

    # the output folder inside the study folder holds this tool's own PNGs, not recordings
    inside = recursive and output is not None and Path(output).resolve() != Path(folder).resolve()
    files = recording_files(folder, recursive=recursive, skip=output if inside else None)
    if not files:
        where = " or its sub-folders" if recursive else ""
        raise InputError(f"{folder}: neither a test set (img/ and mask/) nor a folder holding recordings{where} "
                         f"({', '.join(sorted(RECORDING_SUFFIXES))}, or DICOM files of any name)")
    return files


def _study_name(folder, path):
    """A study recording's name in OUT and in the study's tables: `mmode.io.recording_name`, after the path of its
    sub-folder within the study folder where it has one (`--recursive`)."""
    from mmode.io import recording_name

    return (path.parent.relative_to(folder) / recording_name(path)).as_posix()


def _study_row(label, analysis=None, error=None):
    """One recording's row of study.csv, `label` its file's path within the study folder."""
    row = dict.fromkeys(STUDY_COLUMNS, "")
    row.update(recording=label, status="error" if error else "ok", error=error or "")
    if analysis is not None:
        calibration = analysis.recording.calibration
        for key in SUMMARY_KEYS + SPREAD_KEYS:
            value = _number(analysis.summary[key], 4)
            row[key] = "" if value is None else value
        row.update(n_beats=analysis.summary["n_beats"], n_beats_used=analysis.summary["n_beats_used"],
                   mm_per_px=calibration.mm_per_px, s_per_px=calibration.s_per_px,
                   calibration_source=calibration.source, calibration_file=calibration.origin or "",
                   pixel_warnings="; ".join(coarser_than_trained(calibration)),
                   range_warnings="; ".join(outside_mouse_range(analysis.summary["lvid_d_mm"], calibration)))
        if analysis.recording.time_cut is not None:  # the stretch the medians cover; empty for the whole recording
            row.update(time_start_s=round(analysis.recording.time_cut[0], 6),
                       time_end_s=round(analysis.recording.time_cut[1], 6))
        if analysis.recording.crop is not None:  # the box analysed, given or found (--crop auto); empty for the whole
            row.update(zip(("crop_left", "crop_top", "crop_right", "crop_bottom"), analysis.recording.crop))
        row.update(borders_file="" if analysis.borders_file is None else str(analysis.borders_file))
    return row


def _overview_row(label, analysis=None, error=None, study_row=None):
    """One recording's row of the study overview (`mmode.plots.plot_study_overview`), titled `label`; its
    warnings read from its `study_row` (`_study_row`)."""
    if analysis is None:
        return dict(title=f"{label}: not analysed", error=error)
    summary = analysis.summary
    values = {key: "n/a" if summary[key] is None else f"{summary[key]:.3g}"
              for key in ("lvid_d_mm", "lvid_s_mm", "ef_pct", "hr_bpm")}
    n_flagged = sum(bool(reasons) for reasons in analysis.beat_flags)
    title = (f"{label}: LVIDd {values['lvid_d_mm']} mm, LVIDs {values['lvid_s_mm']} mm, EF {values['ef_pct']} %, "
             f"HR {values['hr_bpm']} bpm; {beats_phrase(summary['n_beats'])}, {n_flagged} flagged")
    warnings = (["pixels coarser than trained"] * bool(study_row["pixel_warnings"])
                + ["LVIDd outside a mouse's"] * bool(study_row["range_warnings"]))
    if warnings:
        title += " (" + "; ".join(warnings) + ")"
    spans = [(analysis.time_s[analysis.beats.ed_index[index]], analysis.time_s[analysis.beats.es_index[index]])
             for index, reasons in enumerate(analysis.beat_flags) if reasons]
    return dict(title=title, time_s=analysis.time_s, lvid_mm=analysis.lvid_mm, flagged_spans_s=spans)


def _run_study(args, folder):
    from mmode.io import read_recording, recording_name

    files = _study_recordings(folder, args.recursive, args.output)
    options = _analysis_options(args)
    cropped = args.crop is not None
    names = ([name for path in files for name in recording_output_names(_study_name(folder, path), cropped)]
             + [STUDY_FILE, STUDY_BEATS_FILE, OVERVIEW_FILE])
    staged = StagedOutput(args.output, names, args.overwrite)
    table = _calibration_table(args, folder)
    if table is not None:
        _warn_unused_rows(table.path, table.calibrations, files)
    stretches = _stretch_table(args)
    if stretches is not None:
        _warn_unused_rows(args.time, stretches, files)
    borders = _borders_table(args)
    if borders is not None:
        _warn_unused_rows(args.borders, borders, files)
    networks = Networks(args, options)
    if borders is None or any(recording_name(path) not in borders for path in files):
        networks.load()  # a checkpoint that cannot be used stops the study here, not as an error row per recording
    rows, overview, beat_tables = [], [], []
    progress = files
    if not args.quiet:
        from tqdm import tqdm

        progress = tqdm(files, desc="study", unit="recording")
    with staged:
        for path in progress:
            label = path.relative_to(folder).as_posix()  # the file name, after its sub-folder's path if any
            try:
                recording = read_recording(path, _recording_calibration(args, path, table), args.crop,
                                           _recording_stretch(args, path, stretches))
                _note_ignored_calibration(args, recording, table)
                analysis = _analyse_and_write(args, recording, _study_name(folder, path), staged, options, networks,
                                              borders)
            except InputError as error:
                log.warning("skipped: %s", error)
                rows.append(_study_row(label, error=str(error)))
                overview.append(_overview_row(label, error=str(error)))
                continue
            rows.append(_study_row(label, analysis))
            overview.append(_overview_row(label, analysis, study_row=rows[-1]))
            beat_tables.append((label, beat_file_columns(analysis)))
            _log_summary(analysis)
        at_default = sum(row["calibration_source"] == "default" for row in rows)
        if at_default:
            log.info("%d of %d recordings: %s", at_default, len(rows), DEFAULT_CALIBRATION_NOTE)
        if all(row["status"] == "error" for row in rows):
            raise InputError(f"{folder}: none of its {len(rows)} recordings could be analysed "
                             f"(first: {rows[0]['error']})")
        write_csv(staged.path(STUDY_FILE), STUDY_COLUMNS, ([row[key] for key in STUDY_COLUMNS] for row in rows),
                  _csv_style(args))
        _write_study_beats(staged.path(STUDY_BEATS_FILE), beat_tables, _csv_style(args))
        from mmode.plots import plot_study_overview

        plot_study_overview(staged.path(OVERVIEW_FILE), overview)
        staged.commit()
    n_failed = sum(row["status"] == "error" for row in rows)
    log.info("analysed %d of %d recordings in %s; results and %s in %s%s", len(rows) - n_failed, len(rows),
             folder, STUDY_FILE, args.output, f" ({n_failed} skipped, see {STUDY_FILE})" if n_failed else "")
    return 0


# --------------------------------------------------------------------------- entry point

def main(argv=None):
    """test.py: parse `argv`, run the mode `-d` names, return 0. Bad input raises InputError."""
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    path = args.data
    if not path.exists():
        raise InputError(f"{path}: no such file or folder (-d)")
    if args.recursive and (path.is_file() or (path / "img").is_dir() or (path / "mask").is_dir()):
        raise InputError(f"{path}: --recursive reads the sub-folders of a folder of recordings, not a recording or "
                         f"a test set")
    if path.is_dir():
        if (path / "img").is_dir() or (path / "mask").is_dir():  # a test set (check_dataset names what's missing)
            return _run_test_set(args, path)
        return _run_study(args, path)
    return _run_recording(args, path)
