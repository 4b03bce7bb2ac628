"""What the entry scripts share: logging set-up and turning InputError into one clear line."""
import argparse
import logging
import math
import sys
from pathlib import Path

from mmode.errors import InputError


def setup_logging(quiet=False):
    """Messages go to stderr as plain lines; `quiet` keeps only warnings and errors."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def run_main(main, argv=None):
    """Call `main(argv)`; an InputError becomes `error: <message>` on stderr and exit status 2."""
    try:
        return main(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


AUTO_CROP = "auto"  # --crop auto: each image's M-mode panel is found in it (`mmode.panel.find_panel`)


def crop_box(text):
    """argparse type of --crop: "LEFT,TOP,RIGHT,BOTTOM" pixels -> 4 ints, right > left >= 0, bottom > top >= 0."""
    try:
        box = tuple(int(part) for part in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or min(box) < 0 or box[2] <= box[0] or box[3] <= box[1]:
        raise argparse.ArgumentTypeError(f"must be LEFT,TOP,RIGHT,BOTTOM in pixels, whole numbers >= 0 with RIGHT > "
                                         f"LEFT and BOTTOM > TOP (e.g. 120,80,1400,600), got {text}")
    return box


def crop_box_or_auto(text):
    """argparse type of test.py's --crop: AUTO_CROP for "auto", else `crop_box`."""
    return AUTO_CROP if text.strip().lower() == AUTO_CROP else crop_box(text)


def time_range(text):
    """argparse type of --time: "START,END" seconds -> (start_s, end_s) with 0 <= START < END, or "START," ->
    (start_s, None), from START to the recording's end; a name ending in .csv -> that Path (each recording's
    stretch, `preprocess.annotations.read_stretches_csv`)."""
    if text.strip().lower().endswith(".csv"):
        return Path(text)
    parts = text.split(",")
    try:
        start_s = float(parts[0])
        end_s = float(parts[1]) if len(parts) == 2 and parts[1].strip() else None
    except (ValueError, IndexError):
        start_s = end_s = math.nan
    valid = len(parts) == 2 and math.isfinite(start_s) and start_s >= 0
    if not valid or (end_s is not None and not (math.isfinite(end_s) and end_s > start_s)):
        raise argparse.ArgumentTypeError(f"must be START,END in seconds with 0 <= START < END (e.g. 2,6.5), "
                                         f"START, for the rest of the recording, or a CSV file image,start_s,end_s, "
                                         f"got {text}")
    return start_s, end_s


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def float_between(low, high, include_low=False, include_high=False):
    """argparse type factory: a number in (low, high); `include_low`, `include_high` close either end."""
    opening, closing = "[" if include_low else "(", "]" if include_high else ")"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
        above = low <= value if include_low else low < value
        below = value <= high if include_high else value < high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must lie in {opening}{low:g}, {high:g}{closing}, got {text}")
        return value

    return parse
