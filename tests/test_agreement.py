"""Bland-Altman agreement on pairs whose differences are known."""
import numpy as np
import pytest

from mmode.agreement import bland_altman, mean_of_beats_limits, repeated_measures


def test_bias_limits_and_their_intervals_of_four_pairs():
    reference = np.array([3.0, 3.5, 4.0, 2.5])
    result = bland_altman(reference + [0.1, -0.1, 0.2, 0.0], reference)
    sd = np.sqrt(0.05 / 3)  # the differences' squared deviations from 0.05 sum to 0.05
    t3 = 3.182446  # Student's t, 97.5th percentile, 3 degrees of freedom
    assert result["n"] == 4 and result["bias"] == pytest.approx(0.05) and result["sd"] == pytest.approx(sd)
    assert (result["loa_low"], result["loa_high"]) == pytest.approx((0.05 - 1.96 * sd, 0.05 + 1.96 * sd))
    assert result["bias_ci"] == pytest.approx((0.05 - t3 * sd / 2, 0.05 + t3 * sd / 2), abs=1e-6)
    half = t3 * sd * np.sqrt(3 / 4)
    assert result["loa_high_ci"] == pytest.approx((0.05 + 1.96 * sd - half, 0.05 + 1.96 * sd + half), abs=1e-6)


def test_limits_hold_95_percent_of_new_differences_and_the_bias_interval_covers_the_bias_as_often():
    rng = np.random.default_rng(0)
    reference = rng.uniform(2.0, 4.0, 4000)
    result = bland_altman(reference + rng.normal(0.02, 0.05, 4000), reference)
    new_differences = rng.normal(0.02, 0.05, 20000)
    inside = np.mean((new_differences > result["loa_low"]) & (new_differences < result["loa_high"]))
    assert inside == pytest.approx(0.95, abs=0.01)
    # with 5 recordings the interval is Student's: it holds the true bias in 95 % of draws, not fewer
    covered = []
    for _ in range(2000):
        low, high = bland_altman(rng.normal(0.02, 0.05, 5), np.zeros(5))["bias_ci"]
        covered.append(low < 0.02 < high)
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_a_difference_growing_with_size_shows_as_the_slope():
    reference = np.array([1.0, 1.5, 2.0, 3.0, 4.0])
    measured = reference * 1.1  # reads 10 % large: the difference is 0.1 / 1.05 of the pair's mean
    result = bland_altman(measured, reference)
    assert result["slope"] == pytest.approx(0.1 / 1.05) and result["slope_ci"] == pytest.approx(
        (0.1 / 1.05, 0.1 / 1.05))
    assert bland_altman(reference + 0.2, reference)["slope"] == pytest.approx(0.0, abs=1e-12)


def test_missing_values_are_left_out_and_too_few_pairs_give_none():
    result = bland_altman([3.1, None, np.nan, 2.9], [3.0, 3.0, 3.0, np.nan])
    assert result["n"] == 1 and result["bias"] == pytest.approx(0.1)
    assert result["sd"] is None and result["loa_low"] is None and result["bias_ci"] is None
    two = bland_altman([3.1, 2.8], [3.0, 3.0])
    assert two["n"] == 2 and two["loa_high"] is not None and two["slope"] is None
    assert bland_altman([], [])["n"] == 0 and bland_altman([], [])["bias"] is None
    with pytest.raises(ValueError, match="3 measured values against 2"):
        bland_altman([1, 2, 3], [1, 2])


