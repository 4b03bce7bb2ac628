"""Training QuickNAT on an `img/` + `mask/` data set: the split, the loop, validation, checkpoints, logs.

`run.py` turns its flags into a `TrainingOptions` and calls `Trainer(options).fit()`; the same works
from Python. Everything the run needs is checked in `Trainer(...)` before anything is written.

Outputs in the output folder (`-o`):
- `CP_best_e{N}.pt`: the best model so far (highest validation Dice, ties: lower MSE; with `-v 0`, the
  lowest training loss), written on every new best; the previous `CP_best_*.pt` is then removed, so
  the folder holds one best model.
- `CP_last_e{N}.pt`: the model after the last epoch.
- `INTERRUPTED.pt`: written when Ctrl-C stops the run; `--resume` continues from it.
- `history.csv`: one row per epoch, `epoch,train_loss,val_loss,val_dice,val_mse,lr,seconds`
  (validation columns empty with `-v 0`), rewritten after every epoch.
- `runs/<date-time>/`: TensorBoard event files of the same numbers.

Checkpoints are `mmode.checkpoint.save_checkpoint` dicts: the keys DESIGN.md fixes (`loss`, `dice`,
`mse` are the epoch's validation values; with `-v 0` `loss` is the training loss and the others NaN),
plus `train_loss`, `best_epoch`, `best_loss`, `history`, `seed`, `val_pct`, `data_dir`, `augment`,
`batch_size`, `lr`, `epochs`, `train_recordings`, `val_recordings` and `val_names` (the split, so
that `--resume` keeps it).
"""
import csv
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mmode.checkpoint import (channels_last_on_cpu, input_shape, load_weights, ms_per_column, read_checkpoint,
                              save_checkpoint)
from mmode.dataset import SegmentationDataset, check_dataset, recording_of
from mmode.errors import InputError
from mmode.metrics import dice_per_image, mse_per_image

log = logging.getLogger(__name__)

HISTORY_NAME = "history.csv"
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_dice", "val_mse", "lr", "seconds")
INTERRUPTED_NAME = "INTERRUPTED.pt"
RUN_FILE_PATTERNS = ("CP_best_e*.pt", "CP_last_e*.pt", INTERRUPTED_NAME, HISTORY_NAME)
NUM_POOLINGS = 4  # QuickNAT's encoder halves the map four times
# Rows of the network input (along depth) within which a pixel counts as at a cavity border for
# --interior-weight: about 0.1 mm at the training recordings' pixel sizes, wider than a border's blur.
INTERIOR_MARGIN_ROWS = 4


