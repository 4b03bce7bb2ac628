"""Annotations (CSV, LabelMe) -> interpolated traces -> masks, and every bad annotation's error."""
import json
import re

import numpy as np
import pytest

from mmode.errors import InputError
from preprocess.annotations import (check_traces, read_annotations, read_calibration_csv, read_measurements_csv,
                                    read_stretches_csv)
from preprocess.masks import annotation_mask, covered_span, interpolate_trace, traces_to_mask


def write_csv(path, rows):
    path.write_text("image,trace,x,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]}\n" for r in rows))
    return path


def labelme(path, image_path, shapes):
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "imagePath": image_path, "imageData": None,
                                "shapes": [{"label": label, "points": points, "shape_type": kind, "flags": {}}
                                           for label, kind, points in shapes]}))
    return path


def straight_traces():
    return {"upper": (np.array([2.0, 12.0]), np.array([3.0, 3.0])),
            "lower": (np.array([4.0, 15.0]), np.array([7.5, 7.5]))}


def test_mask_from_two_straight_traces_has_exactly_the_expected_pixels():
    mask, span = annotation_mask("rec", straight_traces(), (10, 20))
    expected = np.zeros((10, 20), dtype=np.uint8)
    expected[4:8, 4:13] = 1  # rows 3 < r < 7.5, columns both traces cover: 4..12
    np.testing.assert_array_equal(mask, expected)
    assert span == (4, 13)


def test_traces_to_mask_is_strict_and_zero_where_a_trace_is_missing():
    upper = np.array([1.0, 1.5, np.nan, 0.0])
    lower = np.array([4.0, 4.0, 4.0, np.nan])
    mask = traces_to_mask(upper, lower, 6)
    np.testing.assert_array_equal(mask[:, 0], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(mask[:, 1], [0, 0, 1, 1, 0, 0])
    assert mask[:, 2:].sum() == 0
    assert mask.dtype == np.uint8
    assert covered_span(upper, lower) == (0, 2)


def test_interpolation_passes_through_every_click_and_never_overshoots():
    rng = np.random.default_rng(0)
    xs = np.sort(rng.choice(np.arange(3, 297), size=25, replace=False)).astype(float)
    ys = rng.uniform(50, 150, size=xs.size)
    trace = interpolate_trace(xs, ys, 300)
    np.testing.assert_allclose(trace[xs.astype(int)], ys, rtol=0, atol=1e-9)
    assert np.isnan(trace[: int(xs[0])]).all() and np.isnan(trace[int(xs[-1]) + 1:]).all()
    for left, right, y_left, y_right in zip(xs[:-1], xs[1:], ys[:-1], ys[1:]):
        between = trace[int(left):int(right) + 1]
        assert between.min() >= min(y_left, y_right) - 1e-9
        assert between.max() <= max(y_left, y_right) + 1e-9


def test_interpolation_of_two_points_is_a_straight_line_and_order_does_not_matter():
    trace = interpolate_trace(np.array([10.0, 0.0]), np.array([20.0, 0.0]), 12)
    np.testing.assert_allclose(trace[:11], np.arange(11) * 2.0)
    assert np.isnan(trace[11])


def test_interpolation_matches_scipy_pchip():
    interpolate = pytest.importorskip("scipy.interpolate")
    xs = np.array([0.0, 4.0, 9.0, 10.0, 17.0, 30.0])
    ys = np.array([5.0, 9.0, 2.0, 2.0, 8.0, 1.0])
    columns = np.arange(31)
    np.testing.assert_allclose(interpolate_trace(xs, ys, 31), interpolate.PchipInterpolator(xs, ys)(columns),
                               atol=1e-9)


def test_csv_is_read_per_recording_and_trace(tmp_path):
    path = write_csv(tmp_path / "a.csv", [("rec1", "upper", 0, 3), ("rec1.png", "Upper", 9, 4),
                                          ("rec1", "lower", 0, 8), ("rec1", "lower", 9, 9.5),
                                          ("rec2", "upper", 1, 1)])
    annotations = read_annotations(path)
    assert sorted(annotations) == ["rec1", "rec2"]
    xs, ys = annotations["rec1"]["upper"]
    np.testing.assert_array_equal(xs, [0, 9])
    np.testing.assert_array_equal(ys, [3, 4])
    np.testing.assert_array_equal(annotations["rec1"]["lower"][1], [8, 9.5])


def test_labelme_shapes_are_read_and_named_after_the_image(tmp_path):
    path = labelme(tmp_path / "whatever.json", "..\\images\\scan7.dcm",
                   [("upper", "linestrip", [[0, 3], [5, 4], [9, 3]]), ("lower", "line", [[0, 8], [9, 8]]),
                    ("lower", "points", [[4, 9]]), ("note", "point", [[1, 1]])])
    annotations = read_annotations(path)
    assert list(annotations) == ["scan7"]
    np.testing.assert_array_equal(annotations["scan7"]["upper"][0], [0, 5, 9])
    np.testing.assert_array_equal(annotations["scan7"]["lower"][0], [0, 9, 4])


def test_labelme_without_image_path_takes_the_json_stem_and_a_folder_is_merged(tmp_path):
    labelme(tmp_path / "recA.json", "", [("upper", "linestrip", [[0, 1], [5, 1]])])
    labelme(tmp_path / "recB.json", "recB.png", [("lower", "linestrip", [[0, 1], [5, 1]])])
    assert sorted(read_annotations(tmp_path)) == ["recA", "recB"]


def test_check_traces_sorts_and_drops_repeated_clicks():
    checked = check_traces("rec", {"upper": ([5, 0, 5], [2, 1, 2]), "lower": ([0, 5], [4, 4])})
    np.testing.assert_array_equal(checked["upper"][0], [0, 5])
    np.testing.assert_array_equal(checked["upper"][1], [1, 2])


@pytest.mark.parametrize("traces, message", [
    ({"upper": ([3], [2]), "lower": ([0, 9], [7, 7])}, r"rec9: the upper trace has 1 point"),
    ({"upper": ([0, 9], [2, 2])}, r"rec9: no lower trace"),
    ({"upper": ([0, 9], [6, 6]), "lower": ([0, 9], [2, 2])}, r"rec9: the lower trace lies above the upper"),
    ({"upper": ([0, 25], [2, 2]), "lower": ([0, 9], [7, 7])}, r"rec9: the upper trace has 1 point\(s\) outside"),
    ({"upper": ([0, 9], [2, 2]), "lower": ([0, 9], [7, 12])}, r"rec9: the lower trace .* outside the 20x10 image"),
    ({"upper": ([0, 4], [2, 2]), "lower": ([6, 9], [7, 7])}, r"rec9: the upper and lower traces share no column"),
    ({"upper": ([0, 4, 4], [2, 2, 3]), "lower": ([0, 9], [7, 7])}, r"rec9: the upper trace has two different y"),
])
def test_bad_traces_are_refused_naming_the_recording(traces, message):
    with pytest.raises(InputError, match=message):
        annotation_mask("rec9", traces, (10, 20))


def test_bad_csv_lines_are_refused_with_the_file_and_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("rec1", "upper", 0, 3), ("rec1", "middle", 9, 4)])
    with pytest.raises(InputError, match=r"bad\.csv line 3: trace 'middle'"):
        read_annotations(path)
    path = write_csv(tmp_path / "nan.csv", [("rec1", "upper", "zero", 3)])
    with pytest.raises(InputError, match=r"nan\.csv line 2: x 'zero' is not a number"):
        read_annotations(path)
    path = tmp_path / "header.csv"
    path.write_text("name,trace,x,y\nrec1,upper,0,3\n")
    with pytest.raises(InputError, match=r"header\.csv: CSV header lacks column\(s\) image"):
        read_annotations(path)


