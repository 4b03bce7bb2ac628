"""How the model holds when recordings look otherwise: the same hearts under each image change, side by side.

Runs `bench/accuracy.py` on the same simulated recordings once as drawn and once per condition, each condition one
`--perturb` step (`bench/perturb.py`: gain, contrast, gamma, depth gain, noise, speckle, blur along depth, speckle
size, JPEG export, the walls' brightness) or a heart rate fixed by `--hr-bpm`, and prints one table: per condition
the per-column LVID MAE, its mean signed error, LVIDd, LVIDs and EF per recording, window Dice, and the per-column
MAE's change against the recordings as drawn with its 95 % paired bootstrap interval over recordings
(`bench/compare.py`). The default conditions reach past the ranges training drew (`run.py --augment`, README
"Augmentation"; the table names them), so it shows where the model stops holding rather than only that it holds
where it was taught to. Each run's accuracy JSON is kept in `--out-dir` (pair any two with `bench/compare.py`), the
table also as `robustness.json` there.

    python bench/robustness.py --n 12 --seed 14000
    python bench/robustness.py --n 12 --seed 14000 --conditions gamma=2.5 noise=0.15 hr=300
    python bench/robustness.py --generator alt --n 12 --seed 14500   # another generator's hearts (no hr=)
"""
import argparse
import contextlib
import io
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import GENERATORS, add_model_arguments  # noqa: E402
from bench.perturb import perturbation  # noqa: E402
from mmode.cli import positive_int, run_main, setup_logging  # noqa: E402
from mmode.errors import InputError  # noqa: E402

log = logging.getLogger("robustness")

# The default sweep: each kind once or twice, at and past what training drew
DEFAULT_CONDITIONS = ("gain=0.5", "gain=1.4", "gain=2", "contrast=0.5", "contrast=2", "gamma=0.4", "gamma=1.6",
                      "gamma=2.5", "tgc=0.5", "tgc=2", "noise=0.05", "noise=0.15", "speckle=0.3", "speckle=0.6",
                      "grain=0.05", "grain=0.15", "blur=0.02", "blur=0.05", "wall=0.5", "wall=2", "hr=300", "hr=900")
# What the shipped models' training drew of each kind (mmode/augment.py, preprocess/sim_motion.py). Noise and blur
# act on each network's input: the segmentation's is the recording resized (about 2.6 rows per input row), the
# refiner's the recording's own pixels, so in mm or at a recording's pixels they span a range.
TRAINING_DRAWS = dict(gain="0.6-1.4", contrast="0.6-1.4", gamma="0.6-1.6", tgc="0.6-1.4",
                      noise="SD 0.04 on each network's input", speckle="0.05-0.35",
                      blur="0.3-1.5 px of each network's input (~0.003-0.045 mm)",
                      grain="1-4 rows of the segmentation's input (~0.02-0.14 mm) at log-SD 0.05-0.35",
                      wall="the simulator's walls at median grey 0.08-0.42, a smooth gain field",
                      jpeg="none: lossless PNG",
                      hr="350-840 bpm")
COLUMNS = (("per column (mm)", "lvid_column_mae_mm", "{:.4f}"), ("mean signed (mm)", "lvid_column_bias_mm", "{:+.4f}"),
           ("LVIDd (mm)", "recording_lvid_d_mm_mae", "{:.4f}"), ("LVIDs (mm)", "recording_lvid_s_mm_mae", "{:.4f}"),
           ("EF (points)", "recording_ef_pct_mae", "{:.2f}"), ("window Dice", "window_dice", "{:.4f}"))


