"""Border refinement: strip geometry, the border read off a strip's probability, and the training strips."""
import numpy as np
import pytest

from mmode.refine import (TRAINED_MM_PER_PX, fill_gaps, image_border, straighten, strip_border, strip_image_rows,
                          strip_mask, strip_zoom)
from preprocess.strips import (MAX_OFFSET_PX, MAX_TIME_SHIFT_PX, STRIP_COLUMNS, cut_guide_strips, cut_strips,
                               recording_rng, strip_count)

STRIP_ROWS = 32


def walls_image(upper_px, lower_px, height):
    """uint8 image: tissue (200) outside the cavity, cavity (10) at rows strictly between the borders."""
    rows = np.arange(height)[:, None]
    cavity = (rows > upper_px[None, :]) & (rows < lower_px[None, :])
    return np.where(cavity, 10, 200).astype(np.uint8)


def moving_borders(width, rng):
    columns = np.arange(width)
    upper_px = 60 + 12 * np.sin(columns / 9.0) + rng.uniform(-0.5, 0.5, width)
    lower_px = 140 - 15 * np.sin(columns / 9.0) + rng.uniform(-0.5, 0.5, width)
    return upper_px, lower_px


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_a_strip_has_tissue_above_and_cavity_below_the_true_border(side):
    rng = np.random.default_rng(0)
    upper_px, lower_px = moving_borders(90, rng)
    image = walls_image(upper_px, lower_px, 200)
    border_px = upper_px if side == "upper" else lower_px
    guide_px = border_px + rng.uniform(-6, 6, border_px.size)  # a guide off by up to 6 rows
    strip, base = straighten(image, guide_px, side, STRIP_ROWS)
    mask = strip_mask(guide_px, side, border_px, STRIP_ROWS)
    # the mask is exactly the strip's dark pixels, and each column is tissue then cavity (one step)
    np.testing.assert_array_equal(mask, (strip < 100).astype(np.uint8))
    assert np.all(np.diff(mask.astype(int), axis=0) >= 0)
    # reading the border off the (perfect) mask gives the true border to within half a row
    read_px = image_border(strip_border(mask.astype(float)), base, side, STRIP_ROWS)
    assert np.max(np.abs(read_px - border_px)) <= 0.5 + 1e-9


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_a_coarse_recording_is_zoomed_to_the_trained_scale_and_its_border_read_back(side):
    zoom = strip_zoom(0.0332)  # the real reference strip's calibration, 2.2x the coarsest trained
    assert zoom == pytest.approx(0.0332 / TRAINED_MM_PER_PX[1])
    assert strip_zoom(0.0115) == 1.0 and strip_zoom(None) == 1.0
    rng = np.random.default_rng(2)
    upper_px, lower_px = moving_borders(90, rng)
    image = walls_image(upper_px, lower_px, 200)
    border_px = upper_px if side == "upper" else lower_px
    guide_px = border_px + rng.uniform(-3, 3, border_px.size)
    strip, base = straighten(image, guide_px, side, STRIP_ROWS, zoom)
    dark = (strip < 105).astype(float)  # the interpolated edge row counts where it is mostly cavity
    read_px = image_border(strip_border(dark), base, side, STRIP_ROWS, zoom)
    # the image itself puts the border on a pixel edge; strip rows, 1 / zoom image rows apart, find that
    # edge to within half a strip row
    edge_px = np.floor(border_px) + 0.5 if side == "upper" else np.ceil(border_px) - 0.5
    assert np.max(np.abs(read_px - edge_px)) <= 0.5 / zoom + 1e-9


def test_strip_rows_are_clamped_to_the_image():
    rows, base = strip_image_rows(np.array([2.2, 197.6]), "upper", STRIP_ROWS, 200)
    assert rows.min() == 0 and rows.max() == 199
    np.testing.assert_array_equal(base, [2, 198])


def test_the_border_moves_with_the_probability_by_fractions_of_a_row():
    probability = np.zeros((STRIP_ROWS, 3))
    probability[16:] = 1.0
    probability[15] = [0.0, 0.5, 0.9]  # the row above the step, more and more cavity
    np.testing.assert_allclose(strip_border(probability), [15.5, 15.0, 14.6])


def test_the_border_ignores_a_speck_of_cavity_far_from_the_step():
    probability = np.zeros((STRIP_ROWS, 1))
    probability[20:] = 1.0
    probability[2:4] = 1.0  # a dark patch in the wall, 17 rows above the border
    assert strip_border(probability)[0] == pytest.approx(19.5)


def test_fill_gaps_interpolates_and_gives_none_for_no_border():
    np.testing.assert_allclose(fill_gaps(np.array([np.nan, 2.0, np.nan, 4.0, np.nan])), [2, 2, 3, 4, 4])
    assert fill_gaps(np.full(3, np.nan)) is None


