"""bench/accuracy.py: truth windows cut at the model's time scale, as analysis reads a recording; bootstrap
intervals over recordings."""
import numpy as np
import pytest

from types import SimpleNamespace

from bench.accuracy import (AGREEMENT_FIELDS, AVERAGED_BEATS, BUDGET_CLASSES, agreement_pairs, beat_agreement,
                            bland_altman_rows, bootstrap_ci, compare_recording, error_budget, format_agreement,
                            format_beat_agreement, format_budget, format_cell, format_recordings, format_targets,
                            leave_one_out, offset_ci, offset_free_mae, offset_inputs, per_beat_plot_path,
                            recording_row, target_checks, write_truth_windows)
from mmode.agreement import bland_altman, repeated_measures
from mmode.analysis import beats_in_medians
from mmode.measure import beat_parameters, detect_beats, summarise
from mmode.io import read_image
from preprocess.simulate import simulate_recording


def test_truth_windows_span_the_models_time_scale_at_any_height(tmp_path):
    # 192 network columns at 2.4 ms: 0.4608 s, 461 columns at 1 ms per column, whatever the height
    for height_px in (400, 700):
        recording = simulate_recording(3, duration_s=1.6, s_per_px=0.001, height_px=height_px,
                                       name=f"rec{height_px}")
        for folder in (tmp_path / f"timed{height_px}", tmp_path / f"square{height_px}"):
            (folder / "img").mkdir(parents=True)
            (folder / "mask").mkdir()
        write_truth_windows(recording, tmp_path / f"timed{height_px}", ms_per_column=2.4, img_width=192)
        write_truth_windows(recording, tmp_path / f"square{height_px}")
        timed = read_image(tmp_path / f"timed{height_px}" / "img" / f"rec{height_px}_win0.png")
        square = read_image(tmp_path / f"square{height_px}" / "img" / f"rec{height_px}_win0.png")
        assert timed.shape == (height_px, 461)
        assert square.shape == (height_px, height_px)
        mask = read_image(tmp_path / f"timed{height_px}" / "mask" / f"rec{height_px}_win0.png")
        assert set(np.unique(mask)) == {0, 255}


def test_a_bootstrap_interval_has_the_width_of_the_mean_standard_error():
    values = np.random.default_rng(1).normal(2.0, 1.0, 400)
    low, high = bootstrap_ci(values)
    # 95 %: the mean +- 1.96 standard errors, 1.96 / sqrt(400) = 0.098
    assert low < values.mean() < high
    assert 0.17 < high - low < 0.23
    assert abs((low + high) / 2 - values.mean()) < 0.02


def test_a_weighted_bootstrap_interval_is_around_the_pooled_mean():
    # recordings with MAE 0 over 300 columns and MAE 1 over 100: the pooled per-column MAE is 0.25, not 0.5
    values, weights = np.tile([0.0, 1.0], 50), np.tile([300, 100], 50)
    low, high = bootstrap_ci(values, weights)
    assert low < 0.25 < high < 0.4


def test_a_bootstrap_interval_of_equal_values_is_that_value_and_needs_two_recordings():
    assert bootstrap_ci([0.03] * 12) == pytest.approx([0.03, 0.03])
    assert bootstrap_ci([0.03, np.nan]) is None
    assert bootstrap_ci([0.02, 0.04], weights=[0, 5]) is None


def test_the_table_shows_an_interval_where_a_figure_has_one():
    figures = dict(lvid_column_mae_mm=0.0303, lvid_column_mae_mm_ci95=[0.0251, 0.0362], window_dice=0.991,
                   recording_ef_pct_mae=None)
    assert format_cell(figures, "lvid_column_mae_mm", "{:.4f}") == "0.0303 (0.0251-0.0362)"
    assert format_cell(figures, "window_dice", "{:.4f}") == "0.9910"
    assert format_cell(figures, "recording_ef_pct_mae", "{:.2f}") == "n/a"


