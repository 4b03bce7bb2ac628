"""Cavity borders a user traced (`test.py --borders FILE`), measured as the network's are, the network not run.

FILE holds the traces in a training annotation format (`preprocess.annotations`: a CSV `image,trace,x,y`, a LabelMe
JSON, or a folder of them), points in the pixels of the image as read (a DICOM's M-mode region, its frames
stitched), as `preprocess build` reads them. Between its points a trace is interpolated as a training mask's is
(PCHIP); columns outside a trace's points have no cavity. With `--crop` and `--time` the traces are cut to the box
and stretch analysed, so one file serves every way of cutting a recording.

Uses: a recording whose borders the network misread, traced again by hand and measured with the same beat rules,
medians and output files as the rest of a study; a lab's own traces measured alongside the model's readings.
"""
import numpy as np

from mmode.errors import InputError


def read_borders(path):
    """{recording stem: {"upper" | "lower": (x array, y array)}} from the annotation file or folder at `path`;
    InputError naming the file when it cannot be read or lists no recording."""
    from preprocess.annotations import read_annotations

    traces = read_annotations(path)
    if not traces:
        raise InputError(f"{path}: --borders lists no recording's traces")
    return traces


def traced_borders(recording, traces, origin):
    """(upper_px, lower_px), float (W,) rows of `recording`'s image as analysed (after --crop and --time), NaN where
    no trace covers a column, from its `traces` in the pixels of the image as read; `origin` the file they came from,
    for messages. InputError naming the file and the recording when a trace has too few points, two rows at one
    column, runs outside the box analysed, crosses the other, or when the two share no analysed column."""
    from preprocess.annotations import check_traces
    from preprocess.masks import interpolate_trace

    where = f"{origin}: recording {recording.name}"
    try:
        checked = check_traces(recording.name, traces)
    except InputError as error:
        raise InputError(f"{origin}: {error}") from None
    left, top, right, bottom = recording.analysed_box
    upper_px, lower_px = (interpolate_trace(*checked[trace], right)[left:] - top for trace in ("upper", "lower"))
    height = bottom - top
    for trace, rows in (("upper", upper_px), ("lower", lower_px)):
        outside = np.flatnonzero((rows < -0.5) | (rows > height - 0.5))
        if outside.size:
            raise InputError(f"{where}: the {trace} trace runs outside rows {top}..{bottom - 1} of the image analysed "
                             f"at {outside.size} column(s), first at x={left + outside[0]}")
    covered = np.isfinite(upper_px) & np.isfinite(lower_px)
    if not covered.any():
        raise InputError(f"{where}: the upper and lower traces share none of the columns analysed, "
                         f"x {left}..{right - 1}")
    crossed = np.flatnonzero(covered & (lower_px < upper_px))
    if crossed.size:
        raise InputError(f"{where}: the lower trace lies above the upper trace at {crossed.size} column(s), first at "
                         f"x={left + crossed[0]}")
    return np.where(covered, upper_px, np.nan), np.where(covered, lower_px, np.nan)
