"""Train QuickNAT to segment the LV cavity in M-mode windows: `python run.py -d DATA [options]`.

Argument parsing only; the training itself is trainer.Trainer (imported after parsing, so --help and
argument errors answer without loading torch).
"""
import argparse
import logging
import sys
from pathlib import Path

from mmode.cli import float_between, non_negative_int, positive_float, positive_int, run_main, setup_logging
from mmode.version import VersionAction

SE_BLOCK_CHOICES = ("NONE", "CSE", "SSE", "CSSE")
DEFAULT_OUTPUT = Path("checkpoints")
INTERRUPTED_EXIT_STATUS = 130  # the shell's status for a program stopped by Ctrl-C (128 + SIGINT)

DESCRIPTION = """\
Train QuickNAT (one output channel, BCE-with-logits loss, Adam) on square M-mode windows and their
LV-cavity masks. DATA holds img/ and mask/ with identical PNG names, as `python -m preprocess build`
writes them; masks are 0/255 or 0/1 (other values are thresholded at 128, with a warning). Windows
named <recording>_win<k>.png are split into training and validation by recording.

After every epoch the model is validated (Dice and MSE of the prediction thresholded at 0.5), and
OUTPUT receives CP_best_e<N>.pt on every new best validation Dice (ties: lower MSE; only the newest
best is kept), CP_last_e<E>.pt at the end, history.csv (one row per epoch) and TensorBoard event
files under runs/. Ctrl-C saves INTERRUPTED.pt; --resume continues from it."""

EPILOG = """\
examples:
  python run.py -d data/train -e 30 -b 8 -p 128 --num-filters 16 --augment -o runs16
  python run.py -d data/train -e 30 -b 8 --augment --resume runs16/INTERRUPTED.pt
  python run.py -d data/new_lab -e 10 -l 0.0001 -p 128 --num-filters 16 -f runs16/CP_best_e27.pt -o tuned

A checkpoint holds the network configuration (model_params) and the input size (img_size), so
test.py needs no architecture flags."""


def img_size(text):
    value = int(text)
    if value < 32 or value % 16:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16 and at least 32 (QuickNat pools 4 times), "
                                         f"got {text}")
    return value


def odd_kernel(text):
    value = int(text)
    if value < 1 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be an odd positive integer (same padding), got {text}")
    return value


def data_folder(text):
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"data folder not found: {text}")
    return Path(text)


def checkpoint_file(text):
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"checkpoint not found: {text}")
    return Path(text)


def device_name(text):
    if text not in ("auto", "cpu", "cuda") and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:<index>, got {text}")
    return text