def test_targets_are_met_or_missed_and_say_when_the_interval_reaches_both_sides_of_the_bound():
    figures = dict(window_dice=0.9871, lvid_column_mae_mm=0.0456, lvid_column_mae_mm_ci95=[0.036, 0.056],
                   recording_lvid_d_mm_mae=0.021, recording_lvid_d_mm_mae_ci95=[0.012, 0.05],
                   recording_lvid_s_mm_mae=0.035, recording_lvid_s_mm_mae_ci95=[0.021, 0.063],
                   recording_ef_pct_mae=None, recording_hr_pct_mae=1.2, recording_hr_pct_mae_ci95=[0.6, 1.4])
    checks = target_checks(figures)
    assert checks["window_dice"] == dict(comparison=">=", bound=0.98, value=0.9871, ci95=None, met=True,
                                         interval_crosses=None)
    verdicts = {key: (check["met"], check["interval_crosses"]) for key, check in checks.items()}
    assert verdicts == dict(window_dice=(True, None), lvid_column_mae_mm=(False, False),
                            recording_lvid_d_mm_mae=(True, False),  # the bound itself is within it
                            recording_lvid_s_mm_mae=(True, True), recording_ef_pct_mae=(None, None),
                            recording_hr_pct_mae=(False, True))
    low = dict(figures, window_dice=0.9799)
    table = format_targets({"clean": dict(figures, targets=checks), "low": dict(low, targets=target_checks(low))})
    rows = {line.split(" | ")[0].lstrip("| "): line.rstrip(" |").split(" | ")[1:] for line in table.splitlines()[2:]}
    assert rows["window Dice >= 0.98"] == ["met (0.9871)", "missed (0.9799)"]
    assert rows["LVID per column MAE <= 0.03 mm"] == ["missed (0.0456)"] * 2
    assert rows["LVIDd MAE per recording <= 0.05 mm"] == ["met (0.0210)"] * 2
    assert rows["LVIDs MAE per recording <= 0.05 mm"] == [
        "met (0.0350; 95 % interval 0.0210-0.0630 crosses the bound)"] * 2
    assert rows["EF MAE per recording <= 2 points"] == ["n/a"] * 2
    assert rows["HR MAE per recording <= 1 %"] == ["missed (1.200; 95 % interval 0.600-1.400 crosses the bound)"] * 2


def test_a_recordings_row_carries_its_column_error_both_absolute_and_signed():
    errors = dict(lvid_d_mm=0.02, lvid_s_mm=0.05, ef_pct=1.5, hr_bpm=3.0, hr_pct=0.5)
    short = recording_row(dict(name="r", condition="plain", column_error_mm=np.array([-0.05, -0.03, 0.02]),
                               recording_errors=errors))
    assert short["lvid_column_mae_mm"] == pytest.approx(0.1 / 3)
    assert short["lvid_column_bias_mm"] == pytest.approx(-0.02)
    assert short["lvid_column_mae_offset_free_mm"] == pytest.approx(0.07 / 3)  # around the median, -0.03
    assert short["measured_columns"] == 3 and short["lvid_s_mm_error"] == 0.05 and short["hr_pct_error"] == 0.5
    assert (short["name"], short["condition"]) == ("r", "plain") and "hr_bpm_error" not in short
    unmeasured = recording_row(dict(name="r", condition="plain", column_error_mm=np.array([]), recording_errors={}))
    assert unmeasured["lvid_column_mae_mm"] is None and unmeasured["lvid_column_bias_mm"] is None
    assert unmeasured["lvid_column_mae_offset_free_mm"] is None
    assert unmeasured["measured_columns"] == 0 and unmeasured["ef_pct_error"] is None
    assert short["mm_per_px"] is None and short["coarser_than_trained"] is None  # no calibration given
    assert short["error_budget_mm"] is None  # no borders given
    assert short["n_beats"] is None and short["n_beats_used"] is None  # no analysis given
    counted = recording_row(dict(name="r", condition="plain", column_error_mm=np.array([0.01]), recording_errors={},
                                 n_beats=34, n_beats_used=1))
    assert (counted["n_beats"], counted["n_beats_used"]) == (34, 1)
    table = format_recordings("clean", dict(per_recording=[counted]))
    assert table.split("\n")[0].endswith("| beats | of them in the medians |") and table.endswith("| 34 | 1 |")


