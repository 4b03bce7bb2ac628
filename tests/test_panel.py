"""mmode.panel: the M-mode panel found in screenshots whose panel box is known (`bench.screenshots.screenshot`: a
title bar, labels, a depth scale, time ticks and an ECG trace around it), and the image alone left whole."""
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.screenshots import jpeg_round_trip, screenshot
from mmode.calibration import Calibration
from mmode.cli import AUTO_CROP, crop_box_or_auto
from mmode.errors import InputError
from mmode.io import Recording, crop_recording, read_recording
from mmode.panel import find_panel, surround_grey

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.png"))
REAL_STRIP = ROOT.parent / "shared" / "reference" / "real_mmode_strip.png"


def grey(path):
    return np.asarray(Image.open(path).convert("L"))


@pytest.mark.parametrize("surround", [30, 128])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_the_panel_of_a_screenshot_is_found_exactly(path, surround):
    screen, box = screenshot(grey(path), surround)
    assert surround_grey(screen) == surround
    assert find_panel(screen) == box


def test_the_real_strip_is_found_exactly_on_any_surround():
    """The real recording's darkest rows are 2-7 grey levels and its cavity 5-20: on black too."""
    if not REAL_STRIP.is_file():
        pytest.skip("the shared reference strip is not beside this checkout")
    for surround in (0, 30, 128):
        screen, box = screenshot(grey(REAL_STRIP), surround, left=33, top=71)
        assert find_panel(screen) == box


def test_a_panel_whose_edge_rows_are_black_on_black_keeps_the_heart():
    """Example 1 has no black pixel and is found exactly on black; example 2's deepest rows are its display floor,
    0 like the surround: the box ends where they begin, the rows left out are all dark, and every other edge is
    exact."""
    screen, box = screenshot(grey(EXAMPLES[1]), 0)
    assert find_panel(screen) == box
    panel = grey(EXAMPLES[2])
    screen, (left, top, right, bottom) = screenshot(panel, 0)
    found = find_panel(screen)
    assert found[:3] == (left, top, right) and bottom - 40 < found[3] < bottom
    assert panel[found[3] - top:].max() <= 16  # what is left out is as dark as the surround within 16 grey levels


@pytest.mark.parametrize("view_columns, taken_in", [(300, False), (900, False), (1800, True)])
def test_a_b_mode_view_above_the_panel_stays_outside_unless_it_is_as_wide(view_columns, taken_in):
    """A speckle image 20 px above example 2's 1,800-column panel, as many layouts show the B-mode view: narrower than
    the panel it is left out, as wide it is taken in (README, "Finding the panel in a screenshot")."""
    panel = grey(EXAMPLES[2])
    height, width = panel.shape
    screen = np.full((height + 540, width + 100), 30, np.uint8)
    screen[:20] = 200  # a title bar
    view_left = 50 + (width - view_columns) // 2
    screen[60:460, view_left:view_left + view_columns] = np.random.default_rng(0).integers(20, 200, (400, view_columns))
    screen[480:480 + height, 50:50 + width] = panel
    assert find_panel(screen) == (50, 60 if taken_in else 480, 50 + width, 480 + height)


@pytest.mark.parametrize("path", [*EXAMPLES, REAL_STRIP], ids=lambda path: path.stem)
def test_an_image_that_is_only_the_panel_is_left_whole(path):
    if not path.is_file():
        pytest.skip("the shared reference strip is not beside this checkout")
    image = grey(path)
    assert surround_grey(image) is None
    assert find_panel(image) == (0, 0, image.shape[1], image.shape[0])


def test_a_jpeg_screenshot_is_found_to_within_its_ringing():
    """Saved at quality 90, each sharp edge rings by a few grey levels: the box may take in a column or row of it
    but not the labels, scale or ticks beyond the gaps (8, 10 and 3 px)."""
    screen, box = screenshot(grey(EXAMPLES[0]), 30)
    found = find_panel(jpeg_round_trip(screen, 90)[0])
    assert np.abs(np.subtract(found, box)).max() <= 2


