"""Cardiac measurements from a cavity mask: LVID per column, Teichholz volumes, beats and their parameters.

Pure numpy, vectorised over columns (and over beats). Conventions (DESIGN.md): rows are depth, columns
are time; the mask is 1 inside the LV cavity.

How a column's LVID is read from a mask (`cavity_borders_px`):
1. Holes are filled: non-cavity pixels that cannot reach the top or the bottom image row through other
   non-cavity pixels (4-neighbour paths) are enclosed by cavity, e.g. a papillary-muscle echo the network
   left out, so they count as cavity and never split a column's run.
2. Specks are dropped: a connected piece of cavity whose tallest column is shorter than
   `SPECK_FRACTION` of the median column LVID is noise (a blob in the wall, in the lung, or in a stretch
   with no ventricle in view), not the ventricle.
3. The LVID of a column is the length of its longest remaining run of cavity pixels; NaN where none.
"""
from dataclasses import dataclass

import numpy as np

# A piece of cavity shorter than this fraction of the median column LVID is a speck. A real ventricle,
# even closing to an EF of 97 %, keeps an end-systolic LVID above a quarter of its median LVID.
SPECK_FRACTION = 0.25

# Hysteresis levels of the beat detector, as fractions of the local half swing of the LVID curve.
PHASE_LEVEL = 0.3
# A beat's half swing must exceed this many SDs of the curve's column-to-column noise (and a glitch
# is a sample this many SDs off its neighbours' median).
NOISE_FACTOR = 3.0
# End-diastoles and end-systoles are timed on the curve smoothed over 1/TIMING_DIVISOR of the shortest
# beat (about 4 ms at 900 bpm): enough to average pixel steps and noise, too little to move a peak.
TIMING_DIVISOR = 16
# Heart rate is timed on the ejection downstroke: the mean of the times the curve falls through these
# fractions of the way from its end-diastolic to its end-systolic value. The downstroke is the steepest
# part of a beat, so noise moves these times by a column or two where it moves the flat end-diastolic
# maximum by several.
DOWNSTROKE_LEVELS = (0.2, 0.3, 0.4, 0.5)  # fractions fallen: 80 %, 70 %, 60 % and 50 % of the swing left

BEAT_COLUMNS = ("t_ed_s", "t_es_s", "lvid_d_mm", "lvid_s_mm", "vol_d_ul", "vol_s_ul",
                "ef_pct", "fs_pct", "sv_ul", "hr_bpm")
# A beat is flagged - kept in <stem>_beats.csv, left out of the summary's medians - when
# - "uncertain": from its end-diastole to its end-systole, the network's cavity probability disagrees with the
#   reported cavity (`disagreement_px`; not counting a chamber of its own above it, the right ventricle) by more
#   than UNCERTAINTY_LIMIT of its LVIDd on average. On simulated recordings of three generators (bench seed 7800,
#   12 + 12 each) it stays below 0.145; on the real strip's badly viewed stretches, where the network loses the
#   posterior wall, it reads 0.15-0.41 (good beats 0.05-0.10).
# - "rr": its heart rate lies outside the detector's range (--min-hr, --max-hr) or further than RR_TOLERANCE from
#   the recording's median: a missed, split or ectopic beat. A mouse's rate varies within a recording by about
#   +-60 bpm (DESIGN.md), under 15 % even at 420 bpm.
UNCERTAINTY_LIMIT = 0.15
RR_TOLERANCE = 0.2
# With flagged beats and fewer unflagged ones than this, and fewer than half, the log warns that the medians rest on
# those few alone (`few_beats_in_medians`); they stay the medians' beats (model card, "Experiments": medians over all
# beats instead were better on one such recording and worse on another).
FEW_BEATS = 3
DISAGREEMENT_CHUNK = 4096  # columns at a time

SUMMARY_KEYS = ("lvid_d_mm", "lvid_s_mm", "vol_d_ul", "vol_s_ul", "ef_pct", "fs_pct", "sv_ul",
                "hr_bpm", "co_ml_min")
# Beside each per-beat median, its beat-to-beat spread: the interquartile range over the same beats, given
# from SPREAD_MIN_BEATS beats on (quartiles of fewer say no more than the values themselves).
SPREAD_KEYS = tuple(f"{key}_iqr" for key in SUMMARY_KEYS[:-1])
SPREAD_MIN_BEATS = 3

