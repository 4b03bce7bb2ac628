"""A generator's recordings written to a folder, in the layout `preprocess simulate` writes, with dense annotations.

For training on more than one generator (`preprocess build` on the folder), for looking at the recordings the
bench measures, and as a worked example of the folder `bench/accuracy.py --recordings DIR` reads:

    python bench/write_recordings.py --generator alt --n 200 --seed 13500 --out train/alt
    python -m preprocess build --images train/alt --annotations train/alt/annotations.csv --out train/altdata

writes `<generator>_s<seed>_<i:03d>.png` (8-bit grey), `annotations.csv` (image,trace,x,y: one point per
column of each border over the longest stretch with contact, so the mask `preprocess build` draws is the truth
to within the 3 decimals written), `calibration.csv` (image,mm_per_px,s_per_px) and `truth/<name>.json` (the
truth format of `preprocess simulate`, with `generator` in place of `simulator_version`). Recording i is drawn
from the seed `bench/accuracy.py` gives recording i of a batch with that seed, with artefacts where a draw from
`--seed` falls under `--artefacts`: `--artefacts 0` writes the bench's clean set of that seed, `--seed S+1
--artefacts 1` its artefact set.
"""
import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import GENERATORS, generate  # noqa: E402
from mmode.cli import run_main  # noqa: E402
from mmode.errors import InputError  # noqa: E402
from mmode.io import write_png  # noqa: E402
from preprocess.simulate import (ANNOTATIONS_FILE, CALIBRATION_FILE, TRUTH_DIR, annotated_span,  # noqa: E402
                                 fraction, truth_dict, write_recording_tables)

# truth_dict's keys that hold the training simulator's own draw, not every generator's
SIMULATOR_KEYS = ("simulator_version", "parameters")


def dense_annotation_rows(name, upper_px, lower_px, lost_contact):
    """(image, trace, x, y) rows: every column of the longest stretch where contact holds and both borders are
    known, y in rows to 3 decimals; and that stretch as [start, stop)."""
    known = ~lost_contact & np.isfinite(upper_px) & np.isfinite(lower_px)
    if not known.any():
        raise InputError(f"{name}: no column with both borders known")
    start, stop = annotated_span(~known)
    rows = [(name, trace, x, f"{border_px[x]:.3f}")
            for trace, border_px in (("upper", upper_px), ("lower", lower_px)) for x in range(start, stop)]
    return rows, [start, stop]


def generator_truth(recording, generator, span):
    """The truth JSON content of one recording of `generator`: `preprocess simulate`'s (`truth_dict`) with
    `generator` in place of the simulator's version and drawn parameters (each generator draws its own)."""
    truth = truth_dict(replace(recording, parameters={}), annotated=span)
    for key in SIMULATOR_KEYS:
        del truth[key]
    return {"generator": generator, **truth}


def write_recordings(out_dir, generator, n, seed, duration_s=2.5, artefacts=0.0, overwrite=False):
    """Write `n` recordings of `generator` ("simulator", "alt" or "scatter") to `out_dir` as described above;
    returns their names. A folder that already holds files is refused (InputError) unless `overwrite`."""
    out_dir = Path(out_dir)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir} is not empty; choose a new folder or pass --overwrite")
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    draws = np.random.default_rng(seed)
    names, rows, calibrations = [], [], []
    for index in range(n):
        name = f"{generator}_s{seed}_{index:03d}"
        recording = generate(generator, seed, index, duration_s, bool(draws.random() < artefacts), name)
        recording_rows, span = dense_annotation_rows(name, recording.upper_px, recording.lower_px,
                                                     recording.lost_contact)
        truth = generator_truth(recording, generator, span)
        write_png(out_dir / f"{name}.png", recording.image)
        (out_dir / TRUTH_DIR / f"{name}.json").write_text(json.dumps(truth))
        rows.extend(recording_rows)
        calibrations.append((name, repr(recording.mm_per_px), repr(recording.s_per_px)))
        names.append(name)
    write_recording_tables(out_dir, rows, calibrations)
    return names


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", choices=GENERATORS, required=True, help="which generator")
    parser.add_argument("--n", type=int, required=True, help="number of recordings")
    parser.add_argument("--seed", type=int, required=True, help="batch seed, as bench/accuracy.py's")
    parser.add_argument("--duration", type=float, default=2.5, metavar="S", help="seconds per recording (default 2.5)")
    parser.add_argument("--artefacts", type=fraction, default=0.0, metavar="P",
                        help="share of the recordings drawn with artefacts (default 0)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.duration > 0:
        raise InputError(f"--duration must be > 0, got {args.duration}")
    names = write_recordings(args.out, args.generator, args.n, args.seed, duration_s=args.duration,
                             artefacts=args.artefacts, overwrite=args.overwrite)
    print(f"wrote {len(names)} recordings, {ANNOTATIONS_FILE}, {CALIBRATION_FILE} and {TRUTH_DIR}/ to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