@dataclass
class TrainingOptions:
    """The run's settings; run.py's flags with the same defaults (see `python run.py --help`).

    `model_params` holds QuickNat parameters over its DEFAULT_PARAMS (e.g. `num_filters`, `kernel_h`).
    `val_pct` is the percentage of recordings held out for validation; `load` a checkpoint whose
    weights start the run (fine-tuning); `resume` a checkpoint of an interrupted run to continue.
    """

    data_dir: Path
    output_dir: Path = Path("checkpoints")
    epochs: int = 1
    batch_size: int = 1
    img_size: int = 256
    img_width: int | None = None  # input columns; None: img_size (square)
    lr: float = 0.001
    val_pct: float = 20.0
    model_params: dict = field(default_factory=dict)
    load: Path | None = None
    resume: Path | None = None
    augment: bool = False
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = False
    quiet: bool = False
    overwrite: bool = False
    lr_schedule: str = "constant"
    soft_masks: bool = False
    train_crop: int | None = None  # columns of a random stretch of each training window; None: all
    time_stretch: float | None = None  # training windows' time axis resized by log-uniform [1/F, F]; None: not
    gain_field: float | None = None  # most log-gain SD of the augmentation's smooth gain field; None: not used
    axial_bloom: float | None = None  # most sigma (rows) of the augmentation's amplitude blur in depth; None: not
    wide_photometric: bool = False  # the augmentation's photometric steps over mmode.augment.WIDE_PHOTOMETRIC_RANGES
    wall_gain: float | None = None  # most gain of the augmentation's wall brightness (RandomWallGain); None: not used
    interior_weight: float = 1.0  # BCE weight of pixels with no cavity border within INTERIOR_MARGIN_ROWS rows
    column_weight: float = 0.0  # weight of the per-column cavity-count error in the loss (column_count_loss)
    widen: bool = False  # with load: a checkpoint with fewer filters is widened to model_params' (quicknat.widen)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the state was saved to `checkpoint_path`. A KeyboardInterrupt, so
    callers that handle Ctrl-C handle this too."""

    def __init__(self, checkpoint_path, resume_command):
        super().__init__(f"training interrupted; state saved to {checkpoint_path}; continue with: {resume_command}")
        self.checkpoint_path = checkpoint_path


def interior_weights(masks, weight, margin=INTERIOR_MARGIN_ROWS):
    """Per-pixel loss weights for (B, 1, H, W) masks (0/1 or soft): `weight` for pixels whose column holds no
    cavity border within `margin` rows above or below, 1 for the others.

    A wrong pixel away from every border is a gross error (a chorda or a papillary muscle read as wall, a
    wall read as cavity); near a border it is where the border sits. Weighting the first alone makes gross
    errors cost more without pulling the borders either way (pixels the network gets right cost nothing).
    """
    cavity = (masks > 0.5).float()
    window, padding = (2 * margin + 1, 1), (margin, 0)
    near_cavity = torch.nn.functional.max_pool2d(cavity, window, stride=1, padding=padding)
    near_tissue = torch.nn.functional.max_pool2d(1 - cavity, window, stride=1, padding=padding)
    return 1 + (weight - 1) * (1 - near_cavity * near_tissue)


def column_count_loss(logits, masks):
    """Mean over the columns of |cavity rows predicted - cavity rows in the mask| / rows, for (B, 1, H, W)
    logits and masks (0/1 or soft), the predicted rows counted as the summed probability.

    A column's count is its LVID in input rows, so this is the per-column LVID error the bench reports, made
    differentiable; divided by H, one row of count error weighs about as much as one half-sure wrong pixel
    per column does in the mean BCE (log 2 / H). Its gradient reaches a column's unsure pixels, its borders
    above all, and pushes them together the way that mends the count.
    """
    counts = torch.sigmoid(logits).sum(dim=2) - masks.sum(dim=2)
    return counts.abs().mean() / logits.shape[2]


def training_loss(logits, masks, interior_weight=1.0, column_weight=0.0):
    """Mean BCE-with-logits over the pixels; with `interior_weight` != 1 the pixels away from every
    border weighted so (`interior_weights`); plus `column_weight` times `column_count_loss`."""
    weight = None if interior_weight == 1 else interior_weights(masks, interior_weight)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks, weight=weight)
    return loss if column_weight == 0 else loss + column_weight * column_count_loss(logits, masks)


def scheduled_lr(base_lr, epoch, epochs, schedule):
    """Learning rate of `epoch` (1-based) of `epochs`: constant, or a cosine from `base_lr` down to
    1 % of it at the last epoch (a smaller final step settles the borders the metrics are read from)."""
    if schedule == "constant" or epochs <= 1:
        return base_lr
    if schedule != "cosine":
        raise InputError(f"--lr-schedule {schedule}: choose constant or cosine")
    floor = 0.01 * base_lr
    return floor + 0.5 * (base_lr - floor) * (1.0 + math.cos(math.pi * (epoch - 1) / (epochs - 1)))


def seed_everything(seed):
    """Seed Python's, numpy's and torch's random generators with `seed`."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def split_names(names, val_pct, seed):
    """Split image names into (train_names, val_names), both sorted, by recording.

    About `val_pct` percent of the recordings (the `<recording>` of `<recording>_win<k>.png`) go to
    validation with all their windows, chosen by scikit-learn's GroupShuffleSplit seeded by `seed`.
    Names without a recording are split one by one, with a warning; so is a data set of a single
    recording. `val_pct` 0 gives no validation set.
    """
    from sklearn.model_selection import GroupShuffleSplit

    names = sorted(names)
    if val_pct <= 0:
        return names, []
    recordings = [recording_of(name) for name in names]
    ungrouped = sum(recording is None for recording in recordings)
    if ungrouped:
        log.warning("%d of %d image names have no <recording>_win<k> form: those are split image by image",
                    ungrouped, len(names))
    groups = [recording or name for recording, name in zip(recordings, names)]
    if len(set(groups)) < 2:
        log.warning("all %d images come from one recording: splitting them image by image, so validation "
                    "windows may overlap training windows", len(names))
        groups = names
    if len(names) < 2:
        raise InputError(f"-v {val_pct:g}: one image cannot be split into training and validation (use -v 0)")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_pct / 100.0, random_state=seed)
    try:
        train_index, val_index = next(splitter.split(names, groups=groups))
    except ValueError as error:  # sklearn refuses a split that leaves one side empty
        raise InputError(f"-v {val_pct:g}: cannot split {len(set(groups))} recordings ({error})") from error
    return sorted(names[i] for i in train_index), sorted(names[i] for i in val_index)