def build_parser():
    """The argument parser of run.py (the seed's flags first, same meaning and defaults)."""
    parser = argparse.ArgumentParser(prog="run.py", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    data = parser.add_argument_group("data and training")
    data.add_argument("-d", "--data", type=data_folder, required=True, metavar="DATA",
                      help="folder holding img/ and mask/ with identical PNG names (required)")
    data.add_argument("-e", "--epochs", type=positive_int, default=1, metavar="E",
                      help="number of epochs to train; with --resume, the epoch to end at (default: 1)")
    data.add_argument("-b", "--batch-size", type=positive_int, default=1, metavar="B",
                      help="images per batch (default: 1)")
    data.add_argument("-p", "--img-size", type=img_size, default=256, metavar="PX",
                      help="rows (depth) in px that images and masks are resized to, and their columns unless "
                           "--img-width says otherwise; a multiple of 16, at least 32 (default: 256)")
    data.add_argument("--img-width", type=img_size, default=None, metavar="PX",
                      help="columns (time) the windows are resized to; fewer than -p compresses time, so the "
                           "same pixel count resolves depth, where LVID is measured, more finely; a multiple of "
                           "16, at least 32 (default: -p, square)")
    data.add_argument("--train-crop", type=img_size, default=None, metavar="PX",
                      help="train on a random stretch of PX columns of each resized window (validation and "
                           "analysis use all of them): --img-width sets the time scale, --train-crop the cost "
                           "per image; a multiple of 16, at most --img-width (default: the whole window)")
    data.add_argument("--time-stretch", type=positive_float, default=None, metavar="F",
                      help="with --train-crop: resize each training window's time axis by a random factor, "
                           "log-uniform in [1/F, F], before the crop, so the network sees each beat at many time "
                           "scales; F >= 1, at most --img-width / --train-crop (default: none)")
    data.add_argument("-l", "--lr", type=positive_float, default=0.001, metavar="LR",
                      help="Adam learning rate (default: 0.001)")
    data.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                      help="constant: the seed's fixed rate; cosine: from LR down to 1%% of it over the epochs "
                           "(default: constant)")
    data.add_argument("-v", "--val", type=float_between(0, 100, include_low=True), default=20.0, metavar="PCT",
                      help="percentage of recordings held out for validation, all windows of a recording on "
                           "one side; 0 for none, then the best model is the lowest training loss (default: 20)")
    data.add_argument("--augment", action="store_true",
                      help="augment training pairs: time flips, vertical shifts, scaling 0.85-1.15 on image and "
                           "mask together; depth gain, speckle, brightness, contrast, gamma, blur, noise on the "
                           "image only")
    data.add_argument("--gain-field", type=positive_float, default=None, metavar="SD",
                      help="with --augment: also multiply 70%% of the training images by a smooth random gain "
                           "field over depth and time, log-gain SD drawn up to SD, so walls, pericardium and "
                           "echoes in the cavity change brightness against each other (default: none)")
    data.add_argument("--axial-bloom", type=positive_float, default=None, metavar="PX",
                      help="with --augment: also blur half the training images along depth in echo amplitude "
                           "(log compression of 30-60 dB undone, blurred, redone), sigma drawn up to PX rows of "
                           "the input: walls' echoes spread into the cavity as a longer pulse's do, the mask "
                           "stays at the interface (default: none)")
    data.add_argument("--wall-gain", type=float_between(1, 100, include_low=True), default=None, metavar="G",
                      help="with --augment: also make half the training images' septum and posterior wall echo "
                           "more or less than the rest: the grey above the black level times a gain drawn "
                           "log-uniformly in [1/G, G] for each wall, over the band the mask puts it in (the "
                           "issue's wall brightness; default: none)")
    data.add_argument("--wide-photometric", action="store_true",
                      help="with --augment: draw the photometric steps over wider ranges (speckle log-SD up to "
                           "0.7 with grains up to 6 rows, gamma 0.4-2.5, blur sigma up to 2.5 px, noise SD drawn "
                           "up to 0.12 instead of 0.04), for scanners whose images differ more from the "
                           "simulator's (default: speckle up to 0.35, gamma 0.6-1.6, blur up to 1.5 px)")
    data.add_argument("--interior-weight", type=positive_float, default=1.0, metavar="W",
                      help="weight W in the BCE loss of the pixels with no cavity border within 4 rows along "
                           "depth: errors there are gross (a chorda or papillary muscle read as wall), not a "
                           "border's position; W > 1 makes them cost more; the training loss reported is the "
                           "weighted one (default: 1, the plain BCE)")
    data.add_argument("--column-weight", type=float_between(0, 100, include_low=True), default=0.0, metavar="W",
                      help="add W times the per-column cavity-count error to the loss: per column, the cavity "
                           "rows predicted (summed probability) against the mask's, absolute, divided by the "
                           "rows; the per-column LVID error, made differentiable; the training loss reported "
                           "includes it (default: 0, the plain BCE)")
    data.add_argument("--soft-masks", action="store_true",
                      help="train on area-averaged masks (the fraction of each resized pixel inside the cavity), "
                           "so the loss sees the borders' sub-pixel positions; validation uses the binary masks")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of the split, the weights, the shuffling and the augmentation (default: 0)")

    model = parser.add_argument_group("network (ignored with --resume, which keeps the checkpoint's)")
    model.add_argument("--num-filters", type=positive_int, default=64, metavar="N",
                       help="feature maps per dense block (default: 64, the paper's)")
    model.add_argument("--kernel", type=odd_kernel, default=5, metavar="K",
                       help="convolution kernel size K x K in the dense blocks, odd (default: 5)")
    model.add_argument("--se-block", type=str.upper, choices=SE_BLOCK_CHOICES, default="NONE",
                       help="squeeze-and-excitation after each block: channel (CSE), spatial (SSE), "
                            "both (CSSE) or none (default: NONE)")
    model.add_argument("--dropout", type=float_between(0, 1, include_low=True), default=0.2, metavar="P",
                       help="Dropout2d probability after each encoder and decoder block (default: 0.2)")

    runs = parser.add_argument_group("checkpoints and output")
    start = runs.add_mutually_exclusive_group()
    start.add_argument("-f", "--load", type=checkpoint_file, metavar="CKPT",
                       help="start from this checkpoint's weights (fine-tuning); its network must match the "
                            "network flags; the input size is -p")
    start.add_argument("--resume", type=checkpoint_file, metavar="CKPT",
                       help="continue an interrupted run (INTERRUPTED.pt or any checkpoint of it): network, "
                            "input size, optimiser state, learning rate, split and best-so-far from CKPT; "
                            "continues at its epoch + 1 up to -e")
    runs.add_argument("--widen", action="store_true",
                      help="with -f: the checkpoint may have fewer filters than --num-filters; its network is "
                           "widened to them computing the same function (Net2Net: copied filters, their outgoing "
                           "weights split), so a larger network starts where the smaller one ended")
    runs.add_argument("-o", "--output", type=Path, metavar="OUTPUT",
                      help="folder for checkpoints, history.csv and runs/ (default: checkpoints; with --resume, "
                           "the folder of the checkpoint)")
    runs.add_argument("--overwrite", action="store_true",
                      help="replace the checkpoints and history of an earlier run in OUTPUT (without it, "
                           "such a folder is refused)")

    machine = parser.add_argument_group("machine")
    machine.add_argument("--device", type=device_name, default="auto",
                         help="auto (CUDA when present, else CPU), cpu, cuda or cuda:<index> (default: auto)")
    machine.add_argument("--amp", action="store_true",
                         help="bf16 autocast on CUDA (ignored, with a warning, on the CPU)")
    machine.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                         help="data-loading worker processes; 0 loads in the main process (default: 0)")
    machine.add_argument("--quiet", action="store_true", help="no progress bars; warnings and errors only")
    return parser