@pytest.mark.parametrize("mm_per_px, s_per_px, coarse", [(0.0115, 0.00083, False), (0.0332, 0.00083, True),
                                                         (0.0115, 0.0015, True)])
def test_a_recordings_row_says_its_pixel_size_and_whether_training_knew_it(mm_per_px, s_per_px, coarse):
    row = recording_row(dict(name="r", condition="plain", column_error_mm=np.array([0.01]), recording_errors={},
                             mm_per_px=mm_per_px, s_per_px=s_per_px))
    assert row["mm_per_px"] == mm_per_px and row["ms_per_px"] == pytest.approx(1000 * s_per_px)
    assert row["coarser_than_trained"] is coarse


def test_a_recordings_comparison_counts_its_flagged_beats_and_uses_the_summary_the_tool_reports():
    simulated = simulate_recording(11, duration_s=1.5)
    lvid_mm = simulated.lvid_mm.copy()
    beats = detect_beats(lvid_mm, simulated.s_per_px)
    parameters = beat_parameters(beats, simulated.s_per_px)
    n_flagged = len(beats) // 2 + 1  # most beats, so a median over all of them would be theirs
    flags = [("rr",)] * n_flagged + [()] * (len(beats) - n_flagged)
    parameters["hr_bpm"][:n_flagged] = 100.0  # the flagged beats' HR, far off, stays out of the summary
    analysis = SimpleNamespace(lvid_mm=lvid_mm, upper_px=simulated.upper_px, lower_px=simulated.lower_px + 2.0,
                               parameters=parameters, beat_flags=flags,
                               uncertainty=np.linspace(0.0, 0.1, len(beats)),
                               summary=summarise(parameters, [not reasons for reasons in flags]))
    result = compare_recording(simulated, analysis)
    assert len(beats) >= 8 and result["n_flagged"] == n_flagged and result["n_detected"] == len(beats)
    assert (result["n_beats"], result["n_beats_used"]) == (len(beats), len(beats) - n_flagged)
    np.testing.assert_array_equal(result["uncertainty"], analysis.uncertainty)
    assert np.abs(result["column_error_mm"]).max() == 0.0
    # each border's own error: the lower one read 2 rows deep, outward
    assert result["upper_error_median_mm"] == 0.0
    assert result["lower_error_median_mm"] == pytest.approx(2.0 * simulated.mm_per_px)
    assert result["recording_errors"]["hr_pct"] < 2.0  # the median of the sound beats; the 100-bpm ones left out

    # the pairs the agreement is computed from: the summary's median against the truth beats' median
    for key, _, _, _ in AGREEMENT_FIELDS:
        measured, truth = result["recording_pairs"][key]
        assert measured == analysis.summary[key] and abs(measured - truth) == pytest.approx(
            result["recording_errors"][key])
    # per beat: the sound beats only, each against its own truth beat (exact borders: HR is what differs)
    measured_hr, truth_hr = result["beat_pairs"]["hr_bpm"]
    assert result["n_matched"] == len(beats)
    np.testing.assert_array_equal(measured_hr, parameters["hr_bpm"][n_flagged:])  # the last one NaN: no next beat
    assert np.nanmax(np.abs(measured_hr - truth_hr)) < 0.05 * truth_hr.min()
    measured_d, truth_d = result["beat_pairs"]["lvid_d_mm"]
    assert np.abs(measured_d - truth_d).max() < 0.05


def test_the_summary_is_over_the_sound_beats_unless_it_took_them_all():
    flags = [("rr",), (), (), ("uncertain",)]
    sound = SimpleNamespace(beat_flags=flags, summary=dict(n_beats=4, n_beats_used=2))
    every = SimpleNamespace(beat_flags=flags, summary=dict(n_beats=4, n_beats_used=4))  # --keep-flagged
    doubted = SimpleNamespace(beat_flags=[("rr",)] * 4, summary=dict(n_beats=4, n_beats_used=4))  # all flagged
    assert beats_in_medians(sound).tolist() == [False, True, True, False]
    assert beats_in_medians(every).all() and beats_in_medians(doubted).all()


