"""Trainer: the grouped split, a tiny training run and its checkpoints, --resume, -f, the output folder."""
import csv
import logging
import math

import pytest

torch = pytest.importorskip("torch")

from mmode.checkpoint import REQUIRED_KEYS, input_shape, load_model, read_checkpoint, save_checkpoint  # noqa: E402
from mmode.errors import InputError  # noqa: E402
from trainer import (Trainer, TrainingInterrupted, TrainingOptions, column_count_loss, interior_weights,  # noqa: E402
                     scheduled_lr, split_names, training_loss)

SIZE_PX = 40
IMG_SIZE_PX = 32
TINY_NET = dict(num_filters=4)
EXTRA_KEYS = ("train_loss", "best_epoch", "best_loss", "history", "seed", "val_pct", "data_dir", "augment",
              "batch_size", "lr", "epochs", "train_recordings", "val_recordings", "train_names", "val_names")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_band_pairs):
    """8 pairs from 4 recordings: a bright image with a dark cavity band, the band as 0/255 mask."""
    return write_band_pairs(tmp_path_factory.mktemp("data"), 4, 2, SIZE_PX, (6, 14), (24, 34), 0, "mouse")


def options(data, output_dir, **changes):
    settings = dict(data_dir=data, output_dir=output_dir, epochs=3, batch_size=2, img_size=IMG_SIZE_PX, lr=0.01,
                    val_pct=25, model_params=dict(TINY_NET), quiet=True, device="cpu")
    settings.update(changes)
    return TrainingOptions(**settings)


