"""Annotated traces -> per-column trace positions -> binary LV-cavity mask.

Interpolation between clicks is monotone piecewise-cubic Hermite (PCHIP, Fritsch-Carlson shape
preservation with Fritsch-Butland slopes, the same rule as scipy's PchipInterpolator, in numpy):
* it passes through every clicked point exactly;
* between two clicks it never leaves the range of their two y values (no overshoot), so a trace never
  bulges past what the annotator clicked, even across the fast ejection and filling phases where a
  natural cubic spline rings;
* unlike straight lines it is smooth (continuous slope), as the walls move, so sparse clicks at
  end-diastole and end-systole don't leave kinks that cut the rounded peaks of the LVID curve.
"""
import numpy as np

from mmode.errors import InputError
from mmode.measure import traces_to_mask  # noqa: F401 (the mask rule lives with its inverse, cavity_borders_px)
from preprocess.annotations import check_traces


def pchip_slopes(xs, ys):
    """Slopes dy/dx at the knots `xs` (strictly increasing) of the PCHIP interpolant through (xs, ys)."""
    widths = np.diff(xs)
    secants = np.diff(ys) / widths
    if len(xs) == 2:
        return np.array([secants[0], secants[0]])
    slopes = np.empty_like(ys, dtype=np.float64)
    weight_left = 2.0 * widths[1:] + widths[:-1]
    weight_right = widths[1:] + 2.0 * widths[:-1]
    same_direction = secants[:-1] * secants[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (weight_left + weight_right) / (weight_left / secants[:-1] + weight_right / secants[1:])
    # A local extremum or a flat neighbour gets slope 0: this is what prevents overshoot.
    slopes[1:-1] = np.where(same_direction, harmonic, 0.0)
    slopes[0] = _end_slope(widths[0], widths[1], secants[0], secants[1])
    slopes[-1] = _end_slope(widths[-1], widths[-2], secants[-1], secants[-2])
    return slopes


def _end_slope(width_end, width_next, secant_end, secant_next):
    """Three-point end slope, limited so the end interval stays monotone."""
    slope = ((2.0 * width_end + width_next) * secant_end - width_end * secant_next) / (width_end + width_next)
    if np.sign(slope) != np.sign(secant_end):
        return 0.0
    if np.sign(secant_end) != np.sign(secant_next) and abs(slope) > 3.0 * abs(secant_end):
        return 3.0 * secant_end
    return slope


def interpolate_trace(xs, ys, width):
    """Trace row position (px, float) at every column 0..width-1 by PCHIP through the clicks (xs, ys).

    `xs` need not be sorted but must hold at least two distinct values, each with one y (ValueError
    otherwise; `check_traces` gives the user-facing error first). Columns outside [min xs, max xs] are NaN.
    """
    order = np.argsort(xs, kind="stable")
    xs = np.asarray(xs, dtype=np.float64)[order]
    ys = np.asarray(ys, dtype=np.float64)[order]
    if len(xs) < 2 or np.any(np.diff(xs) <= 0):
        raise ValueError("interpolate_trace needs at least two points with distinct x")
    columns = np.arange(width, dtype=np.float64)
    inside = (columns >= xs[0]) & (columns <= xs[-1])
    trace_px = np.full(width, np.nan)
    at = columns[inside]
    interval = np.clip(np.searchsorted(xs, at, side="right") - 1, 0, len(xs) - 2)
    step = xs[interval + 1] - xs[interval]
    t = (at - xs[interval]) / step
    slopes = pchip_slopes(xs, ys)
    t2, t3 = t * t, t * t * t
    trace_px[inside] = ((2 * t3 - 3 * t2 + 1) * ys[interval] + (t3 - 2 * t2 + t) * step * slopes[interval]
                        + (-2 * t3 + 3 * t2) * ys[interval + 1] + (t3 - t2) * step * slopes[interval + 1])
    return trace_px


def covered_span(upper_px, lower_px):
    """Columns [start, stop) where both traces are defined, or None when they share no column."""
    covered = np.flatnonzero(np.isfinite(upper_px) & np.isfinite(lower_px))
    if covered.size == 0:
        return None
    return int(covered[0]), int(covered[-1]) + 1


def annotation_traces(name, traces, shape):
    """One recording's annotated traces -> (upper_px, lower_px, span): both interpolated at every column
    (NaN outside their clicks) and the covered span [start, stop).

    Checks the traces (`check_traces`) and refuses a lower trace above the upper one or traces that share
    no column, with an InputError naming the recording `name`.
    """
    width = shape[1]
    checked = check_traces(name, traces, shape)
    upper_px = interpolate_trace(*checked["upper"], width)
    lower_px = interpolate_trace(*checked["lower"], width)
    span = covered_span(upper_px, lower_px)
    if span is None:
        raise InputError(f"recording {name}: the upper and lower traces share no column "
                         f"(upper x {checked['upper'][0][0]:g}..{checked['upper'][0][-1]:g}, "
                         f"lower x {checked['lower'][0][0]:g}..{checked['lower'][0][-1]:g})")
    crossed = np.flatnonzero(lower_px < upper_px)
    if crossed.size:
        raise InputError(f"recording {name}: the lower trace lies above the upper trace at {crossed.size} "
                         f"column(s), first at x={crossed[0]}")
    return upper_px, lower_px, span


def annotation_mask(name, traces, shape):
    """One recording's annotated traces -> (uint8 0/1 mask of `shape` = (height, width), covered span),
    checked as `annotation_traces` does."""
    upper_px, lower_px, span = annotation_traces(name, traces, shape)
    return traces_to_mask(upper_px, lower_px, shape[0]), span
