"""Simulated mouse M-mode recordings (parasternal short axis) with exact ground truth.

`simulate_recording(seed)` draws one recording: condition (conscious, anaesthetised, failing heart), heart
rate with beat-to-beat variation, respiration, LV size and function, wall thickening, calibration, image
height, look (gain, contrast, speckle, blur, noise) and optional artefacts; it returns the 8-bit image and
the per-column inner-diameter traces. `write_simulations` writes N of them with an annotation CSV in the
format users supply and a truth JSON per recording. `add_arguments` / `run` are `python -m preprocess simulate`.
Physiology and anatomy live in `preprocess.sim_motion`, pixels in `preprocess.sim_render`.
"""
import argparse
import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmode.errors import InputError
from mmode.io import write_png
from preprocess.masks import interpolate_trace
from preprocess.sim_motion import CONDITIONS, anatomy, beat_phase, beat_schedule, draw_parameters
from preprocess.sim_render import (ARTEFACT_KINDS, cavity_echoes, draw_artefacts, probe_shift_mm, render,
                                   riding_chordae)

SIMULATOR_VERSION = "1.5"
TRUTH_DIR = "truth"
ANNOTATIONS_FILE = "annotations.csv"
CALIBRATION_FILE = "calibration.csv"
# Annotator model: clicks at every end-diastole and end-systole, 1-3 between, never further apart than
# CLICK_SPACING_PX columns, and more wherever the curve drawn through the clicks strays more than
# CLICK_TOLERANCE_PX from the border (the cusps of ejection and of the atrial kick), as an annotator adds
# points until the drawn trace follows the wall; each click lands within CLICK_JITTER_PX of the border.
CLICK_SPACING_PX = 12
CLICK_TOLERANCE_PX = 1.0
CLICK_JITTER_PX = 0.5

log = logging.getLogger(__name__)


@dataclass
class SimulatedRecording:
    """One simulated recording and its truth.

    `image` uint8 (H, W); `upper_px`, `lower_px` (W,) float rows of the septal and posterior endocardium
    (the cavity is the rows strictly between them); `mm_per_px`, `s_per_px` the calibration; `beats` a list
    of dicts `t_ed_s, t_es_s, lvid_d_mm, lvid_s_mm` (end-diastole = the beat's maximum LVID, end-systole
    the following minimum) plus `visible` (False when the beat touches lost-contact columns); `hr_bpm` the
    mean heart rate of those beats; `artefact_columns` [start, stop) column ranges of all artefacts,
    `artefacts` the same with their `kind`; `lost_contact` (W,) bool; `condition`; `seed`; `name`;
    `parameters` the drawn physiology (lvid_d_mm, ef_pct, resp_bpm, ...); `schedule` the per-beat
    timing arrays (`t_ed_s`, `rr_s`, `es_frac`, ...) the recording was drawn with.
    """

    image: np.ndarray
    upper_px: np.ndarray
    lower_px: np.ndarray
    mm_per_px: float
    s_per_px: float
    beats: list
    hr_bpm: float
    artefact_columns: list
    name: str
    condition: str
    seed: int
    artefacts: list = field(default_factory=list)
    lost_contact: np.ndarray = None
    parameters: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict, repr=False)

    @property
    def lvid_mm(self):
        """Inner diameter (mm) per column."""
        return (self.lower_px - self.upper_px) * self.mm_per_px