def test_a_screen_without_a_panel_finds_none():
    screen = np.full((300, 500), 20, np.uint8)
    screen[40:50, 30:200] = 220  # a line of text and a scale bar, nothing dense in both directions
    screen[100:280, 400] = 180
    assert find_panel(screen) is None
    recording = Recording(screen, Calibration(), Path("shot.png"))
    expected = r"shot\.png: --crop auto found no M-mode panel: .* 500 x 300 px .* surround's grey 20; give"
    with pytest.raises(InputError, match=expected):
        crop_recording(recording, AUTO_CROP)


def test_crop_auto_cuts_the_recording_and_says_where(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    panel = grey(EXAMPLES[0])
    screen, box = screenshot(panel, 30)
    Image.fromarray(screen).save(tmp_path / "shot.png")
    recording = read_recording(tmp_path / "shot.png", crop=AUTO_CROP)
    assert recording.crop == box and recording.crop_auto
    np.testing.assert_array_equal(recording.image, panel)
    assert "shot.png: --crop auto found the M-mode panel at 60,50,1860,847 (left,top,right,bottom)" in caplog.text
    alone = read_recording(EXAMPLES[0], crop=AUTO_CROP)  # its own panel: left whole, and said so
    assert alone.crop is None and alone.crop_auto and alone.image.shape == panel.shape
    assert "has no surround of one grey level, so the whole of it is analysed" in caplog.text
    given = read_recording(tmp_path / "shot.png", crop=box)
    assert given.crop == box and not given.crop_auto


def test_crop_option_reads_auto_or_a_box():
    assert crop_box_or_auto("auto") == crop_box_or_auto(" Auto ") == AUTO_CROP
    assert crop_box_or_auto("1,2,30,40") == (1, 2, 30, 40)
    with pytest.raises(Exception, match="must be LEFT,TOP,RIGHT,BOTTOM"):
        crop_box_or_auto("automatic")


def test_the_example_screenshot_is_example_2_on_a_screen_and_found_exactly():
    """examples/screenshot/ (the README's screenshot command): example 2 on the bench's screen, grey 30, with the
    pixel sizes of example 2 in its own calibration.csv."""
    folder = ROOT / "examples" / "screenshot"
    panel = grey(ROOT / "examples" / "sim_s7_002.png")
    screen, box = screenshot(panel, 30)
    np.testing.assert_array_equal(grey(folder / "sim_s7_002_screen.png"), screen)
    recording = read_recording(folder / "sim_s7_002_screen.png", crop=AUTO_CROP)
    assert recording.crop == box and recording.image.tobytes() == panel.tobytes()
    rows = [line.split(",") for line in (ROOT / "examples" / "calibration.csv").read_text().splitlines()]
    own = [line.split(",") for line in (folder / "calibration.csv").read_text().splitlines()]
    assert own == [rows[0], ["sim_s7_002_screen", *dict((row[0], row[1:]) for row in rows)["sim_s7_002"]]]


def test_a_colour_screenshot_is_found_through_its_luma(tmp_path):
    """A screen in colour, as scanners save them: a dark blue backdrop, a green ECG trace, yellow labels, the grey
    panel. Read as grey (ITU-R 601 luma) the backdrop is one grey level and the panel comes back exactly."""
    panel = grey(EXAMPLES[0])
    screen, box = screenshot(panel, 30)
    colour = np.repeat(screen[:, :, np.newaxis], 3, axis=2)
    colour[screen == 30] = (20, 30, 60)  # luma 30.4: the backdrop
    colour[screen == 150] = (0, 220, 0)  # the ECG trace
    colour[screen == 230] = (240, 220, 0)  # the labels
    left, top, right, bottom = box
    colour[top:bottom, left:right] = panel[:, :, np.newaxis]
    Image.fromarray(colour).save(tmp_path / "colour.png")
    recording = read_recording(tmp_path / "colour.png", crop=AUTO_CROP)
    assert recording.crop == box
    np.testing.assert_array_equal(recording.image, panel)
