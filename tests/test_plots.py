import numpy as np
from PIL import Image

from mmode.plots import LOWER_COLOUR, UPPER_COLOUR, draw_overlay, save_overlay


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
