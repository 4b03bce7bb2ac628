"""Change how a recording looks, not what it shows: the image-side differences between scanners.

`bench/accuracy.py --perturb STEP [STEP ...]` applies these to every recording before it is analysed, so the
same hearts (the truth unchanged) can be measured as another scanner's settings would show them, and
`bench/compare.py` pairs the run with an unperturbed one. Each step is `NAME=VALUE`, applied in the order given
on the grey levels as fractions of white (0-1), clipped back to 0-1 and rounded to 8 bits:

- `gain=K`: every grey times K (the receiver's overall gain);
- `contrast=C`: the distance from the image's mean grey times C;
- `gamma=G`: grey ** G (another log-compression curve; G > 1 darkens the mid-greys);
- `tgc=K`: a ramp of gain from 1 at the top row to K at the bottom (time-gain compensation set otherwise);
- `noise=S`: Gaussian noise of SD S added to every pixel;
- `speckle=S`: multiplied by log-normal speckle of log-SD S, its grain `SPECKLE_GRAIN_PX` (rows, columns):
  horizontal streaks, as M-mode speckle forms them;
- `grain=MM`: the same speckle at log-SD `GRAIN_SPECKLE_SD` with grains MM millimetres deep (in rows at each
  recording's own pixel size) and `GRAIN_STREAK` times as many columns: speckle size, a longer pulse's coarser
  grain at a fixed strength;
- `blur=MM`: a Gaussian blur along depth of SD MM millimetres (a longer pulse; in rows at each recording's own
  pixel size, so the same physical blur at any calibration);
- `jpeg=Q`: saved as a JPEG of quality Q (1-100, PIL's scale; 75 its default) and read back: the blocks and
  ringing of a lossy export (scanners and their review software offer JPEG and MP4 beside TIFF, DICOM and PNG);
- `wall=K`: the two walls' grey above the image's black level (its 1st percentile, the floor a cavity sits on)
  times K against the rest of the image: a septum and posterior wall that echo more or less than the
  simulator's, while the floor, the pericardium, the right ventricle and the chest wall stay as they were. The
  walls are where the truth puts them: from `WALL_CAVITY_MM` inside the cavity to `WALL_TISSUE_MM` into the
  tissue beyond each truth border, fading to no change over `WALL_FADE_MM` (into the cavity, where a wall's echo
  spreads only its blur's width, over `WALL_CAVITY_FADE_MM`) by a raised cosine, so the step draws no edge of
  its own; columns without a truth border are left as they are. It needs the recording's truth borders
  (`borders`).

The random steps (noise, speckle) are drawn from `seed` and the recording's name, so a run is repeatable
and two runs with the same steps see the same noise. The augmentation of `run.py --augment`
(`mmode.augment`) draws the same kinds of steps in training, within its ranges; this is for measuring.
"""
import argparse
import math
import zlib

import numpy as np

STEPS = ("gain", "contrast", "gamma", "tgc", "noise", "speckle", "grain", "blur", "jpeg", "wall")
SPECKLE_GRAIN_PX = (2, 8)  # rows, columns of one speckle grain
GRAIN_SPECKLE_SD, GRAIN_STREAK = 0.3, 4  # `grain=MM`: its speckle's log-SD, and columns per row of a grain
# the most a step's value may be, so a typo (gamma=20) is an error and not a black image
STEP_RANGES = dict(gain=(0.05, 20.0), contrast=(0.05, 20.0), gamma=(0.05, 20.0), tgc=(0.05, 20.0),
                   noise=(0.0, 1.0), speckle=(0.0, 2.0), grain=(0.001, 1.0), blur=(0.0, 1.0), jpeg=(1, 100),
                   wall=(0.05, 20.0))
# `wall=K`: the band around each truth border whose grey is scaled (mm): a mouse's septum and posterior wall are
# 0.6-1.2 mm thick, and a wall's echo spreads some rows into the cavity, which scales with it
WALL_CAVITY_MM, WALL_TISSUE_MM, WALL_FADE_MM, WALL_CAVITY_FADE_MM = 0.05, 0.6, 0.3, 0.1


def perturbation(text):
    """argparse type of `--perturb`: one `NAME=VALUE` step -> (name, value)."""
    name, sep, value_text = text.partition("=")
    name = name.strip().lower()
    if not sep or name not in STEPS:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(STEPS)}, got {text}")
    try:
        value = float(value_text)
    except ValueError:
        value = math.nan
    low, high = STEP_RANGES[name]
    if not low <= value <= high:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{name} must be a number within {low:g}-{high:g}, got {text}")
    return name, value


def describe(steps):
    """The steps as the command line gives them: ["gamma=2", "noise=0.05"]."""
    return [f"{name}={value:g}" for name, value in steps]


