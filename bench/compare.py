"""Two models measured on the same recordings: is the difference more than the draw of recordings?

Reads two JSON files written by `bench/accuracy.py` with the same generator, batch seed, number and length
of recordings, or the same `--recordings` folder (so both models saw the same recordings), pairs the
recordings by name and reports, per set and figure, both models' values, the difference (second minus first:
negative is better, as every figure is an error) with a 95 % paired bootstrap interval over recordings, and
in how many recordings the second model was better. A difference whose interval holds 0 is not evidence
either way; on 12 or 20 recordings, differences between two fine-tunes of one model often are of that kind.
The per-column MAE is pooled over each recording's measured columns (JSONs written before session 14 lack
the counts: then it is the mean over recordings), and so are the rows below it, what each class of
`bench/accuracy.py`'s error budget adds to it (which border moved which way). Runs of the same seeds with
other `--mm-per-px`, `--s-per-px`, `--height` or `--hr-bpm` pair as well: the same hearts drawn at other
pixel sizes (or rates); so do runs with other `--perturb` steps (the same hearts, their images changed).

    python bench/accuracy.py -m checkpoints/heart-seg-net.pt --generator alt --n 20 --seed 9600 --out a.json
    python bench/accuracy.py -m candidate.pt --generator alt --n 20 --seed 9600 --out b.json
    python bench/compare.py a.json b.json
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import (BUDGET_CLASSES, CI_RESAMPLES, percentile_interval, resample_recordings,  # noqa: E402
                            resampled_means)
from mmode.cli import run_main  # noqa: E402
from mmode.errors import InputError  # noqa: E402

# (label, per-recording key, format); the per-column MAE is pooled (weighted by measured columns).
FIGURES = (("LVID per column MAE (mm)", "lvid_column_mae_mm", "{:.4f}"),
           ("LVIDd error per recording (mm)", "lvid_d_mm_error", "{:.4f}"),
           ("LVIDs error per recording (mm)", "lvid_s_mm_error", "{:.4f}"),
           ("EF error per recording (points)", "ef_pct_error", "{:.2f}"),
           ("HR error per recording (%)", "hr_pct_error", "{:.3f}"))
# What each class of the error budget adds to the per-column MAE (bench/accuracy.py's `error_budget`), pooled as
# the MAE is: which way a difference in the per-column MAE goes (JSONs written before session 30 have none: n/a).
BUDGET_FIGURES = tuple((f"of which: {label.split(' (')[0]} (mm)", f"error_budget_mm.{key}", "{:.4f}")
                       for key, label in BUDGET_CLASSES)
SAME = ("generator", "seed", "n", "duration_s", "recordings", "crop")
# accuracy.py --mm-per-px, --s-per-px, --height, --hr-bpm: the same seeds at other pixel sizes (or rates) are the
# same hearts, so two such runs pair too (one model at two pixel sizes); so do runs with other --perturb steps
FIXED = ("mm_per_px", "s_per_px", "height_px", "hr_bpm")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="accuracy JSON of the reference model")
    parser.add_argument("second", type=Path, help="accuracy JSON of the model compared with it")
    parser.add_argument("--out", type=Path, help="also write the comparison as JSON here")
    return parser


def read_figures(path):
    """The parsed accuracy JSON at `path` (InputError naming the file if it is not one)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), dict):
        raise InputError(f"{path}: not written by bench/accuracy.py (no 'figures')")
    return data


def recording_value(row, key):
    """A recording's figure `key` from its `per_recording` row, a budget class as `error_budget_mm.<class>`;
    None where it has none."""
    if key.startswith("error_budget_mm."):
        budget = row.get("error_budget_mm")
        return None if budget is None else budget.get(key.split(".", 1)[1])
    return row.get(key)


def paired_values(first, second, key):
    """(first values, second values, first weights, second weights) of the recordings both measured; the
    per-column MAE and its budget classes weighted by each recording's measured columns."""
    a = np.array([np.nan if (v := recording_value(r, key)) is None else v for r in first], dtype=float)
    b = np.array([np.nan if (v := recording_value(r, key)) is None else v for r in second], dtype=float)
    by_column = key == "lvid_column_mae_mm" or key.startswith("error_budget_mm.")
    if by_column and all("measured_columns" in r for r in first + second):
        wa = np.array([r["measured_columns"] for r in first], dtype=float)
        wb = np.array([r["measured_columns"] for r in second], dtype=float)
    else:
        wa = wb = np.ones(a.size)
    keep = np.isfinite(a) & np.isfinite(b) & (wa > 0) & (wb > 0)
    return a[keep], b[keep], wa[keep], wb[keep]