def test_the_agreement_per_beat_pools_each_recordings_beats_and_draws_whole_recordings_for_its_intervals():
    truth = [np.array([3.0, 3.2]), np.array([3.1, 2.9, 3.0]), np.array([3.3]), np.array([2.8, 3.0])]
    differences = [np.array([0.1, 0.3]), np.array([-0.1, 0.1, 0.0]), np.array([0.4]), np.array([0.2, 0.2])]
    results = [dict(beat_pairs={key: (t + d, t) if key == "lvid_d_mm" else (np.array([]), np.array([]))
                                for key, _, _, _ in AGREEMENT_FIELDS}) for t, d in zip(truth, differences)]
    results.append(dict())  # a recording whose comparison has no beats at all
    agreement = beat_agreement(results, "lvid_d_mm", resamples=400)
    expected = repeated_measures(np.concatenate(truth) + np.concatenate(differences), np.concatenate(truth),
                                 np.repeat([0, 1, 2, 3], [2, 3, 1, 2]))
    for field in ("n", "n_recordings", "bias", "sd_within", "sd_between", "sd", "loa_low", "loa_high"):
        assert agreement[field] == pytest.approx(expected[field])
    assert agreement["n"] == 8 and agreement["n_recordings"] == 4 and agreement["averaged_beats"] == AVERAGED_BEATS
    low, high = agreement["loa_mean_of_beats"]
    assert agreement["loa_low"] < low < agreement["bias"] < high < agreement["loa_high"]
    # over draws of whole recordings the limits move; their intervals hold the limits of this draw
    assert agreement["loa_low_ci95"][0] <= agreement["loa_low"] <= agreement["loa_low_ci95"][1]
    assert agreement["loa_high_ci95"][0] < agreement["loa_high_ci95"][1]
    none = beat_agreement(results, "ef_pct")
    assert none["n"] == 0 and none["loa_mean_of_beats"] is None and none["loa_low_ci95"] is None

    table = format_beat_agreement({"clean": dict(beat_agreement={key: beat_agreement(results, key, resamples=400)
                                                                 for key, _, _, _ in AGREEMENT_FIELDS})})
    bias_low, bias_high = agreement["bias_ci"]
    assert (f"| LVIDd bias (mm, 95 % interval) | {agreement['bias']:+.3f} ({bias_low:+.3f} to {bias_high:+.3f}), "
            "n 8 beats of 4 recordings |") in table
    assert (f"| LVIDd limits of agreement, one beat (mm, 95 % intervals) | {agreement['loa_low']:+.3f} to "
            f"{agreement['loa_high']:+.3f} (each ±") in table
    assert f"; SD within {agreement['sd_within']:.3f}, between {agreement['sd_between']:.3f} |" in table
    assert f"| LVIDd limits of agreement, mean of 3 beats (mm) | {low:+.3f} to {high:+.3f} |" in table
    assert "| EF bias (points, 95 % interval) | n 0 beats of 0 recordings |" in table


def test_the_agreement_table_and_plot_rows_come_from_each_recordings_pair():
    results = [dict(recording_pairs=dict(lvid_d_mm=(3.1, 3.0), ef_pct=(60.0, 62.0))),
               dict(recording_pairs=dict(lvid_d_mm=(3.3, 3.4), ef_pct=(np.nan, 70.0))),
               dict(recording_pairs=dict(lvid_d_mm=(2.9, 2.8), ef_pct=(55.0, 55.5))),
               dict(recording_pairs={})]  # no truth beats: no pair
    assert agreement_pairs(results, "lvid_d_mm") == ([3.1, 3.3, 2.9], [3.0, 3.4, 2.8])
    figures = {key: bland_altman(*agreement_pairs(results, key)) for key, _, _, _ in AGREEMENT_FIELDS}
    assert figures["lvid_d_mm"]["n"] == 3 and figures["ef_pct"]["n"] == 2 and figures["hr_bpm"]["n"] == 0
    assert figures["lvid_d_mm"]["bias"] == pytest.approx(0.1 / 3)
    table = format_agreement({"clean": dict(agreement=figures)})
    low, high = figures["lvid_d_mm"]["loa_low"], figures["lvid_d_mm"]["loa_high"]
    half = figures["lvid_d_mm"]["loa_high_ci"][1] - high
    limits = f"{low:+.3f} to {high:+.3f} (each ±{half:.3f}); "
    assert f"| LVIDd limits of agreement (mm, 95 % intervals) | {limits}" in table
    assert "| EF bias (points, 95 % interval) | -1.25 (" in table and "| HR bias (bpm, 95 % interval) | n/a |" in table
    rows = bland_altman_rows({"clean": (dict(agreement=figures), results)})
    assert [panel["label"] for panel in rows[0]["panels"]] == ["LVIDd (mm)", "LVIDs (mm)", "EF (points)",
                                                               "FS (points)", "HR (bpm)"]
    assert np.isnan(rows[0]["panels"][2]["measured"][1])  # kept, so the lists stay paired


