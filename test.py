"""Evaluate a test set or analyse M-mode recordings: `python test.py -d PATH [options]`.

Argument parsing and the work live in mmode.analysis (torch loads only after the arguments are checked,
so --help answers at once); `python test.py --help` lists the modes, options and output files.
"""
import sys

from mmode.analysis import main
from mmode.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
