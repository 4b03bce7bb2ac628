"""Reading the annotated upper and lower inner-diameter traces of long M-mode recordings.

Two formats, both in pixel coordinates of the long image (x = column = time, y = row = depth; a pixel's
centre is at whole numbers, as in the mask rule):

* CSV with the header `image,trace,x,y`: one clicked point per line, `image` the recording's file stem
  (a file name such as `rec1.png` is accepted too), `trace` `upper` or `lower`.
* LabelMe JSON: shapes labelled `upper` / `lower` of type linestrip, line, points or point (several shapes
  with one label are joined); the recording is the stem of `imagePath`, or of the JSON file when that is empty.
  LabelMe writes one JSON per image, so `--annotations` may also be a folder of them.

`read_annotations` returns the points as given; `check_traces` applies the rules (both traces, at least two
points each, one y per x, inside the image) and returns them sorted by x.

A calibration CSV (`read_calibration_csv`, header `image,mm_per_px,s_per_px`, what `preprocess simulate`
writes as `calibration.csv`) gives each recording's pixel size, for image files that carry none.
"""
import csv
import json
import logging
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from mmode.calibration import Calibration
from mmode.errors import InputError
from mmode.io import RECORDING_SUFFIXES

log = logging.getLogger(__name__)

TRACES = ("upper", "lower")
CSV_COLUMNS = ("image", "trace", "x", "y")
CALIBRATION_COLUMNS = ("image", "mm_per_px", "s_per_px")
MEASUREMENT_COLUMNS = ("image", "lvid_d_mm", "lvid_s_mm")  # a lab's caliper measurements, one row per beat
MEASUREMENT_OPTIONAL = ("t_ed_s", "hr_bpm")
STRETCH_COLUMNS = ("image", "start_s", "end_s")  # test.py --time CSV: the stretch of each recording to analyse
LABELME_SHAPE_TYPES = ("linestrip", "line", "points", "point")


def read_annotations(path):
    """Read a CSV, a LabelMe JSON or a folder of them.

    Returns {recording stem: {"upper" | "lower": (x float array, y float array)}} with the points in
    file order. Format errors -> InputError naming the file (and line); a recording annotated in two
    files -> InputError naming both.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".json"))
        if not files:
            raise InputError(f"{path}: no .csv or .json annotation files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{path}: annotation file not found")
    annotations, origin = {}, {}
    for file in files:
        for name, traces in _read_annotation_file(file).items():
            if name in annotations:
                raise InputError(f"{file}: recording {name} is annotated in {origin[name]} too")
            annotations[name], origin[name] = traces, file
    return annotations


def _read_annotation_file(path):
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv_annotations(path)
    if suffix == ".json":
        return read_labelme_annotations(path)
    raise InputError(f"{path}: unknown annotation format '{path.suffix}', expected .csv or LabelMe .json")


def recording_stem(value):
    """The recording name an annotation refers to: a bare stem, or the stem of a file name or path."""
    value = value.strip()
    name = (PureWindowsPath(value) if "\\" in value else PurePosixPath(value)).name
    return Path(name).stem if Path(name).suffix.lower() in RECORDING_SUFFIXES else name


def _csv_rows(path, columns, optional=()):
    """The rows of the CSV at `path` as (where, {column: text}) for `columns` and those of `optional` the header
    has, `where` naming file and line; empty rows skipped. InputError for a header without one of `columns` or
    a row shorter than the header; an unreadable file -> InputError "not a readable CSV file"."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=_delimiter(file.readline()))
            file.seek(0)
            header = [column.strip().lower() for column in next(reader, [])]
            missing = [column for column in columns if column not in header]
            if missing:
                raise InputError(f"{path}: CSV header lacks column(s) {', '.join(missing)} "
                                 f"(expected {','.join(columns)})")
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                where = f"{path} line {reader.line_num}"
                if len(row) < len(header):
                    raise InputError(f"{where}: {len(row)} values, the header has {len(header)}")
                yield where, {column: row[header.index(column)] for column in (*columns, *optional)
                              if column in header}
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: not a readable CSV file ({error})") from error


def _delimiter(header_line):
    """The separator of a CSV file from its header line: a comma, or where the header holds none a semicolon or a
    tab (what a spreadsheet set to a decimal comma writes)."""
    if "," not in header_line:
        for separator in (";", "\t"):
            if separator in header_line:
                return separator
    return ","


def _row_recording(row, where):
    name = recording_stem(row["image"])
    if not name:
        raise InputError(f"{where}: empty image name")
    return name