def test_training_strips_hold_the_annotated_border_and_repeat_with_the_seed():
    rng = np.random.default_rng(1)
    upper_px, lower_px = moving_borders(600, rng)
    image = walls_image(upper_px, lower_px, 220)
    span = (20, 580)
    strips = cut_strips(recording_rng(5, "rec"), image, upper_px, lower_px, span, stride=100, strip_rows=96)
    assert len(strips) == strip_count(span, 100) == 2 * 5
    for strip, mask in strips:
        assert strip.shape == mask.shape == (96, STRIP_COLUMNS)
        np.testing.assert_array_equal(mask, (strip < 100).astype(np.uint8))  # the border the walls drew
        # perturbed guides move the border off the middle row, never out of the strip
        border_rows = mask.shape[0] - mask.sum(axis=0, dtype=int)
        max_slope_px = 15 / 9.0  # rows per column of the faster (lower) wall
        assert np.all(np.abs(border_rows - 48) <= MAX_OFFSET_PX + MAX_TIME_SHIFT_PX * max_slope_px + 1)
    offsets = [np.mean(mask.shape[0] - mask.sum(axis=0, dtype=int)) - 48 for _, mask in strips]
    assert np.std(offsets) > 1.0  # guides are perturbed
    again = cut_strips(recording_rng(5, "rec"), image, upper_px, lower_px, span, stride=100, strip_rows=96)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(strips, again))
    other = cut_strips(recording_rng(6, "rec"), image, upper_px, lower_px, span, stride=100, strip_rows=96)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(strips, other))


def network_guides(upper_px, lower_px):
    """A segmentation's borders: the upper 10 rows too high at columns 100-149 (hard), 60 rows off at
    400-449 (too far to keep), the lower exact but for two columns without cavity (NaN)."""
    guide_upper, guide_lower = upper_px.copy(), lower_px.copy()
    guide_upper[100:150] -= 10
    guide_upper[400:450] += 60
    guide_lower[[7, 300]] = np.nan
    return guide_upper, guide_lower


# upper strips first: those at columns 0 and 96 hold the 10-row error (hard), 192 is exact, 288 and 384 hold
# the 60-row error (dropped); the lower five are exact
@pytest.mark.parametrize("easy_fraction, expected_hard", [(0.0, [True, True]), (1.0, [True, True] + [False] * 6)])
def test_strips_along_a_networks_borders_keep_where_it_strays_and_are_labelled_with_the_annotation(
        easy_fraction, expected_hard):
    upper_px, lower_px = moving_borders(600, np.random.default_rng(2))
    image = walls_image(upper_px, lower_px, 220)
    guides = network_guides(upper_px, lower_px)
    strips = cut_guide_strips(recording_rng(3, "rec", stream=1), image, guides, upper_px, lower_px, (0, 600),
                              stride=96, strip_rows=96, easy_fraction=easy_fraction)
    assert [hard for *_, hard in strips] == expected_hard
    for strip, mask, _ in strips:
        assert strip.shape == mask.shape == (96, STRIP_COLUMNS)
        np.testing.assert_array_equal(mask, (strip < 100).astype(np.uint8))  # the annotated (drawn) border
    # the first strip follows the guide: its border lies 10 rows deeper where the guide was 10 rows high
    mask = strips[0][1]
    border_rows = mask.shape[0] - mask.sum(axis=0, dtype=int)
    assert abs(border_rows[100:128].mean() - border_rows[:90].mean() - 10) < 1.0
    again = cut_guide_strips(recording_rng(3, "rec", stream=1), image, guides, upper_px, lower_px, (0, 600),
                             stride=96, strip_rows=96, easy_fraction=easy_fraction)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(strips, again))


def test_a_border_the_network_never_found_gives_no_guide_strips():
    upper_px, lower_px = moving_borders(300, np.random.default_rng(4))
    image = walls_image(upper_px, lower_px, 220)
    no_cavity = np.full(300, np.nan)
    strips = cut_guide_strips(np.random.default_rng(0), image, (no_cavity, lower_px + 8), upper_px, lower_px,
                              (0, 300), stride=96, strip_rows=96)
    assert len(strips) == 2 and all(hard for *_, hard in strips)  # lower strips at 0 and 96, 8 rows off


def test_the_refiner_runs_one_tile_per_cpu_pass_unless_told_a_batch_size_of_which_it_takes_a_quarter():
    torch = pytest.importorskip("torch")
    from mmode.refine import TILE_COLUMNS, refine_borders

    class Recorder(torch.nn.Module):  # dark is cavity; remembers every batch's shape
        def __init__(self):
            super().__init__()
            self.shapes = []

        def forward(self, x):
            self.shapes.append(tuple(x.shape))
            return 8.0 * (105 / 255 - x)

    rng = np.random.default_rng(3)
    upper_px, lower_px = moving_borders(3000, rng)
    image = walls_image(upper_px, lower_px, 200)
    net = Recorder()
    default = refine_borders(net, image, upper_px + 2, lower_px - 2, 96)
    assert {shape[0] for shape in net.shapes} == {1} and net.shapes[0] == (1, 1, 96, TILE_COLUMNS)
    net.shapes.clear()
    batched = refine_borders(net, image, upper_px + 2, lower_px - 2, 96, batch_size=8)
    assert net.shapes[0][0] == 2
    for refined, told in zip(default, batched):
        np.testing.assert_allclose(refined, told, atol=1e-4)
    # and the borders are the image's: the guides were 2 rows inside the cavity
    assert np.nanmedian(np.abs(default[0] - (np.floor(upper_px) + 0.5))) < 0.5


def test_a_long_strip_is_read_a_chunk_of_columns_at_a_time_to_the_same_borders(monkeypatch):
    import mmode.refine as refine

    probability = np.random.default_rng(4).random((96, 2 * refine.STRIP_CHUNK_COLUMNS + 123)).astype(np.float32)
    chunked = refine.strip_border(probability)
    monkeypatch.setattr(refine, "STRIP_CHUNK_COLUMNS", probability.shape[1])
    np.testing.assert_array_equal(chunked, refine.strip_border(probability))
    assert chunked.shape == (probability.shape[1],)