def test_the_per_beat_plot_has_a_point_per_beat_with_the_agreement_per_beat_and_lies_beside_the_other(tmp_path):
    truth = [np.array([3.0, 3.2]), np.array([3.1, 2.9, 3.0])]
    results = [dict(beat_pairs={key: (t + 0.1, t) for key, _, _, _ in AGREEMENT_FIELDS}) for t in truth]
    figures = dict(beat_agreement={key: beat_agreement(results, key, resamples=50)
                                   for key, _, _, _ in AGREEMENT_FIELDS})
    rows = bland_altman_rows({"clean": (figures, results)}, per_beat=True)
    panel = rows[0]["panels"][0]
    assert panel["label"] == "LVIDd per beat (mm)" and panel["agreement"] is figures["beat_agreement"]["lvid_d_mm"]
    np.testing.assert_allclose(panel["reference"], [3.0, 3.2, 3.1, 2.9, 3.0])
    np.testing.assert_allclose(panel["measured"] - panel["reference"], 0.1)
    assert per_beat_plot_path(tmp_path / "plots" / "ba.png") == tmp_path / "plots" / "ba_beats.png"


def test_the_error_budget_puts_each_column_down_to_the_border_that_errs_more_and_sums_to_the_mae():
    # outward errors (mm) of (upper, lower) in 5 + 3 columns of two recordings; the LVID error is their sum
    # first: LVID +0.02, -0.02 (within 0.03 mm), -0.04 (septal inward), -0.20 (posterior inward), +0.09 (septal out)
    first = np.array([[0.01, 0.00, -0.05, 0.00, 0.08],
                      [0.01, -0.02, 0.01, -0.20, 0.01]])
    second = np.array([[0.00, 0.01, -0.01],               # +0.10 posterior outward, +0.01 within,
                       [0.10, 0.00, -0.03]])              # -0.04 posterior inward (the lower border errs more)
    systolic = [np.array([False, False, True, True, False]), np.array([True, False, False])]
    budget = error_budget([first, second], systolic)
    assert [key for key, _ in BUDGET_CLASSES] == list(budget)
    expected = dict(within_target=(3, 0.05, 0.0), septal_inward=(1, 0.04, 100.0), septal_outward=(1, 0.09, 0.0),
                    posterior_inward=(2, 0.24, 100 * 0.20 / 0.24), posterior_outward=(1, 0.10, 100.0))
    for key, (columns, added_mm, systolic_pct) in expected.items():
        assert budget[key]["columns_pct"] == pytest.approx(100 * columns / 8), key
        assert budget[key]["mae_mm"] == pytest.approx(added_mm / 8), key
        assert budget[key]["systolic_pct"] == pytest.approx(systolic_pct), key
    lvid_errors = np.concatenate([first.sum(axis=0), second.sum(axis=0)])
    assert sum(row["mae_mm"] for row in budget.values()) == pytest.approx(np.abs(lvid_errors).mean())
    exact = error_budget([np.zeros((2, 4))], [np.ones(4, bool)])
    assert exact["within_target"]["columns_pct"] == 100.0 and exact["within_target"]["systolic_pct"] is None
    assert error_budget([], []) is None and error_budget([np.zeros((2, 0))], [np.zeros(0, bool)]) is None
    table = format_budget({"clean": dict(error_budget=budget), "calipers": dict(error_budget=None)})
    assert "| posterior border read inward (e.g. an echo taken for the wall) | 25.0, 0.0300 (83 %) |" in table
    assert "calipers" not in table and format_budget({"calipers": dict(error_budget=None)}) is None


