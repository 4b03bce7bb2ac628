"""What the entry scripts share: logging set-up and turning InputError into one clear line."""
import logging
import sys

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