def test_labelme_with_a_polygon_trace_is_refused(tmp_path):
    path = labelme(tmp_path / "poly.json", "rec.png", [("upper", "polygon", [[0, 1], [5, 1], [5, 3]])])
    with pytest.raises(InputError, match=r"poly\.json shape 0: the upper trace is a polygon"):
        read_annotations(path)


def test_missing_annotation_file_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"nothing\.csv: annotation file not found"):
        read_annotations(tmp_path / "nothing.csv")


@pytest.mark.parametrize("reader, text, message", [
    (read_calibration_csv, "image,s_per_px\nrec1,0.001\n", "lacks column(s) mm_per_px"),
    (read_calibration_csv, "image,mm_per_px,s_per_px\nrec1,0.01,0.001\nrec1.png,0.01,0.001\n",
     "line 3: recording rec1 is listed twice"),
    (read_calibration_csv, "image,mm_per_px,s_per_px\nrec1,0.01,fast\n", "line 2: s_per_px 'fast' is not a number"),
    (read_calibration_csv, "image,mm_per_px,s_per_px\nrec1,nan,0.001\n",
     "line 2: mm_per_px and s_per_px must be positive"),
    (read_calibration_csv, "image,mm_per_px,s_per_px\n", "no recordings listed"),
    (read_calibration_csv, None, "calibration.csv: calibration file not found"),
    (read_stretches_csv, "image,start_s\nrec1,1\n", "lacks column(s) end_s"),
    (read_stretches_csv, "image,start_s,end_s\nrec1,1,2\nrec1.png,3,4\n", "line 3: recording rec1 is listed twice"),
    (read_stretches_csv, "image,start_s,end_s\nrec1,soon,2\n", "line 2: start_s 'soon' is not a number"),
    (read_stretches_csv, "image,start_s,end_s\nrec1,3,2\n",
     "line 2: the stretch must start at 0 s or later and end after it, got start_s 3, end_s 2"),
    (read_stretches_csv, "image,start_s,end_s\nrec1,-1,\n", "end_s (the end)"),
    (read_stretches_csv, "image,start_s,end_s\n", "no recordings listed"),
    (read_stretches_csv, None, "calibration.csv: stretches file not found"),
])
def test_a_bad_per_recording_csv_is_named_with_its_line(tmp_path, reader, text, message):
    path = tmp_path / "calibration.csv"
    if text is not None:  # None: no file there
        path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        reader(path)


