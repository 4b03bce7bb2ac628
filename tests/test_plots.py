import numpy as np
from PIL import Image

from mmode.plots import LOWER_COLOUR, TRUTH_COLOUR, UPPER_COLOUR, draw_overlay, draw_truth, save_overlay


def test_the_overlay_file_holds_the_drawing_pixel_for_pixel(tmp_path):
    # The overlay is written at a faster zlib level than PIL's default; PNG stays lossless at any level.
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(120, 900), dtype=np.uint8)
    upper = np.full(900, 30.4)
    lower = np.full(900, 80.6)
    lower[100:140] = np.nan
    path = save_overlay(tmp_path / "overlay.png", image, upper, lower)
    written = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(written, draw_overlay(image, upper, lower))
    assert tuple(written[30, 0]) == tuple(UPPER_COLOUR) and tuple(written[80, 0]) == tuple(LOWER_COLOUR)
    assert tuple(written[80, 120]) == (image[80, 120],) * 3


def test_the_truth_is_dashed_over_the_drawing_and_leaves_the_rest():
    image = np.full((400, 64), 90, dtype=np.uint8)
    rgb = draw_overlay(image, np.full(64, 100.0), np.full(64, 300.0))
    upper = np.full(64, 110.2)  # 10 rows under the model's upper border
    lower = np.full(64, np.nan)  # no truth there
    marked = draw_truth(rgb, upper, lower, dash_px=8)
    changed = np.any(marked != rgb, axis=2)
    # thickness max(1, 400 // 400) = 1 each side: rows 109 and 110, in columns 0-7, 16-23, ...
    dashes = (np.arange(64) // 8) % 2 == 0
    np.testing.assert_array_equal(np.flatnonzero(changed.any(axis=1)), [109, 110])
    np.testing.assert_array_equal(changed[109], dashes)
    assert tuple(marked[110, 0]) == TRUTH_COLOUR and tuple(marked[110, 8]) == (90, 90, 90)
