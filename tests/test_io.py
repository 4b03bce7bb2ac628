"""Reading image recordings: formats, colour -> grey, bit depths, errors; writing PNGs."""
import numpy as np
import pytest
from PIL import Image

from mmode.calibration import TRAINED_MM_PER_PX, TRAINED_S_PER_PX, Calibration, coarser_than_trained
from mmode.errors import InputError
from mmode.io import (RECORDING_SUFFIXES, Recording, crop_recording, cut_time, is_dicom_file, read_image,
                      read_recording, recording_files, recording_name, write_png)

GREY = (np.arange(24 * 40) % 256).reshape(24, 40).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_lossless_grey_formats_read_back_exactly(tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    Image.fromarray(GREY).save(path)
    image = read_image(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, GREY)


def test_jpeg_reads_close_to_the_original(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 40), (24, 1)).astype(np.uint8)
    path = tmp_path / "rec.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    assert np.abs(read_image(path).astype(int) - smooth).max() <= 4


def test_colour_becomes_itu_601_luma(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0] = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    rgb[1] = [(10, 10, 10), (200, 100, 50), (255, 255, 255)]
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    expected = [[76, 150, 29], [10, round(0.299 * 200 + 0.587 * 100 + 0.114 * 50), 255]]
    np.testing.assert_array_equal(read_image(path), expected)


def test_grey_stored_as_rgba_keeps_its_values_and_alpha_is_dropped(tmp_path):
    rgba = np.stack([GREY, GREY, GREY, np.full_like(GREY, 7)], axis=-1)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    np.testing.assert_array_equal(read_image(path), GREY)


def test_palette_image_is_expanded(tmp_path):
    palette_image = Image.fromarray(GREY).convert("P")
    path = tmp_path / "palette.png"
    palette_image.save(path)
    np.testing.assert_array_equal(read_image(path), GREY)


def test_16_bit_full_range_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(read_image(path), [[0, 1, 128, 255]])


def test_12_bit_data_in_16_bit_file_is_scaled_by_4095(tmp_path):
    values = np.array([[0, 1000, 2048, 4095]], dtype=np.uint16)
    path = tmp_path / "twelve.tif"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(read_image(path), np.round(values.astype(float) * 255 / 4095).astype(np.uint8))


def test_write_png_round_trip_leaves_no_temporary_file(tmp_path):
    path = write_png(tmp_path / "sub" / "out.png", GREY)
    np.testing.assert_array_equal(read_image(path), GREY)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]


def test_read_recording_takes_the_given_calibration_for_images(tmp_path):
    path = tmp_path / "rec.png"
    Image.fromarray(GREY).save(path)
    assert read_recording(path).calibration == Calibration()
    given = Calibration(0.02, 0.001, source="user")
    recording = read_recording(path, calibration=given)
    assert recording.calibration == given and recording.name == "rec"
    np.testing.assert_array_equal(recording.image, GREY)


def test_recording_suffixes():
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm"} <= RECORDING_SUFFIXES


def test_unknown_extension_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt.*unknown"):
        read_recording(path)
    with pytest.raises(InputError, match=r"notes\.txt.*unknown"):
        read_image(path)


def test_unreadable_image_is_refused(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"broken\.png.*not a readable image"):
        read_recording(path)


def test_an_image_of_one_grey_level_is_refused_whole_or_cropped(tmp_path):
    image = np.full((40, 60), 7, dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "blank.png")
    with pytest.raises(InputError, match=r"blank\.png: every pixel has the grey level 7, so there are no echoes"):
        read_recording(tmp_path / "blank.png")
    image[:, 30:] = np.arange(40, dtype=np.uint8)[:, None]  # echoes on the right half only, a black margin left
    Image.fromarray(image).save(tmp_path / "screen.png")
    assert read_recording(tmp_path / "screen.png").image.shape == (40, 60)
    assert read_recording(tmp_path / "screen.png", crop=(29, 0, 60, 40)).image.shape == (40, 31)
    with pytest.raises(InputError, match=r"screen\.png: every pixel inside --crop 0,0,30,40 has the grey level 7"):
        read_recording(tmp_path / "screen.png", crop=(0, 0, 30, 40))


def test_a_dicom_is_known_by_its_preamble_whatever_its_name_and_named_in_full(tmp_path):
    dicom_bytes = b"\0" * 128 + b"DICM" + b"\0" * 16
    for name in ("IM_0001", "1.2.840.10008.5", "1.2.840.10008.6", "scan.png.bak"):
        (tmp_path / name).write_bytes(dicom_bytes)
    (tmp_path / "NOTES").write_bytes(b"\0" * 128 + b"TEXT")
    (tmp_path / "fake.png").write_bytes(dicom_bytes)  # an image suffix: read as the image it claims to be
    assert [is_dicom_file(tmp_path / name) for name in ("IM_0001", "scan.png.bak", "NOTES", "fake.png")] == [
        True, True, False, False]
    assert is_dicom_file(tmp_path / "absent.dcm") and not is_dicom_file(tmp_path / "absent")
    assert [recording_name(tmp_path / name) for name in ("mouse07.png", "scan.DCM", "1.2.840.10008.5", "IM_0001")] \
        == ["mouse07", "scan", "1.2.840.10008.5", "IM_0001"]
    # two UIDs that differ in their last part are two recordings, not two files of one name
    assert [path.name for path in recording_files(tmp_path)] == ["1.2.840.10008.5", "1.2.840.10008.6", "IM_0001",
                                                                  "fake.png", "scan.png.bak"]


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"absent\.png.*not found"):
        read_recording(tmp_path / "absent.png")


