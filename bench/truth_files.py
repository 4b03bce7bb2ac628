"""Recordings on disk with their truth, for `bench/accuracy.py --recordings DIR`.

A lab's annotated recordings, or another generator's output, measured the way the bench measures the
simulators' recordings. Each recording file in DIR (PNG, DICOM, ... as `test.py` reads them) takes its truth from

1. `DIR/truth/<stem>.json`, the simulators' truth format (README "Truth"): `upper_px`, `lower_px` per column
   (null where there is no truth), and optionally `beats` (`t_ed_s`, `lvid_d_mm`, `lvid_s_mm`, optional `rr_s`
   and `visible`; without them, the beats `test.py`'s detector finds on the truth's LVID curve, as for
   annotations below), `lost_contact_columns`, `condition`, `mm_per_px`, `s_per_px`; or else
1b. `DIR/truth/<stem>.png`, a truth mask of the recording's size in DESIGN.md's rule (cavity 1 or 255 strictly
   between the two traces, 0 elsewhere; a column without cavity has no truth): the borders are read off it as
   `test.py` reads a predicted mask (`mmode.measure.cavity_borders_px`: each run's pixel edges, so LVID is the
   run's length, whole rows), the beats found on that LVID curve as for annotations; or else
2. its annotated traces (`--annotations`, default `DIR/annotations.csv`; the CSV or LabelMe formats of
   `preprocess build`), interpolated as `preprocess build` makes masks of them. The truth is then the annotated
   span only, and the truth beats are those `test.py`'s beat detector finds on the annotated LVID curve, whole
   inside the span, with the same formulas: the model's curve and the annotator's are measured by one rule; or
3. a lab's caliper measurements of single beats (`--measurements`, default `DIR/measurements.csv`: `image,
   lvid_d_mm,lvid_s_mm`, optional `t_ed_s` and `hr_bpm`; `preprocess.annotations.read_measurements_csv`). No
   borders, so no per-column errors or window Dice; the per-recording errors compare the tool's medians with
   the medians of the measured beats, and beats with a `t_ed_s` are paired with detected ones for per-beat
   errors. Detected beats no measured beat pairs with are not counted as extra (a lab measures a few).

Screenshots: `--crop` cuts each recording and its truth to the M-mode panel as `test.py --crop` does (`--crop auto`:
to the panel found in each); the truth stays in the uncut image's pixels (`load_truth`, `crop_truth`).

Calibration: a DICOM's own wins (as in `test.py`); else the calibration CSV (`--calibration`, default
`DIR/calibration.csv`); else the truth JSON's; else the seed's defaults, with a warning.
"""
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmode.calibration import Calibration
from mmode.errors import InputError
from mmode.cli import AUTO_CROP
from mmode.io import (RECORDING_SUFFIXES, check_crop, crop_recording, crop_to_panel, is_dicom_file, read_recording,
                      recording_files, recording_name)

log = logging.getLogger("accuracy")

TRUTH_DIR = "truth"
ANNOTATIONS_FILE = "annotations.csv"
CALIBRATION_FILE = "calibration.csv"
MEASUREMENTS_FILE = "measurements.csv"
BEAT_KEYS = {"t_ed_s", "lvid_d_mm", "lvid_s_mm"}  # what a truth JSON's beat needs (rr_s, visible optional)
MASK_SUFFIX = ".png"  # a truth mask beside (instead of) a truth JSON: DIR/truth/<stem>.png


@dataclass
class FileTruth:
    """A recording read from disk and its truth, with the attributes of `preprocess.simulate.SimulatedRecording`
    that the bench reads. `scored_span`: [start, stop) columns the truth covers (annotations), None for all;
    detected beats outside it are not counted as extra."""

    image: np.ndarray
    upper_px: np.ndarray
    lower_px: np.ndarray
    mm_per_px: float
    s_per_px: float
    beats: list
    lost_contact: np.ndarray
    name: str
    condition: str
    path: Path
    scored_span: tuple = None
    artefacts: list = field(default_factory=list)

    @property
    def lvid_mm(self):
        """Inner diameter (mm) per column, NaN where the truth has none."""
        return (self.lower_px - self.upper_px) * self.mm_per_px