def resolve_device(name):
    """torch.device for --device: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:<n>"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InputError(f"--device {name}: not a device ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device is available here (use --device cpu or auto)")
    return device


def existing_run_files(output_dir):
    """Sorted paths in `output_dir` that a training run writes (checkpoints, history)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    return sorted({path for pattern in RUN_FILE_PATTERNS for path in output_dir.glob(pattern)})


def write_history(path, history):
    """Write the per-epoch records (dicts with HISTORY_FIELDS) to the CSV `path`, atomically."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in history:
            writer.writerow({key: "" if record.get(key) is None else record[key] for key in HISTORY_FIELDS})
    partial.replace(path)


def open_tensorboard(runs_dir):
    """A SummaryWriter in `runs_dir/<date-time>`; None, with a warning, when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        log.warning("TensorBoard is not installed (%s): no event files are written", error)
        return None
    return SummaryWriter(log_dir=str(Path(runs_dir) / datetime.now().strftime("%Y%m%d-%H%M%S")))


def build_network(model_params):
    """QuickNat(model_params); a bad configuration becomes an InputError."""
    from quicknat import QuickNat

    try:
        return QuickNat(dict(model_params))
    except ValueError as error:
        raise InputError(f"network configuration: {error}") from error


def widened_weights(checkpoint, model_params, path, seed):
    """`checkpoint`'s weights widened to `model_params`' filters (`quicknat.widen`), which must otherwise describe
    its network; an InputError naming `path` where they do not."""
    from quicknat.widen import widen_state_dict

    loaded = dict(checkpoint["model_params"])
    wanted, have = model_params["num_filters"], loaded.get("num_filters")
    differ = sorted(key for key in model_params if key not in ("num_filters", "drop_out")
                    and loaded.get(key) != model_params[key])
    if differ:
        raise InputError(f"{path}: --widen changes only the number of filters, but the checkpoint's "
                         f"{', '.join(f'{key}={loaded.get(key)!r}' for key in differ)} differ from this run's")
    if not isinstance(have, int) or have > wanted:
        raise InputError(f"{path}: --widen needs at least the checkpoint's {have} filters, got --num-filters {wanted}")
    try:
        state_dict, _ = widen_state_dict(checkpoint["net_state_dict"], loaded, wanted, seed=seed)
    except (KeyError, ValueError) as error:
        raise InputError(f"{path}: cannot widen this network ({error})") from error
    log.info("Widened %s from %d to %d filters (the same function, then trained apart)", path, have, wanted)
    return state_dict


