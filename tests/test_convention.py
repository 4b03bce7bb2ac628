"""mmode.convention: a lab's border offsets read, fitted and applied, in mm against known rows."""
import json

import numpy as np
import pytest

from mmode.convention import (REFINER_NOT_RECORDED, BorderOffsets, border_errors_mm, densest_half_median,
                              fit_offsets, read_border_offsets, shift_borders)
from mmode.errors import InputError


def test_offsets_move_each_border_outward_by_their_rows():
    upper_px, lower_px = np.array([100.0, 110.0, np.nan]), np.array([300.0, 250.0, np.nan])
    moved_upper, moved_lower = shift_borders(upper_px, lower_px, BorderOffsets(0.02, -0.03), mm_per_px=0.01)
    np.testing.assert_allclose(moved_upper, [98.0, 108.0, np.nan])  # up 2 rows: a wider cavity
    np.testing.assert_allclose(moved_lower, [297.0, 247.0, np.nan])  # up 3 rows: a narrower one
    np.testing.assert_allclose(upper_px, [100.0, 110.0, np.nan])  # the caller's arrays are left alone
    assert BorderOffsets(0.02, -0.03).lvid_mm == pytest.approx(-0.01)


def test_offsets_that_close_the_cavity_leave_no_border_there():
    upper_px, lower_px = shift_borders([100.0, 100.0], [104.0, 120.0], BorderOffsets(-0.03, -0.02), mm_per_px=0.01)
    np.testing.assert_allclose(upper_px, [np.nan, 103.0])
    np.testing.assert_allclose(lower_px, [np.nan, 118.0])


def test_border_errors_are_outward_positive_where_the_cavity_is_read_too_wide():
    upper_mm, lower_mm = border_errors_mm([98.0, 102.0], [305.0, 300.0], [100.0, 100.0], [300.0, 300.0], 0.01)
    np.testing.assert_allclose(upper_mm, [0.02, -0.02])
    np.testing.assert_allclose(lower_mm, [0.05, 0.0])


def test_the_fit_takes_out_the_typical_recordings_error_and_ignores_a_few_misread_ones():
    # five recordings read 0.02 mm wide at the top, 0.03 at the bottom; one has an echo taken for its wall
    upper, lower = fit_offsets([0.02, 0.02, 0.021, 0.019, 0.02, np.nan], [0.03, 0.031, 0.029, 0.03, -0.3, 0.03])
    assert upper == pytest.approx(-0.02) and lower == pytest.approx(-0.03)
    with pytest.raises(InputError, match="no recording with measured borders"):
        fit_offsets([np.nan], [0.01])


def test_recordings_misread_to_one_side_do_not_pull_the_fit_where_they_would_pull_a_median():
    # 9 of 24 recordings with a muscle read as the posterior wall, 0.25-0.4 mm narrow; the rest 0.02 mm narrow
    well_read = -0.02 + np.linspace(-0.01, 0.01, 15)
    misread = np.linspace(-0.4, -0.25, 9)
    errors = np.concatenate([well_read, misread])
    assert np.median(errors) < -0.025  # the plain median follows the misread third
    assert densest_half_median(errors) == pytest.approx(-0.02, abs=0.003)
    assert fit_offsets(errors, errors)[1] == pytest.approx(0.02, abs=0.003)
    # symmetric spread: the median of all
    assert densest_half_median([1.0, 2.0, 3.0, 4.0, 5.0]) == 3.0
    assert densest_half_median([0.7]) == 0.7


def test_an_offsets_file_is_read_with_the_model_it_was_fitted_behind(tmp_path):
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(dict(upper_mm=-0.01, lower_mm=0.025, model_sha256="ab" * 32, recordings=12)))
    assert read_border_offsets(path) == BorderOffsets(-0.01, 0.025, "ab" * 32, REFINER_NOT_RECORDED)
    path.write_text(json.dumps(dict(upper_mm=0, lower_mm=0.5, refiner_sha256=None)))  # at the limit, no refiner
    assert read_border_offsets(path) == BorderOffsets(0.0, 0.5, None, None)
    path.write_text(json.dumps(dict(upper_mm=0, lower_mm=0, refiner_sha256="cd" * 32)))
    assert read_border_offsets(path).refiner_sha256 == "cd" * 32


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable border offsets JSON"),
    (json.dumps([0.01, 0.02]), "an object with upper_mm and lower_mm"),
    (json.dumps(dict(upper_mm=0.01)), "an object with upper_mm and lower_mm"),
    (json.dumps(dict(upper_mm=True, lower_mm=0.0)), "upper_mm must be a number of mm, got True"),
    (json.dumps(dict(upper_mm=0.0, lower_mm=None)), "lower_mm must be a number of mm, got None"),
    (json.dumps(dict(upper_mm=0.0, lower_mm=-0.6)), "lower_mm -0.6 mm is more than 0.5 mm"),
])
def test_a_bad_offsets_file_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "lab.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as error:
        read_border_offsets(path)
    assert str(error.value).startswith(f"{path}: ")
    with pytest.raises(InputError, match="nowhere.json: border offsets file not found"):
        read_border_offsets(tmp_path / "nowhere.json")
