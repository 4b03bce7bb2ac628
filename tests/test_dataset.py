"""The training data set (checks, mask rule, resizing) and the --augment pipeline."""
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmode.dataset import SegmentationDataset, binarise_mask, check_dataset, mask_problem, recording_of
from mmode.errors import InputError

SIZE_PX = 40
ROOT = Path(__file__).resolve().parents[1]


def band_pair(top_px, bottom_px, size_px=SIZE_PX):
    """A bright image with a dark cavity band in rows [top_px, bottom_px), and its 0/255 mask."""
    image = np.full((size_px, size_px), 200, np.uint8)
    image[top_px:bottom_px] = 30
    mask = np.zeros((size_px, size_px), np.uint8)
    mask[top_px:bottom_px] = 255
    return image, mask


def make_dataset(folder, names=("rec_a_win0.png", "rec_a_win1.png", "rec_b_win0.png", "rec_c_win0.png")):
    """DATA/img and DATA/mask with one band pair per name; returns the folder."""
    for sub_dir in ("img", "mask"):
        (folder / sub_dir).mkdir(parents=True)
    for index, name in enumerate(names):
        image, mask = band_pair(10 + index, 30)
        Image.fromarray(image).save(folder / "img" / name)
        Image.fromarray(mask).save(folder / "mask" / name)
    return folder


@pytest.mark.parametrize("name, recording", [
    ("rec_a_win3.png", "rec_a"),
    ("mouse_12_day3_win0.png", "mouse_12_day3"),
    ("a_win1_win12.png", "a_win1"),
    ("rec_a_win3", "rec_a"),
    ("rec_a.png", None),
    ("rec_win.png", None),
    ("_win3.png", None),
    ("rec_a_win3b.png", None),
])
def test_recording_of(name, recording):
    assert recording_of(name) == recording


def test_check_dataset_returns_sorted_names(tmp_path):
    data = make_dataset(tmp_path / "data", names=("b_win0.png", "a_win1.png", "a_win0.png"))
    (data / "img" / "notes.txt").write_text("not an image")
    assert check_dataset(data) == ["a_win0.png", "a_win1.png", "b_win0.png"]


def test_missing_mask_names_the_file(tmp_path):
    data = make_dataset(tmp_path / "data")
    (data / "mask" / "rec_b_win0.png").unlink()
    with pytest.raises(InputError, match=r"mask[/\\]rec_b_win0\.png: missing"):
        check_dataset(data)


def test_missing_image_names_the_file(tmp_path):
    data = make_dataset(tmp_path / "data")
    (data / "img" / "rec_c_win0.png").unlink()
    with pytest.raises(InputError, match=r"img[/\\]rec_c_win0\.png: missing"):
        check_dataset(data)


def test_size_mismatch_names_the_file(tmp_path):
    data = make_dataset(tmp_path / "data")
    Image.fromarray(np.zeros((SIZE_PX, SIZE_PX + 8), np.uint8)).save(data / "mask" / "rec_a_win1.png")
    with pytest.raises(InputError, match=r"rec_a_win1\.png: size 48x40 px differs from its image's 40x40 px"):
        check_dataset(data)