def random_streams(seed):
    """The seven independent random streams of a recording: parameters, beats, anatomy, artefacts, pixels,
    the papillary muscles' shape (tips since 1.3, form since 1.4) and the chordae riding on the posterior
    wall (since 1.5). The first five are those of simulators 1.0-1.2 (a SeedSequence's children do not depend
    on how many are spawned), so a seed draws the same recording but for what later versions added."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(7)]


def simulate_recording(seed, duration_s=None, artefacts=None, name=None, condition=None, hr_bpm=None,
                       lvid_d_mm=None, ef_pct=None, mm_per_px=None, s_per_px=None, height_px=None,
                       artefact_kinds=ARTEFACT_KINDS):
    """Simulate one recording, deterministically from `seed` (int).

    Every keyword left None is drawn: `duration_s` (2-5 s), `condition` ("conscious", "anaesthetised",
    "failing"), `hr_bpm` (mean), `lvid_d_mm`, `ef_pct`, `mm_per_px`, `s_per_px`, `height_px` (350-800;
    the height grows and the view is cropped when the heart would not fit, unless given). `artefacts`:
    None/False for none, True for 1-3 artefacts, a float for that probability; `artefact_kinds` limits their
    kinds.
    Fixing one option leaves the other draws of that seed unchanged.
    """
    streams = random_streams(seed)
    params = draw_parameters(streams[0], condition=condition, hr_bpm=hr_bpm, lvid_d_mm=lvid_d_mm, ef_pct=ef_pct,
                             mm_per_px=mm_per_px, s_per_px=s_per_px, height_px=height_px, duration_s=duration_s)
    width = params.width_px
    if width < 10:
        raise ValueError(f"duration {params.duration_s} s is too short at {params.s_per_px} s/px")
    probability = float(artefacts) if artefacts is not None else 0.0
    artefact_list = draw_artefacts(streams[3], width, params.s_per_px, probability, tuple(artefact_kinds))
    schedule = beat_schedule(streams[1], params)
    time_s = np.arange(width) * params.s_per_px
    boundaries_mm, contraction, params = anatomy(streams[2], params, time_s, schedule,
                                                 probe_shift_mm(artefact_list, width))
    upper_px = boundaries_mm["upper"] / params.mm_per_px
    lower_px = boundaries_mm["lower"] / params.mm_per_px
    index, phase = beat_phase(time_s, schedule)
    echoes = cavity_echoes(streams[4], index, phase, schedule, lower_px, lower_px - upper_px, params.mm_per_px,
                           streams[5])
    chordae = riding_chordae(streams[6], time_s, lower_px, lower_px - upper_px, params.mm_per_px)
    echoes = tuple(np.concatenate([a, b]) for a, b in zip(echoes, chordae))
    image = render(streams[4], boundaries_mm, params, contraction, echoes, artefact_list)

    lost_contact = np.zeros(width, dtype=bool)
    for artefact in artefact_list:
        if artefact["kind"] == "lost_contact":
            lost_contact[artefact["start"]:artefact["stop"]] = True
    truth_lvid_mm = (lower_px - upper_px) * params.mm_per_px
    beats = truth_beats(truth_lvid_mm, schedule, params.s_per_px, lost_contact)
    ed_s = np.array([beat["t_ed_s"] for beat in beats])
    mean_hr_bpm = 60.0 / np.diff(ed_s).mean() if ed_s.size > 1 else params.hr_bpm
    return SimulatedRecording(
        image=image, upper_px=upper_px, lower_px=lower_px, mm_per_px=params.mm_per_px, s_per_px=params.s_per_px,
        beats=beats, hr_bpm=float(mean_hr_bpm),
        artefact_columns=[[a["start"], a["stop"]] for a in artefact_list],
        name=name or f"sim_{seed}", condition=params.condition, seed=int(seed),
        artefacts=[dict(a) for a in artefact_list], lost_contact=lost_contact,
        parameters=dict(lvid_d_mm=params.lvid_d_mm, lvid_s_mm=params.lvid_s_mm, ef_pct=params.ef_pct,
                        hr_bpm=params.hr_bpm, hr_spread_bpm=params.hr_spread_bpm, resp_bpm=params.resp_bpm,
                        resp_amplitude_mm=params.resp_amplitude_mm, ivs_d_mm=params.ivs_d_mm,
                        lvpw_d_mm=params.lvpw_d_mm, duration_s=params.duration_s),
        schedule=schedule)


def _extremum_columns(lvid_mm, centres, half_widths, lo, hi, find_max, whole_window):
    """Column of the maximum (or minimum) of `lvid_mm` in a window around each centre, inside [lo, hi).

    With `whole_window`, a window reaching outside [lo, hi) gives -1 (the beat is not entirely there).
    """
    columns = []
    for centre, half in zip(np.round(centres).astype(int), np.ceil(half_widths).astype(int)):
        start, stop = centre - half, centre + half + 1
        if whole_window and (start < lo or stop > hi):
            columns.append(-1)
            continue
        start, stop = max(start, lo), min(stop, hi)
        if stop - start < 1:
            columns.append(-1)
            continue
        segment = lvid_mm[start:stop]
        columns.append(start + int(np.argmax(segment) if find_max else np.argmin(segment)))
    return np.array(columns, dtype=int)


def _beat_columns(schedule, s_per_px):
    """Nominal end-diastole and end-systole columns and search half-widths (columns) of every beat."""
    rr_px = schedule["rr_s"] / s_per_px
    ed_px = schedule["t_ed_s"] / s_per_px
    es_px = ed_px + schedule["es_frac"] * rr_px
    return ed_px, es_px, 0.2 * rr_px, 0.15 * rr_px


def truth_beats(lvid_mm, schedule, s_per_px, lost_contact):
    """Beats lying entirely inside the recording: end-diastole = maximum of the LVID curve around the
    scheduled one, end-systole = minimum around the scheduled one, both read off `lvid_mm` itself."""
    ed_px, es_px, ed_half, es_half = _beat_columns(schedule, s_per_px)
    width = lvid_mm.size
    ed_cols = _extremum_columns(lvid_mm, ed_px, ed_half, 0, width, True, True)
    es_cols = _extremum_columns(lvid_mm, es_px, es_half, 0, width, False, True)
    beats = []
    for ed, es, rr_s in zip(ed_cols, es_cols, schedule["rr_s"]):
        if ed < 0 or es < 0:
            continue
        # rr_s: the beat's true cycle length, a sharper HR truth than the spacing of flat LVID maxima
        beats.append(dict(t_ed_s=round(float(ed * s_per_px), 6), t_es_s=round(float(es * s_per_px), 6),
                          lvid_d_mm=round(float(lvid_mm[ed]), 4), lvid_s_mm=round(float(lvid_mm[es]), 4),
                          rr_s=round(float(rr_s), 6), visible=bool(not lost_contact[ed:es + 1].any())))
    return beats


def annotated_span(lost_contact):
    """[start, stop) of the longest run of columns without lost contact (annotators click only there)."""
    good = np.concatenate([[False], ~lost_contact, [False]])
    changes = np.flatnonzero(np.diff(good.astype(np.int8)))
    starts, stops = changes[::2], changes[1::2]
    longest = int(np.argmax(stops - starts))
    return int(starts[longest]), int(stops[longest])


def refine_clicks(click_px, click_y_px, trace_px, place_px, tolerance_px=CLICK_TOLERANCE_PX, max_rounds=30):
    """Clicks with more added until the PCHIP curve through them (what `preprocess build` draws) stays
    within `tolerance_px` of `trace_px` (the border's row at every column) from the first click to the last.

    `click_px` sorted int columns, `click_y_px` their rows; `place_px(columns)` gives the rows where added
    clicks land (the border plus the annotator's jitter, which must stay under `tolerance_px`). Each round
    clicks the worst column of every interval that strays further. Returns (columns, rows), sorted.
    """
    columns = np.arange(click_px[0], click_px[-1] + 1)
    for _ in range(max_rounds):
        drawn_px = interpolate_trace(click_px, click_y_px, trace_px.size)[columns]
        error_px = np.abs(drawn_px - trace_px[columns])
        interval = np.searchsorted(click_px, columns, side="right") - 1
        order = np.lexsort((error_px, interval))
        worst = order[np.r_[interval[order][1:] != interval[order][:-1], True]]
        worst = worst[error_px[worst] > tolerance_px]
        if worst.size == 0:
            break
        added = columns[worst]
        click_px, click_y_px = np.concatenate([click_px, added]), np.concatenate([click_y_px, place_px(added)])
        order = np.argsort(click_px, kind="stable")
        click_px, click_y_px = click_px[order], click_y_px[order]
    return click_px, click_y_px


def annotation_clicks(recording, rng, spacing_px=CLICK_SPACING_PX, jitter_px=CLICK_JITTER_PX,
                      tolerance_px=CLICK_TOLERANCE_PX):
    """Clicks an annotator would make along both traces: {trace: (x int array, y float array)}.

    Inside the longest stretch without lost contact: both ends, every end-diastole and end-systole
    (extrema of the LVID curve), 1-3 clicks between each pair and none more than `spacing_px` apart,
    then more wherever the interpolated trace strays over `tolerance_px` from the border (`refine_clicks`);
    y gets +-`jitter_px` uniform click jitter.
    """
    start, stop = annotated_span(recording.lost_contact)
    lvid_mm = recording.lvid_mm
    schedule = recording.schedule
    ed_px, es_px, ed_half, es_half = _beat_columns(schedule, recording.s_per_px)
    inside = lambda cols: cols[(cols >= start) & (cols < stop)]
    ed_cols = _extremum_columns(lvid_mm, inside(np.round(ed_px)), ed_half, start, stop, True, False)
    es_cols = _extremum_columns(lvid_mm, inside(np.round(es_px)), es_half, start, stop, False, False)
    extrema = np.unique(np.concatenate([ed_cols[ed_cols >= 0], es_cols[es_cols >= 0]]))
    # Annotators also click where a probe movement makes the borders jump.
    jumps = [c for a in recording.artefacts if a["kind"] == "probe_motion" for c in (a["start"], a["stop"])]
    extrema = np.unique(np.concatenate([extrema, [c for c in jumps if start <= c < stop]]).astype(int))
    ends = [end for end in (start, stop - 1) if extrema.size == 0 or np.abs(extrema - end).min() > 3]
    keys = np.unique(np.concatenate([extrema, ends]).astype(int))
    clicks = {}
    for trace, values in (("upper", recording.upper_px), ("lower", recording.lower_px)):
        xs = [keys]
        for a, b in zip(keys[:-1], keys[1:]):
            gap = b - a
            n = max(int(rng.integers(1, 4)), int(np.ceil(gap / spacing_px)) - 1)
            spots = a + gap * (np.arange(1, n + 1) + rng.uniform(-0.25, 0.25, n)) / (n + 1)
            xs.append(np.round(spots).astype(int))
        x = np.unique(np.concatenate(xs))
        x = x[(x >= start) & (x < stop)]
        place_px = lambda cols, values=values: np.round(values[cols] + rng.uniform(-jitter_px, jitter_px, cols.size), 2)
        clicks[trace] = refine_clicks(x, place_px(x), values, place_px, tolerance_px)
    return clicks


def truth_dict(recording, annotated=None):
    """The truth JSON content of a recording (lists rounded to 3 decimals)."""
    return dict(
        name=recording.name,
        simulator_version=SIMULATOR_VERSION,
        seed=recording.seed,
        condition=recording.condition,
        mm_per_px=recording.mm_per_px,
        s_per_px=recording.s_per_px,
        height_px=int(recording.image.shape[0]),
        width_px=int(recording.image.shape[1]),
        hr_bpm=round(recording.hr_bpm, 3),
        beats=recording.beats,
        artefact_columns=recording.artefact_columns,
        artefacts=recording.artefacts,
        lost_contact_columns=[[a["start"], a["stop"]] for a in recording.artefacts if a["kind"] == "lost_contact"],
        annotated_columns=annotated,
        parameters={key: round(value, 4) for key, value in recording.parameters.items()},
        upper_px=np.round(recording.upper_px, 3).tolist(),
        lower_px=np.round(recording.lower_px, 3).tolist(),
        lvid_mm=np.round(recording.lvid_mm, 3).tolist(),
    )


def recording_seed(seed, index):
    """The seed of recording `index` of a batch with seed `seed` (deterministic, distinct per pair)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def _existing_outputs(out_dir):
    """Files in out_dir that a simulation run would write or that look like recordings."""
    if not out_dir.exists():
        return []
    found = list(out_dir.glob("*.png")) + list(out_dir.glob(ANNOTATIONS_FILE)) + list(out_dir.glob(CALIBRATION_FILE))
    return found + ([out_dir / TRUTH_DIR] if (out_dir / TRUTH_DIR).exists() else [])


def write_simulations(out_dir, n, seed, overwrite=False, progress=True, **options):
    """Write `n` recordings `sim_s<seed>_<i:03d>` to `out_dir`: `<name>.png`, `annotations.csv`
    (image,trace,x,y), `calibration.csv` (image,mm_per_px,s_per_px; `preprocess build --calibration`) and
    `truth/<name>.json`. Options go to `simulate_recording`. An `out_dir` that already
    holds recordings is refused (InputError) unless `overwrite`. Returns the names written.
    """
    out_dir = Path(out_dir)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    existing = _existing_outputs(out_dir)
    if existing and not overwrite:
        raise InputError(f"{out_dir} already holds recordings ({existing[0].name}, ...); "
                         f"choose a new folder or pass --overwrite")
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    names, rows, calibrations = [], [], []
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="simulate", unit="recording")
    for i in indices:
        name = f"sim_s{seed}_{i:03d}"
        own_seed = recording_seed(seed, i)
        recording = simulate_recording(own_seed, name=name, **options)
        clicks = annotation_clicks(recording, np.random.default_rng([own_seed, 1]))
        # The columns both clicked traces cover: what a mask built from annotations.csv spans.
        span = [int(max(x.min() for x, _ in clicks.values())), int(min(x.max() for x, _ in clicks.values())) + 1]
        write_png(out_dir / f"{name}.png", recording.image)
        truth = truth_dict(recording, annotated=span)
        _write_text(out_dir / TRUTH_DIR / f"{name}.json", json.dumps(truth))
        for trace, (xs, ys) in clicks.items():
            rows.extend((name, trace, int(x), f"{y:.2f}") for x, y in zip(xs, ys))
        calibrations.append((name, repr(recording.mm_per_px), repr(recording.s_per_px)))
        names.append(name)
        log.debug("%s: %s, %.0f bpm, %d beats, %dx%d px", name, recording.condition, recording.hr_bpm,
                  len(recording.beats), *recording.image.shape)
    write_recording_tables(out_dir, rows, calibrations)
    log.info("wrote %d simulated recordings, %s, %s and %s/ to %s", n, ANNOTATIONS_FILE, CALIBRATION_FILE, TRUTH_DIR,
             out_dir)
    return names


def write_recording_tables(out_dir, annotation_rows, calibration_rows):
    """`out_dir/calibration.csv` (image,mm_per_px,s_per_px) and `out_dir/annotations.csv` (image,trace,x,y) from
    row tuples, each written via a temporary name, so it is whole or absent."""
    for file, header, table in ((CALIBRATION_FILE, ["image", "mm_per_px", "s_per_px"], calibration_rows),
                                (ANNOTATIONS_FILE, ["image", "trace", "x", "y"], annotation_rows)):
        partial = out_dir / (file + ".partial")
        with open(partial, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(table)
        partial.replace(out_dir / file)


def _write_text(path, text):
    """Write via a temporary name, so `path` is whole or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


SIMULATE_EXAMPLE = """\
example:
  python -m preprocess simulate --out sims/ --n 40 --seed 1 --artefacts 0.3

writes sims/sim_s1_000.png ... sim_s1_039.png (8-bit grey, depth down, time along), sims/annotations.csv
(image,trace,x,y: clicks along the upper and lower inner-diameter traces, as users supply them) and
sims/truth/<name>.json (exact per-column traces, LVID, beats, HR, calibration, artefact columns).
Then: python -m preprocess build --images sims/ --annotations sims/annotations.csv --out data/
"""


def fraction(text):
    """argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


def add_arguments(parser):
    """Options of `python -m preprocess simulate` (and its description and example) on `parser`."""
    parser.description = ("Simulate mouse M-mode recordings of the left ventricle with exact ground truth "
                          "(conscious, anaesthetised and failing hearts; optional artefacts).")
    parser.epilog = SIMULATE_EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new or without recordings)")
    parser.add_argument("--n", type=int, default=5, help="number of recordings (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="batch seed; recording i gets its own seed from "
                        "(seed, i) and is named sim_s<seed>_<i:03d> (default 0)")
    parser.add_argument("--duration", type=float, metavar="S", help="length in seconds (default: drawn, 2-5 s)")
    parser.add_argument("--artefacts", type=fraction, nargs="?", const=1.0, default=0.0, metavar="P",
                        help="add probe motion, lost contact and reverberation artefacts to a fraction P of the "
                             "recordings (bare flag: all; default none)")
    parser.add_argument("--condition", choices=sorted(CONDITIONS), help="fix the condition (default: drawn)")
    parser.add_argument("--height", type=int, metavar="PX",
                        help="image height in rows (default: drawn, 350-800, grown when the heart needs more)")
    parser.add_argument("--mm-per-px", type=float, help="fix the depth calibration (default: drawn around 0.0115)")
    parser.add_argument("--s-per-px", type=float, help="fix the time calibration (default: drawn around 0.00083)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that already has recordings")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")


def run(args):
    """Run `python -m preprocess simulate` from parsed arguments; returns 0."""
    for option, value in (("--duration", args.duration), ("--height", args.height),
                          ("--mm-per-px", args.mm_per_px), ("--s-per-px", args.s_per_px)):
        if value is not None and not value > 0:
            raise InputError(f"{option} must be > 0, got {value}")
    try:
        write_simulations(args.out, args.n, args.seed, overwrite=args.overwrite, progress=not args.quiet,
                          duration_s=args.duration, artefacts=args.artefacts, condition=args.condition,
                          height_px=args.height, mm_per_px=args.mm_per_px, s_per_px=args.s_per_px)
    except ValueError as error:
        raise InputError(f"simulate: {error}") from error
    return 0
