"""`python -m preprocess build`: every annotated recording in a folder -> masks -> square windows, or with
`--strips` the border strips that train the refiner (`preprocess/strips.py`), with `--guide-model` also
strips along a segmentation network's own borders.

The run is all-or-nothing: every annotation is checked against its recording before anything is written;
the data set is written into a hidden temporary folder beside DATASET and renamed to DATASET at the end,
so a failure (or Ctrl-C) leaves no half-written data set and an existing DATASET untouched.
"""
import functools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmode.calibration import calibration_from_options
from mmode.cli import AUTO_CROP
from mmode.errors import InputError
from mmode.io import RECORDING_SUFFIXES, read_recording, recording_files, recording_name, write_png
from mmode.refine import strip_zoom
from preprocess.annotations import check_traces, crop_traces, read_annotations, read_calibration_csv
from preprocess.masks import annotation_mask, annotation_traces
from preprocess.strips import (EASY_FRACTION, GUIDE_STRIDE_PX, HARD_ERROR_PX, STRIP_COLUMNS, STRIP_ROWS,
                               cut_guide_strips, cut_strips, recording_rng, strip_count)
from preprocess.windows import (columns_spanning, cut_windows, default_stride, window_name, window_size,
                                window_starts)

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# Narrowest window cut by time (columns of the recording): a network input is at least 16 columns wide.
MIN_WINDOW_COLUMNS = 16


def list_recordings(images_dir):
    """{recording name: path} of every recording file directly in `images_dir` (`mmode.io.recording_files`: an
    image, or a DICOM of any name), named by `mmode.io.recording_name`."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: images folder not found")
    recordings = {recording_name(path): path
                  for path in recording_files(images_dir, collision="their annotations and windows would mix")}
    if not recordings:
        raise InputError(f"{images_dir}: no recordings ({', '.join(sorted(RECORDING_SUFFIXES))}, or DICOM files of "
                         f"any name) in this folder")
    return recordings


def split_recordings(names, test_pct, seed):
    """Split recording names into (train, test) sorted lists: round(test_pct % of them) to test, at least one
    on each side, drawn with numpy's generator seeded by `seed`."""
    names = sorted(names)
    if len(names) < 2:
        raise InputError(f"--split needs at least two recordings with windows, there are {len(names)}")
    n_test = int(np.clip(round(len(names) * test_pct / 100.0), 1, len(names) - 1))
    shuffled = list(np.random.default_rng(seed).permutation(names))
    test = sorted(shuffled[:n_test])
    return sorted(set(names) - set(test)), test