def options_from_args(args):
    """trainer.TrainingOptions from parsed arguments."""
    from trainer import TrainingOptions

    model_params = dict(num_filters=args.num_filters, kernel_h=args.kernel, kernel_w=args.kernel,
                        se_block=args.se_block, drop_out=args.dropout)
    output_dir = args.output or (args.resume.parent if args.resume else DEFAULT_OUTPUT)
    return TrainingOptions(data_dir=args.data, output_dir=output_dir, epochs=args.epochs,
                           batch_size=args.batch_size, img_size=args.img_size, img_width=args.img_width,
                           lr=args.lr, val_pct=args.val,
                           model_params=model_params, load=args.load, resume=args.resume, augment=args.augment,
                           seed=args.seed, workers=args.workers, device=args.device, amp=args.amp,
                           quiet=args.quiet, overwrite=args.overwrite,
                           lr_schedule=args.lr_schedule, soft_masks=args.soft_masks,
                           train_crop=args.train_crop, time_stretch=args.time_stretch,
                           gain_field=args.gain_field, axial_bloom=args.axial_bloom,
                           interior_weight=args.interior_weight, column_weight=args.column_weight,
                           wide_photometric=args.wide_photometric,
                           wall_gain=args.wall_gain,
                           widen=args.widen)


def main(argv=None):
    """Parse `argv` (default: the command line), train, return 0; Ctrl-C exits with status 130."""
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    try:
        from trainer import Trainer

        Trainer(options_from_args(args)).fit()
    except KeyboardInterrupt as interrupted:  # trainer.TrainingInterrupted says where the state went
        logging.getLogger("run").warning("%s", interrupted or "interrupted before training started; nothing saved")
        sys.exit(INTERRUPTED_EXIT_STATUS)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
