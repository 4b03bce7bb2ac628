"""Bland-Altman agreement on pairs whose differences are known."""
import numpy as np
import pytest

from mmode.agreement import bland_altman


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