def build_dataset(images_dir, annotations_path, out_dir, stride=None, split_pct=None, seed=0,
                  overwrite=False, progress=True, strips=False, guide_model=None, guide_stride=None,
                  guide_easy_fraction=None, window_seconds=None, s_per_px=None, calibration_csv=None, crop=None):
    """Build a training set from the recordings in `images_dir` and their annotations.

    Writes `out_dir/img/<recording>_win<k>.png` and `out_dir/mask/...` (mask 0/255), or with `split_pct`
    the same under `out_dir/train/` and `out_dir/test/` (that percentage of recordings to test), plus
    `out_dir/summary.json`. `stride` (px) defaults to half the window side. With `strips`, the files are
    the refiner's border strips instead (`preprocess/strips.py`; `stride` defaults to the strip width and
    `seed` also draws the guides), and the summary says `"kind": "border-strips"` and the strip rows.
    `guide_model` (a segmentation checkpoint; strips only) adds strips along that network's borders every
    `guide_stride` columns (default GUIDE_STRIDE_PX), keeping `guide_easy_fraction` (default EASY_FRACTION)
    of those whose guide stays within HARD_ERROR_PX rows, numbered after the perturbed ones; the summary counts
    them (`guide_strips`, `hard_strips`, also per recording) and `windows` includes them.
    `window_seconds`: cut windows by time instead of squares: each the recording's whole height by the columns
    that span `window_seconds` at its time calibration, so that every window, resized to a network's input,
    shows the same time per network column whatever the recording's height; the summary says `window_s`, and
    per recording `window_columns`. The calibration of an image file: its row of `calibration_csv`
    (`image,mm_per_px,s_per_px`, every annotated recording listed), else `s_per_px`, else the seed's; a DICOM's
    own wins. `crop` = (left, top, right, bottom): every recording cut to that box first (a scanner screenshot's
    M-mode panel), its annotations given in the uncut image's pixels; the summary says `crop`. AUTO_CROP: each
    recording cut to the panel found in it (`mmode.io.crop_to_panel`), the box in its `per_recording` entry.
    Returns the summary dict: recordings, windows, columns_covered, skipped {name: reason}, per_recording.
    """
    images_dir, annotations_path, out_dir = Path(images_dir), Path(annotations_path), Path(out_dir)
    _check_out_dir(out_dir, images_dir, annotations_path, overwrite)
    if stride is not None and int(stride) < 1:
        raise InputError(f"--stride must be a positive number of columns, got {stride}")
    guide_options = (guide_model, guide_stride, guide_easy_fraction)
    if any(option is not None for option in guide_options) and not strips:
        raise InputError("--guide-model, --guide-stride and --guide-easy-fraction go with --strips "
                         "(they cut the refiner's strips)")
    if guide_model is None and any(option is not None for option in guide_options[1:]):
        raise InputError("--guide-stride and --guide-easy-fraction need --guide-model")
    if guide_stride is not None and int(guide_stride) < 1:
        raise InputError(f"--guide-stride must be a positive number of columns, got {guide_stride}")
    _check_window_options(window_seconds, s_per_px, calibration_csv, strips)
    guide = None if guide_model is None else load_guide_model(guide_model)
    recordings = list_recordings(images_dir)
    annotations = _checked_annotations(annotations_path, recordings, images_dir)
    calibrations = _calibrations(annotations, s_per_px, calibration_csv)

    plan, skipped = {}, {}
    for name in sorted(set(recordings) - set(annotations)):
        skipped[name] = "no annotations"
    for name in tqdm(sorted(annotations), desc="checking", unit="recording", disable=not progress):
        recording = read_recording(recordings[name], calibrations[name], crop)
        if recording.crop is not None:  # the traces, in the uncut image's pixels, move with the box given or found
            annotations[name] = crop_traces(name, annotations[name], recording.crop, found=recording.crop_auto)
        entry = _plan_recording(recording, annotations[name], annotations_path, stride, strips, window_seconds)
        if crop == AUTO_CROP:
            entry["crop"] = None if recording.crop is None else list(recording.crop)
        if entry["windows"]:
            plan[name] = entry
        else:
            skipped[name] = (f"annotated span {entry['span'][1] - entry['span'][0]} columns is narrower "
                             f"than the {entry['window_columns']} px {'strip' if strips else 'window'}")
    if not plan:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(skipped.items()))
        raise InputError(f"{images_dir}: no recording gives a window ({reasons})")

    parts = {name: "" for name in plan}
    if split_pct is not None:
        train, test = split_recordings(plan, split_pct, seed)
        parts.update({name: "train" for name in train})
        parts.update({name: "test" for name in test})
    for name, entry in plan.items():
        entry["part"] = parts[name] or None

    summary = {
        "kind": "border-strips" if strips else "windows",
        "strip_rows": STRIP_ROWS if strips else None,
        "window_s": None if window_seconds is None else float(window_seconds),
        "recordings": len(plan),
        "windows": sum(entry["windows"] for entry in plan.values()),
        "columns_covered": sum(entry["span"][1] - entry["span"][0] for entry in plan.values()),
        "skipped": skipped,
        "stride_px": stride,
        "split_pct": split_pct,
        "seed": seed if split_pct is not None or strips else None,
        "images": str(images_dir),
        "annotations": str(annotations_path),
        "crop": crop if crop in (None, AUTO_CROP) else list(crop),
        **(_guide_summary(guide, guide_model, guide_stride, guide_easy_fraction) if guide else {}),
        "per_recording": plan,
    }
    write = functools.partial(_write_strips, guide=guide) if strips else _write_windows
    _write_atomically(out_dir, lambda folder: write(folder, plan, recordings, annotations, stride, summary,
                                                    progress, calibrations))
    _log_summary(out_dir, summary)
    return summary


def _check_out_dir(out_dir, images_dir, annotations_path, overwrite):
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    resolved = out_dir.resolve()
    for source in (images_dir, annotations_path):
        if source.resolve() == resolved or resolved in source.resolve().parents:
            raise InputError(f"{out_dir}: the output folder holds the input {source}; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir}: folder exists and is not empty; use --overwrite to replace it")