def test_beats_of_three_recordings_split_into_what_a_recording_shares_and_what_varies_beat_to_beat():
    # differences 0.1, 0.3 | -0.1, 0.1, 0.0 | 0.4 (reference 3 mm): worked by hand as one-way ANOVA by recording
    differences = np.array([0.1, 0.3, -0.1, 0.1, 0.0, 0.4])
    result = repeated_measures(3.0 + differences, np.full(6, 3.0), ["a", "a", "b", "b", "b", "c"])
    within_var = 0.04 / 3  # squared deviations from each recording's mean (0.2, 0.0, 0.4), on 6 - 3 df
    between_ms = (2 * (1 / 15) ** 2 + 3 * (2 / 15) ** 2 + (4 / 15) ** 2) / 2  # around the bias 2/15, on 3 - 1 df
    pairs_per_recording = (6 ** 2 - (2 ** 2 + 3 ** 2 + 1 ** 2)) / (2 * 6)  # 11/6, for 2, 3 and 1 beats
    between_var = (between_ms - within_var) / pairs_per_recording  # 8/275
    assert between_var == pytest.approx(8 / 275)
    assert result["n"] == 6 and result["n_recordings"] == 3 and result["bias"] == pytest.approx(2 / 15)
    assert result["sd_within"] == pytest.approx(np.sqrt(within_var))
    assert result["sd_between"] == pytest.approx(np.sqrt(between_var))
    sd = np.sqrt(7 / 165)  # 8/275 + 1/75
    assert result["sd"] == pytest.approx(sd)
    assert (result["loa_low"], result["loa_high"]) == pytest.approx((2 / 15 - 1.96 * sd, 2 / 15 + 1.96 * sd))
    t2 = 4.302653  # Student's t, 97.5th percentile, 2 degrees of freedom (3 recordings)
    bias_sd = np.sqrt(between_var * 14 / 36 + within_var / 6)
    assert result["bias_ci"] == pytest.approx((2 / 15 - t2 * bias_sd, 2 / 15 + t2 * bias_sd), abs=1e-6)
    three = mean_of_beats_limits(result, 3)
    assert three == pytest.approx((2 / 15 - 1.96 * np.sqrt(between_var + within_var / 3),
                                   2 / 15 + 1.96 * np.sqrt(between_var + within_var / 3)))


def test_limits_for_one_beat_and_for_a_mean_of_three_hold_95_percent_of_new_ones():
    rng = np.random.default_rng(1)
    shared_sd, beat_sd, bias = 0.04, 0.03, 0.02
    beats = rng.integers(3, 15, 600)  # beats per recording, as a 3-s recording's vary
    recording = np.repeat(np.arange(600), beats)
    differences = bias + rng.normal(0, shared_sd, 600)[recording] + rng.normal(0, beat_sd, recording.size)
    result = repeated_measures(differences, np.zeros(recording.size), recording)
    assert result["sd_between"] == pytest.approx(shared_sd, rel=0.08)
    assert result["sd_within"] == pytest.approx(beat_sd, rel=0.03)
    new_shared = rng.normal(0, shared_sd, 20000)
    one_beat = bias + new_shared + rng.normal(0, beat_sd, 20000)
    mean_of_three = bias + new_shared + rng.normal(0, beat_sd, (3, 20000)).mean(axis=0)
    inside = np.mean((one_beat > result["loa_low"]) & (one_beat < result["loa_high"]))
    assert inside == pytest.approx(0.95, abs=0.01)
    low, high = mean_of_beats_limits(result, 3)
    assert np.mean((mean_of_three > low) & (mean_of_three < high)) == pytest.approx(0.95, abs=0.01)
    assert high - low < result["loa_high"] - result["loa_low"]


def test_one_beat_per_recording_is_the_plain_analysis_and_one_recording_has_no_shared_part():
    reference = np.array([3.0, 3.5, 4.0, 2.5])
    measured = reference + [0.1, -0.1, 0.2, 0.0]
    single, plain = repeated_measures(measured, reference, [1, 2, 3, 4]), bland_altman(measured, reference)
    assert single["sd_within"] is None and single["sd"] == pytest.approx(plain["sd"])
    assert (single["loa_low"], single["loa_high"]) == pytest.approx((plain["loa_low"], plain["loa_high"]))
    assert single["bias_ci"] == pytest.approx(plain["bias_ci"])
    alone = repeated_measures(measured, reference, [7, 7, 7, 7])
    assert alone["n_recordings"] == 1 and alone["sd_between"] is None and alone["bias_ci"] is None
    assert alone["sd"] == pytest.approx(plain["sd"]) and mean_of_beats_limits(alone, 3) is None
    missing = repeated_measures([3.1, None, np.nan], [3.0, 3.0, 3.0], ["a", "b", "b"])
    assert missing["n"] == 1 and missing["n_recordings"] == 1 and missing["sd"] is None
    assert repeated_measures([], [], [])["bias"] is None
    with pytest.raises(ValueError, match="2 measured values, 2 reference values and 3 recording labels"):
        repeated_measures([1, 2], [1, 2], [1, 1, 2])
