"""Border refinement at the recording's own resolution: a second network reads narrow strips along each border.

The segmentation network sees a recording resized to its input height (256 rows for a 700-row image: 2.7
image rows per network row, and as many columns per network column), so a border it finds is good to
about one network pixel. The refiner works on *strips*: for each column, the `strip_rows` image rows
centred on a guide border (the segmentation's), stacked side by side at full resolution, so the border
runs roughly along the strip's middle whatever the wall's motion. Strips of the lower (posterior) border
are flipped upside down, so every strip has tissue above and cavity below and one network serves both.
The refiner, a QuickNat trained on such strips (`python -m preprocess build --strips`, then `run.py`),
gives each strip pixel a cavity probability; the border is read off each column as the best single
tissue-to-cavity step, placed to a fraction of a pixel by the tissue probability summed around it.

Strip geometry: strip row r of column c is image row base[c] + (r - half) / zoom for the upper border and
base[c] - (r - half) / zoom for the lower one, base = the guide rounded to whole rows, clamped to the
image. `zoom` is 1 for recordings whose depth calibration lies in the range the refiner was trained on
(TRAINED_MM_PER_PX, the simulator's); a coarser (finer) recording is resampled, linearly, to the nearest
end of that range, so the walls are as many rows thick as the refiner has seen.
"""
import numpy as np

from mmode.calibration import TRAINED_MM_PER_PX  # the refiner's training recordings' depth calibrations

SIDES = ("upper", "lower")
TASK = "border-strips"  # checkpoint["task"] of a refiner (the trainer copies it from the data set's summary)
SUBPIXEL_HALF_WINDOW = 6  # rows each side of the best step whose tissue probability places the border
# The step is looked for within this many rows of the guide: on simulated recordings the refined border
# stays within 8 rows of the segmentation's anyway, and the limit keeps the refiner from jumping to
# another bright line (the pericardium) where it is unsure, as it did on the real reference strip.
SEARCH_HALF_ROWS = 12
# Strips run in tiles of this many columns (overlapping by a quarter of the strip rows), `batch_size` // 4
# per forward pass when a batch size is given (the pixels per pass of `batch_size` tiles twice the strip
# rows wide), else `mmode.inference.default_batch_size` (on a GPU 2, as // 4 of its 8), with less overlap
# to compute twice (bench/speed.py: 1.55x faster than 192-column tiles, probabilities within 0.0003).
TILE_COLUMNS = 768
# `strip_border` reads this many columns at a time: 7 float64 arrays of a 96-row strip, 6 MB each, where a 60-s
# recording's whole strip (85,000 columns) took 65 MB each
STRIP_CHUNK_COLUMNS = 8192
GPU_BATCH_SIZE = 2


def strip_zoom(mm_per_px):
    """Strip rows per image row for a recording of `mm_per_px` (None: 1): 1 inside TRAINED_MM_PER_PX,
    else the factor that brings the recording to the nearest end of that range."""
    if mm_per_px is None:
        return 1.0
    return float(mm_per_px) / float(np.clip(mm_per_px, *TRAINED_MM_PER_PX))