@pytest.mark.parametrize("text", [
    "image,mm_per_px,s_per_px\nrec1,0.0115,0.00083\n",
    "image;mm_per_px;s_per_px\nrec1;0,0115;0,00083\n",  # a spreadsheet set to a decimal comma
    "image\tmm_per_px\ts_per_px\nrec1\t0.0115\t0,00083\n",
    "image,mm_per_px,s_per_px\nrec1,\"0,0115\",0.00083\n",  # a quoted decimal comma in a comma file
])
def test_a_calibration_csv_reads_alike_with_commas_semicolons_or_tabs_and_either_decimal_mark(tmp_path, text):
    path = tmp_path / "calibration.csv"
    path.write_text(text)
    calibration = read_calibration_csv(path)["rec1"]
    assert (calibration.mm_per_px, calibration.s_per_px) == (0.0115, 0.00083)


def test_a_stretches_csv_gives_each_recording_its_start_and_end_or_the_rest(tmp_path):
    path = tmp_path / "stretches.csv"
    path.write_text("image;start_s;end_s\nrec1.png;2,5;6\nrec2;0;\n")  # a spreadsheet's semicolons, decimal comma
    assert read_stretches_csv(path) == {"rec1": (2.5, 6.0), "rec2": (0.0, None)}


def test_semicolon_annotations_read_as_their_comma_twins(tmp_path):
    rows = [("rec1", "upper", "0", "3.5"), ("rec1", "upper", "10", "4"), ("rec1", "lower", "0", "8"),
            ("rec1", "lower", "10", "9.25")]
    commas = read_annotations(write_csv(tmp_path / "a.csv", rows))
    path = tmp_path / "b.csv"
    path.write_text("image;trace;x;y\n" + "".join(f"{r[0]};{r[1]};{r[2]};{r[3].replace('.', ',')}\n" for r in rows))
    semicolons = read_annotations(path)
    for trace in ("upper", "lower"):
        for axis in range(2):
            np.testing.assert_array_equal(semicolons["rec1"][trace][axis], commas["rec1"][trace][axis])
    path.write_text("image;trace;x;y\nrec1;upper;1,000,5;3\n")  # two commas: no number
    with pytest.raises(InputError, match=r"b\.csv line 2: x '1,000,5' is not a number"):
        read_annotations(path)


def test_measured_beats_are_read_per_recording_with_their_optional_time_and_rate(tmp_path):
    path = tmp_path / "measurements.csv"
    path.write_text("image,lvid_d_mm,lvid_s_mm,t_ed_s,hr_bpm\nrec1.png,3.80,2.70,0.369,480\n"
                    "rec1,3.76,2.66,,\n\nrec2,2.40,1.40,0.5,600\n")
    beats = read_measurements_csv(path)
    assert beats["rec1"] == [dict(lvid_d_mm=3.80, lvid_s_mm=2.70, t_ed_s=0.369, rr_s=0.125),
                             dict(lvid_d_mm=3.76, lvid_s_mm=2.66)]
    assert beats["rec2"] == [dict(lvid_d_mm=2.40, lvid_s_mm=1.40, t_ed_s=0.5, rr_s=0.1)]
    bare = tmp_path / "bare.csv"  # the optional columns may be left out altogether
    bare.write_text("image,lvid_d_mm,lvid_s_mm\nrec1,3.8,2.7\n")
    assert read_measurements_csv(bare) == {"rec1": [dict(lvid_d_mm=3.8, lvid_s_mm=2.7)]}


@pytest.mark.parametrize("text, message", [
    ("image,lvid_d_mm\nrec1,3.8\n", "lacks column(s) lvid_s_mm"),
    ("image,lvid_d_mm,lvid_s_mm\nrec1,2.7,3.8\n", "line 2: LVIDs must be positive and below LVIDd"),
    ("image,lvid_d_mm,lvid_s_mm\nrec1,wide,2.7\n", "line 2: lvid_d_mm 'wide' is not a number"),
    ("image,lvid_d_mm,lvid_s_mm,t_ed_s\nrec1,3.8,2.7,-1\n", "line 2: t_ed_s must not be negative"),
    ("image,lvid_d_mm,lvid_s_mm,hr_bpm\nrec1,3.8,2.7,0\n", "line 2: hr_bpm must be positive"),
    ("image,lvid_d_mm,lvid_s_mm\n", "no measured beats"),
])
def test_bad_measurements_are_named_with_their_line(tmp_path, text, message):
    path = tmp_path / "measurements.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        read_measurements_csv(path)