def test_a_recordings_comparison_carries_both_borders_errors_and_its_systolic_half():
    simulated = simulate_recording(12, duration_s=1.0)
    lvid_mm = (simulated.lower_px - simulated.upper_px + 5.0) * simulated.mm_per_px  # read 1 row up, 4 down
    parameters = beat_parameters(detect_beats(lvid_mm, simulated.s_per_px), simulated.s_per_px)
    analysis = SimpleNamespace(lvid_mm=lvid_mm, upper_px=simulated.upper_px - 1.0, lower_px=simulated.lower_px + 4.0,
                               parameters=parameters, beat_flags=[()] * len(parameters["hr_bpm"]),
                               uncertainty=np.zeros(len(parameters["hr_bpm"])), summary=summarise(parameters))
    result = compare_recording(simulated, analysis)
    upper, lower = result["border_error_mm"]
    np.testing.assert_allclose(upper, simulated.mm_per_px)
    np.testing.assert_allclose(lower, 4.0 * simulated.mm_per_px)
    np.testing.assert_allclose(upper + lower, result["column_error_mm"])
    truth = simulated.lvid_mm[~simulated.lost_contact]
    assert result["systolic"].mean() == pytest.approx(0.5, abs=0.01)
    assert truth[result["systolic"]].max() <= truth[~result["systolic"]].min()
    # 5 rows of LVID: over 0.03 mm at any pixel size the simulator draws, the lower border erring more
    budget = error_budget([result["border_error_mm"]], [result["systolic"]])
    assert budget["septal_outward"]["columns_pct"] == 0 and budget["posterior_outward"]["columns_pct"] == 100.0
    row = recording_row(dict(result, name="r", condition="plain"))
    assert row["error_budget_mm"]["posterior_outward"] == pytest.approx(row["lvid_column_mae_mm"])
    assert row["error_budget_mm"]["within_target"] == 0.0


def test_fixed_pixel_sizes_reach_the_simulated_recordings_and_leave_the_rest_of_the_draw():
    from bench.accuracy import build_parser, check_sources, simulated_set

    args = build_parser().parse_args(["--n", "2", "--seed", "8400", "--duration", "1", "--mm-per-px", "0.02",
                                      "--s-per-px", "0.0015", "--height", "300"])
    assert check_sources(args) is None and args.generator == "simulator"
    drawn_args = build_parser().parse_args(["--n", "2", "--seed", "8400", "--duration", "1"])
    check_sources(drawn_args)
    for fixed, drawn in zip(simulated_set("clean", args), simulated_set("clean", drawn_args)):
        assert (fixed.mm_per_px, fixed.s_per_px) == (0.02, 0.0015)
        assert fixed.image.shape == (300, round(1 / 0.0015))
        # the same heart: the drawn physiology does not depend on the pixel size
        assert fixed.parameters["lvid_d_mm"] == drawn.parameters["lvid_d_mm"]
        assert fixed.parameters["hr_bpm"] == drawn.parameters["hr_bpm"]


@pytest.mark.parametrize("argv, message", [
    (["--generator", "alt", "--mm-per-px", "0.02"], "the alt generator draws its own"),
    (["--recordings", "examples", "--height", "500"], "are for simulated recordings"),
])
def test_fixed_pixel_sizes_are_for_the_training_simulator_only(argv, message):
    from bench.accuracy import build_parser, check_sources
    from mmode.errors import InputError

    with pytest.raises(InputError, match=message):
        check_sources(build_parser().parse_args(argv))


def test_the_offset_free_error_removes_each_recordings_own_constant_offset_and_nothing_else():
    wide = np.array([0.03, 0.03, 0.03, 0.05])  # read 0.03 mm wide, one column 0.02 more
    short = np.array([-0.02, -0.02, -0.04])  # read 0.02 mm short, one column 0.02 more
    assert offset_free_mae([wide, short, np.array([])]) == pytest.approx((0.02 + 0.02) / 7)
    assert offset_free_mae([np.array([0.01, -0.01])]) == pytest.approx(0.01)  # no offset: the plain MAE
    assert offset_free_mae([np.array([])]) is None