@pytest.mark.parametrize("mm_per_px, s_per_px, coarse", [
    (0.011526, 0.00083, ()),  # the defaults
    (0.006, 0.0004, ()),  # finer pixels read as well (README's pixel-size table): no warning
    (TRAINED_MM_PER_PX[1], TRAINED_S_PER_PX[1], ()),  # the edge of the range is inside it
    (0.0332, 0.00083, ("0.0332 mm per row",)),  # the real reference strip's depth pixel
    (0.011526, 0.0015, ("1.5 ms per column",)),
    (0.0332, 0.001432, ("0.0332 mm per row", "1.43 ms per column")),
])
def test_pixels_coarser_than_the_training_recordings_are_named(mm_per_px, s_per_px, coarse):
    notes = coarser_than_trained(Calibration(mm_per_px, s_per_px, "user"))
    assert len(notes) == len(coarse)
    for note, start in zip(notes, coarse):
        assert note.startswith(start) and "coarser than" in note


def test_a_stretch_keeps_its_columns_rounded_to_whole_ones_and_says_where_it_starts(tmp_path):
    image = np.arange(10 * 100, dtype=np.uint8).reshape(10, 100)
    recording = Recording(image, Calibration(0.02, 0.001, source="user"), tmp_path / "long.png")
    stretch = cut_time(recording, 0.0204, 0.0596)  # columns 20..59, the nearest boundaries
    np.testing.assert_array_equal(stretch.image, image[:, 20:60])
    assert stretch.time_cut == pytest.approx((0.020, 0.060)) and stretch.start_s == pytest.approx(0.020)
    assert recording.start_s == 0.0 and recording.time_cut is None
    assert cut_time(recording, 0.05).image.shape == (10, 50)  # to the end
    assert cut_time(recording, 0.0, 0.1004).image.shape == (10, 100)  # within half a column of the end
    past = (r"long.png: the stretch from 0.05 s to 0.2 s reaches past the recording's end at 0.100 s "
            r"\(100 columns of 1 ms\)")
    with pytest.raises(InputError, match=past):
        cut_time(recording, 0.05, 0.2)
    with pytest.raises(InputError, match=r"long.png: the stretch from 0.1 s to the end reaches past"):
        cut_time(recording, 0.1)
    with pytest.raises(InputError, match=r"long.png: the stretch from 0.0501 s to 0.0502 s holds no whole column of 1 "
                                         r"ms"):
        cut_time(recording, 0.0501, 0.0502)


def test_a_crop_keeps_the_boxs_pixels_and_the_calibration_and_refuses_a_box_outside(tmp_path):
    image = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    recording = Recording(image, Calibration(0.02, 0.001, source="user"), tmp_path / "screen.png")
    cropped = crop_recording(recording, (5, 2, 25, 12))
    np.testing.assert_array_equal(cropped.image, image[2:12, 5:25])
    assert cropped.crop == (5, 2, 25, 12) and recording.crop is None
    assert cropped.calibration == recording.calibration and cropped.path == recording.path
    cropped.image[0, 0] = 0
    assert image[2, 5] == 65  # a copy: the recording read is left as it was
    assert crop_recording(recording, (0, 0, 30, 20)).image.shape == (20, 30)
    with pytest.raises(InputError, match=r"screen.png: --crop 0,0,31,20 reaches outside the image, which is 30 "
                                         r"columns by 20 rows"):
        crop_recording(recording, (0, 0, 31, 20))


def test_the_box_analysed_is_told_in_the_pixels_of_the_image_as_read(tmp_path):
    """A crop keeps the uncut image beside the cut one; the box analysed, after a stretch cut from the crop too, is
    where those pixels lie in the image as read."""
    image = np.arange(20 * 300, dtype=np.int64).reshape(20, 300).astype(np.uint8)
    recording = Recording(image, Calibration(0.02, 0.001, source="user"), tmp_path / "screen.png")
    assert recording.uncut_image is None and recording.analysed_box == (0, 0, 300, 20)
    cropped = crop_recording(recording, (5, 2, 250, 12))
    assert cropped.uncut_image is image and cropped.analysed_box == (5, 2, 250, 12)
    stretch = cut_time(cropped, 0.0404, 0.1)  # columns 40..99 of the box
    left, top, right, bottom = stretch.analysed_box
    assert (left, top, right, bottom) == (45, 2, 105, 12) and stretch.uncut_image is image
    np.testing.assert_array_equal(stretch.uncut_image[top:bottom, left:right], stretch.image)
    assert cut_time(recording, 0.05).analysed_box == (50, 0, 300, 20)  # a stretch alone: no uncut image kept