def _check_window_options(window_seconds, s_per_px, calibration_csv, strips):
    if window_seconds is not None and strips:
        raise InputError("--window-seconds cuts training windows; the refiner's --strips have a fixed size")
    if window_seconds is not None and not float(window_seconds) > 0:
        raise InputError(f"--window-seconds must be a positive number of seconds, got {window_seconds}")
    if s_per_px is not None and calibration_csv is not None:
        raise InputError("--s-per-px and --calibration both set the time calibration; give one")


def _calibrations(annotations, s_per_px, calibration_csv):
    """{recording: Calibration} for every annotated recording (image files; a DICOM's own wins)."""
    if calibration_csv is None:
        calibration = calibration_from_options(s_per_px=s_per_px)
        return {name: calibration for name in annotations}
    table = read_calibration_csv(calibration_csv)
    missing = sorted(set(annotations) - set(table))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(f"{calibration_csv}: no calibration for recording(s) {', '.join(missing[:3])}{more}")
    return {name: table[name] for name in annotations}


def _checked_annotations(annotations_path, recordings, images_dir):
    """Read the annotations and check what needs no image: known recordings, both traces, >= 2 points."""
    annotations = read_annotations(annotations_path)
    unknown = sorted(set(annotations) - set(recordings))
    if unknown:
        raise InputError(f"{annotations_path}: recording(s) {', '.join(unknown)} not found in {images_dir}")
    for name, traces in annotations.items():
        try:
            check_traces(name, traces)
        except InputError as error:
            raise InputError(f"{annotations_path}: {error}") from error
    return annotations


def _plan_recording(recording, traces, annotations_path, stride, strips=False, window_seconds=None):
    """Check one recording's annotation against its image -> the summary entry (span, window size and count)."""
    height, width = recording.image.shape
    try:
        _, _, span = annotation_traces(recording.name, traces, (height, width))
    except InputError as error:
        raise InputError(f"{annotations_path}: {error}") from error
    if strips:
        side = columns = STRIP_COLUMNS
        step = STRIP_COLUMNS if stride is None else int(stride)
        count = strip_count(span, step)
    else:
        side, columns = window_size(height, width, _window_columns(recording, window_seconds))
        step = default_stride(columns) if stride is None else int(stride)
        count = len(window_starts(span, columns, step))
    return {
        "file": recording.path.name,
        "height_px": height,
        "width_px": width,
        "span": [span[0], span[1]],
        "side_px": side,
        "window_columns": columns,
        "stride_px": step,
        "windows": count,
        "mm_per_px": recording.calibration.mm_per_px,
        "s_per_px": recording.calibration.s_per_px,
        "calibration_source": recording.calibration.source,
    }


def _window_columns(recording, window_seconds):
    """Columns of `recording` that span `window_seconds` (None: square windows); InputError when too few."""
    if window_seconds is None:
        return None
    columns = columns_spanning(window_seconds, recording.calibration.s_per_px)
    if columns < MIN_WINDOW_COLUMNS:
        raise InputError(f"{recording.path}: --window-seconds {window_seconds} spans {columns} columns at "
                         f"{recording.calibration.s_per_px:g} s/px; a window needs at least {MIN_WINDOW_COLUMNS}")
    return columns


