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

A recording whose depth calibration lies outside the refiner's trained range is read zoomed at inference
(`mmode.refine.strip_zoom`); its training strips are cut at the same zoom, and every distance above (offsets,
errors, jitter) is in strip rows, so a lab's coarse recordings train the refiner on what it will be shown.

With `--guide-model CKPT` a second kind follows: strips along the borders a segmentation network itself
finds (`cut_guide_strips`), labelled with the annotated border. Perturbed guides teach the refiner to find
a border near a guide; they do not show it how a segmentation errs where the image misleads it (a blurred
septum, a papillary muscle on the posterior wall, an echo): there the guide sits on a feature that looks
like a wall. Those are the strips the refiner needs, so a strip along the network's border is kept when
the guide strays more than HARD_ERROR_PX rows from the annotation somewhere in it, and otherwise with
probability EASY_FRACTION, so the refiner still sees good guides left alone.
"""
import zlib

import numpy as np

from mmode.refine import SIDES, fill_gaps, straighten, strip_mask

STRIP_ROWS = 96  # 48 rows (0.55 mm at the default calibration) each side of the guide
STRIP_COLUMNS = 128
MAX_TIME_SHIFT_PX = 5.0
MAX_OFFSET_PX = 36.0


GUIDE_STRIDE_PX = 96  # columns between strips along the network's borders (they overlap by a quarter)
HARD_ERROR_PX = 5.0  # a strip whose guide strays further than this from the annotation somewhere is kept
EASY_FRACTION = 0.2  # the share of the other strips kept
# A strip whose guide strays further than this is dropped: the annotated border could leave the strip
# (48 rows each side) once the guide jitter is added, and a wall that far off is the segmentation's to mend.
MAX_GUIDE_ERROR_PX = 40.0
GUIDE_JITTER_PX = 1.0  # SD of a constant row offset added to each strip's guide, so no border sits on a pixel


def recording_rng(seed, name, stream=0):
    """The generator of one recording's draws: seeded by `seed`, a CRC of its name and `stream` (0 for the
    perturbed strips, 1 for the strips along a network's borders)."""
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))]
    return np.random.default_rng(entropy + [int(stream)] if stream else entropy)  # stream 0: as built before


def smooth_noise(rng, n, correlation_px, sigma_px):
    """(n,) Gaussian noise with standard deviation `sigma_px`, smoothed over about `correlation_px` columns."""
    width = max(1, int(correlation_px))
    kernel = np.exp(-0.5 * (np.arange(-2 * width, 2 * width + 1) / width) ** 2)
    kernel /= np.sqrt(np.sum(kernel ** 2))
    return np.convolve(rng.standard_normal(n + 4 * width), kernel, "valid")[:n] * sigma_px


def perturbed_guide(rng, trace_px, columns, span, zoom=1.0):
    """The trace at `columns` (int array) shifted in time and offset by a number of strip rows (module
    docstring), 1 / `zoom` image rows each; the time shift stays inside `span` = (start, stop), where the trace
    is defined."""
    start, stop = span
    shift_px = rng.uniform(-MAX_TIME_SHIFT_PX, MAX_TIME_SHIFT_PX)
    shifted = np.clip(columns - shift_px, start, stop - 1)
    guide_px = np.interp(shifted, np.arange(start, stop), trace_px[start:stop])
    offset_px = rng.normal(0.0, 2.5) + smooth_noise(rng, columns.size, rng.uniform(10, 60), rng.uniform(0.5, 3.0))
    if rng.random() < 0.15:
        offset_px = offset_px + rng.normal(0.0, 10.0)
    return guide_px + np.clip(offset_px, -MAX_OFFSET_PX, MAX_OFFSET_PX) / zoom


def cut_strips(rng, image, upper_px, lower_px, span, stride=STRIP_COLUMNS, strip_rows=STRIP_ROWS, zoom=1.0):
    """Training strips of one recording: list of (uint8 image, 0/1 mask), each (strip_rows, STRIP_COLUMNS),
    upper border first, every `stride` columns inside `span` = (start, stop), at `zoom` strip rows per image
    row (`mmode.refine.strip_zoom` of the recording's calibration)."""
    start, stop = span
    strips = []
    for side, trace_px in zip(SIDES, (upper_px, lower_px)):
        for first in range(start, stop - STRIP_COLUMNS + 1, int(stride)):
            columns = np.arange(first, first + STRIP_COLUMNS)
            guide_px = perturbed_guide(rng, trace_px, columns, span, zoom)
            strip, _ = straighten(image[:, columns], guide_px, side, strip_rows, zoom)
            strips.append((strip, strip_mask(guide_px, side, trace_px[columns], strip_rows, zoom)))
    return strips


def strip_count(span, stride=STRIP_COLUMNS):
    """Strips `cut_strips` gives for a span: per border, one every `stride` columns that fits."""
    start, stop = span
    return 2 * len(range(start, stop - STRIP_COLUMNS + 1, int(stride)))


def cut_guide_strips(rng, image, guides_px, upper_px, lower_px, span, stride=GUIDE_STRIDE_PX,
                     strip_rows=STRIP_ROWS, easy_fraction=EASY_FRACTION, zoom=1.0):
    """Strips along a network's borders, labelled with the annotated ones (module docstring): list of
    (uint8 image, 0/1 mask, hard), upper border first, every `stride` columns inside `span`.

    `guides_px` = (upper, lower) (W,) rows, NaN where the network found no cavity (filled by
    interpolation, `mmode.refine.fill_gaps`; a border with no guide at all gives no strips); `upper_px`,
    `lower_px` the annotated borders; `hard` is True when the guide strays more than HARD_ERROR_PX rows;
    `easy_fraction` the share of the other strips kept; `zoom` as in `cut_strips` (errors and jitter in strip
    rows).
    """
    start, stop = span
    strips = []
    for side, guide_px, trace_px in zip(SIDES, guides_px, (upper_px, lower_px)):
        guide_px = fill_gaps(guide_px)
        if guide_px is None:
            continue
        for first in range(start, stop - STRIP_COLUMNS + 1, int(stride)):
            columns = np.arange(first, first + STRIP_COLUMNS)
            error_px = np.max(np.abs(guide_px[columns] - trace_px[columns])) * zoom  # in strip rows
            hard = bool(error_px > HARD_ERROR_PX)
            keep = rng.random() < easy_fraction  # drawn for every strip, so one's choice does not shift the next's
            jitter_px = rng.normal(0.0, GUIDE_JITTER_PX)
            if error_px > MAX_GUIDE_ERROR_PX or not (hard or keep):
                continue
            guide = guide_px[columns] + jitter_px / zoom
            strip, _ = straighten(image[:, columns], guide, side, strip_rows, zoom)
            strips.append((strip, strip_mask(guide, side, trace_px[columns], strip_rows, zoom), hard))
    return strips
