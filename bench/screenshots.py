"""How `--crop auto` finds the M-mode panel: recordings framed as scanner screenshots whose panel box is known.

Each recording of the folders given (folders of recordings with a calibration.csv, as `preprocess simulate` and
`bench/write_recordings.py` write them, or `examples/`) is put on a screen of each backdrop grey (`screenshot`: a
title bar, labels, a depth scale with ticks, time ticks and an ECG trace around the panel), saved as PNG and, with
`--jpeg Q`, as a JPEG of quality Q on the first backdrop, and `mmode.panel.find_panel` looks for its panel. The
table gives per kind of screen how many boxes are exact and how far the other boxes' edges lie from the true ones
(found minus true, in px). With `--analyse`, each kind's screenshots are analysed as a study with `test.py --crop
auto` (the shipped pair, or `-m` / `--refiner` / `--no-refine`) beside the panels alone, and a second table gives
the largest and the median difference of LVIDd, LVIDs, EF and HR, and the largest of the beat count, against the
panels alone; a JPEG's screens cut at the true box are analysed too, which separates what the compression moves
from what the box moves. Everything is written to `--out-dir` (the screens, each study, `screenshots.json`).

    python -m preprocess simulate --out sims --n 12 --seed 19300 --duration 3 --artefacts
    python bench/write_recordings.py --generator alt --n 6 --seed 19301 --artefacts 1 --out alt
    python bench/write_recordings.py --generator scatter --n 6 --seed 19302 --artefacts 1 --out scatter
    python bench/screenshots.py --recordings sims alt scatter examples --analyse --out-dir screens
"""
import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmode.cli import run_main, setup_logging  # noqa: E402
from mmode.errors import InputError  # noqa: E402

log = logging.getLogger("screenshots")

EDGES = ("left", "top", "right", "bottom")
COMPARED = (("LVIDd (mm)", "lvid_d_mm", "{:.4f}"), ("LVIDs (mm)", "lvid_s_mm", "{:.4f}"),
            ("EF (points)", "ef_pct", "{:.2f}"), ("HR (bpm)", "hr_bpm", "{:.2f}"))


def screenshot(panel, backdrop, left=60, top=50):
    """uint8 `panel` (H, W) on a scanner-like screen of grey `backdrop`, at (`left`, `top`): a title bar across the
    screen 25 px above the panel, labels ending 9 px to its left, a depth scale's line 8 px to its right with ticks
    every 40 rows, time ticks 3 px below it every 100 columns and a two-pixel ECG trace 30-70 px below it.
    Returns (screen uint8, the panel's box (left, top, right, bottom))."""
    height, width = panel.shape
    screen = np.full((height + top + 120, width + left + 90), backdrop, np.uint8)
    screen[5:25] = 200
    for x in range(10, left - 10, 9):
        screen[top + 20:top + 30, x:x + 5] = 230
    right, bottom = left + width, top + height
    screen[top:bottom, right + 8] = 180
    for y in range(top, bottom, 40):
        screen[y:y + 2, right + 8:right + 20] = 180
    for x in range(left, right, 100):
        screen[bottom + 3:bottom + 9, x] = 180
    t = np.arange(width)
    ecg = (bottom + 50 + 20 * np.sin(t / 15.0) ** 15).astype(int)
    screen[ecg, left + t] = screen[ecg + 1, left + t] = 150
    screen[top:bottom, left:right] = panel
    return screen, (left, top, right, bottom)