def folder_recordings(folder):
    """The recording files of `folder` (sorted); InputError when it is missing, holds none, or holds two of
    one name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: recordings folder not found")
    files = recording_files(folder, collision="one truth would serve both")
    if not files:
        raise InputError(f"{folder}: no recordings ({', '.join(sorted(RECORDING_SUFFIXES))}) in this folder")
    return files


@dataclass
class TruthSources:
    """What `truth_sources` found: the recording `files` with truth, and the `annotations` ({stem: traces}),
    `calibrations` ({stem: Calibration}) and `measurements` ({stem: [beats]}) read for them."""

    files: list
    annotations: dict
    calibrations: dict
    measurements: dict


def truth_sources(folder, annotations_path=None, calibration_path=None, measurements_path=None):
    """Which recordings of `folder` have truth, before any image is read.

    Returns TruthSources: the recording files with a truth JSON, annotated traces or measured beats, and the
    annotations, calibrations and measurements read. A recording with none
    is skipped with a warning; InputError when none is left, when an annotated or measured recording has no
    file in `folder`, or for an unreadable annotation, calibration or measurements file (named)."""
    from preprocess.annotations import read_annotations, read_calibration_csv, read_measurements_csv

    folder = Path(folder)
    files = folder_recordings(folder)
    annotations_path = _given_or_beside(annotations_path, folder / ANNOTATIONS_FILE)
    annotations = read_annotations(annotations_path) if annotations_path is not None else {}
    calibration_path = _given_or_beside(calibration_path, folder / CALIBRATION_FILE)
    calibrations = read_calibration_csv(calibration_path) if calibration_path is not None else {}
    measurements_path = _given_or_beside(measurements_path, folder / MEASUREMENTS_FILE)
    measurements = read_measurements_csv(measurements_path) if measurements_path is not None else {}
    stems = {recording_name(path) for path in files}
    for source, named in ((annotations_path, annotations), (measurements_path, measurements)):
        missing = sorted(set(named) - stems)
        if missing:
            raise InputError(f"{source}: recording {missing[0]} is listed but {folder} has no file of it"
                             + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""))
    with_truth = []
    for path in files:
        name = recording_name(path)
        has_file = any((folder / TRUTH_DIR / f"{name}{suffix}").is_file() for suffix in (".json", MASK_SUFFIX))
        if has_file or name in annotations or name in measurements:
            with_truth.append(path)
        else:
            log.warning("%s: no %s/%s.json or .png, annotated traces or measured beats; left out", path, TRUTH_DIR,
                        name)
    if not with_truth:
        raise InputError(f"{folder}: none of its {len(files)} recordings has a {TRUTH_DIR}/<name>.json or a truth "
                         f"mask {TRUTH_DIR}/<name>.png, annotated traces (--annotations, default "
                         f"{folder / ANNOTATIONS_FILE}) or measured beats (--measurements, default "
                         f"{folder / MEASUREMENTS_FILE})")
    return TruthSources(with_truth, annotations, calibrations, measurements)


def _given_or_beside(path, default):
    """`path` if given, else `default` where that file exists, else None."""
    if path is not None:
        return path
    return default if default.is_file() else None


def load_truth(path, sources, crop=None):
    """The FileTruth of recording `path`, from its truth JSON, else its truth mask, else its annotated traces, else
    its measured beats (`sources`: TruthSources); with `crop` (left, top, right, bottom), cut to that box as
    `test.py --crop` cuts the recording, the truth given in the uncut image's pixels (annotated points outside it
    are refused); with AUTO_CROP, to the panel found in the recording (`mmode.io.crop_to_panel`)."""
    name = recording_name(path)
    json_path = path.parent / TRUTH_DIR / f"{name}.json"
    truth = _read_json(json_path) if json_path.is_file() else None
    calibration = sources.calibrations.get(name)
    if calibration is None and truth is not None and "mm_per_px" in truth and "s_per_px" in truth:
        calibration = Calibration(float(truth["mm_per_px"]), float(truth["s_per_px"]), source="user")
    if calibration is None and not is_dicom_file(path):
        log.warning("%s: no calibration in the calibration CSV or a truth JSON; using the seed's defaults", path)
    recording = read_recording(path, calibration)
    if crop == AUTO_CROP:
        crop = crop_to_panel(recording).crop  # None where the panel is the whole image
    mask_path = path.parent / TRUTH_DIR / f"{name}{MASK_SUFFIX}"
    if truth is not None:
        file_truth = _json_truth(recording, truth, json_path)
    elif mask_path.is_file():
        file_truth = _mask_truth(recording, mask_path)
    elif name in sources.annotations:
        traces = sources.annotations[name]
        if crop is None:
            return _annotated_truth(recording, traces)
        # the traces are cut first, so the truth beats are found on the panel, as test.py finds the model's
        from preprocess.annotations import crop_traces

        return _annotated_truth(crop_recording(recording, crop), crop_traces(name, traces, crop))
    else:
        file_truth = _measured_truth(recording, sources.measurements[name])
    return file_truth if crop is None else crop_truth(file_truth, crop)


def crop_truth(truth, box):
    """`truth` (FileTruth) cut to `box` = (left, top, right, bottom) of its image, right and bottom exclusive, as
    `test.py --crop` cuts the recording: borders moved up by `top`, columns and times counted from `left`; beats
    whose end-diastole or end-systole (where timed) lie outside the box are left out, with a warning."""
    left, top, right, bottom = check_crop(truth.path, box, truth.image.shape)
    offset_s, duration_s = left * truth.s_per_px, (right - left) * truth.s_per_px
    beats = []
    for beat in truth.beats:
        times = {key: beat[key] - offset_s for key in ("t_ed_s", "t_es_s") if key in beat}
        if all(0 <= time_s < duration_s for time_s in times.values()):
            beats.append({**beat, **times})
    if len(beats) < len(truth.beats):
        log.warning("%s: %d of its %d truth beats lie outside --crop; left out", truth.path,
                    len(truth.beats) - len(beats), len(truth.beats))
    span = None
    if truth.scored_span is not None:
        span = tuple(int(np.clip(column - left, 0, right - left)) for column in truth.scored_span)
    return replace(truth, image=truth.image[top:bottom, left:right], upper_px=truth.upper_px[left:right] - top,
                   lower_px=truth.lower_px[left:right] - top, lost_contact=truth.lost_contact[left:right],
                   beats=beats, scored_span=span)


def _read_json(path):
    try:
        truth = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable truth JSON ({error})") from None
    if not isinstance(truth, dict):
        raise InputError(f"{path}: a truth JSON is an object with upper_px and lower_px")
    missing = [key for key in ("upper_px", "lower_px") if key not in truth]
    if missing:
        raise InputError(f"{path}: a truth JSON needs {', '.join(missing)}")
    for key in ("mm_per_px", "s_per_px"):
        if key in truth and not (isinstance(truth[key], (int, float)) and truth[key] > 0):
            raise InputError(f"{path}: {key} must be a positive number, got {truth[key]!r}")
    beats = truth.get("beats", [])
    if not isinstance(beats, list) or not all(isinstance(beat, dict) and BEAT_KEYS <= set(beat) for beat in beats):
        raise InputError(f"{path}: beats must be a list of objects with {', '.join(sorted(BEAT_KEYS))}")
    return truth


def _json_truth(recording, truth, json_path):
    width = recording.image.shape[1]
    try:
        upper_px = np.asarray(truth["upper_px"], dtype=float)
        lower_px = np.asarray(truth["lower_px"], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{json_path}: upper_px and lower_px must be lists of numbers (null: no truth)") from None
    if upper_px.shape != (width,) or lower_px.shape != (width,):
        raise InputError(f"{json_path}: upper_px and lower_px hold {upper_px.size} and {lower_px.size} columns, "
                         f"the recording {recording.path} {width}")
    lost_contact = np.zeros(width, dtype=bool)
    for start, stop in truth.get("lost_contact_columns", []):
        lost_contact[int(start):int(stop)] = True
    lost_contact |= ~(np.isfinite(upper_px) & np.isfinite(lower_px))
    calibration = recording.calibration
    if "beats" in truth:
        beats = list(truth["beats"])
    else:
        beats = detected_beats(np.where(lost_contact, np.nan, lower_px - upper_px) * calibration.mm_per_px,
                               calibration.s_per_px, ~lost_contact)
    return FileTruth(recording.image, upper_px, lower_px, calibration.mm_per_px, calibration.s_per_px,
                     beats, lost_contact, recording.name, truth.get("condition", "truth JSON"),
                     recording.path, artefacts=list(truth.get("artefacts", [])))


def _mask_truth(recording, mask_path):
    """Truth read off a mask: InputError naming it when it is not the recording's size or not binary."""
    from mmode.io import read_image
    from mmode.measure import cavity_borders_px

    mask = read_image(mask_path)
    if mask.shape != recording.image.shape:
        raise InputError(f"{mask_path}: a truth mask of {mask.shape[0]} x {mask.shape[1]} px for a recording of "
                         f"{recording.image.shape[0]} x {recording.image.shape[1]} ({recording.path})")
    levels = np.unique(mask)
    if levels.size != 2 or levels[0] != 0:
        shown = ", ".join(str(level) for level in levels[:6]) + (", ..." if levels.size > 6 else "")
        raise InputError(f"{mask_path}: a truth mask holds 0 (tissue) and one other grey (cavity: 1 or 255), "
                         f"not {shown}")
    upper_px, lower_px = cavity_borders_px(mask)
    calibration = recording.calibration
    known = np.isfinite(upper_px) & np.isfinite(lower_px)
    beats = detected_beats((lower_px - upper_px) * calibration.mm_per_px, calibration.s_per_px, known)
    return FileTruth(recording.image, upper_px, lower_px, calibration.mm_per_px, calibration.s_per_px, beats,
                     ~known, recording.name, "truth mask", recording.path)