def read_csv_annotations(path):
    """Read an `image,trace,x,y` CSV -> {recording: {trace: (x array, y array)}}."""
    path = Path(path)
    points = {}
    for where, row in _csv_rows(path, CSV_COLUMNS):
        trace = _trace_name(row["trace"], where)
        x, y = (_number(row[axis], axis, where) for axis in ("x", "y"))
        points.setdefault(_row_recording(row, where), {}).setdefault(trace, []).append((x, y))
    if not points:
        raise InputError(f"{path}: no annotated points")
    return {name: {trace: _as_arrays(clicks) for trace, clicks in traces.items()}
            for name, traces in points.items()}


def read_calibration_csv(path):
    """Read an `image,mm_per_px,s_per_px` CSV -> {recording: Calibration (source "user", origin the CSV's path)}.

    InputError naming the file (and line) for a missing or unreadable file, a missing column, a value that is
    not a positive number, or a recording listed twice.
    """
    calibrations = {}
    for where, name, row in _one_row_per_recording(path, CALIBRATION_COLUMNS, "calibration"):
        sizes = [_number(row[column], column, where) for column in CALIBRATION_COLUMNS[1:]]
        if not all(np.isfinite(size) and size > 0 for size in sizes):
            raise InputError(f"{where}: mm_per_px and s_per_px must be positive, got {sizes[0]:g} and {sizes[1]:g}")
        calibrations[name] = Calibration(*sizes, source="user", origin=str(path))
    return calibrations


def read_stretches_csv(path):
    """Read an `image,start_s,end_s` CSV (test.py --time) -> {recording: (start_s, end_s or None)}, s from the
    recording's first column; an empty end_s runs to the recording's end.

    InputError naming the file (and line) for a missing file or column, a value that is not a number, a start
    below 0 or an end not after it, or a recording listed twice.
    """
    stretches = {}
    for where, name, row in _one_row_per_recording(path, STRETCH_COLUMNS, "stretches"):
        start_s = _number(row["start_s"], "start_s", where)
        end_s = _number(row["end_s"], "end_s", where) if row["end_s"].strip() else None
        if not (np.isfinite(start_s) and start_s >= 0) or (end_s is not None and not end_s > start_s):
            raise InputError(f"{where}: the stretch must start at 0 s or later and end after it, got start_s "
                             f"{row['start_s'].strip()}, end_s {row['end_s'].strip() or '(the end)'}")
        stretches[name] = (start_s, end_s)
    return stretches


def _one_row_per_recording(path, columns, what):
    """(where, recording, row) for each row of a per-recording CSV at `path` with `columns`; InputError for a
    missing file (named as `what` file), a recording listed twice or no rows at all."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    seen = set()
    for where, row in _csv_rows(path, columns):
        name = _row_recording(row, where)
        if name in seen:
            raise InputError(f"{where}: recording {name} is listed twice")
        seen.add(name)
        yield where, name, row
    if not seen:
        raise InputError(f"{path}: no recordings listed")


def read_measurements_csv(path):
    """Read a lab's manual per-beat measurements: a CSV `image,lvid_d_mm,lvid_s_mm` with optional `t_ed_s` (the
    beat's end-diastole, s from the recording's first column; lets beats be paired) and `hr_bpm` (the beat's
    rate) -> {recording: [beat dicts with lvid_d_mm, lvid_s_mm and, where given, t_ed_s and rr_s = 60 / hr]}.

    InputError naming the file and line for a missing column, a value that is not a number, LVIDs not
    below LVIDd, or a negative time."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: measurements file not found")
    beats = {}
    for where, row in _csv_rows(path, MEASUREMENT_COLUMNS, MEASUREMENT_OPTIONAL):
        beat = {column: _number(row[column], column, where) for column in MEASUREMENT_COLUMNS[1:]}
        if not (np.isfinite(beat["lvid_d_mm"]) and 0 < beat["lvid_s_mm"] < beat["lvid_d_mm"]):
            raise InputError(f"{where}: LVIDs must be positive and below LVIDd, got {beat['lvid_s_mm']:g} and "
                             f"{beat['lvid_d_mm']:g} mm")
        if row.get("t_ed_s", "").strip():
            beat["t_ed_s"] = _number(row["t_ed_s"], "t_ed_s", where)
            if beat["t_ed_s"] < 0:
                raise InputError(f"{where}: t_ed_s must not be negative, got {beat['t_ed_s']:g}")
        if row.get("hr_bpm", "").strip():
            hr_bpm = _number(row["hr_bpm"], "hr_bpm", where)
            if not hr_bpm > 0:
                raise InputError(f"{where}: hr_bpm must be positive, got {hr_bpm:g}")
            beat["rr_s"] = 60.0 / hr_bpm
        beats.setdefault(_row_recording(row, where), []).append(beat)
    if not beats:
        raise InputError(f"{path}: no measured beats")
    return beats


