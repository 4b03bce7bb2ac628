"""Command line: `python -m preprocess build ...` (training set) and `python -m preprocess simulate ...`.

Only argparse is imported up front, so `--help` answers at once; the work is imported when a command runs.
"""
import argparse
import sys
from pathlib import Path

from mmode.cli import crop_box_or_auto, float_between, positive_float, positive_int, run_main, setup_logging
from mmode.version import VersionAction
from preprocess import simulate  # numpy only: --help stays instant

BUILD_EXAMPLE = """\
example:
  python -m preprocess build --images recordings/ --annotations recordings/annotations.csv \\
      --out data/ --split 20 --seed 1

Every recording in --images (.png .jpg .jpeg .tif .tiff .bmp .dcm .dicom) that --annotations names becomes
square windows (side = the image height, or its width when it is taller than long) along the annotated
span, in OUT/img/<recording>_win<k>.png with the mask (0/255) in OUT/mask/<recording>_win<k>.png.
With --window-seconds S the windows are cut by time instead: the whole height by the columns of S seconds.
"""


def add_build_arguments(parser):
    """Options of `python -m preprocess build`."""
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of long recordings (PNG, JPEG, TIFF, BMP or DICOM)")
    parser.add_argument("--annotations", required=True, metavar="FILE",
                        help="annotation CSV (image,trace,x,y), LabelMe JSON, or a folder of LabelMe JSONs")
    parser.add_argument("--out", required=True, metavar="DATASET",
                        help="output data set folder (must be new or empty, unless --overwrite)")
    parser.add_argument("--stride", type=positive_int, metavar="PX",
                        help="columns between window starts (default: half the window side)")
    parser.add_argument("--split", type=float_between(0, 100), metavar="PCT",
                        help="put PCT %% of the recordings (not windows) in OUT/test/, the rest in OUT/train/")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the --split draw and of the --strips guides (default 0)")
    parser.add_argument("--strips", action="store_true",
                        help="write the border refiner's training strips (96 x 128 px along each annotated "
                             "border, tissue above, cavity below) instead of square windows; --stride defaults "
                             "to 128")
    parser.add_argument("--guide-model", type=Path, metavar="CKPT",
                        help="with --strips: also cut strips along the borders this segmentation checkpoint finds "
                             "(e.g. checkpoints/heart-seg-net.pt), labelled with the annotations; kept where its "
                             "border strays over 5 rows from the annotation, and one in five of the others")
    parser.add_argument("--guide-stride", type=positive_int, metavar="PX",
                        help="columns between the --guide-model strips (default 96)")
    parser.add_argument("--guide-easy-fraction", metavar="F",
                        type=float_between(0, 1, include_low=True, include_high=True),
                        help="share of the --guide-model strips whose border stays within 5 rows of the annotation "
                             "that are kept too (default 0.2; 1 keeps every strip)")
    parser.add_argument("--window-seconds", type=positive_float, metavar="S",
                        help="cut windows by time instead of squares: the recording's whole height by the columns "
                             "that span S seconds, so every window shows the same time per network column "
                             "whatever the recording's height (e.g. 0.4608 = 192 columns at 2.4 ms)")
    parser.add_argument("--s-per-px", type=positive_float, metavar="S",
                        help="seconds per column of the image files, for --window-seconds and the summary "
                             "(default the seed's 0.00083334; a DICOM's own calibration wins)")
    parser.add_argument("--calibration", type=Path, metavar="CSV",
                        help="each image file's calibration instead: a CSV image,mm_per_px,s_per_px listing every "
                             "annotated recording (`preprocess simulate` writes one, calibration.csv)")
    parser.add_argument("--crop", type=crop_box_or_auto, metavar="L,T,R,B|auto",
                        help="cut every recording to this box first: left, top, right, bottom in its pixels, right "
                             "and bottom exclusive (a scanner screenshot's M-mode panel, as test.py --crop reads "
                             "it), or 'auto': to the panel found in each, as test.py --crop auto; the annotations "
                             "stay in the uncut image's pixels (default: the whole image)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty DATASET")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary, warnings only")


def build_parser():
    """The `python -m preprocess` parser with its `build` and `simulate` subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m preprocess",
        description="Prepare M-mode training data: build windows and masks from annotated recordings, "
                    "or simulate recordings with exact ground truth.")
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build", help="annotated recordings -> masks -> square training windows",
        description="Turn long M-mode recordings and their annotated upper/lower traces into a training set.",
        epilog=BUILD_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_build_arguments(build)
    simulate.add_arguments(commands.add_parser("simulate",
                                               help="simulated recordings with annotations and exact truth"))
    return parser


def run_build(args):
    """Run `build` from parsed arguments."""
    from preprocess.build import build_dataset

    build_dataset(args.images, args.annotations, args.out, stride=args.stride, split_pct=args.split,
                  seed=args.seed, overwrite=args.overwrite, progress=not args.quiet, strips=args.strips,
                  guide_model=args.guide_model, guide_stride=args.guide_stride,
                  guide_easy_fraction=args.guide_easy_fraction, window_seconds=args.window_seconds,
                  s_per_px=args.s_per_px, calibration_csv=args.calibration, crop=args.crop)
    return 0


def main(argv=None):
    """Parse `argv` (default sys.argv[1:]) and run the chosen command; returns the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "quiet", False))
    if args.command == "build":
        return run_build(args)
    return simulate.run(args) or 0


if __name__ == "__main__":
    sys.exit(run_main(main))
