"""Whole-recording inference: a recording of any length through the fully convolutional network.

The recording is resized so its height is the network's input rows and its time axis scaled as the
training windows' was (a square window of the recording's height became `rows` x `columns`; PIL bilinear
on the 8-bit image), cut along time into tiles of bounded width that overlap, and the tiles' probabilities
are blended with linear ramps across each overlap, so no seam shows and memory stays bounded whatever the
length. Probabilities are then resized back to the input's full resolution (bilinear,
align_corners=False) before anyone thresholds them, so LVID keeps sub-network-pixel precision.
"""
import numpy as np
from PIL import Image

SIZE_MULTIPLE = 16  # QuickNat pools four times
# Pixels per forward pass on a CPU when no batch size is given. Per pixel, a CPU pass is fastest while
# its activations stay in cache: on the 2-core machine of README "Benchmarks", one 256 x 384 tile of the
# default model ran 3.9x faster per pixel than a batch of 8, and one 96 x 768 refiner strip tile as fast
# as two (bench/speed.py). So: one recording tile, two 256 x 192 test windows, one refiner tile.
CPU_PASS_PIXELS = 131_072
GPU_BATCH_SIZE = 8  # tiles per pass on a GPU, where larger passes are not slower


def _round_up(value, multiple=SIZE_MULTIPLE):
    return -(-int(value) // multiple) * multiple


def default_tile_width(columns):
    """Tile width (network px) used when none is given: twice the input's columns, a multiple of 16."""
    return _round_up(2 * columns)


def default_overlap(columns):
    """Overlap (network px) between neighbouring tiles when none is given: half the input's columns."""
    return max(1, int(columns) // 2)


def default_batch_size(device, tile_pixels, gpu_batch_size=GPU_BATCH_SIZE):
    """Tiles (or images) of `tile_pixels` pixels per forward pass when the user gives no batch size: on
    a CPU as many as fit in CPU_PASS_PIXELS, at least one; on any other device `gpu_batch_size`."""
    import torch

    if torch.device(device).type == "cpu":
        return max(1, CPU_PASS_PIXELS // int(tile_pixels))
    return gpu_batch_size


def input_rows_columns(img_size):
    """The network input as (rows, columns): `img_size` is an int (a square) or a (rows, columns) pair."""
    if np.ndim(img_size) == 0:
        return int(img_size), int(img_size)
    rows, columns = img_size
    return int(rows), int(columns)


def time_stretch(height_px, s_per_px, img_size, ms_per_column=None):
    """How much wider than the height rule (a square window of the recording's height becomes `columns`)
    a recording of `height_px` rows at `s_per_px` is resized, so that one network column spans
    `ms_per_column` milliseconds: 1.0 when `ms_per_column` is None (the height rule)."""
    if ms_per_column is None:
        return 1.0
    _, columns = input_rows_columns(img_size)
    return height_px * s_per_px * 1000.0 / columns / float(ms_per_column)


def resize_to_height(image_uint8, img_size, stretch=1.0):
    """uint8 (H, W) -> float32 (rows, round(W * columns / H * stretch)) in [0, 1], PIL bilinear, with
    (rows, columns) from `img_size` (an int: square, so the aspect is kept) and `stretch` from
    `time_stretch`."""
    rows, columns = input_rows_columns(img_size)
    height, width = image_uint8.shape
    width_px = max(1, int(round(width * columns / height * stretch)))
    resized = Image.fromarray(np.ascontiguousarray(image_uint8)).resize((width_px, rows),
                                                                        Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def tile_starts(width_px, tile_width, overlap):
    """Left edges of the tiles covering `width_px` columns: a step of tile_width - overlap, the last
    tile aligned to the end (so it may overlap its neighbour by more)."""
    if width_px <= tile_width:
        return np.array([0])
    step = tile_width - overlap
    starts = np.arange(0, width_px - tile_width, step)
    return np.append(starts, width_px - tile_width)


def blend_weights(tile_width, overlap):
    """Weight of each column of a tile: a linear ramp over `overlap` columns at both sides, 1 between.
    Never 0, so the recording's outer columns (covered by one tile only) keep their value."""
    column = np.arange(tile_width) + 0.5
    return np.minimum(1.0, np.minimum(column, tile_width - column) / overlap).astype(np.float32)


def upsample_bilinear(probability, shape, chunk_columns=4096):
    """Resize float (h, w) to `shape` (H, W) bilinearly, as torch's interpolate(align_corners=False) does,
    in chunks of output columns so a long recording never needs a second full-size temporary."""
    height, width = shape
    source_h, source_w = probability.shape

    def axis(n_out, n_in):
        position = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        low = np.minimum(np.floor(position).astype(np.int64), n_in - 1)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, (position - low).astype(np.float32)

    row_low, row_high, row_frac = axis(height, source_h)
    col_low, col_high, col_frac = axis(width, source_w)
    rows = probability[row_low] * (1 - row_frac[:, None]) + probability[row_high] * row_frac[:, None]
    out = np.empty((height, width), dtype=np.float32)
    for start in range(0, width, chunk_columns):
        part = slice(start, min(start + chunk_columns, width))
        frac = col_frac[part]
        out[:, part] = rows[:, col_low[part]] * (1 - frac) + rows[:, col_high[part]] * frac
    return out


def predict_probability(net, image_uint8, img_size, device="cpu", tile_width=None, overlap=None,
                        batch_size=None, progress=False, stretch=1.0):
    """Cavity probability of every pixel of a whole recording.

    `net`: a network in eval mode mapping (N, 1, h, w) with h, w multiples of 16 to logits (N, 1, h, w);
    `image_uint8`: (H, W) grey recording; `img_size`: the network's input, an int (square) or (rows,
    columns) as `mmode.checkpoint.input_shape` gives it; `tile_width` (default 2 x columns) and `overlap`
    (default columns / 2) in network pixels, the tile width a multiple of 16; `batch_size` tiles per
    forward pass (None: `default_batch_size` for the device); `stretch` the time axis's extra scale
    (`time_stretch`). Returns float32 (H, W) in [0, 1].
    """
    import torch

    image_uint8 = np.asarray(image_uint8)
    if image_uint8.ndim != 2 or image_uint8.size == 0:
        raise ValueError(f"expected a 2-D grey image, got shape {image_uint8.shape}")
    rows, columns = input_rows_columns(img_size)
    tile_width = default_tile_width(columns) if tile_width is None else int(tile_width)
    overlap = default_overlap(columns) if overlap is None else int(overlap)
    if tile_width < SIZE_MULTIPLE or tile_width % SIZE_MULTIPLE:
        raise ValueError(f"tile width {tile_width} px must be a positive multiple of {SIZE_MULTIPLE}")
    if not 0 < overlap < tile_width:
        raise ValueError(f"overlap {overlap} px must lie between 0 and the tile width {tile_width} px")

    strip = resize_to_height(image_uint8, img_size, stretch)
    strip_width = strip.shape[1]
    # A strip narrower than a tile is one tile, padded to the network's multiple; a longer one is cut
    # into full tiles, the last aligned to its end. Padding reflects: zeros would look like (dark) cavity.
    padded_width = strip_width if strip_width >= tile_width else _round_up(strip_width)
    padded_height = _round_up(rows)
    strip = _reflect_pad(strip, padded_height, padded_width)
    tile_width = min(tile_width, padded_width)
    starts = tile_starts(padded_width, tile_width, overlap)
    weights = blend_weights(tile_width, min(overlap, tile_width))
    if batch_size is None:
        batch_size = default_batch_size(device, padded_height * tile_width)

    total = np.zeros(padded_width, dtype=np.float32)
    blended = np.zeros((padded_height, padded_width), dtype=np.float32)
    batches = range(0, starts.size, batch_size)
    if progress and starts.size > batch_size:
        from tqdm import tqdm

        batches = tqdm(batches, desc="tiles", unit="batch", leave=False)
    with torch.inference_mode():
        for first in batches:
            batch_starts = starts[first:first + batch_size]
            tiles = np.stack([strip[:, start:start + tile_width] for start in batch_starts])
            logits = net(torch.from_numpy(tiles[:, None]).to(device))
            probabilities = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
            for start, tile in zip(batch_starts, probabilities):
                blended[:, start:start + tile_width] += tile * weights
                total[start:start + tile_width] += weights
    strip_probability = blended[:rows, :strip_width] / total[:strip_width]
    return upsample_bilinear(strip_probability, image_uint8.shape)


def _reflect_pad(strip, height, width):
    """Pad float (h, w) at the bottom and right to (height, width) by reflection (edge values where the
    strip is too small to reflect)."""
    pad_h, pad_w = height - strip.shape[0], width - strip.shape[1]
    if pad_h == 0 and pad_w == 0:
        return strip
    mode = "reflect" if pad_h < strip.shape[0] and pad_w < strip.shape[1] else "edge"
    return np.pad(strip, ((0, pad_h), (0, pad_w)), mode=mode)