def read_labelme_annotations(path):
    """Read one LabelMe JSON -> {recording: {trace: (x array, y array)}} (one recording)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("shapes"), list):
        raise InputError(f"{path}: not a LabelMe annotation (no 'shapes' list)")
    name = recording_stem(document.get("imagePath") or "") or path.stem
    points, ignored = {}, set()
    for number, shape in enumerate(document["shapes"]):
        where = f"{path} shape {number}"
        if not isinstance(shape, dict):
            raise InputError(f"{where}: not a LabelMe shape")
        label = str(shape.get("label", "")).strip().lower()
        if label not in TRACES:
            ignored.add(label)
            continue
        shape_type = str(shape.get("shape_type") or "polygon").lower()
        if shape_type not in LABELME_SHAPE_TYPES:
            raise InputError(f"{where}: the {label} trace is a {shape_type}, expected one of "
                             f"{', '.join(LABELME_SHAPE_TYPES)}")
        try:
            clicks = [(float(x), float(y)) for x, y in shape.get("points", [])]
        except (TypeError, ValueError) as error:
            raise InputError(f"{where}: points are not [x, y] number pairs") from error
        points.setdefault(label, []).extend(clicks)
    if ignored:
        log.warning("%s: ignoring shapes labelled %s (only upper and lower are traces)",
                    path, ", ".join(repr(label) for label in sorted(ignored)))
    if not points:
        raise InputError(f"{path}: no shapes labelled upper or lower")
    return {name: {trace: _as_arrays(clicks) for trace, clicks in points.items()}}


def check_traces(name, traces, shape=None):
    """Apply the annotation rules to one recording's traces; returns {trace: (x, y)} sorted by x.

    Rules: both traces present; at least two points each; one y per x (exact repeats of a click are
    dropped); with `shape` = (height, width) of the image, every point inside it
    (-0.5 <= x <= width - 0.5, -0.5 <= y <= height - 0.5). A broken rule -> InputError naming the recording.
    """
    checked = {}
    for trace in TRACES:
        if trace not in traces:
            raise InputError(f"recording {name}: no {trace} trace annotated")
        xs, ys = (np.asarray(values, dtype=np.float64) for values in traces[trace])
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise InputError(f"recording {name}: the {trace} trace has a point that is not a finite number")
        unique = np.unique(np.stack([xs, ys], axis=1), axis=0)
        xs, ys = unique[:, 0], unique[:, 1]
        if len(xs) < 2:
            raise InputError(f"recording {name}: the {trace} trace has {len(xs)} point(s), at least 2 are needed")
        repeated = xs[1:][np.diff(xs) == 0]
        if repeated.size:
            raise InputError(f"recording {name}: the {trace} trace has two different y at x={repeated[0]:g}")
        if shape is not None:
            _check_inside(name, trace, xs, ys, shape)
        checked[trace] = (xs, ys)
    return checked


def crop_traces(name, traces, box, found=False):
    """One recording's traces {trace: (x, y)} in the coordinates of its image cut to `box` = (left, top, right,
    bottom), right and bottom exclusive (`mmode.io.crop_recording`): x - left, y - top. A point outside the box
    -> InputError naming the recording, the trace and the point as annotated, and the box as given or, `found`, as
    `--crop auto` found it."""
    left, top, right, bottom = box
    cropped = {}
    for trace, (xs, ys) in traces.items():
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        outside = (xs < left - 0.5) | (xs > right - 0.5) | (ys < top - 0.5) | (ys > bottom - 0.5)
        if outside.any():
            first = int(np.argmax(outside))
            where = "the panel --crop auto found," if found else "--crop"
            raise InputError(f"recording {name}: the {trace} trace has {int(outside.sum())} point(s) outside "
                             f"{where} {left},{top},{right},{bottom}, e.g. x={xs[first]:g}, y={ys[first]:g}")
        cropped[trace] = (xs - left, ys - top)
    return cropped


def _check_inside(name, trace, xs, ys, shape):
    height, width = shape
    outside = (xs < -0.5) | (xs > width - 0.5) | (ys < -0.5) | (ys > height - 0.5)
    if outside.any():
        first = int(np.argmax(outside))
        raise InputError(f"recording {name}: the {trace} trace has {int(outside.sum())} point(s) outside the "
                         f"{width}x{height} image, e.g. x={xs[first]:g}, y={ys[first]:g}")


def _trace_name(value, where):
    trace = value.strip().lower()
    if trace not in TRACES:
        raise InputError(f"{where}: trace '{value}' is not upper or lower")
    return trace


def _number(value, axis, where):
    """A CSV cell as a float; a decimal comma (`0,0115`, a spreadsheet in a European locale) reads as a point."""
    text = value.strip()
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: {axis} '{value}' is not a number") from None


def _as_arrays(clicks):
    array = np.asarray(clicks, dtype=np.float64).reshape(-1, 2)
    return array[:, 0], array[:, 1]