def test_unreadable_file_names_the_file(tmp_path):
    data = make_dataset(tmp_path / "data")
    (data / "img" / "rec_b_win0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match=r"img[/\\]rec_b_win0\.png"):
        check_dataset(data)


def test_empty_or_incomplete_folders(tmp_path):
    with pytest.raises(InputError, match="nowhere: data folder not found"):
        check_dataset(tmp_path / "nowhere")
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    with pytest.raises(InputError, match=r"mask: folder not found"):
        check_dataset(data)
    (data / "mask").mkdir()
    with pytest.raises(InputError, match=r"img: no PNG images"):
        check_dataset(data)


def test_mask_rule():
    assert binarise_mask(np.array([[0, 1, 1]], np.uint8)).tolist() == [[0, 1, 1]]
    assert binarise_mask(np.array([[0, 255, 255]], np.uint8)).tolist() == [[0, 1, 1]]
    assert binarise_mask(np.array([[0, 127, 128, 200, 255]], np.uint8)).tolist() == [[0, 0, 1, 1, 1]]
    assert binarise_mask(np.zeros((2, 2), np.uint8)).tolist() == [[0, 0], [0, 0]]


def test_grey_mask_is_thresholded_with_a_warning(tmp_path, caplog):
    data = make_dataset(tmp_path / "data")
    _, mask = band_pair(10, 30)
    mask[30:32] = 100  # an anti-aliased lower edge: below the threshold
    mask[8:10] = 140  # and an upper one: above it
    Image.fromarray(mask).save(data / "mask" / "rec_b_win0.png")
    with caplog.at_level(logging.WARNING):
        names = check_dataset(data)
    assert "rec_b_win0.png" in caplog.text and "thresholded at 128" in caplog.text
    dataset = SegmentationDataset(data, SIZE_PX, names=names)
    _, read_mask = dataset.read_pair(names.index("rec_b_win0.png"))
    assert read_mask[:, 0].tolist() == [0.0] * 8 + [1.0] * 22 + [0.0] * 10


def test_a_jpeg_saved_mask_is_thresholded_to_its_band(tmp_path, caplog):
    data = make_dataset(tmp_path / "data")
    _, mask = band_pair(10, 30, size_px=64)
    Image.fromarray(mask).save(data / "mask" / "rec_b_win0.jpg", quality=75)  # ringing beside both edges
    ringing = np.array(Image.open(data / "mask" / "rec_b_win0.jpg"))
    assert not np.isin(ringing, (0, 255)).all()
    Image.fromarray(ringing).save(data / "mask" / "rec_b_win0.png")
    image, _ = band_pair(10, 30, size_px=64)
    Image.fromarray(image).save(data / "img" / "rec_b_win0.png")
    (data / "mask" / "rec_b_win0.jpg").unlink()
    with caplog.at_level(logging.WARNING):
        check_dataset(data)
    assert "rec_b_win0.png" in caplog.text and "thresholded at 128" in caplog.text
    np.testing.assert_array_equal(binarise_mask(ringing), mask // 255)


@pytest.mark.parametrize("kind", ["labels", "grey image"])
def test_a_mask_thresholding_would_spoil_is_refused_naming_it(tmp_path, kind):
    """A label image (0, 1, 2: nothing reaches 128, the mask would come out empty) and an echo image saved in mask/
    (about half its pixels grey) are refused, not thresholded into nonsense."""
    data = make_dataset(tmp_path / "data")
    image, mask = band_pair(10, 30)
    if kind == "labels":
        bad = (mask // 255).astype(np.uint8)
        bad[:10] = 2  # a third class above the cavity
        expected = r"rec_c_win0\.png: holds the values 0, 1, 2, none reaching 128: a label image\?"
    else:
        bad = np.random.default_rng(1).integers(0, 256, size=mask.shape).astype(np.uint8)
        expected = r"rec_c_win0\.png: is not a mask: only \d+ % of its pixels are black or white"
    Image.fromarray(bad).save(data / "mask" / "rec_c_win0.png")
    with pytest.raises(InputError, match=expected):
        check_dataset(data)
    # the examples' echo images themselves, saved as masks
    for path in sorted((ROOT / "examples").glob("*.png")):
        assert mask_problem(np.array(Image.open(path).convert("L"))) is not None


def test_zero_one_masks_are_taken_as_they_are(tmp_path, caplog):
    data = make_dataset(tmp_path / "data")
    _, mask = band_pair(12, 28)
    Image.fromarray(mask // 255).save(data / "mask" / "rec_a_win0.png")
    with caplog.at_level(logging.WARNING):
        check_dataset(data)
    assert caplog.text == ""
    _, read_mask = SegmentationDataset(data, SIZE_PX).read_pair(0)
    assert read_mask.sum() == 16 * SIZE_PX


def test_items_are_resized_grey_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    data = make_dataset(tmp_path / "data")
    colour = np.stack([band_pair(10, 30)[0]] * 3, axis=-1)
    Image.fromarray(colour).save(data / "img" / "rec_a_win0.png")  # colour becomes grey
    dataset = SegmentationDataset(data, 32)
    assert len(dataset) == 4
    image, mask = dataset[0]
    assert image.shape == mask.shape == (1, 32, 32)
    assert image.dtype == mask.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    # rows 10..29 of 40 are the cavity: at 32 rows, nearest neighbour keeps rows 8..23 (16 rows)
    assert mask[0, :, 5].sum().item() == 16
    assert image[0, 2, 2].item() == pytest.approx(200 / 255, abs=1e-6)
    assert image[0, 16, 2].item() == pytest.approx(30 / 255, abs=1e-6)


def test_soft_masks_keep_the_borders_sub_pixel_position(tmp_path):
    pytest.importorskip("torch")
    names = ("rec_a_win0.png",)
    data = make_dataset(tmp_path / "data", names)  # cavity rows 10..29 of 40
    image, mask = band_pair(11, 30)  # cavity rows 11..29: borders not on the 4:1 grid
    Image.fromarray(mask).save(data / "mask" / names[0])
    soft = SegmentationDataset(data, 10, soft_masks=True)[0][1][0, :, 3]
    # 4 source rows per row: rows 8..11 hold 1 cavity row, 12..27 are cavity, 28..31 hold 2 cavity rows
    assert soft.tolist() == pytest.approx([0, 0, 0.25, 1, 1, 1, 1, 0.5, 0, 0])
    assert soft.sum().item() == pytest.approx(19 / 4)  # the cavity's height, 19 rows, in output rows
    hard = SegmentationDataset(data, 10)[0][1][0, :, 3]
    assert set(hard.tolist()) == {0.0, 1.0}


def test_training_on_soft_masks_validates_on_binary_ones(tmp_path):
    pytest.importorskip("torch")
    from trainer import Trainer, TrainingOptions

    data = make_dataset(tmp_path / "data")
    options = TrainingOptions(data_dir=data, output_dir=tmp_path / "out", epochs=1, batch_size=2, img_size=32,
                              val_pct=34, model_params=dict(num_filters=4), quiet=True, device="cpu",
                              soft_masks=True)
    trainer = Trainer(options)
    assert trainer.train_loader.dataset.soft_masks and not trainer.val_loader.dataset.soft_masks
    history = trainer.fit()
    assert 0.0 <= history[-1]["val_dice"] <= 1.0


def ellipse_mask(torch, size_px=32):
    rows, cols = torch.meshgrid(torch.arange(size_px), torch.arange(size_px), indexing="ij")
    return ((((rows - 13) / 8.0) ** 2 + ((cols - 18) / 11.0) ** 2) < 1).float()[None]


def dice(a, b):
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


def test_geometric_augmentation_moves_image_and_mask_together():
    torch = pytest.importorskip("torch")
    from torchvision.transforms import v2

    from mmode.augment import PairAugmentation, geometric_transforms

    torch.manual_seed(0)
    geometric = PairAugmentation(v2.Compose(geometric_transforms()))
    mask = ellipse_mask(torch)
    moved = 0
    for _ in range(20):
        image_out, mask_out = geometric(mask.clone(), mask.clone())
        assert set(mask_out.unique().tolist()) <= {0.0, 1.0}
        # the image is resampled bilinearly, the mask by nearest neighbour: they differ at most on the border
        assert dice((image_out > 0.5).float(), mask_out) > 0.95
        moved += dice(mask_out, mask) < 0.95
    assert moved >= 5  # the transforms do move the pair


def test_full_augmentation_keeps_masks_binary_and_images_in_range():
    torch = pytest.importorskip("torch")
    from mmode.augment import build_augmentation

    torch.manual_seed(1)
    augment = build_augmentation()
    mask = ellipse_mask(torch)
    image = torch.where(mask > 0, 0.1, 0.8)
    changed = 0
    for _ in range(20):
        image_out, mask_out = augment(image, mask)
        assert image_out.shape == mask_out.shape == (1, 32, 32)
        assert set(mask_out.unique().tolist()) <= {0.0, 1.0}
        assert 0.0 <= image_out.min() and image_out.max() <= 1.0
        changed += not torch.equal(image_out, image)
    assert changed == 20  # ColorJitter alone changes every image


def test_photometric_steps_leave_the_mask_alone():
    torch = pytest.importorskip("torch")
    from torchvision.transforms import v2

    from mmode.augment import PairAugmentation, RandomDepthGain, RandomGamma, RandomSpeckle, photometric_transforms

    torch.manual_seed(2)
    mask = ellipse_mask(torch)
    image = torch.where(mask > 0, 0.1, 0.8)
    for step in [RandomDepthGain(), RandomSpeckle(), RandomGamma(), v2.Compose(photometric_transforms())]:
        image_out, mask_out = PairAugmentation(step)(image, mask)
        assert torch.equal(mask_out, mask)
        assert not torch.equal(image_out, image)


def test_a_gain_field_is_smooth_centred_on_one_and_as_strong_as_asked():
    torch = pytest.importorskip("torch")
    from mmode.augment import PairAugmentation, RandomGainField

    torch.manual_seed(3)
    mask = torch.zeros(1, 128, 96)
    mask[:, 40:80] = 1
    image = torch.full((1, 128, 96), 0.5)
    step = PairAugmentation(RandomGainField(0.4))
    spreads = []
    for _ in range(200):
        image_out, mask_out = step(image, mask)
        assert torch.equal(mask_out, mask)
        log_gain = torch.log(image_out / image)[0]
        spread = float(log_gain.std())
        spreads.append(spread)
        # smooth: pixel-wise noise changes between neighbours by ~1.1 times its spread, the field by < 0.2 times
        for axis in (0, 1):
            assert float(log_gain.diff(dim=axis).abs().mean()) < 0.2 * spread + 1e-4
    assert max(spreads) < 0.4 * 1.6  # the SD drawn in [0, 0.4], times a field of roughly unit spread
    assert np.median(spreads) > 0.05  # not a constant: brightness changes across the image
    # the SD is drawn uniformly, so some fields are near flat and some strong
    assert min(spreads) < 0.03 and max(spreads) > 0.25


def test_an_axial_bloom_spreads_a_bright_wall_into_the_dark_cavity_and_leaves_flat_grey_alone():
    torch = pytest.importorskip("torch")
    from mmode.augment import PairAugmentation, RandomAxialBloom

    torch.manual_seed(4)
    mask = torch.zeros(1, 64, 8)
    mask[:, 32:] = 1  # cavity from row 32 down, wall above
    image = torch.where(mask > 0, 0.05, 0.9)
    half = (0.9 + 0.05) / 2
    moved = 0
    for _ in range(40):
        image_out, mask_out = PairAugmentation(RandomAxialBloom(2.5))(image, mask)
        assert torch.equal(mask_out, mask)
        column = image_out[0, :, 0]
        # the wall's grey barely changes (its amplitude dominates), the cavity's next to it rises
        assert float(column[:28].min()) > 0.85 and float(column[32]) > 0.06
        # the half-way edge never moves into the wall; a blur in grey would keep it between rows 31 and 32
        first_dark = int(torch.nonzero(column < half)[0])
        assert first_dark >= 32
        moved += first_dark >= 33  # a sigma above about 1.3 rows (most draws in [0.3, 2.5]) moves it a row or more
        assert float(column[60]) == pytest.approx(0.05, abs=1e-4)  # far from the wall, nothing changes
    assert moved >= 15
    flat = torch.full((1, 64, 8), 0.4)
    assert torch.allclose(PairAugmentation(RandomAxialBloom(2.5))(flat, mask)[0], flat, atol=1e-5)


def test_a_wall_gain_scales_each_wall_above_the_black_level_where_the_mask_puts_it():
    torch = pytest.importorskip("torch")
    from mmode.augment import PairAugmentation, RandomWallGain

    torch.manual_seed(5)
    mask = torch.zeros(1, 200, 8)
    mask[:, 80:120, :6] = 1  # cavity rows 80-119 in columns 0-5; column 6 and 7 have none
    image = torch.full((1, 200, 8), 0.5)
    image[:, 190:] = 0.1  # the black level (the 1st percentile)
    step = PairAugmentation(RandomWallGain(2.0))
    upper_gains, lower_gains = [], []
    for _ in range(100):
        image_out, mask_out = step(image, mask)
        assert torch.equal(mask_out, mask)
        column = image_out[0, :, 0]
        gain_up, gain_low = ((float(column[row]) - 0.1) / 0.4 for row in (75, 125))
        # 0.5-2, the same over each wall's band (rows 6-14 % of 200 beyond the cavity, at least 12)
        for gain, rows in ((gain_up, slice(68, 80)), (gain_low, slice(120, 132))):
            assert 0.5 - 1e-4 <= gain <= 2.0 + 1e-4
            assert torch.allclose(column[rows], torch.tensor(0.1 + 0.4 * gain), atol=1e-5)
        upper_gains.append(gain_up), lower_gains.append(gain_low)
        # the middle of the cavity, the far tissue and the black level as they were; no column without cavity
        assert torch.allclose(column[88:112], torch.tensor(0.5)) and torch.allclose(column[:20], torch.tensor(0.5))
        assert torch.allclose(image_out[0, 190:], torch.tensor(0.1))
        assert torch.equal(image_out[0, :, 6:], image[0, :, 6:])
        # fading, not stepping, into the tissue beyond: no change between neighbours larger than a fifth of it
        for gain, rows in ((gain_up, slice(20, 70)), (gain_low, slice(130, 180))):
            steps = column[rows].diff().abs()
            assert float(steps.max()) <= 0.2 * abs(0.4 * (gain - 1)) + 1e-5
    # the two walls drawn apart, over the whole range, log-uniformly (about as many dimmed as brightened)
    assert np.corrcoef(upper_gains, lower_gains)[0, 1] < 0.5
    assert min(upper_gains) < 0.6 and max(upper_gains) > 1.7 and 30 < sum(g < 1 for g in lower_gains) < 70
    with pytest.raises(ValueError, match="places the walls by the mask"):
        RandomWallGain(2.0)(torch.full((1, 20, 4), 0.5))
    with pytest.raises(ValueError, match="must be at least 1"):
        RandomWallGain(0.5)


def test_the_gain_field_joins_the_augmentation_only_when_asked(tmp_path):
    pytest.importorskip("torch")
    from mmode.augment import RandomGainField

    def has_field(dataset):
        steps = dataset.augmentation.transforms.transforms
        return any(isinstance(inner, RandomGainField)
                   for step in steps for inner in getattr(step, "transforms", [step]))

    data = make_dataset(tmp_path / "data")
    assert not has_field(SegmentationDataset(data, 32, augment=True))
    with_field = SegmentationDataset(data, 32, augment=True, gain_field=0.5)
    assert has_field(with_field) and with_field.gain_field == 0.5
    with_bloom = SegmentationDataset(data, 32, augment=True, axial_bloom=2.0)
    assert with_bloom.axial_bloom == 2.0 and not has_field(with_bloom)
    assert SegmentationDataset(data, 32, augment=True, wide_photometric=True).wide_photometric
    from mmode.augment import RandomWallGain

    with_walls = SegmentationDataset(data, 32, augment=True, wall_gain=2.0)
    steps = with_walls.augmentation.transforms.transforms
    assert with_walls.wall_gain == 2.0 and _photometric_draws(steps, RandomWallGain)
    assert not _photometric_draws(SegmentationDataset(data, 32, augment=True).augmentation.transforms.transforms,
                                  RandomWallGain)
    image, mask = with_walls[0]  # the windows' masks reach the step
    assert image.shape == mask.shape == (1, 32, 32)
    for changes in (dict(gain_field=0.5), dict(axial_bloom=2.0), dict(wide_photometric=True), dict(wall_gain=2.0)):
        with pytest.raises(ValueError, match="needs augment"):
            SegmentationDataset(data, 32, **changes)


def _photometric_draws(steps, kind):
    """The (inner) steps of type `kind` in a list of photometric steps, RandomApply unwrapped."""
    return [inner for step in steps for inner in getattr(step, "transforms", [step]) if isinstance(inner, kind)]


def test_wide_photometric_ranges_reach_past_the_default_and_keep_the_default_as_trained():
    torch = pytest.importorskip("torch")
    from torchvision.transforms import v2

    from mmode.augment import RandomGamma, RandomNoise, RandomSpeckle, photometric_transforms

    default, wide = photometric_transforms(), photometric_transforms(wide=True)
    # the default: the ranges the shipped models were trained with, torchvision's fixed-SD noise, 7-tap blur
    assert _photometric_draws(default, RandomSpeckle)[0].sigma_range == (0.05, 0.35)
    assert _photometric_draws(default, v2.GaussianNoise)[0].sigma == 0.04
    assert _photometric_draws(default, v2.GaussianBlur)[0].kernel_size == (7, 7)
    assert not _photometric_draws(default, RandomNoise)
    speckle, = _photometric_draws(wide, RandomSpeckle)
    assert speckle.sigma_range == (0.05, 0.7) and speckle.grain_rows_px == (1, 6)
    assert _photometric_draws(wide, v2.GaussianBlur)[0].kernel_size == (17, 17)  # 3 sigmas of 2.5 either side
    torch.manual_seed(4)
    gammas = [_photometric_draws(wide, RandomGamma)[0].make_params([])["gamma"] for _ in range(400)]
    assert 0.4 <= min(gammas) < 0.5 and 2.2 < max(gammas) <= 2.5
    noise, = _photometric_draws(wide, RandomNoise)
    flat = torch.full((1, 200, 200), 0.5)
    sds = []
    for _ in range(40):
        params = noise.make_params([flat])
        sds.append(params["sd"])
        assert (noise.transform(flat, params) - flat).std().item() == pytest.approx(params["sd"], rel=0.05, abs=1e-3)
    assert 0.0 <= min(sds) < 0.02 and 0.1 < max(sds) <= 0.12


def test_dataset_with_augmentation(tmp_path):
    pytest.importorskip("torch")
    data = make_dataset(tmp_path / "data")
    dataset = SegmentationDataset(data, 32, augment=True)
    for index in range(len(dataset)):
        image, mask = dataset[index]
        assert image.shape == mask.shape == (1, 32, 32)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_a_narrower_input_keeps_depth_and_compresses_time(tmp_path):
    pytest.importorskip("torch")
    data = make_dataset(tmp_path / "data")  # cavity rows 10..29 of 40, every column
    image, mask = SegmentationDataset(data, 32, img_width=16)[0]
    assert image.shape == mask.shape == (1, 32, 16)
    # 40 rows -> 32 as in the square case (nearest neighbour keeps rows 8..23), whatever the width
    assert (mask[0].sum(dim=0) == 16).all()
    soft = SegmentationDataset(data, 32, img_width=16, soft_masks=True)[0][1][0]
    assert soft.sum(dim=0).tolist() == pytest.approx([20 * 32 / 40] * 16)  # the cavity's height in rows


def test_a_training_crop_is_a_random_stretch_of_the_whole_pair(tmp_path):
    torch = pytest.importorskip("torch")
    folder = tmp_path / "data"
    for sub_dir in ("img", "mask"):
        (folder / sub_dir).mkdir(parents=True)
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # 64 x 64, every column its own grey
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, :] = 255
    mask[:, ::3] = 0  # columns the mask tells apart too
    Image.fromarray(ramp).save(folder / "img" / "rec_a_win0.png")
    Image.fromarray(mask).save(folder / "mask" / "rec_a_win0.png")
    whole_image, whole_mask = SegmentationDataset(folder, 64)[0]
    cropped = SegmentationDataset(folder, 64, crop_width=16)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        image, mask_crop = cropped[0]
        assert image.shape == mask_crop.shape == (1, 64, 16)
        start = int(torch.nonzero(whole_image[0, 0] == image[0, 0, 0])[0])
        assert torch.equal(image, whole_image[..., start:start + 16])
        assert torch.equal(mask_crop, whole_mask[..., start:start + 16])
        starts.add(start)
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 48
    assert SegmentationDataset(folder, 64, crop_width=64)[0][0].shape == (1, 64, 64)  # as wide: no crop


def test_a_time_stretch_resizes_each_pairs_time_axis_by_a_drawn_factor_before_the_crop(tmp_path):
    torch = pytest.importorskip("torch")
    folder = tmp_path / "data"
    for sub_dir in ("img", "mask"):
        (folder / sub_dir).mkdir(parents=True)
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # 4 grey levels per column over 64 columns
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, :] = 255
    Image.fromarray(ramp).save(folder / "img" / "rec_a_win0.png")
    Image.fromarray(mask).save(folder / "mask" / "rec_a_win0.png")
    stretched = SegmentationDataset(folder, 64, crop_width=16, time_stretch=2.0)
    torch.manual_seed(0)
    widths = []
    for _ in range(40):
        image, mask_crop = stretched[0]
        assert image.shape == mask_crop.shape == (1, 64, 16)
        assert set(mask_crop.unique().tolist()) <= {0.0, 1.0}
        # a window resized to w columns climbs 4 x 64 / w grey levels per column
        slope = float(torch.median(torch.diff(image[0, 0]))) * 255
        widths.append(4 * 64 / slope)
    widths = np.array(widths)
    assert widths.min() > 32 * 0.9 and widths.max() < 128 * 1.1  # f within [1/2, 2]
    assert (widths < 50).sum() >= 5 and (widths > 80).sum() >= 5  # both ways
    with pytest.raises(ValueError, match="needs a crop width"):
        SegmentationDataset(folder, 64, time_stretch=2.0)
