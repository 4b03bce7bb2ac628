"""Where each generator's truth borders lie against the edges its images show, without any model.

A network learns to put the border where its training images put it relative to the truth. Generators differ
in that: a wall's echo blurs and, after log compression, blooms into the dark cavity by part of a pulse length,
and each generator places its truth somewhere in that blur. This measures it per recording: the grey profile
across each truth border (median over the columns, sampled along depth at fixed distances from the border) and
the distance from the border to where that profile crosses half-way between the cavity's grey and the wall's.
Negative offsets lie in the cavity (the image's dark band is narrower than the truth's LVID by their sum);
an echo in the cavity lying on the wall (a papillary muscle) moves the posterior offset far into it.

    python bench/edges.py --generator scatter --n 20 --seed 9800

Prints one line per recording and the median per set; `--out` writes them as JSON. Same recordings as
`bench/accuracy.py` with the same generator, seed, n and duration (clean: the seed, artefacts: seed + 1).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import GENERATORS, generate, set_batch_seed  # noqa: E402

OFFSETS_MM = np.linspace(-0.6, 0.3, 91)  # from the border into the cavity (negative) and into the wall
CAVITY_MM = -0.45  # profile points farther into the cavity than this give the cavity's grey
WALL_MM = (0.05, 0.2)  # and these the wall's


def border_profile(image, border_px, mm_per_px, towards_wall):
    """Median grey (over columns) at OFFSETS_MM from a border (rows per column, (W,)), read by linear
    interpolation along depth; `towards_wall` +1 where the wall lies below the border, -1 above it."""
    rows = border_px[None, :] + towards_wall * OFFSETS_MM[:, None] / mm_per_px
    first = np.clip(np.floor(rows).astype(np.intp), 0, image.shape[0] - 2)
    fraction = np.clip(rows - first, 0.0, 1.0)
    columns = np.arange(image.shape[1])
    grey = image[first, columns] * (1 - fraction) + image[first + 1, columns] * fraction
    return np.median(grey, axis=1)


def half_way_offset_mm(profile):
    """Offset (mm) of the first point where `profile` (at OFFSETS_MM) rises half-way from the cavity's grey
    to the wall's, interpolated between samples; NaN when the wall is not brighter than the cavity."""
    cavity = np.median(profile[OFFSETS_MM < CAVITY_MM])
    wall = np.median(profile[(OFFSETS_MM > WALL_MM[0]) & (OFFSETS_MM < WALL_MM[1])])
    if wall <= cavity:
        return float("nan")
    half = cavity + 0.5 * (wall - cavity)
    above = np.flatnonzero(profile > half)
    after = above[above > 0]
    if after.size == 0:
        return float("nan")
    i = int(after[0])
    share = (half - profile[i - 1]) / (profile[i] - profile[i - 1])
    return float(OFFSETS_MM[i - 1] + share * (OFFSETS_MM[i] - OFFSETS_MM[i - 1]))


def edge_offsets_mm(simulated):
    """(septum, posterior) half-way edge offsets (mm) of one simulated recording."""
    image = simulated.image.astype(np.float64)
    upper = half_way_offset_mm(border_profile(image, simulated.upper_px, simulated.mm_per_px, -1))
    lower = half_way_offset_mm(border_profile(image, simulated.lower_px, simulated.mm_per_px, +1))
    return upper, lower


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", choices=GENERATORS, default="simulator",
                        help="which generator's recordings, as bench/accuracy.py (default: simulator)")
    parser.add_argument("--n", type=int, default=20, help="recordings per set (default: 20)")
    parser.add_argument("--seed", type=int, default=9000, help="batch seed, as bench/accuracy.py (default: 9000)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per recording (default: 3)")
    parser.add_argument("--sets", nargs="+", choices=("clean", "artefacts"), default=["clean", "artefacts"],
                        help="which sets (default: both)")
    parser.add_argument("--out", type=Path, default=None, help="also write the offsets to this JSON file")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.n < 1 or args.duration <= 0:
        print("edges.py: error: --n must be at least 1 and --duration positive", file=sys.stderr)
        return 2
    results = {}
    for name in args.sets:
        batch_seed = set_batch_seed(args.seed, name)
        rows = []
        for i in range(args.n):
            simulated = generate(args.generator, batch_seed, i, args.duration, name == "artefacts",
                                 f"bench_{name}_{i:03d}")
            upper_mm, lower_mm = edge_offsets_mm(simulated)
            rows.append(dict(name=simulated.name, condition=simulated.condition, mm_per_px=simulated.mm_per_px,
                             septum_mm=upper_mm, posterior_mm=lower_mm))
            print(f"{name:9s} {simulated.name}  {simulated.condition:22s} {simulated.mm_per_px:.4f} mm/px  "
                  f"septum {upper_mm:+.3f} mm  posterior {lower_mm:+.3f} mm", flush=True)
        septum, posterior = (np.array([row[key] for row in rows]) for key in ("septum_mm", "posterior_mm"))
        print(f"{name:9s} median: septum {np.nanmedian(septum):+.3f} mm, posterior {np.nanmedian(posterior):+.3f} mm, "
              f"LVID's dark band against the truth {np.nanmedian(septum + posterior):+.3f} mm")
        results[name] = rows
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(generator=args.generator, seed=args.seed, n=args.n,
                                            duration_s=args.duration, sets=results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