def _strip_positions(guide_px, side, strip_rows, zoom=1.0):
    """Image row (unclamped) of every strip pixel's centre, (strip_rows, W), and base (W,) int."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    base = np.round(np.asarray(guide_px, dtype=np.float64)).astype(np.int64)
    offset = np.arange(strip_rows)[:, np.newaxis] - strip_rows // 2
    if zoom != 1.0:
        offset = offset / zoom
    return base[np.newaxis, :] + (offset if side == "upper" else -offset), base


def strip_image_rows(guide_px, side, strip_rows, height, zoom=1.0):
    """Image row of every strip pixel, (strip_rows, W) clamped to [0, height - 1] (int for zoom 1, else
    float), and base (W,) int.

    `guide_px` (W,) float rows, finite; `side` "upper" or "lower"; `strip_rows` even.
    """
    rows, base = _strip_positions(guide_px, side, strip_rows, zoom)
    return np.clip(rows, 0, height - 1), base


def straighten(image, guide_px, side, strip_rows, zoom=1.0):
    """The strip of uint8 `image` (H, W) along `guide_px` (W,): uint8 (strip_rows, W), and base (W,);
    with `zoom` other than 1 the image is interpolated linearly between rows."""
    rows, base = strip_image_rows(guide_px, side, strip_rows, image.shape[0], zoom)
    columns = np.arange(image.shape[1])[np.newaxis, :]
    if zoom == 1.0:
        return image[rows, columns], base
    low = np.floor(rows).astype(np.int64)
    high = np.minimum(low + 1, image.shape[0] - 1)
    fraction = rows - low
    strip = image[low, columns] * (1.0 - fraction) + image[high, columns] * fraction
    return np.round(strip).astype(np.uint8), base


def strip_mask(guide_px, side, border_px, strip_rows, zoom=1.0):
    """0/1 uint8 (strip_rows, W) cavity mask of a strip (built at `zoom`, as `straighten`): pixels whose centre
    lies on the cavity side of `border_px` (W,) (below an upper border, above a lower one), as the recording's
    mask rule has it."""
    rows, _ = _strip_positions(guide_px, side, strip_rows, zoom)
    border = np.asarray(border_px, dtype=np.float64)[np.newaxis, :]
    return (rows > border if side == "upper" else rows < border).astype(np.uint8)


def strip_border(probability, search_half_rows=SEARCH_HALF_ROWS):
    """Border position in strip coordinates (W,), from the cavity probability (strip_rows, W).

    The best single step (rows above it tissue, from it on cavity) is where the probability mass on the
    wrong side is smallest, looked for within `search_half_rows` of the middle row (None: anywhere);
    within SUBPIXEL_HALF_WINDOW rows of it the tissue probability is summed, so the border moves by
    fractions of a row as the probability does. Returned as the pixel edge: a step between rows k - 1
    and k gives k - 0.5.
    """
    probability = np.asarray(probability)
    n_rows, width = probability.shape
    if width > STRIP_CHUNK_COLUMNS:  # columns are independent: a chunk at a time bounds the float64 work arrays
        return np.concatenate([strip_border(probability[:, start:start + STRIP_CHUNK_COLUMNS], search_half_rows)
                               for start in range(0, width, STRIP_CHUNK_COLUMNS)])
    probability = probability.astype(np.float64)
    zero = np.zeros((1, width))
    cavity_above = np.concatenate([zero, np.cumsum(probability, axis=0)])
    tissue_above = np.concatenate([zero, np.cumsum(1.0 - probability, axis=0)])
    wrong_side = cavity_above + (tissue_above[-1:] - tissue_above)  # for a step at each row 0..n_rows
    if search_half_rows is not None:
        lowest, highest = max(0, n_rows // 2 - search_half_rows), min(n_rows, n_rows // 2 + search_half_rows)
        step = lowest + np.argmin(wrong_side[lowest:highest + 1], axis=0)
    else:
        step = np.argmin(wrong_side, axis=0)
    columns = np.arange(width)
    low = np.clip(step - SUBPIXEL_HALF_WINDOW, 0, n_rows)
    high = np.clip(step + SUBPIXEL_HALF_WINDOW, 0, n_rows)
    return low + (tissue_above[high, columns] - tissue_above[low, columns]) - 0.5


def image_border(strip_border_px, base, side, strip_rows, zoom=1.0):
    """Strip coordinates (W,) back to image rows (W,) for the strip built on `base` (W,) at `zoom`."""
    offset = (np.asarray(strip_border_px) - strip_rows // 2) / zoom
    return base + offset if side == "upper" else base - offset


def fill_gaps(trace_px):
    """`trace_px` (W,) with its NaN columns filled by linear interpolation (held at the ends); None when all
    are NaN."""
    trace_px = np.asarray(trace_px, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(trace_px))
    if finite.size == 0:
        return None
    return np.interp(np.arange(trace_px.size), finite, trace_px[finite])


def refine_borders(net, image_uint8, upper_px, lower_px, strip_rows, device="cpu", batch_size=None,
                   mm_per_px=None):
    """Refined (upper_px, lower_px), float (W,) image rows, NaN where the guide borders are NaN.

    `net`: the refiner in eval mode; `image_uint8` (H, W); `upper_px`, `lower_px` (W,) the guide borders
    (the segmentation's); `strip_rows` the refiner's input rows; `mm_per_px` the recording's depth
    calibration (sets the strip zoom, `strip_zoom`). Each strip runs through the network at full
    resolution in overlapping tiles of TILE_COLUMNS (`mmode.inference.predict_probability` with a square
    input of `strip_rows`, so one strip column is one image column).
    """
    from mmode.inference import default_batch_size, predict_probability

    image_uint8 = np.asarray(image_uint8)
    zoom = strip_zoom(mm_per_px)
    if batch_size is None:
        tiles_per_pass = default_batch_size(device, strip_rows * TILE_COLUMNS, GPU_BATCH_SIZE)
    else:
        tiles_per_pass = max(1, batch_size // 4)
    refined = []
    for side, guide_px in zip(SIDES, (upper_px, lower_px)):
        filled = fill_gaps(guide_px)
        if filled is None:
            refined.append(np.full(image_uint8.shape[1], np.nan))
            continue
        strip, base = straighten(image_uint8, filled, side, strip_rows, zoom)
        probability = predict_probability(net, strip, strip_rows, device, tile_width=TILE_COLUMNS,
                                          overlap=strip_rows // 4, batch_size=tiles_per_pass)
        border_px = image_border(strip_border(probability), base, side, strip_rows, zoom)
        refined.append(np.where(np.isfinite(guide_px), border_px, np.nan))
    return tuple(refined)


def check_refiner(checkpoint, path):
    """The refiner's strip rows from its checkpoint; InputError when `path` holds no border refiner."""
    from mmode.errors import InputError

    if checkpoint.get("task") != TASK:
        raise InputError(f"{path}: not a border refiner (it was not trained on strips from "
                         f"`python -m preprocess build --strips`); pass a refiner with --refiner or use --no-refine")
    strip_rows = int(checkpoint["img_size"])
    if strip_rows % 16:
        raise InputError(f"{path}: its strips of {strip_rows} rows are not a multiple of 16")
    return strip_rows


def check_segmentation(checkpoint, path):
    """InputError when the checkpoint at `path` is a border refiner, where a segmentation network is wanted."""
    from mmode.errors import InputError

    if checkpoint.get("task") == TASK:
        raise InputError(f"{path}: a border refiner (trained on strips), not a segmentation network; "
                         f"pass the segmentation checkpoint (checkpoints/heart-seg-net.pt or run.py's CP_best_e<N>.pt)")