def read_history(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- the split -----------------------------------------------------------------------------------------

def window_names(n_recordings, n_windows):
    return [f"rec{r}_win{w}.png" for r in range(n_recordings) for w in range(n_windows)]


@pytest.mark.parametrize("seed", range(8))
def test_split_never_puts_a_recording_on_both_sides(seed):
    names = window_names(10, 3)
    train, val = split_names(names, 20, seed)
    assert sorted(train + val) == sorted(names)
    train_recordings = {name.split("_win")[0] for name in train}
    val_recordings = {name.split("_win")[0] for name in val}
    assert not train_recordings & val_recordings
    assert len(val_recordings) == 2  # 20 % of 10 recordings


def test_split_depends_on_the_seed_and_only_on_it():
    names = window_names(10, 3)
    assert split_names(names, 30, 4) == split_names(list(reversed(names)), 30, 4)
    assert len({tuple(split_names(names, 30, seed)[1]) for seed in range(6)}) > 1


def test_split_without_validation():
    names = window_names(3, 2)
    assert split_names(names, 0, 0) == (sorted(names), [])


def test_names_without_recording_are_split_one_by_one(caplog):
    names = [f"image{i}.png" for i in range(10)]
    with caplog.at_level(logging.WARNING):
        train, val = split_names(names, 20, 0)
    assert "image by image" in caplog.text
    assert len(val) == 2 and len(train) == 8


def test_one_recording_is_split_by_image_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        train, val = split_names(window_names(1, 5), 20, 0)
    assert "one recording" in caplog.text
    assert len(val) == 1 and len(train) == 4


def test_one_image_cannot_be_validated():
    with pytest.raises(InputError, match="-v 20"):
        split_names(["rec_win0.png"], 20, 0)


# --- training, checkpoints ------------------------------------------------------------------------------

def test_tiny_run_learns_and_writes_loadable_checkpoints(data, tmp_path):
    out = tmp_path / "out"
    trainer = Trainer(options(data, out, epochs=4))
    history = trainer.fit()

    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert not set(trainer.train_names) & set(trainer.val_names)
    assert len(trainer.val_names) == 2  # 1 of 4 recordings, both its windows

    best = list(out.glob("CP_best_e*.pt"))
    assert len(best) == 1  # only the newest best is kept
    last = out / "CP_last_e4.pt"
    assert last.is_file()
    rows = read_history(out / "history.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert float(rows[2]["val_dice"]) == pytest.approx(history[2]["val_dice"])
    assert list((out / "runs").iterdir())  # a TensorBoard run folder

    checkpoint = read_checkpoint(last)
    for key in REQUIRED_KEYS + EXTRA_KEYS:
        assert key in checkpoint, key
    assert checkpoint["epoch"] == 4 and checkpoint["img_size"] == IMG_SIZE_PX
    assert checkpoint["model_params"] == trainer.net.params
    assert checkpoint["model_params"]["num_filters"] == 4
    assert checkpoint["dice"] == pytest.approx(history[-1]["val_dice"])
    assert checkpoint["loss"] == pytest.approx(history[-1]["val_loss"])
    best_record = max(history, key=lambda record: (record["val_dice"], -record["val_mse"]))
    assert checkpoint["best_dice"] == pytest.approx(best_record["val_dice"])
    assert best[0].name == f"CP_best_e{checkpoint['best_epoch']}.pt"
    assert checkpoint["val_names"] == trainer.val_names
    assert not set(checkpoint["train_recordings"]) & set(checkpoint["val_recordings"])

    net, _ = load_model(last)
    trainer.net.eval()
    probe = torch.rand(2, 1, IMG_SIZE_PX, IMG_SIZE_PX)
    with torch.no_grad():
        assert torch.equal(net(probe), trainer.net(probe))
    best_checkpoint = read_checkpoint(best[0])
    assert best_checkpoint["epoch"] == checkpoint["best_epoch"]
    assert best_checkpoint["dice"] == pytest.approx(best_checkpoint["best_dice"])


def test_on_a_cpu_the_networks_run_channels_last_and_agree_with_the_plain_layout(data, tmp_path):
    from mmode.checkpoint import build_network, channels_last_on_cpu

    trainer = Trainer(options(data, tmp_path / "out", epochs=1))
    trainer.fit()
    first_conv = trainer.net.encode1.dense.conv2.weight  # 5 input channels: the layouts differ
    assert first_conv.is_contiguous(memory_format=torch.channels_last) and not first_conv.is_contiguous()
    saved = tmp_path / "out" / "CP_last_e1.pt"
    assert all(tensor.is_contiguous() for tensor in read_checkpoint(saved)["net_state_dict"].values())
    loaded, checkpoint = load_model(saved)
    plain, _ = load_model(saved, channels_last=False)
    assert not plain.encode1.dense.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    probe = torch.rand(3, 1, IMG_SIZE_PX, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(probe), plain(probe), rtol=0, atol=1e-5)
    # on another device the layout is left as it is: it has not been measured there
    other = channels_last_on_cpu(build_network(checkpoint["model_params"]), "cuda")
    assert other.encode1.dense.conv2.weight.is_contiguous() and not other._forward_pre_hooks


class NoCavityNet(torch.nn.Module):
    """Predicts logit -10 (no cavity) everywhere."""

    def forward(self, images):
        return torch.full_like(images, -10.0)


def linked_data(data, folder, summary):
    """`folder` with the pairs of `data` (symbolic links) and `summary` as its summary.json."""
    for sub in ("img", "mask"):
        (folder / sub).mkdir(parents=True)
        for path in (data / sub).iterdir():
            (folder / sub / path.name).symlink_to(path)
    (folder / "summary.json").write_text(summary)
    return folder


def test_a_refiner_is_marked_by_the_strips_summary_of_its_data(data, tmp_path):
    strips = linked_data(data, tmp_path / "strips", '{"kind": "border-strips", "strip_rows": 96}')
    for folder, task in ((data, "segmentation"), (strips, "border-strips")):
        trainer = Trainer(options(folder, tmp_path / f"run_{task}", epochs=1))
        trainer.fit()
        assert read_checkpoint(tmp_path / f"run_{task}" / "CP_best_e1.pt")["task"] == task


def test_validation_loss_dice_and_mse_of_a_known_prediction(data, tmp_path):
    trainer = Trainer(options(data, tmp_path / "out"))
    trainer.net = NoCavityNet()
    val_loss, val_dice, val_mse = trainer.validate()
    cavity_fraction = torch.stack([trainer.val_loader.dataset[i][1] for i in range(2)]).mean().item()
    assert 0.2 < cavity_fraction < 0.7
    assert val_dice == 0.0
    assert val_mse == pytest.approx(cavity_fraction)
    # BCE per pixel: softplus(-10) where the mask is 0, 10 + softplus(-10) where it is 1
    assert val_loss == pytest.approx(10.0 * cavity_fraction + math.log1p(math.exp(-10.0)), rel=1e-5)


def test_no_validation_keeps_the_lowest_training_loss(data, tmp_path):
    out = tmp_path / "out"
    history = Trainer(options(data, out, epochs=2, val_pct=0)).fit()
    best_epoch = min(history, key=lambda record: record["train_loss"])["epoch"]
    assert [path.name for path in out.glob("CP_best_e*.pt")] == [f"CP_best_e{best_epoch}.pt"]
    checkpoint = read_checkpoint(out / "CP_last_e2.pt")
    assert checkpoint["val_names"] == [] and len(checkpoint["train_names"]) == 8
    assert math.isnan(checkpoint["dice"]) and math.isnan(checkpoint["best_dice"])
    assert checkpoint["loss"] == pytest.approx(history[-1]["train_loss"])
    assert read_history(out / "history.csv")[0]["val_dice"] == ""


class InterruptedAtEpoch3(Trainer):
    def train_epoch(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return super().train_epoch(epoch)


def test_ctrl_c_saves_and_resume_continues(data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted) as interrupted:
        InterruptedAtEpoch3(options(data, out, epochs=4, seed=3)).fit()
    saved = out / "INTERRUPTED.pt"
    assert interrupted.value.checkpoint_path == saved
    checkpoint = read_checkpoint(saved)
    assert checkpoint["epoch"] == 2
    assert [record["epoch"] for record in checkpoint["history"]] == [1, 2]
    assert checkpoint["optimizer"]["state"]  # Adam's moments travel with it

    # different flags: the checkpoint's network, size and split win
    resumed = Trainer(options(data, out, epochs=4, resume=saved, val_pct=50, model_params=dict(num_filters=8)))
    assert resumed.start_epoch == 3
    assert resumed.net.params["num_filters"] == 4
    assert resumed.val_names == checkpoint["val_names"]
    assert resumed.best_dice == checkpoint["best_dice"]
    moment = resumed.optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moment, checkpoint["optimizer"]["state"][0]["exp_avg"])
    history = resumed.fit()
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert [row["epoch"] for row in read_history(out / "history.csv")] == ["1", "2", "3", "4"]
    last = read_checkpoint(out / "CP_last_e4.pt")
    assert last["epoch"] == 4 and len(last["history"]) == 4
    assert len(list(out.glob("CP_best_e*.pt"))) == 1

    with pytest.raises(InputError, match="already reached epoch 4"):
        Trainer(options(data, out, epochs=4, resume=out / "CP_last_e4.pt"))


def write_tiny_checkpoint(path, **model_params):
    from quicknat import QuickNat

    net = QuickNat(model_params)
    save_checkpoint(path, net, net.params, IMG_SIZE_PX, 1, None, 0.5, 0.5, 0.1, 0.5, 0.1)
    return net


def test_fine_tuning_loads_weights_of_the_same_shape(data, tmp_path):
    torch.manual_seed(7)
    source = write_tiny_checkpoint(tmp_path / "source.pt", num_filters=4)
    trainer = Trainer(options(data, tmp_path / "out", load=tmp_path / "source.pt", img_size=48))
    assert trainer.img_size == 48  # -p, not the checkpoint's size
    for name, value in source.state_dict().items():
        assert torch.equal(trainer.net.state_dict()[name], value)


def test_fine_tuning_takes_over_the_time_scale_and_resuming_keeps_it(data, tmp_path):
    # the source reads 2.4 ms per network column at 64 columns per window; at 32 columns each one spans
    # twice the time
    from quicknat import QuickNat

    net = QuickNat(dict(TINY_NET))
    save_checkpoint(tmp_path / "source.pt", net, net.params, IMG_SIZE_PX, 1, None, 0.5, 0.5, 0.1, 0.5, 0.1,
                    img_width=64, ms_per_column=2.4)
    out = tmp_path / "out"
    Trainer(options(data, out, epochs=1, load=tmp_path / "source.pt", img_width=32)).fit()
    assert read_checkpoint(out / "CP_last_e1.pt")["ms_per_column"] == pytest.approx(4.8)
    Trainer(options(data, out, epochs=2, resume=out / "CP_last_e1.pt")).fit()
    assert read_checkpoint(out / "CP_last_e2.pt")["ms_per_column"] == pytest.approx(4.8)
    Trainer(options(data, tmp_path / "scratch", epochs=1)).fit()
    assert read_checkpoint(tmp_path / "scratch" / "CP_last_e1.pt")["ms_per_column"] is None


def test_windows_cut_by_time_set_the_time_scale_even_over_a_fine_tuned_ones(data, tmp_path):
    # 0.2304 s per window at 64 columns: 3.6 ms per network column, whatever -f's checkpoint said
    from quicknat import QuickNat

    timed = linked_data(data, tmp_path / "timed", '{"kind": "windows", "window_s": 0.2304}')
    Trainer(options(timed, tmp_path / "scratch", epochs=1, img_width=64)).fit()
    assert read_checkpoint(tmp_path / "scratch" / "CP_last_e1.pt")["ms_per_column"] == pytest.approx(3.6)
    net = QuickNat(dict(TINY_NET))
    save_checkpoint(tmp_path / "source.pt", net, net.params, IMG_SIZE_PX, 1, None, 0.5, 0.5, 0.1, 0.5, 0.1,
                    img_width=64, ms_per_column=2.4)
    Trainer(options(timed, tmp_path / "tuned", epochs=1, load=tmp_path / "source.pt", img_width=32)).fit()
    assert read_checkpoint(tmp_path / "tuned" / "CP_last_e1.pt")["ms_per_column"] == pytest.approx(7.2)


def test_fine_tuning_from_another_shape_names_the_file(data, tmp_path):
    write_tiny_checkpoint(tmp_path / "eight_filters.pt", num_filters=8)
    with pytest.raises(InputError, match=r"eight_filters\.pt: checkpoint does not fit this network"):
        Trainer(options(data, tmp_path / "out", load=tmp_path / "eight_filters.pt"))


def test_widen_starts_a_wider_network_where_the_checkpoint_ended(data, tmp_path):
    from quicknat.widen import widen_state_dict

    torch.manual_seed(3)
    source = write_tiny_checkpoint(tmp_path / "four.pt", num_filters=4).eval()
    trainer = Trainer(options(data, tmp_path / "out", epochs=1, load=tmp_path / "four.pt", widen=True,
                              model_params=dict(num_filters=6)))
    expected, _ = widen_state_dict(source.state_dict(), source.params, 6, seed=0)
    for name, value in expected.items():
        assert torch.equal(trainer.net.state_dict()[name], value), name
    x = torch.rand(2, 1, IMG_SIZE_PX, IMG_SIZE_PX)
    with torch.no_grad():
        assert torch.allclose(trainer.net.eval()(x), source(x), atol=0.05)
    trainer.fit()
    assert read_checkpoint(tmp_path / "out" / "CP_last_e1.pt")["model_params"]["num_filters"] == 6


@pytest.mark.parametrize("changes, message", [
    (dict(model_params=dict(num_filters=3)), r"four\.pt: --widen needs at least the checkpoint's 4 filters"),
    (dict(model_params=dict(num_filters=6, kernel_h=3, kernel_w=3)), r"four\.pt: --widen changes only the number"),
])
def test_widen_refuses_a_checkpoint_it_cannot_widen(data, tmp_path, changes, message):
    write_tiny_checkpoint(tmp_path / "four.pt", num_filters=4)
    with pytest.raises(InputError, match=message):
        Trainer(options(data, tmp_path / "out", load=tmp_path / "four.pt", widen=True, **changes))


def test_more_filters_than_the_checkpoint_without_widen_says_to_add_it(data, tmp_path):
    write_tiny_checkpoint(tmp_path / "four.pt", num_filters=4)
    message = r"four\.pt: checkpoint does not fit .* 4 filters, --num-filters 6\): add --widen"
    with pytest.raises(InputError, match=message):
        Trainer(options(data, tmp_path / "out", load=tmp_path / "four.pt", model_params=dict(num_filters=6)))


def test_widen_without_a_checkpoint_is_refused(data, tmp_path):
    with pytest.raises(InputError, match="--widen widens the checkpoint of -f"):
        Trainer(options(data, tmp_path / "out", widen=True))


def test_a_rows_by_columns_input_is_trained_saved_and_resumed(data, tmp_path):
    out = tmp_path / "out"
    trainer = Trainer(options(data, out, epochs=1, img_size=64, img_width=32))
    images, masks = next(iter(trainer.train_loader))
    assert images.shape[1:] == masks.shape[1:] == (1, 64, 32)
    trainer.fit()
    checkpoint = read_checkpoint(out / "CP_last_e1.pt")
    assert (checkpoint["img_size"], checkpoint["img_width"]) == (64, 32)
    assert input_shape(checkpoint) == (64, 32)
    resumed = Trainer(options(data, out, epochs=2, resume=out / "CP_last_e1.pt", img_size=32))
    assert (resumed.img_size, resumed.img_width) == (64, 32)  # the run's shape, not the flags'
    legacy = dict(checkpoint)
    del legacy["img_width"]
    assert input_shape(legacy) == (64, 64)  # checkpoints from before --img-width were square
    with pytest.raises(InputError, match="--img-width 24"):
        Trainer(options(data, tmp_path / "other", img_width=24))


def test_a_training_crop_trains_narrow_and_validates_on_the_whole_input(data, tmp_path):
    out = tmp_path / "out"
    trainer = Trainer(options(data, out, epochs=1, img_size=64, img_width=64, train_crop=32))
    images, masks = next(iter(trainer.train_loader))
    assert images.shape[1:] == masks.shape[1:] == (1, 64, 32)
    assert next(iter(trainer.val_loader))[0].shape[1:] == (1, 64, 64)
    trainer.fit()
    checkpoint = read_checkpoint(out / "CP_last_e1.pt")
    assert input_shape(checkpoint) == (64, 64) and checkpoint["train_crop"] == 32
    resumed = Trainer(options(data, out, epochs=2, resume=out / "CP_last_e1.pt", train_crop=None))
    assert resumed.train_crop == 32 and next(iter(resumed.train_loader))[0].shape[-1] == 32
    for crop, message in ((24, "--train-crop 24: the input size must be a multiple"), (96, "wider than")):
        with pytest.raises(InputError, match=message):
            Trainer(options(data, tmp_path / "other", img_size=64, train_crop=crop))


def test_a_time_stretch_is_checked_recorded_and_kept_by_resume(data, tmp_path):
    out = tmp_path / "out"
    trainer = Trainer(options(data, out, epochs=1, img_size=64, img_width=64, train_crop=32, time_stretch=1.5))
    assert next(iter(trainer.train_loader))[0].shape[1:] == (1, 64, 32)
    trainer.fit()
    assert read_checkpoint(out / "CP_last_e1.pt")["time_stretch"] == 1.5
    resumed = Trainer(options(data, out, epochs=2, resume=out / "CP_last_e1.pt"))
    assert resumed.time_stretch == 1.5 and resumed.train_loader.dataset.time_stretch == 1.5
    for changes, message in ((dict(time_stretch=1.5), "needs --train-crop"),
                             (dict(train_crop=32, time_stretch=3.0), "between 1 and --img-width / --train-crop = 2"),
                             (dict(train_crop=32, time_stretch=0.5), "between 1 and")):
        with pytest.raises(InputError, match=message):
            Trainer(options(data, tmp_path / "other", img_size=64, **changes))
    assert not (tmp_path / "other").exists()


def test_a_gain_field_an_axial_bloom_and_wide_ranges_need_augment_are_recorded_and_kept_by_resume(data, tmp_path):
    out = tmp_path / "out"
    trainer = Trainer(options(data, out, epochs=1, img_size=64, augment=True, gain_field=0.3, axial_bloom=1.5,
                              wide_photometric=True, wall_gain=1.8))
    assert trainer.train_loader.dataset.wall_gain == 1.8
    assert trainer.train_loader.dataset.gain_field == 0.3 and trainer.train_loader.dataset.axial_bloom == 1.5
    assert trainer.train_loader.dataset.wide_photometric is True
    trainer.fit()
    checkpoint = read_checkpoint(out / "CP_last_e1.pt")
    assert checkpoint["gain_field"] == 0.3 and checkpoint["axial_bloom"] == 1.5 and checkpoint["wide_photometric"]
    assert checkpoint["wall_gain"] == 1.8
    resumed = Trainer(options(data, out, epochs=2, augment=True, resume=out / "CP_last_e1.pt"))
    assert resumed.gain_field == 0.3 and resumed.train_loader.dataset.gain_field == 0.3
    assert resumed.axial_bloom == 1.5 and resumed.train_loader.dataset.axial_bloom == 1.5
    assert resumed.wide_photometric is True and resumed.train_loader.dataset.wide_photometric is True
    assert resumed.wall_gain == 1.8 and resumed.train_loader.dataset.wall_gain == 1.8
    assert Trainer(options(data, tmp_path / "plain", img_size=64, augment=True)).wide_photometric is False
    for changes, flag in ((dict(gain_field=0.3), "--gain-field"), (dict(axial_bloom=1.5), "--axial-bloom"),
                          (dict(wide_photometric=True), "--wide-photometric"), (dict(wall_gain=2.0), "--wall-gain")):
        with pytest.raises(InputError, match=f"{flag} is a step of the augmentation: add --augment"):
            Trainer(options(data, tmp_path / "other", img_size=64, **changes))
    assert not (tmp_path / "other").exists()


# --- the loss --------------------------------------------------------------------------------------------

def band_mask(top, bottom, rows=30, columns=3):
    mask = torch.zeros(1, 1, rows, columns)
    mask[..., top:bottom, :] = 1
    return mask


def test_interior_weights_mark_the_pixels_four_rows_or_more_from_a_border():
    # cavity rows 10-19: rows 6-13 and 16-23 have the other class within 4 rows, the rest do not
    weights = interior_weights(band_mask(10, 20), 3.0)
    expected = [3.0] * 6 + [1.0] * 8 + [3.0] * 2 + [1.0] * 8 + [3.0] * 6
    assert weights[0, 0, :, 0].tolist() == expected
    assert torch.equal(weights[..., 0], weights[..., 2])  # along depth only: every column alike
    soft = band_mask(10, 20) * 0.8 + 0.1  # soft targets are split at 0.5, as the binary masks
    assert torch.equal(interior_weights(soft, 3.0), weights)
    assert torch.equal(interior_weights(torch.zeros(1, 1, 30, 3), 3.0), torch.full((1, 1, 30, 3), 3.0))
    assert torch.equal(interior_weights(band_mask(10, 20), 1.0), torch.ones(1, 1, 30, 3))


def test_the_interior_weight_scales_the_gradient_of_gross_errors_and_leaves_border_errors_alone():
    mask = band_mask(10, 20)
    logits = torch.where(mask > 0.5, 5.0, -5.0)  # confidently right everywhere ...
    logits[0, 0, 15, 1] = -5.0  # ... but a cavity pixel 5 rows inside the cavity read as wall
    logits[0, 0, 19, 1] = -5.0  # and one at the border
    gradients = []
    for weight in (1.0, 4.0):
        wrong = logits.clone().requires_grad_()
        training_loss(wrong, mask, weight).backward()
        gradients.append(wrong.grad[0, 0, :, 1])
    plain, weighted = gradients
    assert torch.isclose(training_loss(logits, mask), torch.nn.functional.binary_cross_entropy_with_logits(
        logits, mask))
    assert torch.isclose(weighted[15], 4 * plain[15]) and weighted[15] < 0  # pushed towards cavity
    assert torch.isclose(weighted[19], plain[19])


def test_the_column_count_loss_is_the_mean_lvid_error_in_rows_over_the_rows():
    mask = band_mask(10, 20)  # 10 cavity rows in every one of 3 columns of 30 rows
    logits = torch.where(mask > 0.5, 30.0, -30.0)
    assert column_count_loss(logits, mask) < 1e-9  # right everywhere
    logits[0, 0, 6:10, 1] = 30.0  # column 1 read 4 rows too wide: its LVID error is 4 rows
    assert torch.isclose(column_count_loss(logits, mask), torch.tensor(4 / 3 / 30))
    logits[0, 0, 16:20, 2] = -30.0  # column 2 read 4 rows too narrow: errors of either sign add up
    assert torch.isclose(column_count_loss(logits, mask), torch.tensor(8 / 3 / 30))
    shifted = torch.where(band_mask(12, 22) > 0.5, 30.0, -30.0)  # right width, wrong place: the BCE's business
    assert column_count_loss(shifted, mask) < 1e-9
    soft = band_mask(10, 20) * 0.5  # soft targets count by their fraction: 5 rows
    assert torch.isclose(column_count_loss(torch.where(band_mask(10, 15) > 0.5, 30.0, -30.0), soft),
                         torch.tensor(0.0), atol=1e-7)


def test_the_column_weight_pushes_a_too_wide_column_narrower_at_its_unsure_pixels():
    mask = band_mask(10, 20)
    logits = torch.where(mask > 0.5, 30.0, -30.0)
    logits[0, 0, 8:10, 1] = 0.0  # two unsure rows above column 1's cavity: it reads 1 row too wide
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, mask)
    assert torch.isclose(training_loss(logits, mask, column_weight=2.0),
                         plain + 2 * column_count_loss(logits, mask))
    assert torch.isclose(training_loss(logits, mask, column_weight=2.0), plain + 2 * (1 / 3 / 30))
    gradients = []
    for weight in (0.0, 2.0):
        wrong = logits.clone().requires_grad_()
        training_loss(wrong, mask, column_weight=weight).backward()
        gradients.append(wrong.grad[0, 0, :, 1])
    plain_gradient, weighted = gradients
    # d/dlogit of 2 * |count error| / (3 columns * 30 rows) at p = 0.5: 2 * 0.25 / 90, towards wall
    assert torch.allclose(weighted[8:10] - plain_gradient[8:10], torch.full((2,), 2 * 0.25 / 90))
    assert torch.allclose(weighted[:8], plain_gradient[:8], atol=1e-12)  # sure pixels: no pull


def test_the_interior_and_column_weights_are_recorded_and_kept_by_resume(data, tmp_path):
    out = tmp_path / "out"
    Trainer(options(data, out, epochs=1, interior_weight=4.0, column_weight=2.0)).fit()
    checkpoint = read_checkpoint(out / "CP_last_e1.pt")
    assert (checkpoint["interior_weight"], checkpoint["column_weight"]) == (4.0, 2.0)
    resumed = Trainer(options(data, out, epochs=2, resume=out / "CP_last_e1.pt"))
    assert (resumed.interior_weight, resumed.column_weight) == (4.0, 2.0)


# --- the output folder, devices ---------------------------------------------------------------------------

def test_an_earlier_run_is_kept_unless_overwrite(data, tmp_path):
    out = tmp_path / "out"
    Trainer(options(data, out, epochs=2)).fit()
    with pytest.raises(InputError, match="already holds a training run.*--overwrite"):
        Trainer(options(data, out, epochs=1))
    (out / "heart-seg-net.pt").write_bytes(b"the user's model")
    Trainer(options(data, out, epochs=1, overwrite=True)).fit()
    assert not (out / "CP_last_e2.pt").exists()
    assert (out / "CP_last_e1.pt").is_file()
    assert (out / "heart-seg-net.pt").read_bytes() == b"the user's model"


def test_bad_options_are_refused_before_writing(data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="-p 40"):
        Trainer(options(data, out, img_size=40))
    with pytest.raises(InputError, match="network configuration"):
        Trainer(options(data, out, model_params=dict(num_filters=4, kernel_h=4)))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device cuda"):
            Trainer(options(data, out, device="cuda"))
    assert not out.exists()


def test_amp_on_the_cpu_is_ignored_with_a_warning(data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(options(data, tmp_path / "out", amp=True))
    assert not trainer.use_amp
    assert "--amp" in caplog.text


def test_cosine_schedule_runs_from_the_base_rate_to_one_percent():
    rates = [scheduled_lr(0.01, epoch, 5, "cosine") for epoch in range(1, 6)]
    assert rates[0] == pytest.approx(0.01)
    assert rates[2] == pytest.approx(0.0001 + 0.5 * (0.01 - 0.0001))  # halfway: the midpoint
    assert rates[-1] == pytest.approx(0.0001)
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))
    assert scheduled_lr(0.01, 3, 5, "constant") == 0.01


def test_cosine_schedule_is_applied_and_survives_resume(data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        InterruptedAtEpoch3(options(data, out, epochs=4, lr_schedule="cosine")).fit()
    # the interrupted run's schedule wins over the flag
    history = Trainer(options(data, out, epochs=4, resume=out / "INTERRUPTED.pt")).fit()
    assert [record["lr"] for record in history] == pytest.approx(
        [scheduled_lr(0.01, epoch, 4, "cosine") for epoch in range(1, 5)])