def _write_windows(folder, plan, recordings, annotations, stride, summary, progress, calibrations):
    for name in tqdm(sorted(plan), desc="writing", unit="recording", disable=not progress):
        recording = read_recording(recordings[name], calibrations[name], summary["crop"])
        mask, span = annotation_mask(name, annotations[name], recording.image.shape)
        part = folder / plan[name]["part"] if plan[name]["part"] else folder
        columns = plan[name]["window_columns"] if summary["window_s"] is not None else None
        for window in cut_windows(recording.image, mask, span, stride, columns):
            write_png(part / "img" / window_name(name, window.index), window.image)
            write_png(part / "mask" / window_name(name, window.index), window.mask * np.uint8(255))
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def _write_strips(folder, plan, recordings, annotations, stride, summary, progress, calibrations, guide=None):
    """Perturbed strips of every recording, then with `guide` = (net, input size, ms per column) the strips
    along the network's borders, found at the network's time scale as `test.py` finds them; the guide counts
    go into `summary` before it is written."""
    if guide is not None:
        from mmode.analysis import segment_borders  # torch: only when a guide model is used
        from mmode.inference import time_stretch

        net, img_size, guide_ms_per_column = guide
    for name in tqdm(sorted(plan), desc="writing", unit="recording", disable=not progress):
        recording = read_recording(recordings[name], calibrations[name], summary["crop"])
        upper_px, lower_px, span = annotation_traces(name, annotations[name], recording.image.shape)
        part = folder / plan[name]["part"] if plan[name]["part"] else folder
        rng = recording_rng(summary["seed"], name)
        zoom = strip_zoom(recording.calibration.mm_per_px)  # as the refiner will read this recording
        plan[name]["strip_zoom"] = zoom
        strips = cut_strips(rng, recording.image, upper_px, lower_px, span, plan[name]["stride_px"], zoom=zoom)
        if guide is not None:
            stretch = time_stretch(recording.image.shape[0], recording.calibration.s_per_px, img_size,
                                   guide_ms_per_column)
            _, *guides_px = segment_borders(net, recording.image, img_size, stretch=stretch)
            along = cut_guide_strips(recording_rng(summary["seed"], name, stream=1), recording.image, guides_px,
                                     upper_px, lower_px, span, summary["guide_stride_px"],
                                     easy_fraction=summary["guide_easy_fraction"], zoom=zoom)
            plan[name].update(guide_strips=len(along), hard_strips=sum(hard for *_, hard in along))
            plan[name]["windows"] += len(along)
            strips += [(strip, mask) for strip, mask, _ in along]
        for index, (strip, mask) in enumerate(strips):
            write_png(part / "img" / window_name(name, index), strip)
            write_png(part / "mask" / window_name(name, index), mask * np.uint8(255))
    if guide is not None:
        for key in ("guide_strips", "hard_strips"):
            summary[key] = sum(entry[key] for entry in plan.values())
        summary["windows"] = sum(entry["windows"] for entry in plan.values())
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def load_guide_model(path):
    """(net, input (rows, columns), ms per network column or None for the height rule) of the segmentation
    checkpoint at `path` whose borders guide strips; InputError for a missing or foreign file, a border
    refiner, or an input size not a multiple of 16."""
    from mmode.checkpoint import input_shape, load_model, ms_per_column
    from mmode.refine import check_segmentation

    net, checkpoint = load_model(path)
    check_segmentation(checkpoint, path)
    rows, columns = input_shape(checkpoint)
    if rows % 16 or columns % 16:
        raise InputError(f"{path}: its input size {rows} x {columns} px is not a multiple of 16")
    return net, (rows, columns), ms_per_column(checkpoint)


def _guide_summary(guide, guide_model, guide_stride, guide_easy_fraction):
    easy_fraction = EASY_FRACTION if guide_easy_fraction is None else float(guide_easy_fraction)
    return {"guide_model": str(guide_model), "guide_ms_per_column": guide[2],
            "guide_stride_px": int(guide_stride or GUIDE_STRIDE_PX),
            "guide_hard_error_px": HARD_ERROR_PX, "guide_easy_fraction": easy_fraction}


def _write_atomically(out_dir, write):
    """Call write(temporary folder) and rename it to `out_dir`; on any failure remove it and keep `out_dir`."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o777 & ~umask)  # mkdtemp's 0700 would make the data set private
        write(partial)
        if out_dir.exists():
            previous = partial.with_name(partial.name.replace(".partial", ".old"))
            os.replace(out_dir, previous)
            os.replace(partial, out_dir)
            shutil.rmtree(previous)
        else:
            os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _log_summary(out_dir, summary):
    log.info("%s: %d recordings, %d windows, %d columns covered", out_dir, summary["recordings"],
             summary["windows"], summary["columns_covered"])
    if summary["split_pct"] is not None:
        for part in ("train", "test"):
            entries = [entry for entry in summary["per_recording"].values() if entry["part"] == part]
            log.info("  %s: %d recordings, %d windows", part, len(entries), sum(e["windows"] for e in entries))
    if "guide_strips" in summary:
        log.info("  %d of the strips along %s's borders, %d of them where it strays over %g rows",
                 summary["guide_strips"], summary["guide_model"], summary["hard_strips"],
                 summary["guide_hard_error_px"])
    for name, reason in sorted(summary["skipped"].items()):
        log.info("  skipped %s: %s", name, reason)