def fit_result(column_error_mm, upper_mm, lower_mm, lvid_d_mm=np.nan, lvid_s_mm=np.nan):
    """A recording's `compare_recording` result, as far as the offset fit reads it."""
    traced = upper_mm is not None
    return dict(column_error_mm=np.full(10 if traced else 0, column_error_mm), upper_error_median_mm=upper_mm,
                lower_error_median_mm=lower_mm, lvid_d_mm_signed=lvid_d_mm, lvid_s_mm_signed=lvid_s_mm)


def test_each_recording_is_corrected_by_the_offsets_of_the_others():
    results = [fit_result(0.03, 0.01, 0.02, 0.03, 0.03), fit_result(0.03, 0.01, 0.02, 0.03, 0.03),
               fit_result(0.05, 0.02, 0.03, 0.05, 0.05)]
    basis, upper_mm, lower_mm, used = offset_inputs(results)
    assert basis == "traced borders" and len(used) == 3
    loo = leave_one_out(upper_mm, lower_mm, used)
    # the first two get the others' medians, 0.015 + 0.025 mm, taken out; the third 0.01 + 0.02
    assert loo["lvid_column_mae_mm"] == pytest.approx([0.11 / 3, (0.01 + 0.01 + 0.02) / 3])
    assert loo["recording_lvid_d_mm_mae"] == pytest.approx([0.11 / 3, 0.04 / 3])


def test_without_traced_borders_the_calipers_lvid_error_is_split_between_the_borders():
    results = [fit_result(np.nan, None, None, 0.04, 0.02), fit_result(np.nan, None, None, 0.06, 0.04),
               fit_result(np.nan, None, None, np.nan, 0.1)]  # no LVIDd measured: not used
    basis, upper_mm, lower_mm, used = offset_inputs(results)
    assert basis.startswith("LVIDd and LVIDs") and len(used) == 2
    np.testing.assert_allclose(upper_mm, [0.015, 0.025])
    np.testing.assert_allclose(lower_mm, upper_mm)
    loo = leave_one_out(upper_mm, lower_mm, used)
    assert loo["lvid_column_mae_mm"] is None  # no columns to correct
    assert loo["recording_lvid_s_mm_mae"] == pytest.approx([0.03, (0.03 + 0.01) / 2])


def test_an_offsets_interval_holds_the_fitted_offset_and_warns_when_the_misread_are_nearly_half():
    from mmode.convention import fit_offsets

    rng = np.random.default_rng(1)
    well_read = rng.normal(-0.02, 0.005, 18)
    errors = np.concatenate([well_read, rng.uniform(-0.4, -0.25, 6)])  # a misread quarter
    fitted = fit_offsets(errors, errors)[0]
    low, high = offset_ci(errors)
    assert low <= fitted <= high and high - low < 0.01  # the misread recordings do not reach it
    # 9 of 24 misread: in some draws of the recordings they fill the densest half, and the interval says so
    errors = np.concatenate([well_read[:15], rng.uniform(-0.4, -0.25, 9)])
    assert fit_offsets(errors, errors)[0] == pytest.approx(0.02, abs=0.005)
    assert offset_ci(errors)[1] > 0.2
    assert offset_ci([0.01]) is None


def test_offsets_are_not_fitted_on_fewer_than_two_recordings_with_borders():
    from bench.accuracy import fitted_offsets
    from mmode.errors import InputError

    results = [fit_result(0.03, 0.01, 0.02), fit_result(0.03, np.nan, np.nan)]  # the second's borders unmeasured
    with pytest.raises(InputError, match="--fit-offsets: 1 recording to fit on; it takes at least two"):
        fitted_offsets(results, args=None, origin="")
    with pytest.raises(InputError, match="no recording has traced borders or a measured LVIDd and LVIDs"):
        offset_inputs([fit_result(np.nan, None, None, np.nan, 0.02)])
