"""Training windows cut along time from a long recording and its mask.

Rule: a window is a square of side min(height, width) of the long image, or, cut by time (`columns`, what
`preprocess build --window-seconds` asks for), the whole height by `columns`. Windows start at the first
annotated column and step by `stride` columns (default half a window's width) while they fit inside the
annotated span [start, stop); when the last one ends before the span does, one more window is aligned to the
span's end. A span narrower than a window gives no windows. Windows are numbered k = 0, 1, ... from the span's
start and saved as `<recording>_win<k>.png`, the same name in img/ and mask/.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Window:
    """One window: `index` k of `<recording>_win<k>`, its first column `start_px` and first row
    `top_px` in the long image, and the uint8 `image` and 0/1 `mask` crops (rows x columns)."""

    index: int
    start_px: int
    top_px: int
    image: np.ndarray
    mask: np.ndarray


def window_side(height, width):
    """Side of the square windows (px) for an image of `height` x `width`."""
    return min(height, width)


def window_size(height, width, columns=None):
    """(rows, columns) of the windows for an image of `height` x `width`: the square of `window_side`, or with
    `columns` (windows cut by time) the whole height by `columns`."""
    if columns is None:
        side = window_side(height, width)
        return side, side
    return height, int(columns)


def columns_spanning(seconds, s_per_px):
    """Columns of a recording at `s_per_px` that span `seconds`: the width of a window cut by time."""
    return int(round(float(seconds) / float(s_per_px)))


def default_stride(side):
    """Default step between windows (px): half a window, so every column is seen in two windows."""
    return max(1, side // 2)


def window_starts(span, side, stride):
    """First columns of the windows `side` columns wide inside `span` = (start, stop); empty when the span is
    narrower than `side`."""
    start, stop = span
    if stop - start < side:
        return np.array([], dtype=int)
    starts = np.arange(start, stop - side + 1, stride)
    if starts[-1] + side < stop:
        starts = np.append(starts, stop - side)
    return starts


def window_top(mask, side):
    """First row of the windows: 0 for a wide image; for an image taller than wide, the rows centred on the
    mask's cavity (clamped to the image), so the square holds the annotated walls."""
    height = mask.shape[0]
    if height == side:
        return 0
    cavity_rows = np.flatnonzero(mask.any(axis=1))
    centre = (cavity_rows[0] + cavity_rows[-1]) // 2 if cavity_rows.size else height // 2
    return int(np.clip(centre - side // 2, 0, height - side))


def cut_windows(image, mask, span, stride=None, columns=None):
    """Windows of `image` (uint8 (H, W)) and `mask` (0/1 (H, W)) inside `span` -> list of Window (views):
    squares, or with `columns` the whole height by `columns` (`window_size`)."""
    side, width = window_size(*image.shape, columns)
    stride = default_stride(width) if stride is None else int(stride)
    top = window_top(mask, side)
    rows = slice(top, top + side)
    return [Window(k, int(start), top, image[rows, start:start + width], mask[rows, start:start + width])
            for k, start in enumerate(window_starts(span, width, stride))]


def window_name(recording, index):
    """File name of window `index` of `recording`: `<recording>_win<k>.png`."""
    return f"{recording}_win{index}.png"