def perturb_image(image, steps, mm_per_px, name="", seed=0, borders=None):
    """`image` (H, W) uint8 with `steps` [(name, value), ...] applied in order -> a new uint8 image.
    `mm_per_px` converts `blur`'s and `wall`'s millimetres into rows; `name` and `seed` fix the random steps'
    draws; `borders` (upper_px, lower_px), each (W,) in rows with NaN where there is no truth, place `wall`'s
    walls (`InputError` naming the recording where it is needed and missing)."""
    if any(step == "wall" for step, _ in steps) and (borders is None or not np.isfinite(borders).any()):
        from mmode.errors import InputError

        raise InputError(f"{name or 'the recording'}: wall=K needs the recording's truth borders, and it has none")
    grey = image.astype(np.float64) / 255.0
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    for step, value in steps:
        grey = STEP_FUNCTIONS[step](grey, value, rng=rng, mm_per_px=mm_per_px, borders=borders)
        grey = np.clip(grey, 0.0, 1.0)
    return np.round(grey * 255.0).astype(np.uint8)


def _gain(grey, k, **_):
    return grey * k


def _contrast(grey, c, **_):
    mean = grey.mean()
    return mean + (grey - mean) * c


def _gamma(grey, g, **_):
    return grey ** g


def _tgc(grey, k, **_):
    ramp = np.linspace(1.0, k, grey.shape[0])[:, None]
    return grey * ramp


def _noise(grey, sd, rng, **_):
    return grey + rng.normal(0.0, sd, grey.shape)


def _speckle(grey, sd, rng, grain_px=SPECKLE_GRAIN_PX, **_):
    from mmode.inference import upsample_bilinear

    rows, cols = grain_px
    coarse = rng.standard_normal((math.ceil(grey.shape[0] / rows), math.ceil(grey.shape[1] / cols)))
    field = upsample_bilinear(coarse.astype(np.float32), grey.shape)  # one grain per knot, interpolated
    return grey * np.exp(sd * field - 0.5 * sd ** 2)


def _grain(grey, mm, rng, mm_per_px, **_):
    rows = max(1.0, mm / mm_per_px)
    return _speckle(grey, GRAIN_SPECKLE_SD, rng, grain_px=(rows, GRAIN_STREAK * rows))


def _blur(grey, mm, mm_per_px, **_):
    from scipy.ndimage import gaussian_filter1d

    sigma_px = mm / mm_per_px
    return gaussian_filter1d(grey, sigma_px, axis=0, mode="nearest") if sigma_px > 0 else grey


def _jpeg(grey, quality, **_):
    import io

    from PIL import Image

    encoded = io.BytesIO()
    Image.fromarray(np.round(grey * 255.0).astype(np.uint8)).save(encoded, format="JPEG", quality=int(round(quality)))
    return np.asarray(Image.open(io.BytesIO(encoded.getvalue())), dtype=np.float64) / 255.0


def wall_weight(shape, upper_px, lower_px, mm_per_px):
    """(H, W) weight in 0-1 of `wall=K`: 1 over each wall's band (`WALL_CAVITY_MM` inside the cavity to
    `WALL_TISSUE_MM` beyond its truth border), a raised cosine down to 0 over `WALL_FADE_MM` beyond it and
    `WALL_CAVITY_FADE_MM` inside; 0 in columns without that border."""
    rows = np.arange(shape[0], dtype=float)[:, None]
    weight = np.zeros(shape)
    for border, outward in ((np.asarray(upper_px, float), -1.0), (np.asarray(lower_px, float), 1.0)):
        known = np.isfinite(border)
        depth_mm = outward * (rows - np.where(known, border, 0.0)[None, :]) * mm_per_px  # > 0 into the wall
        fade = np.maximum((-WALL_CAVITY_MM - depth_mm) / WALL_CAVITY_FADE_MM,
                          (depth_mm - WALL_TISSUE_MM) / WALL_FADE_MM)
        band = 0.5 * (1.0 + np.cos(np.pi * np.clip(fade, 0.0, 1.0)))
        weight = np.maximum(weight, np.where(known[None, :], band, 0.0))
    return weight


def _wall(grey, k, mm_per_px, borders, **_):
    floor = np.percentile(grey, 1.0)  # a weaker echo fades into the display's black level, not below it
    return floor + (grey - floor) * (1.0 + (k - 1.0) * wall_weight(grey.shape, *borders, mm_per_px))


STEP_FUNCTIONS = dict(gain=_gain, contrast=_contrast, gamma=_gamma, tgc=_tgc, noise=_noise, speckle=_speckle,
                      grain=_grain, blur=_blur, jpeg=_jpeg, wall=_wall)