# LVIDd a mouse heart can have, for `outside_mouse_range`: DESIGN.md's physiology gives 2.0-4.0 mm for conscious
# adults (1st-99th percentile of 517 mice) and 3.5-4.5 mm anaesthetised; the bounds leave room below for small or
# young mice and above for dilated, failing hearts. They are there to catch a wrong calibration or a view without
# the left ventricle, not to judge a heart: a summary outside them is a measurement to check, not a diagnosis.
MOUSE_LVID_D_MM = (1.5, 7.0)


# --------------------------------------------------------------------------- LVID per column

def _vertical_runs(binary):
    """Runs of equal values down each column of a 2-D bool array.

    Returns (col, start, stop, value): one entry per run, sorted by column then depth; rows
    start..stop-1 of column `col` all hold `value`.
    """
    by_column = np.ascontiguousarray(binary.T)
    height = by_column.shape[1]
    change = np.ones(by_column.shape, dtype=bool)
    change[:, 1:] = by_column[:, 1:] != by_column[:, :-1]
    col, start = np.nonzero(change)
    stop = np.empty_like(start)
    stop[:-1] = start[1:]
    last_in_column = np.ones(col.shape, dtype=bool)
    last_in_column[:-1] = col[1:] != col[:-1]
    stop[last_in_column] = height
    return col, start, stop, by_column[col, start]


