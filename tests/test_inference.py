"""mmode.inference: whole-recording inference in blended tiles, at the input's full resolution."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmode.inference import (CPU_PASS_PIXELS, blend_weights, default_batch_size, predict_probability,  # noqa: E402
                             resize_to_height, tile_starts, time_stretch, upsample_bilinear)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def awkward_image():
    """97 x 1001 px: neither side a multiple of 16, far wider than a tile."""
    return np.random.default_rng(0).integers(0, 256, (97, 1001)).astype(np.uint8)


def test_upsampling_matches_torch_bilinear_align_corners_false():
    probability = np.random.default_rng(1).random((32, 77)).astype(np.float32)
    for shape in ((97, 1001), (20, 50), (32, 77)):
        expected = torch.nn.functional.interpolate(torch.from_numpy(probability)[None, None], size=shape,
                                                   mode="bilinear", align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(upsample_bilinear(probability, shape, chunk_columns=100), expected, atol=1e-5)


def test_tiles_cover_the_strip_with_the_overlap_and_end_at_its_end():
    starts = tile_starts(1001, 64, 16)
    assert starts[0] == 0 and starts[-1] == 1001 - 64
    assert (np.diff(starts) <= 64 - 16).all() and (np.diff(starts) > 0).all()
    np.testing.assert_array_equal(tile_starts(50, 64, 16), [0])
    weights = blend_weights(64, 16)
    assert weights.min() > 0 and weights[16:48].min() == 1.0
    np.testing.assert_allclose(weights, weights[::-1])


def test_quicknat_on_an_awkward_size_returns_a_map_of_exactly_that_size(awkward_image):
    from quicknat import QuickNat

    torch.manual_seed(0)
    net = QuickNat(dict(num_filters=4)).eval()
    probability = predict_probability(net, awkward_image, 32, batch_size=8)
    assert probability.shape == (97, 1001) and probability.dtype == np.float32
    assert np.isfinite(probability).all() and probability.min() >= 0 and probability.max() <= 1
    # Batching changes nothing.
    np.testing.assert_allclose(predict_probability(net, awkward_image, 32, batch_size=1), probability, atol=1e-6)
    # A recording narrower than one tile, also awkward: padded, predicted, cropped back.
    assert predict_probability(net, awkward_image[:, :37], 32).shape == (97, 37)


def test_pointwise_network_gives_the_same_map_tiled_or_whole(awkward_image):
    # A 1x1 convolution sees one pixel: any tiling must reproduce it exactly, and the result must be its
    # sigmoid on the resized strip, brought back to full resolution.
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 1).eval()
    tiled = predict_probability(net, awkward_image, 32, tile_width=64, overlap=16, batch_size=3)
    whole = predict_probability(net, awkward_image, 32, tile_width=352)
    weight, bias = net.weight.item(), net.bias.item()
    strip = resize_to_height(awkward_image, 32)
    expected = upsample_bilinear(1 / (1 + np.exp(-(weight * strip + bias))), awkward_image.shape)
    np.testing.assert_allclose(tiled, expected, atol=1e-5)
    np.testing.assert_allclose(whole, expected, atol=1e-5)


def test_tiles_agree_at_their_seams():
    # Two 3x3 convolutions see 2 px either side. A tile's columns farther than that from its cut edges
    # equal the whole-strip result, and so does their blend: the tiled map must equal the untiled one
    # everywhere except within 2 px of a cut, and stay close there (the ramps give cut edges little weight).
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.Conv2d(4, 1, 3, padding=1)).eval()
    image = np.random.default_rng(2).integers(0, 256, (32, 1001)).astype(np.uint8)  # height = input size
    tiled = predict_probability(net, image, 32, tile_width=64, overlap=16)
    with torch.inference_mode():
        whole = torch.sigmoid(net(torch.from_numpy(image / np.float32(255))[None, None]))[0, 0].numpy()
    cuts = np.concatenate([(starts := tile_starts(1001, 64, 16))[1:], starts[:-1] + 64])
    near_cut = (np.abs(np.arange(1001)[:, None] - cuts[None, :]) <= 2).any(axis=1)
    assert near_cut.sum() < 0.2 * 1001
    np.testing.assert_allclose(tiled[:, ~near_cut], whole[:, ~near_cut], atol=1e-5)
    assert np.abs(tiled - whole).max() < 0.05
    assert np.abs(tiled - whole).max() > 1e-4  # the cuts do show, just weakly: the comparison is real


class DarkIsCavity(torch.nn.Module):
    """A stand-in network: dark pixels are cavity, logit = 4 (0.42 - grey), 0.42 being half-way between
    the test image's cavity (25) and tissue (190) grey levels; like a trained network, it answers a
    blurred edge with graded probabilities."""

    def forward(self, x):
        return 4.0 * (107.5 / 255 - x)


def border_deviations_px(mask, upper, lower):
    """Per column, how far the mask's first and last cavity rows (as pixel edges) lie from the borders."""
    first = mask.argmax(axis=0)
    last = mask.shape[0] - 1 - mask[::-1].argmax(axis=0)
    return np.abs((first - 0.5) - upper), np.abs((last + 0.5) - lower)


def border_errors_px(mask, upper, lower):
    return max(deviation.max() for deviation in border_deviations_px(mask, upper, lower))


def moving_band(height_px=600, width_px=700):
    """A dark band between two smoothly moving borders: (uint8 image, upper border, lower border), the
    borders in rows per column."""
    columns = np.arange(width_px)
    upper = 200.3 + 30 * np.sin(columns / 150)
    lower = 420.6 - 40 * np.sin(columns / 150)
    rows = np.arange(height_px)[:, None]
    return np.where((rows > upper) & (rows < lower), 25, 190).astype(np.uint8), upper, lower


