"""Training strips for the border refiner (`mmode/refine.py`): `python -m preprocess build --strips`.

For each annotated border the strip follows a *perturbed* copy of the annotated trace, so the refiner
learns to find the border wherever a segmentation might have put its guide: the trace shifted in time by
up to MAX_TIME_SHIFT_PX columns (a guide late or early on a moving wall, the segmentation's commonest
error), plus a constant offset, a slowly varying one, and now and then a large one (a wall mistaken for
an echo), in rows, clipped to MAX_OFFSET_PX so the true border stays inside the strip. The mask is the
annotated border in strip coordinates. Strips are `STRIP_COLUMNS` wide, cut every `stride` columns along
the annotated span, upper border first; file names `<recording>_win<k>.png` keep the split by recording.
Each recording's draws come from its own generator, seeded by --seed and the recording's name, so a
recording's strips do not depend on which others are in the folder.
"""
import zlib

import numpy as np

from mmode.refine import SIDES, straighten, strip_mask

STRIP_ROWS = 96  # 48 rows (0.55 mm at the default calibration) each side of the guide
STRIP_COLUMNS = 128
MAX_TIME_SHIFT_PX = 5.0
MAX_OFFSET_PX = 36.0


def recording_rng(seed, name):
    """The generator of one recording's perturbations: seeded by `seed` and a CRC of its name."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def smooth_noise(rng, n, correlation_px, sigma_px):
    """(n,) Gaussian noise with standard deviation `sigma_px`, smoothed over about `correlation_px` columns."""
    width = max(1, int(correlation_px))
    kernel = np.exp(-0.5 * (np.arange(-2 * width, 2 * width + 1) / width) ** 2)
    kernel /= np.sqrt(np.sum(kernel ** 2))
    return np.convolve(rng.standard_normal(n + 4 * width), kernel, "valid")[:n] * sigma_px


def perturbed_guide(rng, trace_px, columns, span):
    """The trace at `columns` (int array) shifted in time and offset in rows (module docstring); the time
    shift stays inside `span` = (start, stop), where the trace is defined."""
    start, stop = span
    shift_px = rng.uniform(-MAX_TIME_SHIFT_PX, MAX_TIME_SHIFT_PX)
    shifted = np.clip(columns - shift_px, start, stop - 1)
    guide_px = np.interp(shifted, np.arange(start, stop), trace_px[start:stop])
    offset_px = rng.normal(0.0, 2.5) + smooth_noise(rng, columns.size, rng.uniform(10, 60), rng.uniform(0.5, 3.0))
    if rng.random() < 0.15:
        offset_px = offset_px + rng.normal(0.0, 10.0)
    return guide_px + np.clip(offset_px, -MAX_OFFSET_PX, MAX_OFFSET_PX)


def cut_strips(rng, image, upper_px, lower_px, span, stride=STRIP_COLUMNS, strip_rows=STRIP_ROWS):
    """Training strips of one recording: list of (uint8 image, 0/1 mask), each (strip_rows, STRIP_COLUMNS),
    upper border first, every `stride` columns inside `span` = (start, stop)."""
    start, stop = span
    strips = []
    for side, trace_px in zip(SIDES, (upper_px, lower_px)):
        for first in range(start, stop - STRIP_COLUMNS + 1, int(stride)):
            columns = np.arange(first, first + STRIP_COLUMNS)
            guide_px = perturbed_guide(rng, trace_px, columns, span)
            strip, _ = straighten(image[:, columns], guide_px, side, strip_rows)
            strips.append((strip, strip_mask(guide_px, side, trace_px[columns], strip_rows)))
    return strips


def strip_count(span, stride=STRIP_COLUMNS):
    """Strips `cut_strips` gives for a span: per border, one every `stride` columns that fits."""
    start, stop = span
    return 2 * len(range(start, stop - STRIP_COLUMNS + 1, int(stride)))
