import numpy as np
import pytest
from PIL import Image

from mmode.agreement import bland_altman
from mmode.plots import (BOX_COLOUR, FLAGGED_SHADE_COLOUR, LOWER_COLOUR, OVERVIEW_DPI, OVERVIEW_HEADER_IN,
                         OVERVIEW_MARGIN_IN, OVERVIEW_ROW_IN, TRUTH_COLOUR, UPPER_COLOUR, bland_altman_figure, draw_box,
                         draw_overlay, draw_truth, plot_bland_altman, plot_study_overview, save_overlay)


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


def test_the_box_is_outlined_outside_itself_and_leaves_every_pixel_in_it():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(60, 90), dtype=np.uint8)
    rgb = draw_box(image, (10, 5, 70, 60), thickness_px=3)  # the bottom on the image's edge: no line there
    ring = np.zeros(image.shape, dtype=bool)
    ring[2:60, 7:73] = True
    ring[5:60, 10:70] = False
    assert (rgb[ring] == BOX_COLOUR).all()
    np.testing.assert_array_equal(rgb[~ring], np.repeat(image[~ring][:, None], 3, axis=1))
    # the whole image as the box: nothing drawn
    np.testing.assert_array_equal(draw_box(image, (0, 0, 90, 60)), np.repeat(image[:, :, None], 3, axis=2))


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


def test_the_study_overview_has_a_row_per_recording_and_shades_only_the_flagged_beats(tmp_path):
    time_s = np.arange(0, 2.0, 0.001)
    lvid_mm = 3.0 + 0.5 * np.sin(2 * np.pi * 8 * time_s)
    rows = [dict(title="a.png", time_s=time_s, lvid_mm=lvid_mm, flagged_spans_s=[(0.5, 1.0)]),
            dict(title="b.png", time_s=time_s, lvid_mm=lvid_mm, flagged_spans_s=[]),
            dict(title="c.png: not analysed", error="c.png: not a readable image")]
    path = plot_study_overview(tmp_path / "overview.png", rows)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert abs(rgb.shape[0] - (2 * OVERVIEW_MARGIN_IN + OVERVIEW_HEADER_IN + 3 * OVERVIEW_ROW_IN) * OVERVIEW_DPI) <= 1
    shaded = np.all(rgb == FLAGGED_SHADE_COLOUR, axis=2)
    rows_shaded = np.flatnonzero(shaded.any(axis=1))
    assert rows_shaded.size and rows_shaded.max() < rgb.shape[0] / 3  # only in the first of the three rows
    # a quarter of the first row's 2 s is shaded: its columns span a quarter of the plot's width
    columns = np.flatnonzero(shaded.any(axis=0))
    plotted = np.flatnonzero((rgb[rows_shaded.min():rows_shaded.max() + 1] != 255).any(axis=(0, 2)))
    assert abs((columns.max() - columns.min()) / (plotted.max() - plotted.min()) - 0.25) < 0.02
    one = plot_study_overview(tmp_path / "one.png", rows[1:2])  # a study of one recording
    assert not np.all(np.asarray(Image.open(one).convert("RGB")) == FLAGGED_SHADE_COLOUR, axis=2).any()


def test_a_bland_altman_panel_plots_each_pair_at_its_mean_and_difference_with_the_bias_and_limits(tmp_path):
    reference = np.array([3.0, 3.5, 4.0, 2.5, np.nan])
    measured = np.array([3.1, 3.4, 4.2, 2.5, 3.0])  # the last pair has no reference: not drawn
    agreement = bland_altman(measured, reference)
    panel = dict(label="LVIDd (mm)", measured=measured, reference=reference, agreement=agreement)
    lone = dict(label="HR (bpm)", measured=[600.0], reference=[598.0], agreement=bland_altman([600.0], [598.0]))
    rows = [dict(title="clean", panels=[panel, lone]), dict(title="artefacts", panels=[panel])]
    figure = bland_altman_figure(rows)
    axes = np.array(figure.axes).reshape(2, 2)
    points = axes[0, 0].lines[0]
    np.testing.assert_allclose(points.get_xdata(), [3.05, 3.45, 4.1, 2.5])
    np.testing.assert_allclose(points.get_ydata(), [0.1, -0.1, 0.2, 0.0], atol=1e-12)
    levels = sorted(line.get_ydata()[0] for line in axes[0, 0].lines[1:] if len(line.get_ydata()))
    assert levels == pytest.approx(sorted([0.0, agreement["bias"], agreement["loa_low"], agreement["loa_high"]]))
    # one pair: its bias, no limits; a row with fewer panels leaves the rest of the row blank
    lone_levels = sorted(line.get_ydata()[0] for line in axes[0, 1].lines[1:] if len(line.get_ydata()))
    assert lone_levels == pytest.approx([0.0, 2.0])
    assert axes[0, 1].get_title() == "clean: HR (bpm), n 1" and not axes[1, 1].axison
    assert Image.open(plot_bland_altman(tmp_path / "ba.png", rows)).size == (640, 600)