class Trainer:
    """Owns the data loaders, the QuickNat, Adam, the BCE-with-logits loss, validation, checkpoints
    and logs of one training run described by a `TrainingOptions`.

    The constructor checks the data set, splits it, builds the network, loads `options.load` or
    `options.resume` and checks the output folder; it writes nothing. `fit()` trains.
    """

    def __init__(self, options):
        if options.load and options.resume:
            raise InputError("-f/--load and --resume exclude each other: --resume continues a run, -f starts one")
        self.options = options
        self.output_dir = Path(options.output_dir)
        seed_everything(options.seed)
        self.device = resolve_device(options.device)
        self.use_amp = self._check_amp(options.amp)
        names = check_dataset(options.data_dir)
        summary = data_summary(options.data_dir)
        self.task = data_task(summary)

        resume = read_checkpoint(options.resume) if options.resume else None
        # the time scale analysis reads recordings at (mmode.checkpoint.ms_per_column): kept by --resume;
        # otherwise that of windows cut by time, else taken over by -f (below); else left out (the height rule)
        self.ms_per_column = None if resume is None else ms_per_column(resume)
        if resume is not None:
            # the interrupted run's network, size and split win over the flags
            model_params = resume["model_params"]
            self.img_size, self.img_width = input_shape(resume)
            self.train_crop = resume.get("train_crop")
            self.time_stretch = resume.get("time_stretch")
            self.gain_field = resume.get("gain_field")
            self.axial_bloom = resume.get("axial_bloom")
            self.wide_photometric = bool(resume.get("wide_photometric", False))
            self.wall_gain = resume.get("wall_gain")
            self.interior_weight = float(resume.get("interior_weight", 1.0))
            self.column_weight = float(resume.get("column_weight", 0.0))
            self.train_names, self.val_names = self._resumed_split(names, resume)
        else:
            model_params, self.img_size = options.model_params, int(options.img_size)
            self.img_width = self.img_size if options.img_width is None else int(options.img_width)
            self.train_crop = None if options.train_crop is None else int(options.train_crop)
            self.time_stretch = None if options.time_stretch is None else float(options.time_stretch)
            self.gain_field = None if options.gain_field is None else float(options.gain_field)
            self.axial_bloom = None if options.axial_bloom is None else float(options.axial_bloom)
            self.wide_photometric = bool(options.wide_photometric)
            self.wall_gain = None if options.wall_gain is None else float(options.wall_gain)
            self.interior_weight = float(options.interior_weight)
            self.column_weight = float(options.column_weight)
            self.train_names, self.val_names = split_names(names, options.val_pct, options.seed)
        self._check_output_dir(resume)

        self.net = build_network(model_params)
        self.model_params = dict(self.net.params)
        multiple_px = self.model_params["pool"] ** NUM_POOLINGS
        sizes = [("-p", self.img_size), ("--img-width", self.img_width)]
        if self.train_crop is not None:
            sizes.append(("--train-crop", self.train_crop))
        for flag, size_px in sizes:
            if size_px < 2 * multiple_px or size_px % multiple_px:
                raise InputError(f"{flag} {size_px}: the input size must be a multiple of {multiple_px} px, "
                                 f"at least {2 * multiple_px}")
        if self.train_crop is not None and self.train_crop > self.img_width:
            raise InputError(f"--train-crop {self.train_crop}: wider than the input's {self.img_width} columns "
                             "(--img-width)")
        self._check_time_stretch()
        for flag, value in (("--gain-field", self.gain_field), ("--axial-bloom", self.axial_bloom),
                            ("--wide-photometric", self.wide_photometric or None), ("--wall-gain", self.wall_gain)):
            if value is not None and not options.augment:
                raise InputError(f"{flag} is a step of the augmentation: add --augment")
        if options.widen and not options.load:
            raise InputError("--widen widens the checkpoint of -f/--load: add -f CKPT")
        if options.load:
            checkpoint = read_checkpoint(options.load)
            state_dict = checkpoint["net_state_dict"]
            if options.widen:
                state_dict = widened_weights(checkpoint, self.model_params, options.load, options.seed)
            elif checkpoint["model_params"].get("num_filters", 0) < self.model_params["num_filters"]:
                raise InputError(f"{options.load}: checkpoint does not fit this network (it has "
                                 f"{checkpoint['model_params'].get('num_filters')} filters, --num-filters "
                                 f"{self.model_params['num_filters']}): add --widen to widen it to them")
            load_weights(self.net, state_dict, options.load)
            log.info("Fine-tuning from %s (trained at %d x %d px, now %d x %d px)", options.load,
                     *input_shape(checkpoint), self.img_size, self.img_width)
            loaded_ms = ms_per_column(checkpoint)
            if loaded_ms is not None:  # other columns per window: as much time per column
                self.ms_per_column = loaded_ms * input_shape(checkpoint)[1] / self.img_width
        data_time_scale = data_ms_per_column(summary, self.img_width)
        if resume is None and data_time_scale is not None:
            self.ms_per_column = data_time_scale
            log.info("Windows cut by time: %.3g ms per network column at %d columns", self.ms_per_column,
                     self.img_width)
        channels_last_on_cpu(self.net.to(self.device), self.device)
        self.base_lr = float(resume.get("lr", options.lr)) if resume is not None else options.lr
        self.lr_schedule = resume.get("lr_schedule", "constant") if resume is not None else options.lr_schedule
        scheduled_lr(self.base_lr, 1, options.epochs, self.lr_schedule)  # rejects an unknown schedule now
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=options.lr)

        self.history = []
        self.start_epoch = 1
        self.best_epoch = None
        self.best_dice = -math.inf if self.val_names else math.nan
        self.best_mse = math.inf if self.val_names else math.nan
        self.best_loss = math.inf
        if resume is not None:
            self._restore(resume)
        self.completed_epoch = self.start_epoch - 1

        self.generator = torch.Generator()
        # soft targets for the loss only: validation Dice and MSE compare with the binary masks
        self.train_loader = self._loader(SegmentationDataset(options.data_dir, self.img_size, augment=options.augment,
                                                             names=self.train_names, soft_masks=options.soft_masks,
                                                             img_width=self.img_width, crop_width=self.train_crop,
                                                             time_stretch=self.time_stretch,
                                                             gain_field=self.gain_field,
                                                             axial_bloom=self.axial_bloom,
                                                             wide_photometric=self.wide_photometric,
                                                             wall_gain=self.wall_gain),
                                         shuffle=True)
        self.val_loader = (self._loader(SegmentationDataset(options.data_dir, self.img_size, names=self.val_names,
                                                            img_width=self.img_width),
                                        shuffle=False) if self.val_names else None)

    # --- set-up -------------------------------------------------------------------------------------

    def _check_time_stretch(self):
        """--time-stretch F needs a crop to take the resized window back to the input's width: F >= 1 and
        the narrowest window, img_width / F columns, at least --train-crop wide."""
        if self.time_stretch is None:
            return
        if self.train_crop is None:
            raise InputError("--time-stretch needs --train-crop: the crop takes a stretched window back to a "
                             "fixed width")
        if not 1.0 <= self.time_stretch <= self.img_width / self.train_crop:
            raise InputError(f"--time-stretch {self.time_stretch:g}: must be between 1 and --img-width / --train-crop "
                             f"= {self.img_width / self.train_crop:g}, so a compressed window still holds the crop")

    def _check_amp(self, amp):
        if not amp:
            return False
        if self.device.type != "cuda":
            log.warning("--amp: bf16 autocast runs on CUDA only; training in float32 on %s", self.device)
            return False
        if not torch.cuda.is_bf16_supported():
            log.warning("--amp: this GPU has no bf16 support; training in float32")
            return False
        return True

    def _resumed_split(self, names, resume):
        """The split stored in the `resume` checkpoint, applied to the data set's `names`."""
        stored_val = set(resume.get("val_names", []))
        if not names_match(names, resume):
            log.warning("the data set in %s differs from the one %s was trained on; images outside that run's "
                        "validation set are used for training", self.options.data_dir, self.options.resume)
        return sorted(set(names) - stored_val), sorted(set(names) & stored_val)

    def _check_output_dir(self, resume):
        existing = existing_run_files(self.output_dir)
        if existing and resume is None and not self.options.overwrite:
            shown = ", ".join(path.name for path in existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise InputError(f"{self.output_dir}: already holds a training run ({shown}); choose another -o, "
                             f"continue it with --resume, or replace it with --overwrite")

    def _restore(self, resume):
        """Continue the run saved in `resume`: weights, optimiser state, epoch, best so far, history."""
        path = self.options.resume
        load_weights(self.net, resume["net_state_dict"], path)
        self.optimizer.load_state_dict(resume["optimizer"])
        self.start_epoch = int(resume["epoch"]) + 1
        if self.start_epoch > self.options.epochs:
            raise InputError(f"{path}: the run already reached epoch {resume['epoch']}; "
                             f"ask for more epochs with -e (now {self.options.epochs})")
        self.best_epoch = resume.get("best_epoch")
        self.best_dice, self.best_mse = float(resume["best_dice"]), float(resume["best_mse"])
        self.best_loss = float(resume.get("best_loss", math.inf))
        self.history = [record for record in resume.get("history", []) if record["epoch"] < self.start_epoch]
        for key, value in (("batch_size", self.options.batch_size), ("augment", bool(self.options.augment)),
                           ("seed", self.options.seed)):
            if key in resume and resume[key] != value:
                log.warning("resuming with %s=%s; the interrupted run had %s=%s", key, value, key, resume[key])
        log.info("Resuming %s at epoch %d of %d", path, self.start_epoch, self.options.epochs)

    def resume_command(self, checkpoint_path):
        """The run.py command line that continues this run from `checkpoint_path`."""
        options = self.options
        words = ["python run.py", f"-d {options.data_dir}", f"-e {options.epochs}", f"-b {options.batch_size}"]
        words += ["--augment"] if options.augment else []
        words += [f"--seed {options.seed}"] if options.seed else []
        return " ".join(words + [f"--resume {checkpoint_path}"])

    def _loader(self, dataset, shuffle):
        return torch.utils.data.DataLoader(dataset, batch_size=self.options.batch_size, shuffle=shuffle,
                                           num_workers=self.options.workers, generator=self.generator,
                                           pin_memory=self.device.type == "cuda")

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    # --- one epoch ----------------------------------------------------------------------------------

    def train_epoch(self, epoch):
        """One pass over the training set; returns the mean training loss per image."""
        # the shuffle order depends only on seed and epoch, so a resumed run sees the same order
        self.generator.manual_seed(self.options.seed * 1_000_003 + epoch)
        self.net.train()
        total_loss, n_images = 0.0, 0
        with tqdm(total=len(self.train_names), desc=f"Epoch {epoch}/{self.options.epochs}", unit="img",
                  disable=self.options.quiet) as bar:
            for images, masks in self.train_loader:
                images = images.to(self.device, non_blocking=True)
                masks = masks.to(self.device, non_blocking=True)
                with self._autocast():
                    logits = self.net(images).float()
                loss = training_loss(logits, masks, self.interior_weight, self.column_weight)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total_loss += loss.item() * len(images)
                n_images += len(images)
                bar.update(len(images))
                bar.set_postfix(loss=f"{loss.item():.4f}")
        return total_loss / n_images

    @torch.no_grad()
    def validate(self):
        """(loss, Dice, MSE) over the validation set, means per image; Dice and MSE of the prediction
        thresholded at probability 0.5 against the mask."""
        self.net.eval()
        losses, dices, mses = [], [], []
        for images, masks in tqdm(self.val_loader, desc="Validation", unit="batch", leave=False,
                                  disable=self.options.quiet):
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self.net(images).float()
            per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks, reduction="none")
            losses.append(per_pixel.flatten(1).mean(dim=1).cpu().numpy())
            prediction = (logits > 0).float()  # sigmoid(logit) > 0.5
            dices.append(dice_per_image(prediction, masks))
            mses.append(mse_per_image(prediction, masks))
        return (float(np.concatenate(losses).mean()), float(np.concatenate(dices).mean()),
                float(np.concatenate(mses).mean()))

    def _is_new_best(self, record):
        if record["val_dice"] is None:
            return record["train_loss"] < self.best_loss
        return (record["val_dice"] > self.best_dice
                or (record["val_dice"] == self.best_dice and record["val_mse"] < self.best_mse))

    # --- the run ------------------------------------------------------------------------------------

    def fit(self):
        """Train from `start_epoch` to `options.epochs`, validating and checkpointing after each epoch.

        Returns the history (one dict per epoch, keys HISTORY_FIELDS). Ctrl-C saves INTERRUPTED.pt and
        raises TrainingInterrupted.
        """
        self._prepare_output_dir()
        self._log_setup()
        writer = open_tensorboard(self.output_dir / "runs")
        try:
            for epoch in range(self.start_epoch, self.options.epochs + 1):
                self._run_epoch(epoch, writer)
        except KeyboardInterrupt:
            path = self._save(self.output_dir / INTERRUPTED_NAME, self.completed_epoch)
            raise TrainingInterrupted(path, self.resume_command(path)) from None
        finally:
            if writer is not None:
                writer.close()
        last_path = self._save(self.output_dir / f"CP_last_e{self.completed_epoch}.pt", self.completed_epoch)
        log.info("Done: last model %s; best model %s", last_path, self.output_dir / f"CP_best_e{self.best_epoch}.pt")
        return self.history

    def _prepare_output_dir(self):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.options.overwrite and not self.options.resume:
            for path in existing_run_files(self.output_dir):
                log.info("--overwrite: removing %s", path)
                path.unlink()

    def _log_setup(self):
        params = self.model_params
        log.info("QuickNat: %d filters, kernel %dx%d, SE %s, dropout %.2f; input %d x %d px; device %s%s",
                 params["num_filters"], params["kernel_h"], params["kernel_w"], params["se_block"],
                 params["drop_out"], self.img_size, self.img_width, self.device,
                 " (bf16 autocast)" if self.use_amp else "")
        log.info("Training on %d images of %d recordings, validating on %d images of %d recordings%s",
                 len(self.train_names), count_recordings(self.train_names), len(self.val_names),
                 count_recordings(self.val_names), "; augmented" if self.options.augment else "")

    def _run_epoch(self, epoch, writer):
        started_s = time.perf_counter()
        if self.lr_schedule != "constant":
            for group in self.optimizer.param_groups:
                group["lr"] = scheduled_lr(self.base_lr, epoch, self.options.epochs, self.lr_schedule)
        train_loss = self.train_epoch(epoch)
        val_loss, val_dice, val_mse = self.validate() if self.val_loader is not None else (None, None, None)
        record = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_dice=val_dice, val_mse=val_mse,
                      lr=self.optimizer.param_groups[0]["lr"], seconds=round(time.perf_counter() - started_s, 3))
        self.history.append(record)
        self.completed_epoch = epoch
        write_history(self.output_dir / HISTORY_NAME, self.history)
        if writer is not None:
            for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("dice/val", "val_dice"),
                             ("mse/val", "val_mse"), ("lr", "lr")):
                if record[key] is not None:
                    writer.add_scalar(tag, record[key], epoch)
            writer.flush()
        if val_dice is None:
            log.info("Epoch %d/%d: train loss %.4f (%.1f s)", epoch, self.options.epochs, train_loss,
                     record["seconds"])
        else:
            log.info("Epoch %d/%d: train loss %.4f, validation loss %.4f, Dice %.4f, MSE %.5f (%.1f s)", epoch,
                     self.options.epochs, train_loss, val_loss, val_dice, val_mse, record["seconds"])
        if self._is_new_best(record):
            self.best_epoch, self.best_loss = epoch, train_loss
            if val_dice is not None:
                self.best_dice, self.best_mse = val_dice, val_mse
            best_path = self._save(self.output_dir / f"CP_best_e{epoch}.pt", epoch)
            for old in self.output_dir.glob("CP_best_e*.pt"):
                if old != best_path:
                    old.unlink()
            log.info("New best model: %s", best_path)

    def _save(self, path, epoch):
        """Save the current state as the checkpoint `path`, labelled with `epoch` (last completed)."""
        record = self.history[-1] if self.history else {}
        train_loss = record.get("train_loss", math.nan)
        val_loss = record.get("val_loss")
        return save_checkpoint(
            path, self.net, self.model_params, self.img_size, epoch, self.optimizer.state_dict(),
            img_width=self.img_width, ms_per_column=self.ms_per_column,
            loss=train_loss if val_loss is None else val_loss,
            dice=_or_nan(record.get("val_dice")), mse=_or_nan(record.get("val_mse")),
            best_dice=self.best_dice, best_mse=self.best_mse,
            train_loss=train_loss, best_epoch=self.best_epoch, best_loss=self.best_loss,
            history=[dict(entry) for entry in self.history], seed=self.options.seed,
            val_pct=self.options.val_pct, data_dir=str(self.options.data_dir), augment=bool(self.options.augment),
            batch_size=self.options.batch_size, lr=self.base_lr, lr_schedule=self.lr_schedule,
            soft_masks=bool(self.options.soft_masks), train_crop=self.train_crop, time_stretch=self.time_stretch,
            gain_field=self.gain_field, axial_bloom=self.axial_bloom, interior_weight=self.interior_weight,
            column_weight=self.column_weight,
            wide_photometric=self.wide_photometric, wall_gain=self.wall_gain, epochs=self.options.epochs,
            task=self.task,
            train_recordings=recording_list(self.train_names), val_recordings=recording_list(self.val_names),
            train_names=list(self.train_names), val_names=list(self.val_names),
        )