def detected_beats(lvid_mm, s_per_px, known):
    """Truth beats of an LVID curve (mm per column, NaN where unknown), found by `test.py`'s detector and
    measured by its rules: dicts `t_ed_s`, `t_es_s`, `lvid_d_mm`, `lvid_s_mm`, `rr_s` (NaN for the last), for
    the beats whose end-diastole and end-systole both lie in `known` columns (bool)."""
    from mmode.measure import beat_parameters, detect_beats

    beats = detect_beats(lvid_mm, s_per_px)
    parameters = beat_parameters(beats, s_per_px)
    inside = known[beats.ed_index] & known[beats.es_index]
    return [dict(t_ed_s=float(parameters["t_ed_s"][i]), t_es_s=float(parameters["t_es_s"][i]),
                 lvid_d_mm=float(parameters["lvid_d_mm"][i]), lvid_s_mm=float(parameters["lvid_s_mm"][i]),
                 rr_s=float(60.0 / parameters["hr_bpm"][i]))
            for i in np.flatnonzero(inside)]


def _annotated_truth(recording, traces):
    from preprocess.masks import annotation_traces

    upper_px, lower_px, span = annotation_traces(recording.name, traces, recording.image.shape)
    calibration = recording.calibration
    known = np.isfinite(upper_px) & np.isfinite(lower_px)
    beats = detected_beats((lower_px - upper_px) * calibration.mm_per_px, calibration.s_per_px, known)
    return FileTruth(recording.image, upper_px, lower_px, calibration.mm_per_px, calibration.s_per_px,
                     beats, ~known, recording.name, "annotated", recording.path, scored_span=span)


def _measured_truth(recording, beats):
    """Measured beats only: no borders (every column without truth), and an empty scored span, so only the
    detected beats paired with a measured one count."""
    width = recording.image.shape[1]
    nothing = np.full(width, np.nan)
    calibration = recording.calibration
    # a beat without a rate is not compared on HR (measured beats need not follow one another)
    beats = [dict(beat, rr_s=beat.get("rr_s", np.nan)) for beat in beats]
    return FileTruth(recording.image, nothing, nothing.copy(), calibration.mm_per_px, calibration.s_per_px,
                     beats, np.ones(width, dtype=bool), recording.name, "measured", recording.path,
                     scored_span=(0, 0))