def compare_set(first, second, resamples=CI_RESAMPLES, seed=0):
    """Per figure: both models' values, the difference (second - first), its 95 % paired bootstrap interval
    and the number of recordings where the second is better, over `first`/`second` per-recording lists."""
    rows = {}
    for _, key, _ in FIGURES + BUDGET_FIGURES:
        a, b, wa, wb = paired_values(first, second, key)
        if a.size < 2:
            rows[key] = None
            continue
        picks = resample_recordings(a.size, resamples, seed)
        differences = resampled_means(b, wb, picks) - resampled_means(a, wa, picks)
        first_value, second_value = np.average(a, weights=wa), np.average(b, weights=wb)
        rows[key] = dict(first=float(first_value), second=float(second_value),
                         difference=float(second_value - first_value),
                         difference_ci95=percentile_interval(differences), recordings=int(a.size),
                         second_better=int((b < a).sum()))
    return rows


def compare(first, second, first_path, second_path):
    """{set: compare_set(...)} of two accuracy JSONs (parsed) of the same recordings (InputError otherwise,
    naming `second_path`)."""
    for key in SAME:
        if first.get(key) != second.get(key):
            raise InputError(f"{second_path}: {key} {second.get(key)!r} differs from {first_path}'s "
                             f"{first.get(key)!r}; compare models on the same recordings")
    result = {}
    for name, figures in first["figures"].items():
        if name not in second["figures"]:
            continue
        a, b = figures["per_recording"], second["figures"][name]["per_recording"]
        if [r["name"] for r in a] != [r["name"] for r in b]:
            raise InputError(f"{second_path}: the {name} set's recordings differ from {first_path}'s")
        result[name] = compare_set(a, b)
    if not result:
        raise InputError(f"{first_path} and {second_path} share no set")
    return result


def format_comparison(result):
    lines = []
    for name, rows in result.items():
        lines += [f"{name}:", "| figure | first | second | second - first (95 % interval) | second better in |",
                  "| --- | --- | --- | --- | --- |"]
        for label, key, pattern in FIGURES + BUDGET_FIGURES:
            row = rows[key]
            if row is None:
                lines.append(f"| {label} | n/a | n/a | n/a | n/a |")
                continue
            low, high = (pattern.format(value) for value in row["difference_ci95"])
            difference = pattern.replace("{:", "{:+").format(row["difference"])
            lines.append(f"| {label} | {pattern.format(row['first'])} | {pattern.format(row['second'])} | "
                         f"{difference} ({low} to {high}) | {row['second_better']} of {row['recordings']} |")
    return "\n".join(lines)


def describe(figures):
    """The pair an accuracy JSON measured: segmentation and refiner (JSONs before session 14 name no refiner),
    and the draws it fixed and the steps it perturbed the images with, if any."""
    fixed = "".join(f", {key} {figures[key]:g}" for key in FIXED if key in figures)
    if figures.get("perturb"):
        fixed += ", perturbed " + " ".join(figures["perturb"])
    if "refiner" not in figures:
        return str(figures.get("model")) + fixed
    refiner = figures["refiner"]
    pair = f"{figures.get('model')} with refiner {refiner}" if refiner else f"{figures.get('model')} without refiner"
    return pair + fixed


def main(argv=None):
    args = build_parser().parse_args(argv)
    first, second = read_figures(args.first), read_figures(args.second)
    result = compare(first, second, args.first, args.second)
    origin = (f"recordings from {first['recordings']}" if first.get("recordings") else
              f"{first.get('generator')} generator, batch seed {first.get('seed')}, "
              f"{first.get('n')} recordings per set")
    print(f"first: {describe(first)}; second: {describe(second)}; {origin}")
    print(format_comparison(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(first=str(args.first), second=str(args.second), sets=result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