def jpeg_round_trip(image, quality):
    """uint8 `image` as a JPEG of `quality` gives it back: (decoded uint8 image, the JPEG's bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    data = buffer.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")), data


def screen_kinds(backdrops, jpeg):
    """[(label, backdrop grey, JPEG quality or None)]: a PNG screen per backdrop, and with `jpeg` one JPEG screen on
    the first backdrop."""
    kinds = [(f"backdrop {grey}, PNG", grey, None) for grey in backdrops]
    if jpeg is not None:
        kinds.append((f"backdrop {backdrops[0]}, JPEG {jpeg}", backdrops[0], jpeg))
    return kinds


def edge_offsets(found, box):
    """{edge: found minus true px}, or None where nothing was found."""
    return None if found is None else dict(zip(EDGES, (int(a) - int(b) for a, b in zip(found, box))))


def box_summary(offsets):
    """How the boxes of one kind of screen came out: n, exact, none_found, and per edge the (min, max) offset."""
    found = [entry for entry in offsets if entry is not None]
    return dict(n=len(offsets), exact=sum(not any(entry.values()) for entry in found),
                none_found=len(offsets) - len(found),
                edges={edge: [min(entry[edge] for entry in found), max(entry[edge] for entry in found)]
                       for edge in EDGES} if found else None)


def recordings_of(folders):
    """[(path, Calibration)] of every image recording in `folders`, each with its row of its folder's
    calibration.csv. InputError naming a folder without one, or a recording it does not list."""
    from mmode.io import IMAGE_SUFFIXES, recording_files, recording_name
    from preprocess.annotations import read_calibration_csv

    found = []
    for folder in folders:
        table_path = Path(folder) / "calibration.csv"
        if not table_path.is_file():
            raise InputError(f"{folder}: no calibration.csv (image,mm_per_px,s_per_px per recording)")
        table = read_calibration_csv(table_path)  # by recording name, as test.py reads it
        for path in recording_files(folder):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if recording_name(path) not in table:
                raise InputError(f"{table_path}: does not list {path.name}")
            found.append((path, table[recording_name(path)]))
    if not found:
        raise InputError(f"no image recordings in {', '.join(str(folder) for folder in folders)}")
    return found


def write_folder(folder, images, calibrations):
    """`images` {file name: uint8 image or JPEG bytes} written to the new `folder` with a calibration.csv (and an
    annotations.csv without rows: `preprocess.simulate.write_recording_tables`)."""
    from PIL import Image

    from preprocess.simulate import write_recording_tables

    folder.mkdir(parents=True)
    for name, image in images.items():
        if isinstance(image, bytes):
            (folder / name).write_bytes(image)
        else:
            Image.fromarray(image).save(folder / name)
    write_recording_tables(folder, [], [(name, repr(calibrations[name].mm_per_px), repr(calibrations[name].s_per_px))
                                        for name in images])


def write_screens(panels, calibrations, kinds, out_dir):
    """Each of `panels` ({file name: uint8 image}) on a screen of each of `kinds` (`screen_kinds`), written to a
    folder per kind in `out_dir` (a JPEG kind's screens cut at their true box too), and its panel looked for.
    Returns ({kind: `box_summary`}, {kind: {file name: `edge_offsets`}}, {label: (folder, test.py's --crop
    arguments)})."""
    from mmode.panel import find_panel

    boxes, offsets, folders = {}, {}, {}
    for label, backdrop, quality in kinds:
        images, panel_of, cut, found = {}, {}, {}, {}
        for name, panel in panels.items():
            screen, box = screenshot(panel, backdrop)
            if quality is None:
                images[name], panel_of[name] = screen, name
            else:
                screen, data = jpeg_round_trip(screen, quality)
                images[f"{Path(name).stem}.jpg"], panel_of[f"{Path(name).stem}.jpg"] = data, name
                left, top, right, bottom = box
                cut[name] = screen[top:bottom, left:right]
            found[name] = edge_offsets(find_panel(screen), box)
        slug = label.replace(", ", "_").replace(" ", "")
        write_folder(out_dir / slug, images, {file: calibrations[panel_of[file]] for file in images})
        folders[label] = (out_dir / slug, ["--crop", "auto"])
        if cut:
            write_folder(out_dir / f"{slug}_truebox", cut, calibrations)
            folders[f"{label}, cut at the true box"] = (out_dir / f"{slug}_truebox", [])
        boxes[label], offsets[label] = box_summary(list(found.values())), found
    return boxes, offsets, folders


def study_rows(folder, out, extra):
    """Analyse the recordings in `folder` as `test.py -d folder -o out --quiet` plus `extra` arguments; returns
    {recording stem: its study.csv row}."""
    from mmode import analysis

    analysis.main(["-d", str(folder), "-o", str(out), "--quiet", *extra])
    with open(out / "study.csv", newline="") as handle:
        return {Path(row["recording"]).stem: row for row in csv.DictReader(handle)}


def differences(rows, reference):
    """Per compared quantity the largest and median absolute difference of `rows` from `reference` (study.csv rows
    by stem, both measured), and the largest of the beat count."""
    stems = [stem for stem in reference if rows.get(stem, {}).get("status") == "ok"
             and reference[stem]["status"] == "ok"]
    result = {"n": len(stems)}
    for _, key, _ in COMPARED:
        values = np.array([abs(float(rows[stem][key]) - float(reference[stem][key])) for stem in stems])
        result[key] = dict(max=float(values.max()), median=float(np.median(values)))
    result["n_beats"] = dict(max=max(abs(int(rows[stem]["n_beats"]) - int(reference[stem]["n_beats"]))
                                     for stem in stems))
    return result


def format_boxes(boxes):
    lines = ["| screens | boxes exact | nothing found | found minus true, px (left, top, right, bottom: least, most) |",
             "| --- | --- | --- | --- |"]
    for label, entry in boxes.items():
        edges = "" if entry["edges"] is None else ", ".join(
            f"{edge} {low:+d}..{high:+d}" for edge, (low, high) in entry["edges"].items())
        lines.append(f"| {label} | {entry['exact']} of {entry['n']} | {entry['none_found']} | {edges} |")
    return "\n".join(lines)


def format_differences(results):
    header = " | ".join(name for name, _, _ in COMPARED)
    lines = [f"| analysed | {header} | beats |", "| --- |" + " --- |" * (len(COMPARED) + 1)]
    for label, entry in results.items():
        cells = [f"{fmt.format(entry[key]['max'])} ({fmt.format(entry[key]['median'])})" for _, key, fmt in COMPARED]
        lines.append(f"| {label} | {' | '.join(cells)} | {entry['n_beats']['max']} |")
    return "\n".join(lines) + "\n(largest absolute difference from the panels alone, median in brackets)"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python bench/screenshots.py", description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=Path, nargs="+", required=True, metavar="DIR",
                        help="folders of image recordings, each with its calibration.csv")
    parser.add_argument("--backdrops", type=int, nargs="+", default=[0, 30, 128], metavar="GREY",
                        help="the screens' backdrop greys, 0-255 (default 0 30 128)")
    parser.add_argument("--jpeg", type=int, default=90, metavar="Q",
                        help="also a JPEG screen of this quality on the first backdrop; 0 for none (default 90)")
    parser.add_argument("--analyse", action="store_true",
                        help="analyse every kind of screen with test.py --crop auto beside the panels alone")
    parser.add_argument("-m", "--model", metavar="CKPT", help="with --analyse: test.py's -m (default its own)")
    parser.add_argument("--refiner", metavar="CKPT", help="with --analyse: test.py's --refiner")
    parser.add_argument("--no-refine", action="store_true", help="with --analyse: test.py's --no-refine")
    parser.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                        help="new folder for the screens, the studies and screenshots.json")
    parser.add_argument("--quiet", action="store_true", help="warnings only")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    if any(not 0 <= grey <= 255 for grey in args.backdrops):
        raise InputError(f"--backdrops must be greys 0-255, got {args.backdrops}")
    if not 0 <= args.jpeg <= 100:
        raise InputError(f"--jpeg must be a quality 1-100, or 0 for none, got {args.jpeg}")
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        raise InputError(f"{args.out_dir}: exists and is not empty")
    from mmode.io import read_image

    recordings = recordings_of(args.recordings)
    kinds = screen_kinds(args.backdrops, args.jpeg or None)
    panels, calibrations = {}, {}
    for path, calibration in recordings:
        name = f"{path.parent.name}_{path.stem}.png"  # the folder in the name: two folders may share a stem
        panels[name], calibrations[name] = read_image(path), calibration
    write_folder(args.out_dir / "panels", panels, calibrations)
    boxes, offsets, folders = write_screens(panels, calibrations, kinds, args.out_dir)
    print(format_boxes(boxes))
    report = dict(recordings=[str(path) for path, _ in recordings], backdrops=args.backdrops, jpeg=args.jpeg or None,
                  boxes=boxes, offsets=offsets)
    if args.analyse:
        model = (["-m", args.model] if args.model else []) + (["--refiner", args.refiner] if args.refiner else [])
        model += ["--no-refine"] if args.no_refine else []
        reference = study_rows(args.out_dir / "panels", args.out_dir / "studies" / "panels", model)
        report["differences"] = {
            label: differences(study_rows(folder, args.out_dir / "studies" / folder.name, model + extra), reference)
            for label, (folder, extra) in folders.items()}
        print()
        print(format_differences(report["differences"]))
    (args.out_dir / "screenshots.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("written to %s", args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