def test_probabilities_are_upsampled_before_thresholding():
    # A dark band between two smoothly moving borders on a 600-row image, analysed at a 64-px input: one
    # network pixel is 9.4 rows, yet the full-resolution map thresholded after upsampling finds each
    # border within 2 rows; thresholding at the network's resolution first is off by up to half a
    # network pixel (4.7 rows).
    image, upper, lower = moving_band()
    net = DarkIsCavity()
    probability = predict_probability(net, image, 64)
    assert border_errors_px(probability > 0.5, upper, lower) < 2.0
    strip_probability = torch.sigmoid(net(torch.from_numpy(resize_to_height(image, 64)))).numpy()
    thresholded_first = upsample_bilinear((strip_probability > 0.5).astype(np.float32), image.shape) > 0.5
    assert border_errors_px(thresholded_first, upper, lower) > 3.0


class ShapeRecorder(DarkIsCavity):
    """DarkIsCavity that remembers the shape of every batch it was given."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return super().forward(x)


def mean_border_error_px(mask, upper, lower):
    return np.mean(border_deviations_px(mask, upper, lower))


def test_a_rows_by_columns_input_compresses_time_and_sharpens_depth():
    # The band of the test above at a 128 x 32 input: a square window of the recording's 600 rows
    # becomes 128 rows by 32 columns, so the 700 columns become a 37-column strip (one tile, padded to
    # 48), and the borders are found twice as closely as at a 64 x 64 input of the same pixel count.
    image, upper, lower = moving_band()
    assert resize_to_height(image, (128, 32)).shape == (128, round(700 * 32 / 600))
    net = ShapeRecorder()
    probability = predict_probability(net, image, (128, 32))
    assert probability.shape == image.shape
    assert net.shapes == [(1, 1, 128, 48)]
    narrow = mean_border_error_px(probability > 0.5, upper, lower)
    square = mean_border_error_px(predict_probability(DarkIsCavity(), image, 64) > 0.5, upper, lower)
    assert narrow < 0.4 and square > 0.55  # rows
    # away from the recording's ends (half a network column there is 9 columns of extrapolation)
    inner = slice(20, image.shape[1] - 20)
    assert border_errors_px((probability > 0.5)[:, inner], upper[inner], lower[inner]) < 1.0


def test_a_time_scale_in_milliseconds_gives_every_height_the_same_columns_per_second():
    # At 2.4 ms per network column one second of recording is 1000 / 2.4 = 417 network columns, whatever the
    # recording's height; by the height rule (192 columns per square window) a 300-row recording gets
    # twice the columns per second of a 600-row one.
    s_per_px = 0.001
    for height in (300, 600):
        image = np.zeros((height, 1000), np.uint8)
        stretch = time_stretch(height, s_per_px, (256, 192), 2.4)
        assert resize_to_height(image, (256, 192), stretch).shape == (256, 417)
        assert resize_to_height(image, (256, 192)).shape == (256, round(1000 * 192 / height))
    assert time_stretch(600, s_per_px, (256, 192), None) == 1.0


def test_a_finer_time_scale_follows_fast_walls_more_closely():
    # Borders swinging with a period of 94 columns, seen at a 128 x 32 input: by the height rule one
    # network column spans 19 image columns and the swings are blurred (3.1 rows off on average);
    # stretched 4 times (a quarter of the milliseconds per network column) they are followed within
    # half a row.
    columns = np.arange(700)
    upper, lower = 200.3 + 30 * np.sin(columns / 15), 420.6 - 40 * np.sin(columns / 15)
    rows = np.arange(600)[:, None]
    image = np.where((rows > upper) & (rows < lower), 25, 190).astype(np.uint8)
    by_height = predict_probability(DarkIsCavity(), image, (128, 32))
    stretched = predict_probability(DarkIsCavity(), image, (128, 32), stretch=4.0)
    assert stretched.shape == image.shape
    assert mean_border_error_px(by_height > 0.5, upper, lower) > 2.5
    assert mean_border_error_px(stretched > 0.5, upper, lower) < 0.6


def test_without_a_batch_size_a_cpu_pass_holds_what_fits_in_its_pixel_budget_and_a_gpu_pass_eight():
    assert CPU_PASS_PIXELS == 131_072
    assert default_batch_size("cpu", 256 * 384) == 1  # a recording tile of the default model
    assert default_batch_size("cpu", 256 * 192) == 2  # a test window of the default model
    assert default_batch_size(torch.device("cpu"), 96 * 768) == 1  # a refiner tile
    assert default_batch_size("cpu", 64 * 64) == 32
    assert default_batch_size("cpu", 10 ** 6) == 1  # never none
    assert default_batch_size("cuda", 256 * 384) == 8
    assert default_batch_size(torch.device("cuda", 0), 64 * 64, gpu_batch_size=2) == 2


def test_a_recording_runs_one_default_sized_tile_per_cpu_pass_with_the_same_result_as_batches_of_eight():
    # 256 x 192 input: tiles of 256 x 384 network px, one per pass on the CPU; batching changes nothing.
    image = np.random.default_rng(2).integers(0, 256, (300, 4000)).astype(np.uint8)  # 2,560 network columns
    net = ShapeRecorder()
    default = predict_probability(net, image, (256, 192))
    assert net.shapes == [(1, 1, 256, 384)] * tile_starts(2560, 384, 96).size
    assert len(net.shapes) == 9
    net.shapes.clear()
    batched = predict_probability(net, image, (256, 192), batch_size=8)
    assert net.shapes[0] == (8, 1, 256, 384)
    np.testing.assert_allclose(default, batched, atol=1e-6)
