"""bench/perturb.py and bench/robustness.py: recordings changed as another scanner's settings would show them,
the truth unchanged, and the sweep that measures the model under each change."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from bench.perturb import describe, perturb_image, perturbation

ROOT = Path(__file__).resolve().parents[1]


def _ramp_image(height=200, width=300):
    """Grey levels 10..245 down the rows, the same in every column."""
    return np.repeat(np.linspace(10, 245, height).round().astype(np.uint8)[:, None], width, axis=1)


@pytest.mark.parametrize("steps", [["gain=1"], ["contrast=1"], ["gamma=1"], ["tgc=1"], ["noise=0"], ["speckle=0"],
                                   ["blur=0"], ["gain=1", "gamma=1", "noise=0"]])
def test_a_step_at_its_neutral_value_leaves_the_image_as_it_was(steps):
    image = _ramp_image()
    changed = perturb_image(image, [perturbation(step) for step in steps], mm_per_px=0.01, name="a")
    np.testing.assert_array_equal(changed, image)


def test_the_global_steps_follow_their_formulas_and_clip_to_white():
    image = _ramp_image()
    grey = image / 255.0
    np.testing.assert_array_equal(perturb_image(image, [("gain", 2.0)], 0.01), np.round(np.minimum(grey * 2, 1) * 255))
    np.testing.assert_array_equal(perturb_image(image, [("gamma", 2.0)], 0.01), np.round(grey ** 2 * 255))
    # contrast: about the image's mean grey, which it keeps where nothing clips
    halved = perturb_image(image, [("contrast", 0.5)], 0.01) / 255.0
    assert halved.mean() == pytest.approx(grey.mean(), abs=1 / 255)
    assert np.ptp(halved) == pytest.approx(np.ptp(grey) / 2, abs=1 / 255)
    # depth gain: the top row as it was, the bottom row times K
    ramped = perturb_image(np.full((101, 5), 100, np.uint8), [("tgc", 2.0)], 0.01)
    assert (ramped[0] == 100).all() and (ramped[50] == 150).all() and (ramped[-1] == 200).all()


def test_the_steps_apply_in_the_order_given():
    image = _ramp_image()
    gain_first = perturb_image(image, [("gain", 2.0), ("gamma", 2.0)], 0.01)
    gamma_first = perturb_image(image, [("gamma", 2.0), ("gain", 2.0)], 0.01)
    grey = image / 255.0
    np.testing.assert_array_equal(gain_first, np.round(np.minimum(grey * 2, 1) ** 2 * 255))
    np.testing.assert_array_equal(gamma_first, np.round(np.minimum(grey ** 2 * 2, 1) * 255))


def test_noise_and_speckle_have_the_asked_strength_and_repeat_for_the_same_recording():
    flat = np.full((400, 600), 128, np.uint8)
    noisy = perturb_image(flat, [("noise", 0.05)], 0.01, name="rec_1") / 255.0
    assert noisy.std() == pytest.approx(0.05, rel=0.05) and noisy.mean() == pytest.approx(128 / 255, abs=0.002)
    speckled = perturb_image(flat, [("speckle", 0.3)], 0.01, name="rec_1") / 255.0
    # log-normal with mean 1: the mean grey is kept, the log-SD is S where the grain's knots fall (less between)
    assert speckled.mean() == pytest.approx(128 / 255, rel=0.03)
    assert 0.15 < np.log(speckled).std() < 0.3
    # horizontal streaks: neighbours along time are more alike than along depth
    along_time = np.corrcoef(speckled[:, :-1].ravel(), speckled[:, 1:].ravel())[0, 1]
    along_depth = np.corrcoef(speckled[:-1].ravel(), speckled[1:].ravel())[0, 1]
    assert along_time > along_depth > 0.5
    again = perturb_image(flat, [("noise", 0.05)], 0.01, name="rec_1")
    other = perturb_image(flat, [("noise", 0.05)], 0.01, name="rec_2")
    np.testing.assert_array_equal(again, np.round(noisy * 255))
    assert not np.array_equal(again, other)


@pytest.mark.parametrize("mm_per_px", [0.01, 0.02])
def test_grain_is_speckle_of_a_fixed_strength_with_grains_as_deep_as_asked_in_millimetres(mm_per_px):
    flat = np.full((2000, 300), 128, np.uint8)
    # 2 rows by 8 columns at 0.3: the speckle step's own grain and strength, draw for draw
    np.testing.assert_array_equal(perturb_image(flat, [("grain", 2 * mm_per_px)], mm_per_px, name="r"),
                                  perturb_image(flat, [("speckle", 0.3)], mm_per_px, name="r"))
    for grain_mm in (0.06, 0.24):
        log_grey = np.log(perturb_image(flat, [("grain", grain_mm)], mm_per_px, name="r") / 255.0)
        deviation = log_grey - log_grey.mean()
        alike = [np.mean(deviation[:-lag] * deviation[lag:]) / deviation.var() for lag in range(1, 200)]
        half_alike_mm = (1 + next(i for i, value in enumerate(alike) if value < 0.5)) * mm_per_px
        # knots a grain apart, interpolated linearly: neighbours are half alike 0.63 grains apart (the first lag
        # past it, in whole rows), whatever the pixel size
        assert abs(half_alike_mm - 0.63 * grain_mm) <= mm_per_px + 0.15 * 0.63 * grain_mm
        assert 0.15 < log_grey.std() < 0.3


def _edge_width_mm(image, mm_per_px):
    """Distance (mm) between the 16 % and 84 % crossings of a dark-to-bright step down the first column: 2 SD
    of a Gaussian blur."""
    profile = image[:, 0] / 255.0
    rows = np.arange(profile.size)
    low, high = (np.interp(level, profile, rows) for level in (0.16 * 200 / 255, 0.84 * 200 / 255))
    return (high - low) * mm_per_px


@pytest.mark.parametrize("mm_per_px", [0.01, 0.025])
def test_blur_is_along_depth_and_in_millimetres_whatever_the_pixel_size(mm_per_px):
    step = np.zeros((400, 20), np.uint8)
    step[200:] = 200
    step[:, 10:] = 0  # an edge along time too, which depth blur leaves sharp
    blurred = perturb_image(step, [("blur", 0.1)], mm_per_px)
    assert _edge_width_mm(blurred, mm_per_px) == pytest.approx(0.2, abs=mm_per_px)
    np.testing.assert_array_equal(blurred[:, 10:], 0)


def test_jpeg_is_a_lossy_round_trip_that_loses_more_at_lower_quality(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    image = np.clip(_ramp_image() + rng.normal(0, 20, (200, 300)), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "export.jpg", quality=50)
    exported = np.asarray(Image.open(tmp_path / "export.jpg"))
    np.testing.assert_array_equal(perturb_image(image, [("jpeg", 50)], 0.01), exported)
    errors = [np.abs(perturb_image(image, [("jpeg", q)], 0.01).astype(float) - image).mean() for q in (95, 75, 25)]
    assert 0 < errors[0] < errors[1] < errors[2]


def _walls_image(width=6):
    """Grey 100 with a black level of 20 in the last 10 rows, truth borders at rows 100 and 200 (NaN in the last
    column), 0.01 mm per row."""
    upper, lower = np.full(width, 100.0), np.full(width, 200.0)
    upper[-1] = lower[-1] = np.nan
    image = np.full((300, width), 100, np.uint8)
    image[290:] = 20
    return image, (upper, lower)


def test_wall_scales_the_walls_grey_where_the_truth_puts_them_and_fades_out():
    image, borders = _walls_image()
    brighter = perturb_image(image, [perturbation("wall=2")], 0.01, name="a", borders=borders)
    column = brighter[:, 0].astype(int)
    # the grey above the black level (20) doubled from 0.05 mm inside the cavity to 0.6 mm into each wall: rows
    # 40-105 and 195-260
    assert (column[40:106] == 180).all() and (column[195:261] == 180).all()
    # the middle of the cavity, the far tissue and the black level as they were; half way through each fade (0.3
    # mm into the tissue, 0.1 mm into the cavity), half the change
    assert (column[115:186] == 100).all() and (column[:10] == 100).all() and (column[290:] == 20).all()
    assert column[25] == column[275] == column[110] == column[190] == 140
    assert np.all(np.diff(column[10:41]) >= 0) and np.all(np.diff(column[260:291]) <= 0)  # no edge of its own
    assert np.all(np.diff(column[105:116]) <= 0) and np.all(np.diff(column[185:196]) >= 0)
    np.testing.assert_array_equal(brighter[:, -1], image[:, -1])  # no truth border in that column: unchanged
    dimmer = perturb_image(image, [perturbation("wall=0.5")], 0.01, name="a", borders=borders)
    assert (dimmer[40:106, 0] == 60).all() and dimmer[150, 0] == 100 and (dimmer[290:] == 20).all()
    np.testing.assert_array_equal(perturb_image(image, [("wall", 1.0)], 0.01, borders=borders), image)


def test_wall_without_truth_borders_is_refused_naming_the_recording():
    from mmode.errors import InputError

    image, (upper, lower) = _walls_image()
    for borders in (None, (np.full_like(upper, np.nan), np.full_like(lower, np.nan))):
        with pytest.raises(InputError, match="^rec_7: wall=K needs the recording's truth borders"):
            perturb_image(image, [("gain", 2.0), ("wall", 2.0)], 0.01, name="rec_7", borders=borders)


@pytest.mark.parametrize("text, message", [("gamma", "expected NAME=VALUE"), ("hue=2", "expected NAME=VALUE"),
                                           ("gamma=two", "gamma must be a number"), ("gain=0", "within 0.05-20"),
                                           ("noise=nan", "noise must be a number")])
def test_a_step_that_is_not_one_is_refused_saying_why(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        perturbation(text)


def test_steps_are_described_as_the_command_line_gives_them():
    assert describe([perturbation("Gamma=2.0"), perturbation("noise=0.05")]) == ["gamma=2", "noise=0.05"]


def test_a_fixed_heart_rate_reaches_the_simulated_hearts_and_leaves_the_rest_of_the_draw():
    from bench.accuracy import build_parser, check_sources, simulated_set

    fixed_args = build_parser().parse_args(["--n", "2", "--seed", "8123", "--duration", "1", "--hr-bpm", "900"])
    drawn_args = build_parser().parse_args(["--n", "2", "--seed", "8123", "--duration", "1"])
    check_sources(fixed_args), check_sources(drawn_args)
    for fixed, drawn in zip(simulated_set("clean", fixed_args), simulated_set("clean", drawn_args)):
        assert fixed.parameters["hr_bpm"] == 900 != drawn.parameters["hr_bpm"]
        assert fixed.hr_bpm == pytest.approx(900, rel=0.1)  # the beats' mean rate, around the drawn mean
        assert fixed.parameters["lvid_d_mm"] == drawn.parameters["lvid_d_mm"]
        assert fixed.mm_per_px == drawn.mm_per_px


@pytest.mark.usefixtures("one_torch_thread")
def test_the_sweep_measures_the_same_hearts_under_each_condition_and_pairs_them(tmp_path, capsys):
    pytest.importorskip("torch")
    from bench import compare, robustness
    from mmode.cli import run_main

    out = tmp_path / "sweep"
    argv = ["--n", "2", "--seed", "8123", "--duration", "1.5", "--no-refine", "--quiet", "--out-dir", str(out),
            "--conditions", "gain=1", "gamma=3", "noise=0.1", "wall=1"]
    assert run_main(robustness.main, argv) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "robustness.json").read_text())["sets"]["clean"]
    assert [row["condition"] for row in rows] == ["as drawn", "gain=1", "gamma=3", "noise=0.1", "wall=1"]
    drawn, neutral, changed = rows[0], rows[1], rows[2]
    # gain 1 and wall 1 (the truth borders handed to the step) are no change at all: every figure as drawn
    for _, key, _ in robustness.COLUMNS:
        assert neutral[key] == drawn[key] == rows[4][key]
    assert neutral["change"] == 0.0 == rows[4]["change"] and neutral["training_draws"] == "0.6-1.4"
    # a gamma of 3 darkens the walls' mid-greys: the network's windows read otherwise
    assert changed["window_dice"] != drawn["window_dice"]
    assert changed["change"] == pytest.approx(changed["lvid_column_mae_mm"] - drawn["lvid_column_mae_mm"])
    assert "| gamma=3 | 0.6-1.6 |" in printed
    # each run's accuracy JSON records its steps, and compare.py pairs any two of them
    runs = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json") if path.stem != "robustness"}
    assert runs["gamma_3"]["perturb"] == ["gamma=3"] and "perturb" not in runs["as_drawn"]
    assert run_main(compare.main, [str(out / "as_drawn.json"), str(out / "noise_0.1.json")]) == 0
    assert "perturbed noise=0.1" in capsys.readouterr().out


def test_a_heart_rate_is_the_simulators_to_fix_and_other_generators_sweep_without_it(tmp_path, capsys):
    from bench import robustness
    from mmode.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(robustness.main, ["--generator", "alt", "--conditions", "hr=500", "--out-dir", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and not (tmp_path / "o").exists()
    assert capsys.readouterr().err.strip() == ("error: hr=BPM fixes the training simulator's heart rate; the alt "
                                               "generator draws its own")
    args = robustness.build_parser().parse_args(["--generator", "scatter", "--out-dir", str(tmp_path)])
    shipped = str(Path(robustness.__file__).resolve().parents[1] / "checkpoints" / "heart-seg-net.pt")
    assert robustness.accuracy_argv(args, "x", "gamma=2")[:4] == ["-m", shipped, "--generator", "scatter"]