def condition(text):
    """argparse type: a `--perturb` step NAME=VALUE, or hr=BPM (a fixed heart rate) -> the text, checked."""
    name, _, value = text.partition("=")
    if name.strip().lower() == "hr":
        try:
            bpm = float(value)
        except ValueError:
            bpm = 0.0
        if not 100 <= bpm <= 1200:
            raise argparse.ArgumentTypeError(f"hr must be a rate in bpm within 100-1200, got {text}")
        return f"hr={bpm:g}"
    name, number = perturbation(text)
    return f"{name}={number:g}"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--generator", choices=GENERATORS, default="simulator",
                        help="where the hearts come from, as accuracy.py's option; hr=BPM needs the simulator "
                             "(default: simulator)")
    parser.add_argument("--n", type=positive_int, default=12, help="recordings per set (default: 12)")
    parser.add_argument("--seed", type=int, default=14000, help="batch seed, as accuracy.py's (default: 14000)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per recording (default: 3)")
    parser.add_argument("--sets", nargs="+", choices=("clean", "artefacts"), default=["clean"],
                        help="which sets to run (default: clean)")
    parser.add_argument("--conditions", nargs="+", type=condition, metavar="NAME=VALUE",
                        help="the conditions, each a --perturb step or hr=BPM (default: a sweep of every kind, "
                             "within and past the training ranges)")
    parser.add_argument("--out-dir", type=Path, default=Path("bench/out/robustness"),
                        help="folder for each run's accuracy JSON and robustness.json (default: "
                             "bench/out/robustness)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return parser


def accuracy_argv(args, label, condition_text=None):
    """The `bench/accuracy.py` arguments of one run: the common ones, and the condition's step."""
    argv = ["-m", str(args.model), "--generator", args.generator, "--n", str(args.n), "--seed", str(args.seed),
            "--duration", str(args.duration), "--sets", *args.sets, "--device", args.device,
            "--out", str(args.out_dir / f"{label}.json")]
    argv += ["--quiet"] if args.quiet else []
    argv += ["--no-refine"] if args.no_refine else ["--refiner", str(args.refiner)]
    if condition_text is not None:
        name, _, value = condition_text.partition("=")
        argv += ["--hr-bpm", value] if name == "hr" else ["--perturb", condition_text]
    return argv


def run_accuracy(argv):
    """`bench/accuracy.py`'s main on `argv`, its table kept off the screen."""
    from bench.accuracy import main as accuracy_main

    with contextlib.redirect_stdout(io.StringIO()):
        accuracy_main(argv)


def sweep_rows(args, conditions):
    """Run the recordings as drawn and under each condition -> {set: [row per condition]}, the first row the
    recordings as drawn."""
    from bench.compare import compare, read_figures

    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = [("as drawn", "as_drawn", None)] + [(text, text.replace("=", "_"), text) for text in conditions]
    reference = None
    rows = {name: [] for name in args.sets}
    for shown, label, condition_text in runs:
        run_accuracy(accuracy_argv(args, label, condition_text))
        path = args.out_dir / f"{label}.json"
        figures = read_figures(path)
        paired = None if reference is None else compare(reference[1], figures, reference[0], path)
        if reference is None:
            reference = (path, figures)
        for name in args.sets:
            kind = None if condition_text is None else condition_text.partition("=")[0]
            row = dict(condition=shown, training_draws=TRAINING_DRAWS.get(kind),
                       **{key: figures["figures"][name].get(key) for _, key, _ in COLUMNS})
            column_change = None if paired is None else paired[name]["lvid_column_mae_mm"]
            if column_change is not None:
                row.update(change=column_change["difference"], change_ci95=column_change["difference_ci95"],
                           better_in=column_change["second_better"], recordings=column_change["recordings"])
            rows[name].append(row)
        log.info("%s: measured (%s)", shown, path)
    return rows


def format_rows(name, rows):
    lines = [f"{name}:", "| condition | training drew | " + " | ".join(label for label, _, _ in COLUMNS)
             + " | per column minus as drawn (95 %) |", "|" + " --- |" * (len(COLUMNS) + 3)]
    for row in rows:
        cells = ["n/a" if row[key] is None else pattern.format(row[key]) for _, key, pattern in COLUMNS]
        change = ""
        if "change" in row:
            low, high = row["change_ci95"]
            change = f"{row['change']:+.4f} ({low:+.4f} to {high:+.4f})"
        lines.append(f"| {row['condition']} | {row['training_draws'] or ''} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    for path in (args.model,) + (() if args.no_refine else (args.refiner,)):
        if not path.is_file():
            raise InputError(f"{path}: no such checkpoint")
    conditions = args.conditions or [text for text in DEFAULT_CONDITIONS
                                      if args.generator == "simulator" or not text.startswith("hr=")]
    if args.generator != "simulator" and any(text.startswith("hr=") for text in conditions):
        raise InputError(f"hr=BPM fixes the training simulator's heart rate; the {args.generator} generator draws "
                         "its own")
    rows = sweep_rows(args, conditions)
    print(f"model {args.model}, refiner {'none' if args.no_refine else args.refiner}; {args.n} recordings of "
          f"{args.duration:g} s per set from the {args.generator} generator, batch seed {args.seed}; each condition "
          "the same hearts")
    for name, set_rows in rows.items():
        print(format_rows(name, set_rows))
    (args.out_dir / "robustness.json").write_text(json.dumps(dict(
        model=str(args.model), refiner=None if args.no_refine else str(args.refiner), generator=args.generator,
        n=args.n, seed=args.seed,
        duration_s=args.duration, sets=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