def data_summary(data_dir):
    """The `summary.json` that `python -m preprocess build` wrote beside the data set (in DATA, or in its
    parent for a --split part) as a dict; {} when there is none or it cannot be read."""
    for folder in (Path(data_dir), Path(data_dir).parent):
        path = folder / "summary.json"
        if path.is_file():
            try:
                summary = json.loads(path.read_text())
            except (OSError, ValueError):
                return {}
            return summary if isinstance(summary, dict) else {}
    return {}


def data_task(summary):
    """What a data set trains, from its `data_summary`: "border-strips" when it says so, else "segmentation"."""
    return "border-strips" if summary.get("kind") == "border-strips" else "segmentation"


def data_ms_per_column(summary, img_width):
    """Milliseconds per network column of a data set whose windows were cut by time (`preprocess build
    --window-seconds`, key `window_s` of its `data_summary`) once resized to `img_width` columns; None for
    square windows."""
    window_s = summary.get("window_s")
    if not isinstance(window_s, (int, float)) or not window_s > 0:
        return None
    return 1000.0 * float(window_s) / int(img_width)


def _or_nan(value):
    return math.nan if value is None else value


def recording_list(names):
    """Sorted recordings of `names` (a name without `_win<k>` counts as its own recording)."""
    return sorted({recording_of(name) or name for name in names})


def count_recordings(names):
    """How many recordings `names` come from (see `recording_list`)."""
    return len(recording_list(names))


def names_match(names, checkpoint):
    """True when `names` are exactly the training plus validation names stored in `checkpoint`."""
    return set(names) == set(checkpoint.get("train_names", [])) | set(checkpoint.get("val_names", []))