def _touching_pairs(col, start, stop, height):
    """Pairs (i, j) of runs in neighbouring columns (j in column col[i] + 1) that share a row.

    Runs must be sorted by column then depth and disjoint within a column.
    """
    key_start = col * (height + 1) + start
    key_stop = col * (height + 1) + stop
    next_column = (col + 1) * (height + 1)
    first = np.searchsorted(key_stop, next_column + start, side="right")
    after = np.searchsorted(key_start, next_column + stop, side="left")
    count = np.maximum(after - first, 0)
    total = int(count.sum())
    i = np.repeat(np.arange(col.size), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return i, np.repeat(first, count) + offset


def _components(n_nodes, i, j):
    """Connected-component id (smallest member) of each node of a graph with edges i-j.

    Hooks roots onto the smaller root and compresses paths by pointer jumping, so a chain of
    thousands of columns converges in a few dozen vector operations.
    """
    root = np.arange(n_nodes)
    while True:
        root_i, root_j = root[i], root[j]
        if np.array_equal(root_i, root_j):
            return root
        smaller = np.minimum(root_i, root_j)
        np.minimum.at(root, root_i, smaller)
        np.minimum.at(root, root_j, smaller)
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped


def _merge_runs(col, start, stop, keep):
    """Merge consecutive kept runs of a column into one; returns (col, start, stop) of the merged runs."""
    previous_kept = np.zeros(keep.shape, dtype=bool)
    previous_kept[1:] = keep[:-1] & (col[1:] == col[:-1])
    first = keep & ~previous_kept
    group = np.cumsum(first) - 1
    n_groups = int(first.sum())
    merged_stop = np.zeros(n_groups, dtype=stop.dtype)
    np.maximum.at(merged_stop, group[keep], stop[keep])
    return col[first], start[first], merged_stop


def without_crossed(upper_px, lower_px):
    """The borders (W,) in rows with NaN in both where they meet or cross (no cavity there); new arrays."""
    upper_px, lower_px = np.array(upper_px, dtype=float), np.array(lower_px, dtype=float)
    with np.errstate(invalid="ignore"):
        crossed = ~(lower_px > upper_px)
    upper_px[crossed], lower_px[crossed] = np.nan, np.nan
    return upper_px, lower_px


def traces_to_mask(upper_px, lower_px, height):
    """uint8 (height, width) mask: 1 at rows r with upper < r < lower (DESIGN.md's mask rule), 0 elsewhere
    and where a trace is NaN."""
    rows = np.arange(height, dtype=np.float64)[:, np.newaxis]
    upper_px = np.asarray(upper_px, dtype=np.float64)[np.newaxis, :]
    lower_px = np.asarray(lower_px, dtype=np.float64)[np.newaxis, :]
    with np.errstate(invalid="ignore"):
        return ((rows > upper_px) & (rows < lower_px)).astype(np.uint8)


def cavity_borders_px(mask, probability=None, threshold=0.5):
    """Upper and lower cavity border of every column of a mask, in row coordinates.

    `mask` (H, W) holds 1 (or True, or 255) inside the cavity. Holes are filled and specks dropped as
    the module docstring says; the longest run of each column then spans rows first..last, and the
    borders are the pixel edges `first - 0.5` and `last + 0.5`, so `lower - upper` is the run length
    and the borders follow the mask convention (1 strictly between the traces).
    With `probability` (H, W), the map the mask was thresholded from at `threshold`, each border is
    instead where the probability crosses the threshold, interpolated linearly between the run's end
    row and the row outside it: sub-pixel borders, so LVID is not quantised to whole rows.
    Returns (upper_px, lower_px), float arrays (W,), NaN where a column has no cavity.
    """
    cavity = np.asarray(mask) > 0
    if cavity.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {cavity.shape}")
    height, width = cavity.shape
    col, start, stop, is_cavity = _vertical_runs(cavity)

    tissue = ~is_cavity
    t_col, t_start, t_stop = col[tissue], start[tissue], stop[tissue]
    i, j = _touching_pairs(t_col, t_start, t_stop, height)
    component = _components(t_col.size, i, j)
    reaches_edge = np.zeros(t_col.size, dtype=bool)
    reaches_edge[component[(t_start == 0) | (t_stop == height)]] = True
    hole = np.zeros(col.size, dtype=bool)
    hole[np.flatnonzero(tissue)] = ~reaches_edge[component]

    c_col, c_start, c_stop = _merge_runs(col, start, stop, is_cavity | hole)
    c_length = c_stop - c_start
    i, j = _touching_pairs(c_col, c_start, c_stop, height)
    component = _components(c_col.size, i, j)
    tallest = np.zeros(c_col.size, dtype=c_length.dtype)
    np.maximum.at(tallest, component, c_length)
    longest_per_column = np.zeros(width, dtype=c_length.dtype)
    np.maximum.at(longest_per_column, c_col, c_length)
    has_cavity = longest_per_column > 0
    if has_cavity.any():
        reference_px = np.median(longest_per_column[has_cavity])
        kept = tallest[component] >= SPECK_FRACTION * reference_px
        c_col, c_start, c_length = c_col[kept], c_start[kept], c_length[kept]

    # Longest run per column: sort by (column, length); the last entry of each column wins.
    order = np.lexsort((c_length, c_col))
    last = np.ones(order.size, dtype=bool)
    last[:-1] = c_col[order][1:] != c_col[order][:-1]
    best = order[last]
    column, first = c_col[best], c_start[best]
    last = first + c_length[best] - 1
    upper_px = np.full(width, np.nan)
    lower_px = np.full(width, np.nan)
    upper_px[column] = first - 0.5
    lower_px[column] = last + 0.5
    if probability is not None:  # read where needed, in its own dtype: a float64 copy of a long map costs GBs
        probability = np.asarray(probability)
        upper_px[column] = _crossing(probability, column, first, first - 1, threshold, first - 0.5)
        lower_px[column] = _crossing(probability, column, last, last + 1, threshold, last + 0.5)
    return upper_px, lower_px


def _crossing(probability, column, inside, outside, threshold, fallback):
    """Row where `probability` falls to `threshold` between row `inside` (above it) and row `outside`
    (at or below it) of each column, interpolated linearly; `fallback` where `outside` is off the image
    or the two rows don't straddle the threshold (a filled hole's edge)."""
    height = probability.shape[0]
    on_image = (outside >= 0) & (outside < height)
    outside_row = np.clip(outside, 0, height - 1)
    p_inside = probability[inside, column].astype(float)
    p_outside = probability[outside_row, column].astype(float)
    straddles = on_image & (p_inside > threshold) & (p_outside <= threshold)
    fraction = (p_inside - threshold) / np.where(straddles, p_inside - p_outside, 1.0)
    return np.where(straddles, inside + (outside - inside) * fraction, fallback)


def lvid_px(mask, probability=None, threshold=0.5):
    """LV inner diameter of every column of a cavity mask, in pixels (float array (W,), NaN where none).

    The length of the column's longest cavity run after filling holes and dropping specks; with the
    `probability` map the mask came from, measured between sub-pixel borders (`cavity_borders_px`).
    """
    upper_px, lower_px = cavity_borders_px(mask, probability, threshold)
    return lower_px - upper_px


# --------------------------------------------------------------------------- volumes

def teichholz_volume_ul(lvid_mm):
    """LV volume in µL from LVID in mm: V = 7.0 / (2.4 + D) · D³ (small-animal convention); NaN stays NaN."""
    diameter_mm = np.asarray(lvid_mm, dtype=float)
    return 7.0 / (2.4 + diameter_mm) * diameter_mm ** 3


def teichholz_clinical_volume_ml(lvid_cm):
    """LV volume in mL from LVID in cm: V = 7.0 / (2.4 + D) · D³ (the clinical convention); NaN stays NaN."""
    diameter_cm = np.asarray(lvid_cm, dtype=float)
    return 7.0 / (2.4 + diameter_cm) * diameter_cm ** 3


def _clinical_volume_ul(lvid_mm):
    return teichholz_clinical_volume_ml(np.asarray(lvid_mm, dtype=float) / 10.0) * 1000.0


# One formula per analysis, named in its summary; the columns are µL either way.
VOLUME_FORMULAS = {"mouse": teichholz_volume_ul, "clinical": _clinical_volume_ul}


def volume_ul(lvid_mm, formula="mouse"):
    """LV volume in µL from LVID in mm with the named Teichholz convention ("mouse": D in mm gives µL;
    "clinical": D in cm gives mL, converted to µL)."""
    if formula not in VOLUME_FORMULAS:
        raise ValueError(f"unknown volume formula {formula!r}, expected one of {sorted(VOLUME_FORMULAS)}")
    return VOLUME_FORMULAS[formula](lvid_mm)


# --------------------------------------------------------------------------- beats

def _odd(n_samples):
    return max(1, int(round(n_samples)) // 2 * 2 + 1)


def _moving_average(values, width):
    """Centred moving average of odd `width`; the ends average over the samples that exist."""
    if width <= 1:
        return values.astype(float)
    radius = width // 2
    sums = np.concatenate(([0.0], np.cumsum(values, dtype=float)))
    index = np.arange(values.size)
    low = np.maximum(index - radius, 0)
    high = np.minimum(index + radius + 1, values.size)
    return (sums[high] - sums[low]) / (high - low)


def _moving_extreme(values, width, reduce):
    """Centred moving max (`reduce=np.maximum`) or min (`np.minimum`) of odd `width`, in O(n)
    (van Herk / Gil-Werman: block-wise prefix and suffix extremes)."""
    radius = width // 2
    fill = -np.inf if reduce is np.maximum else np.inf
    n_blocks = -(-(values.size + 2 * radius) // width)
    padded = np.full(n_blocks * width, fill)
    padded[radius:radius + values.size] = values
    blocks = padded.reshape(n_blocks, width)
    prefix = reduce.accumulate(blocks, axis=1).ravel()
    suffix = reduce.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    index = np.arange(values.size)
    return reduce(suffix[index], prefix[index + width - 1])


def _first_at_or_after(positions, index):
    """For each `index`, the first entry of sorted `positions` that is >= it (-1 where none)."""
    found = np.searchsorted(positions, index)
    return np.where(found < positions.size, positions[np.minimum(found, positions.size - 1)], -1)


def _expand(starts, stops):
    """Samples of the disjoint intervals [start, stop): (interval number, sample index) per sample."""
    lengths = stops - starts
    interval = np.repeat(np.arange(starts.size), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return interval, starts[interval] + offset


def _interval_argmax(values, starts, stops):
    """Index of the first maximum of `values` inside each disjoint [start, stop); -1 where all are -inf."""
    bounds = np.column_stack((starts, stops)).ravel()
    extreme = np.maximum.reduceat(np.append(values, -np.inf), bounds)[::2]
    interval, sample = _expand(starts, stops)
    per_sample = np.full(values.size, np.inf)
    per_sample[sample] = extreme[interval]
    found = _first_at_or_after(np.flatnonzero(values == per_sample), starts)
    return np.where(np.isfinite(extreme), found, -1)


def _nan_run_lengths(valid):
    """For every sample, the length of the run of missing samples it belongs to (0 where valid)."""
    missing = ~valid
    change = np.ones(valid.size, dtype=bool)
    change[1:] = missing[1:] != missing[:-1]
    run = np.cumsum(change) - 1
    lengths = np.bincount(run)
    return np.where(missing, lengths[run], 0)


@dataclass(frozen=True)
class Beats:
    """Beats found in an LVID curve, one entry per beat, in time order.

    `ed_index` / `es_index`: columns of end-diastole (the beat's maximum LVID) and end-systole (its
    minimum); `lvid_d_mm` / `lvid_s_mm`: LVID there; `downstroke_px`: the (fractional) column that times
    the beat's ejection (see `detect_beats`); `rr_s`: time from this beat's downstroke to the next
    beat's, NaN for the last beat and for a beat whose successor was dropped.
    """

    ed_index: np.ndarray
    es_index: np.ndarray
    lvid_d_mm: np.ndarray
    lvid_s_mm: np.ndarray
    rr_s: np.ndarray
    downstroke_px: np.ndarray

    def __len__(self):
        return int(self.ed_index.size)


def _no_beats():
    empty_int, empty = np.zeros(0, dtype=int), np.zeros(0)
    return Beats(empty_int, empty_int, empty, empty, empty, empty)


def detect_beats(lvid_mm, s_per_px, max_hr_bpm=900, min_hr_bpm=250):
    """End-diastoles and end-systoles of an LVID curve (mm per column, NaN where unmeasured).

    The rule, with the shortest beat 60 / `max_hr_bpm` s and the longest 60 / `min_hr_bpm` s:
    1. Missing columns are bridged linearly; glitches narrower than 1/20 of the shortest beat are
       replaced by the local median (`_despike`).
    2. Phases: the curve smoothed over a quarter of the shortest beat is compared with its local
       middle and half swing (moving maximum and minimum over 1.5 longest beats; the half swing never
       below a quarter of the whole curve's, nor below `NOISE_FACTOR` noise SDs), so respiration drift
       doesn't matter and a flat, noisy curve gives no beats. Hysteresis at ±`PHASE_LEVEL` of the half
       swing cuts it into alternating filled (high) and ejected (low) phases: each high phase holds one
       end-diastole, the low phase after it that beat's end-systole.
    3. ED and ES are the columns of the maximum and minimum, within their phase, of the curve smoothed
       over 1/`TIMING_DIVISOR` of the shortest beat; LVIDd and LVIDs are the measured (despiked)
       extremes within that smoothing's reach of them (smoothing would shave a fast heart's sharp
       end-systolic cusp).
    4. Dropped: a beat whose ED (ES) lies within 1/8 of the shortest beat of the recording's start
       (end) in a phase the recording cuts, or right beside missing columns (the true extreme may lie
       outside the measured columns), and a beat holding a gap of missing columns longer than a quarter
       of the shortest beat (a gap that long could hide an ES).
    5. Each beat is timed on its downstroke (`_downstroke_px`): the mean of the times the lightly
       smoothed curve falls through `DOWNSTROKE_LEVELS` of the way from its ED to its ES value. RR is
       the time from a beat's downstroke to the next beat's, measured only when that next beat directly
       follows and was kept (so a dropped beat never doubles an RR); NaN otherwise, as for the last
       beat. (ED-to-ED would time beats on their flat maxima, whose columns noise moves by several.)
    Returns `Beats`.
    """
    lvid = np.asarray(lvid_mm, dtype=float)
    valid = np.isfinite(lvid)
    if valid.sum() < 2:
        return _no_beats()
    index = np.arange(lvid.size)
    bridged = np.interp(index, index[valid], lvid[valid])
    shortest_beat_px = 60.0 / max_hr_bpm / s_per_px
    longest_beat_px = 60.0 / min_hr_bpm / s_per_px

    smooth = _moving_average(bridged, _odd(shortest_beat_px / 4))
    # Column-to-column noise (robust SD of what the smoothing removes).
    noise_mm = 1.4826 * np.median(np.abs(bridged - smooth))
    bridged = _despike(bridged, _odd(shortest_beat_px / 10), noise_mm)
    smooth = _moving_average(bridged, _odd(shortest_beat_px / 4))
    light = _moving_average(bridged, _odd(shortest_beat_px / TIMING_DIVISOR))
    window = _odd(1.5 * longest_beat_px)
    top = _moving_extreme(smooth, window, np.maximum)
    bottom = _moving_extreme(smooth, window, np.minimum)
    middle = _moving_average((top + bottom) / 2, window)
    whole_half_swing = (np.percentile(smooth, 99) - np.percentile(smooth, 1)) / 2
    # A swing within a few noise SDs is no beat: a flat curve gives no beats rather than beats of noise.
    if not whole_half_swing > NOISE_FACTOR * noise_mm:
        return _no_beats()
    half_swing = np.maximum((top - bottom) / 2, max(0.25 * whole_half_swing, NOISE_FACTOR * noise_mm))
    level = (smooth - middle) / half_swing

    # Phase: +1 once above +PHASE_LEVEL, -1 once below -PHASE_LEVEL, held in between.
    state = np.where(level > PHASE_LEVEL, 1, np.where(level < -PHASE_LEVEL, -1, 0))
    if not state.any():
        return _no_beats()
    held = np.maximum.accumulate(np.where(state != 0, index, -1))
    phase = np.where(held >= 0, state[np.maximum(held, 0)], 0)
    boundaries = np.flatnonzero(phase[1:] != phase[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    stops = np.concatenate((boundaries, [lvid.size]))
    kind = phase[starts]
    high = np.flatnonzero(kind[:-1] == 1)
    if high.size == 0:
        return _no_beats()
    low = high + 1
    ed_index = _interval_argmax(np.where(valid, light, -np.inf), starts[high], stops[high])
    es_index = _interval_argmax(np.where(valid, -light, -np.inf), starts[low], stops[low])
    # A phase cut by the recording's start (end) still holds its ED (ES) when the extreme lies clear of
    # the cut: the curve rose into that maximum (or rose again after that minimum) inside the recording.
    edge_px = shortest_beat_px / 8
    whole = (((starts[high] > 0) | (ed_index >= edge_px))
             & ((stops[low] < lvid.size) | (es_index <= lvid.size - 1 - edge_px)))
    gap_px = _nan_run_lengths(valid)
    longest_gap_px = np.maximum.reduceat(gap_px, starts)
    keep = (whole & (np.maximum(longest_gap_px[high], longest_gap_px[low]) <= shortest_beat_px / 4)
            & (ed_index >= 0) & (es_index >= 0))
    high, ed_index, es_index = high[keep], ed_index[keep], es_index[keep]
    # An extreme found right beside missing columns may really lie inside them.
    beside_gap = np.zeros(lvid.size + 2, dtype=bool)
    beside_gap[:-2] |= ~valid
    beside_gap[2:] |= ~valid
    beside_gap = beside_gap[1:-1]
    keep = (light[ed_index] > light[es_index]) & ~beside_gap[ed_index] & ~beside_gap[es_index]
    high, ed_index, es_index = high[keep], ed_index[keep], es_index[keep]

    # RR only to the very next high phase: a dropped beat in between would double it.
    downstroke_px = _downstroke_px(light, ed_index, es_index)
    rr_s = np.full(high.size, np.nan)
    successive = high[1:] == high[:-1] + 2
    rr_s[:-1] = np.where(successive, (downstroke_px[1:] - downstroke_px[:-1]) * s_per_px, np.nan)
    # Values: the measured extreme within the light smoothing's reach of the timed one (a segmentation's
    # LVID curve is smooth along time already: probabilities come interpolated from the network's grid).
    radius = _odd(shortest_beat_px / TIMING_DIVISOR) // 2
    lvid_d_mm = _nearby_extreme(np.where(valid, bridged, -np.inf), ed_index, radius)
    lvid_s_mm = -_nearby_extreme(np.where(valid, -bridged, -np.inf), es_index, radius)
    return Beats(ed_index, es_index, lvid_d_mm, lvid_s_mm, rr_s, downstroke_px)


def _downstroke_px(curve, ed_index, es_index):
    """Per beat, the mean of the fractional columns where `curve` first falls through each of
    `DOWNSTROKE_LEVELS` of the way from curve[ED] to curve[ES], searched from ED to ES (linear
    interpolation between columns). Vectorised over beats: all beats' ED..ES samples side by side."""
    if ed_index.size == 0:
        return np.zeros(0)
    high, low = curve[ed_index], curve[es_index]
    lengths = es_index - ed_index + 1
    beat, column = _expand(ed_index, es_index + 1)
    times = []
    for fraction in DOWNSTROKE_LEVELS:
        level = high - fraction * (high - low)
        below = curve[column] <= level[beat]
        # the first sample at or below the level in each beat (ES itself always is)
        first = np.minimum.reduceat(np.where(below, column, np.iinfo(np.int64).max),
                                    np.concatenate(([0], np.cumsum(lengths)[:-1])))
        before = np.maximum(first - 1, ed_index)
        drop = curve[before] - curve[first]
        step = np.divide(curve[before] - level, drop, out=np.zeros_like(drop), where=drop > 0)
        times.append(np.where(first > ed_index, before + step, first))
    return np.mean(times, axis=0)


def _despike(values, width, noise):
    """Hampel filter: a sample further than `NOISE_FACTOR` robust SDs from the median of the `width`
    samples around it (SD from their median absolute deviation, never below `noise`) is replaced by
    that median. Removes glitches narrower than half the window; keeps the sharp extremes of a fast
    heart, whose neighbours spread widely."""
    radius = width // 2
    if radius == 0 or values.size < width:
        return values
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(values, radius, mode="reflect"), width)
    median = np.median(windows, axis=1)
    spread = 1.4826 * np.median(np.abs(windows - median[:, None]), axis=1)
    outlier = np.abs(values - median) > NOISE_FACTOR * np.maximum(spread, noise)
    return np.where(outlier, median, values)


def _nearby_extreme(values, index, radius):
    """Largest of `values` within `radius` samples of each `index`."""
    near = np.clip(index[:, None] + np.arange(-radius, radius + 1), 0, values.size - 1)
    return values[near].max(axis=1)


# --------------------------------------------------------------------------- per-beat parameters

def beat_parameters(beats, s_per_px, volume_formula="mouse", start_s=0.0):
    """Cardiac parameters of every beat, as DESIGN.md defines them.

    Returns a dict of float arrays, one entry per beat, keyed by `BEAT_COLUMNS`: times of ED and ES (s,
    `start_s` + column index x `s_per_px`; `start_s` the first column's time, for a stretch cut out), LVIDd and
    LVIDs (mm), Vol;d and Vol;s (µL, `volume_formula`), EF % = 100 (Vd - Vs) / Vd, FS % = 100 (LVIDd - LVIDs) /
    LVIDd, SV µL = Vd - Vs and HR bpm = 60 / RR (NaN for a beat with no measured successor).
    """
    vol_d_ul = volume_ul(beats.lvid_d_mm, volume_formula)
    vol_s_ul = volume_ul(beats.lvid_s_mm, volume_formula)
    return {
        "t_ed_s": start_s + beats.ed_index * float(s_per_px),
        "t_es_s": start_s + beats.es_index * float(s_per_px),
        "lvid_d_mm": np.asarray(beats.lvid_d_mm, dtype=float),
        "lvid_s_mm": np.asarray(beats.lvid_s_mm, dtype=float),
        "vol_d_ul": vol_d_ul,
        "vol_s_ul": vol_s_ul,
        "ef_pct": 100.0 * (vol_d_ul - vol_s_ul) / vol_d_ul,
        "fs_pct": 100.0 * (beats.lvid_d_mm - beats.lvid_s_mm) / beats.lvid_d_mm,
        "sv_ul": vol_d_ul - vol_s_ul,
        "hr_bpm": 60.0 / np.asarray(beats.rr_s, dtype=float),
    }


# --------------------------------------------------------------------------- beats the tool doubts

def disagreement_px(probability, upper_px, lower_px, threshold=0.5):
    """Per column (W,), the sum over depth of |network's cavity probability - reported cavity| (rows between
    the borders, `traces_to_mask`): near 0 where the network is sure and the borders follow it, about the
    width of its hesitant band where it hesitates, a whole run's height where it sees cavity the borders
    leave out. Left out: cavity (probability above `threshold`) in a run of its own above the reported cavity,
    across tissue, as the right ventricle is across the septum; it is another chamber, not a doubt about this
    one's borders. In chunks of columns, so a long recording needs no second map of its size."""
    upper_px, lower_px = np.asarray(upper_px, dtype=float), np.asarray(lower_px, dtype=float)
    total = np.empty(probability.shape[1])
    for start in range(0, probability.shape[1], DISAGREEMENT_CHUNK):
        part = slice(start, start + DISAGREEMENT_CHUNK)
        inside = traces_to_mask(upper_px[part], lower_px[part], probability.shape[0])
        chunk = probability[:, part]
        counted = ~_cavity_above(chunk > threshold, inside > 0)
        total[part] = (np.abs(chunk - inside) * counted).sum(axis=0)
    return total


def _cavity_above(cavity, inside):
    """(H, W) bool: the rows of `cavity` (H, W) that lie above the reported cavity `inside` (H, W) and are cut off
    from it by at least one row of tissue (not cavity); none in a column without a reported cavity."""
    row = np.arange(cavity.shape[0])[:, None]
    top = np.where(inside.any(axis=0), inside.argmax(axis=0), -1)  # the reported cavity's first row
    last_tissue_above = np.where(~cavity & (row < top), row, -1).max(axis=0)
    return cavity & (row < last_tissue_above)


def beat_uncertainty(disagreement_mm, beats):
    """Per beat, the mean `disagreement_mm` (per column, mm) from its end-diastole to its end-systole
    column, as a fraction of its LVIDd."""
    if len(beats) == 0:
        return np.zeros(0)
    beat, column = _expand(beats.ed_index, beats.es_index + 1)
    total = np.bincount(beat, weights=np.asarray(disagreement_mm, dtype=float)[column], minlength=len(beats))
    return total / (beats.es_index - beats.ed_index + 1) / beats.lvid_d_mm


def flag_beats(parameters, uncertainty, min_hr_bpm=250.0, max_hr_bpm=900.0, uncertainty_limit=UNCERTAINTY_LIMIT):
    """Why each beat is doubted: a tuple of reasons per beat, empty for a sound one (see UNCERTAINTY_LIMIT
    and RR_TOLERANCE). `uncertainty` per beat (`beat_uncertainty`). The median HR that "rr" compares
    with is taken over the beats that are not "uncertain" (over all when every beat is)."""
    uncertain = np.asarray(uncertainty, dtype=float) > uncertainty_limit
    hr_bpm = np.asarray(parameters["hr_bpm"], dtype=float)
    timed = np.isfinite(hr_bpm)
    reference = hr_bpm[timed & ~uncertain] if (timed & ~uncertain).any() else hr_bpm[timed]
    irregular = np.zeros(hr_bpm.size, dtype=bool)
    if reference.size:
        with np.errstate(invalid="ignore"):
            irregular = ((hr_bpm < min_hr_bpm) | (hr_bpm > max_hr_bpm)
                         | (np.abs(hr_bpm / np.median(reference) - 1.0) > RR_TOLERANCE))
    return [tuple(reason for reason, doubted in (("uncertain", u), ("rr", r)) if doubted)
            for u, r in zip(uncertain, irregular)]


def few_beats_in_medians(beat_flags):
    """Whether the medians rest on a few beats the flags left (FEW_BEATS): some beats flagged but not all, and the
    unflagged ones fewer than FEW_BEATS and fewer than half of the beats."""
    sound = sum(not reasons for reasons in beat_flags)
    return 0 < sound < len(beat_flags) and sound < min(FEW_BEATS, len(beat_flags) / 2.0)


def summarise(parameters, used=None):
    """Medians over the `used` beats (bool per beat; default all) of every per-beat parameter (NaN
    ignored; None where no used beat has a value), their interquartile ranges `<key>_iqr` (None from fewer
    than SPREAD_MIN_BEATS values), `co_ml_min` = median SV (µL) x median HR (bpm) / 1000, `n_beats` (all
    beats) and `n_beats_used` (those in the medians).

    CO is the product of the reported medians, so the summary is consistent with itself.
    """
    n_beats = int(np.asarray(parameters["t_ed_s"]).size)
    used = np.ones(n_beats, dtype=bool) if used is None else np.asarray(used, dtype=bool)
    summary = {}
    for key in SUMMARY_KEYS[:-1]:
        values = np.asarray(parameters[key], dtype=float)[used]
        values = values[np.isfinite(values)]
        summary[key] = float(np.median(values)) if values.size else None
        lower, upper = np.percentile(values, [25, 75]) if values.size >= SPREAD_MIN_BEATS else (None, None)
        summary[f"{key}_iqr"] = None if lower is None else float(upper - lower)
    known = summary["sv_ul"] is not None and summary["hr_bpm"] is not None
    summary["co_ml_min"] = summary["sv_ul"] * summary["hr_bpm"] / 1000.0 if known else None
    summary["n_beats"] = n_beats
    summary["n_beats_used"] = int(used.sum())
    return summary


def outside_mouse_range(lvid_d_mm, calibration):
    """A sentence when the summary's LVIDd (mm, None without beats) lies outside MOUSE_LVID_D_MM, naming the depth
    calibration it was read with and where that came from (`calibration`: mmode.calibration.Calibration); an empty
    list inside the range or without a value. LVIDd scales with mm per row, so a forgotten or wrong calibration
    shows here first; so does an image or `--crop` that holds no left ventricle."""
    if lvid_d_mm is None or MOUSE_LVID_D_MM[0] <= lvid_d_mm <= MOUSE_LVID_D_MM[1]:
        return []
    side = "below" if lvid_d_mm < MOUSE_LVID_D_MM[0] else "above"
    source = {"default": "the default, as no --mm-per-px was given", "user": "given by --mm-per-px",
              "dicom": "the DICOM's own"}.get(calibration.source, calibration.source)
    if calibration.origin is not None:
        source = f"from {calibration.origin}"
    return [f"LVIDd {lvid_d_mm:.3g} mm is {side} the {MOUSE_LVID_D_MM[0]:g}-{MOUSE_LVID_D_MM[1]:g} mm of mouse hearts: "
            f"check the depth calibration ({calibration.mm_per_px:.6g} mm per row, {source}) and that the "
            f"left ventricle is in view"]
