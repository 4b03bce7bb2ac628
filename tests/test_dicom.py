"""DICOM M-mode recordings: region crop, calibration, colour handling and stitching of scrolling frames."""
import logging

import numpy as np
import pytest

from mmode.calibration import Calibration
from mmode.errors import InputError
from mmode.io import read_recording, stitch_frames

pydicom = pytest.importorskip("pydicom")

MM_PER_PX = 0.011525974
S_PER_PX = 0.00083334
FRAME_SHAPE = (60, 100)            # rows, columns of a whole display frame
M_MODE_BOX = (10, 12, 89, 51)      # inclusive MinX0, MinY0, MaxX1, MaxY1 of the M-mode region
M_MODE_HEIGHT, M_MODE_WIDTH = 40, 80


def streaky_image(height, width, seed):
    """A long M-mode-like image: horizontal streaks (smooth along time) over a depth profile, uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(height, width + 8))
    smooth = np.stack([np.convolve(row, np.ones(9) / 9, mode="valid") for row in noise])
    depth_profile = rng.uniform(40, 200, size=(height, 1))
    return np.clip(depth_profile + 60 * smooth, 0, 255).astype(np.uint8)


def region(spatial_format, box, delta_x, delta_y, units_x, units_y):
    """One item of the Sequence of Ultrasound Regions."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RegionSpatialFormat = spatial_format
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = box
    item.PhysicalUnitsXDirection = units_x
    item.PhysicalUnitsYDirection = units_y
    item.PhysicalDeltaX = delta_x
    item.PhysicalDeltaY = delta_y
    return item


def two_regions():
    """A 2-D (B-mode) region first, the M-mode region second, as scanners store a duplex display."""
    return [region(1, (0, 0, 99, 9), 0.01, 0.01, 3, 3),
            region(3, M_MODE_BOX, S_PER_PX, MM_PER_PX / 10.0, 4, 3)]


def write_dicom(path, frames, photometric="MONOCHROME2", regions=None, bits_stored=8, multi_frame=True):
    """Save `frames` ((F, H, W) or (F, H, W, 3)) as an uncompressed ultrasound DICOM at `path`."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

    frames = np.asarray(frames)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows, dataset.Columns = frames.shape[1:3]
    if multi_frame:
        dataset.NumberOfFrames = len(frames)
    else:
        frames = frames[0]
    colour = frames.ndim == (4 if multi_frame else 3)
    dataset.SamplesPerPixel = 3 if colour else 1
    if colour:
        dataset.PlanarConfiguration = 0
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 8 if bits_stored <= 8 else 16
    dataset.BitsStored = bits_stored
    dataset.HighBit = bits_stored - 1
    dataset.PixelRepresentation = 0
    dataset.PixelData = frames.astype(np.uint8 if bits_stored <= 8 else "<u2").tobytes()
    if regions is not None:
        dataset.SequenceOfUltrasoundRegions = Sequence(regions)
    dataset.save_as(path, enforce_file_format=True)
    return path


def scrolling_frames(long_image, offsets, seed=0):
    """Display frames whose M-mode region shows long_image[:, offset:offset + 80]; the rest changes per frame."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = M_MODE_BOX
    frames = rng.integers(0, 256, size=(len(offsets), *FRAME_SHAPE), dtype=np.uint8)
    for frame, offset in zip(frames, offsets):
        frame[y0:y1 + 1, x0:x1 + 1] = long_image[:, offset:offset + M_MODE_WIDTH]
    return frames


# Shifts between frames: ordinary scrolling, a repeated frame (0), a large jump, the last reaching the end.
OFFSETS = [0, 7, 7, 19, 31, 81, 93, 104, 116, 120]


def test_multiframe_stitches_back_to_the_original_with_calibration(tmp_path):
    long_image = streaky_image(M_MODE_HEIGHT, OFFSETS[-1] + M_MODE_WIDTH, seed=1)
    path = write_dicom(tmp_path / "scan.dcm", scrolling_frames(long_image, OFFSETS), regions=two_regions())

    recording = read_recording(path)

    assert recording.image.dtype == np.uint8
    np.testing.assert_array_equal(recording.image, long_image)
    assert recording.calibration.source == "dicom"
    assert recording.calibration.mm_per_px == pytest.approx(MM_PER_PX, rel=1e-9)
    assert recording.calibration.s_per_px == pytest.approx(S_PER_PX, rel=1e-9)


def test_random_texture_stitches_exactly():
    long_image = np.random.default_rng(3).integers(0, 256, size=(30, 300), dtype=np.uint8)
    offsets = [0, 1, 2, 2, 40, 90, 140, 200, 220]
    frames = np.stack([long_image[:, o:o + 80] for o in offsets])
    np.testing.assert_array_equal(stitch_frames(frames), long_image)


def test_frames_with_compression_noise_stitch_to_the_right_length():
    long_image = streaky_image(M_MODE_HEIGHT, OFFSETS[-1] + M_MODE_WIDTH, seed=2)
    rng = np.random.default_rng(2)
    frames = np.stack([long_image[:, o:o + M_MODE_WIDTH] for o in OFFSETS]).astype(int)
    frames[2] = frames[1]  # a repeated frame stays bit-identical, as a lossy codec makes it
    noisy = np.clip(frames + rng.integers(-6, 7, size=frames.shape), 0, 255).astype(np.uint8)
    noisy[2] = noisy[1]
    stitched = stitch_frames(noisy)
    assert stitched.shape == long_image.shape
    assert np.abs(stitched.astype(int) - long_image).mean() < 4  # noise only, no misplaced columns


def test_frame_without_overlap_is_appended_whole_with_a_warning(caplog):
    first = streaky_image(M_MODE_HEIGHT, M_MODE_WIDTH, seed=4)
    unrelated = streaky_image(M_MODE_HEIGHT, M_MODE_WIDTH, seed=5)
    with caplog.at_level(logging.WARNING):
        stitched = stitch_frames(np.stack([first, unrelated]), name="scan.dcm")
    np.testing.assert_array_equal(stitched, np.concatenate([first, unrelated], axis=1))
    assert "scan.dcm: frame 1 does not overlap" in caplog.text


def test_rgb_dicom_becomes_luma(tmp_path):
    grey = streaky_image(M_MODE_HEIGHT, M_MODE_WIDTH, seed=6)
    rgb = np.repeat(grey[..., np.newaxis], 3, axis=2)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    frame = np.zeros((*FRAME_SHAPE, 3), dtype=np.uint8)
    x0, y0, x1, y1 = M_MODE_BOX
    frame[y0:y1 + 1, x0:x1 + 1] = rgb
    path = write_dicom(tmp_path / "colour.dcm", frame[np.newaxis], photometric="RGB",
                       regions=two_regions(), multi_frame=False)

    image = read_recording(path).image

    expected = grey.copy()
    expected[0, :3] = [76, 150, 29]  # round(0.299 * 255), round(0.587 * 255), round(0.114 * 255)
    np.testing.assert_array_equal(image, expected)


def test_ybr_full_dicom_is_converted(tmp_path):
    from pydicom.pixels import convert_color_space

    grey = streaky_image(M_MODE_HEIGHT, M_MODE_WIDTH, seed=7)
    rgb = np.stack([grey, np.roll(grey, 3, axis=1), np.roll(grey, 5, axis=0)], axis=-1)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    frames = np.zeros((2, *FRAME_SHAPE, 3), dtype=np.uint8)
    x0, y0, x1, y1 = M_MODE_BOX
    frames[:, y0:y1 + 1, x0:x1 + 1] = ybr
    path = write_dicom(tmp_path / "ybr.dcm", frames, photometric="YBR_FULL", regions=two_regions())

    image = read_recording(path).image

    luma = np.round(rgb.astype(float) @ [0.299, 0.587, 0.114])
    assert image.shape == grey.shape  # the identical second frame adds nothing
    assert np.abs(image.astype(float) - luma).max() <= 2  # YBR round trip rounds twice


def test_monochrome1_is_inverted_and_12_bit_is_scaled(tmp_path):
    values_12bit = np.linspace(0, 4095, M_MODE_HEIGHT * M_MODE_WIDTH).reshape(M_MODE_HEIGHT, M_MODE_WIDTH)
    frame = np.zeros((1, *FRAME_SHAPE), dtype=np.uint16)
    x0, y0, x1, y1 = M_MODE_BOX
    frame[0, y0:y1 + 1, x0:x1 + 1] = np.round(values_12bit)
    path = write_dicom(tmp_path / "inverted.dcm", frame, photometric="MONOCHROME1", regions=two_regions(),
                       bits_stored=12)

    image = read_recording(path).image

    expected = 255 - np.round(np.round(values_12bit) * 255 / 4095).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)


def test_without_regions_the_whole_frame_and_the_given_calibration_are_used(tmp_path, caplog):
    frame = streaky_image(*FRAME_SHAPE, seed=8)
    path = write_dicom(tmp_path / "plain.dcm", frame[np.newaxis])
    given = Calibration(0.02, 0.001, source="user")

    with caplog.at_level(logging.WARNING):
        recording = read_recording(path, calibration=given)

    np.testing.assert_array_equal(recording.image, frame)
    assert recording.calibration == given
    assert "plain.dcm" in caplog.text and "calibration" in caplog.text


def test_region_with_other_units_falls_back_with_a_warning(tmp_path, caplog):
    regions = [region(3, M_MODE_BOX, S_PER_PX, MM_PER_PX / 10.0, 0, 3)]  # x units 0 = none, not seconds
    frame = scrolling_frames(streaky_image(M_MODE_HEIGHT, M_MODE_WIDTH, seed=9), [0])
    path = write_dicom(tmp_path / "units.dcm", frame, regions=regions)

    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)

    assert recording.image.shape == (M_MODE_HEIGHT, M_MODE_WIDTH)
    assert recording.calibration == Calibration()
    assert "units.dcm: M-mode region units" in caplog.text


def test_dicom_without_pixel_data_is_refused(tmp_path):
    path = write_dicom(tmp_path / "empty.dcm", np.zeros((1, 4, 4), dtype=np.uint8))
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match=r"empty\.dcm.*no pixel data"):
        read_recording(path)


def test_file_that_is_not_dicom_is_refused(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"this is not a DICOM file" * 10)
    with pytest.raises(InputError, match=r"fake\.dcm"):
        read_recording(path)


def compressed_copy(path, out, transfer_syntax, quality=95):
    """The DICOM at `path` saved at `out` with its frames compressed as scanners export them: RLE Lossless (pydicom's
    own encoder), JPEG 2000 Lossless or JPEG Baseline (frames encoded by Pillow and encapsulated; colour JPEG as
    YBR_FULL_422, as DICOM asks)."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

    dataset = pydicom.dcmread(path)
    if transfer_syntax == RLELossless:
        dataset.compress(RLELossless)
    else:
        frames = dataset.pixel_array.reshape(int(dataset.get("NumberOfFrames", 1)), *dataset.pixel_array.shape[-3:]
                                             if dataset.SamplesPerPixel == 3 else dataset.pixel_array.shape[-2:])
        encoded = []
        for frame in frames:
            buffer = io.BytesIO()
            if transfer_syntax == JPEG2000Lossless:
                Image.fromarray(frame).save(buffer, format="JPEG2000", irreversible=False)
            else:
                Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
            encoded.append(buffer.getvalue())
        dataset.PixelData = encapsulate(encoded)
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        dataset.file_meta.TransferSyntaxUID = transfer_syntax
        if transfer_syntax == JPEGBaseline8Bit:
            dataset.LossyImageCompression = "01"
            if dataset.SamplesPerPixel == 3:
                dataset.PhotometricInterpretation = "YBR_FULL_422"
    dataset.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless"])
def test_losslessly_compressed_scrolling_frames_stitch_back_exactly(tmp_path, syntax):
    from PIL import features

    if syntax == "JPEG2000Lossless" and not features.check("jpg_2000"):
        pytest.skip("this Pillow has no JPEG 2000 codec")
    long_image = streaky_image(M_MODE_HEIGHT, OFFSETS[-1] + M_MODE_WIDTH, seed=1)
    plain = write_dicom(tmp_path / "scan.dcm", scrolling_frames(long_image, OFFSETS), regions=two_regions())
    path = compressed_copy(plain, tmp_path / "compressed.dcm", getattr(pydicom.uid, syntax))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == getattr(pydicom.uid, syntax)

    recording = read_recording(path)

    np.testing.assert_array_equal(recording.image, long_image)
    assert recording.calibration.source == "dicom"
    assert recording.calibration.mm_per_px == pytest.approx(MM_PER_PX, rel=1e-9)


@pytest.mark.parametrize("colour", [False, True])
def test_jpeg_baseline_frames_grey_or_colour_stitch_to_the_recording_within_the_jpeg_error(tmp_path, colour):
    long_image = streaky_image(M_MODE_HEIGHT, OFFSETS[-1] + M_MODE_WIDTH, seed=1)
    frames = scrolling_frames(long_image, OFFSETS)
    if colour:  # a grey display stored in colour, as many ultrasound exports are
        frames = np.repeat(frames[..., np.newaxis], 3, axis=3)
    plain = write_dicom(tmp_path / "scan.dcm", frames, photometric="RGB" if colour else "MONOCHROME2",
                        regions=two_regions())
    path = compressed_copy(plain, tmp_path / "jpeg.dcm", pydicom.uid.JPEGBaseline8Bit)

    recording = read_recording(path)

    assert recording.image.shape == long_image.shape
    assert np.abs(recording.image.astype(int) - long_image).mean() < 2.0


def test_pixel_data_no_decoder_reads_is_refused_in_one_line_naming_the_file_and_the_compression(tmp_path):
    from pydicom.encaps import encapsulate

    path = write_dicom(tmp_path / "scan.dcm", np.zeros((1, 8, 8), dtype=np.uint8))
    dataset = pydicom.dcmread(path)
    dataset.PixelData = encapsulate([b"\xff\xd8 not a JPEG-LS stream \xff\xd9"])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError) as refused:
        read_recording(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: cannot decode the DICOM pixel data (JPEG-LS Lossless Image Compression)")
    assert "\n" not in message
    if "plugins are missing" in message:  # no JPEG-LS decoder installed, as with the requirements alone
        assert message.endswith("e.g. pip install pylibjpeg pylibjpeg-libjpeg, or export the recording uncompressed")


def sweep_frames(long_image, width, steps, bar, written):
    """Frames of a sweep display `width` columns wide: the write head after `written` columns of `long_image`, then
    after each step, every display column holding the latest column written to it, and `bar` blank columns (an erase
    bar, grey 0) ahead of the head. Returns the frames and the columns they show, oldest first."""
    height = long_image.shape[0]
    frames = []
    for step in [0, *steps]:
        written += step
        columns = np.arange(width)
        latest = written - 1 - ((written - 1 - columns) % width)  # the last column j < written with j % width == c
        frame = np.where(latest >= 0, long_image[:, np.maximum(latest, 0)], 0).astype(np.uint8)
        frame[:, (written + np.arange(bar)) % width] = 0
        frames.append(frame.reshape(height, width))
    return np.stack(frames), long_image[:, max(0, written - sum(steps) - width + bar):written]


@pytest.mark.parametrize("bar, steps, first_written", [
    (6, [9] * 12, 80),                # an erase bar, even steps
    (0, [7, 13, 4, 11, 9] * 3, 95),   # no bar, uneven steps
    (4, [6] * 20, 50),                # the first sweep not across the display yet
])
def test_a_sweep_display_is_unwound_into_the_columns_it_showed(bar, steps, first_written):
    long_image = streaky_image(M_MODE_HEIGHT, 400, seed=3)
    frames, shown = sweep_frames(long_image, M_MODE_WIDTH, steps, bar, first_written)
    np.testing.assert_array_equal(stitch_frames(frames, name="sweep.dcm"), shown)


def test_a_sweep_saved_as_jpeg_unwinds_to_its_length_within_the_jpeg_error():
    import io

    from PIL import Image

    long_image = streaky_image(M_MODE_HEIGHT, 400, seed=3)
    frames, shown = sweep_frames(long_image, M_MODE_WIDTH, [9] * 12, 6, 80)
    lossy = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=75)
        lossy.append(np.array(Image.open(buffer)))
    unwound = stitch_frames(np.stack(lossy), name="sweep.dcm")
    assert unwound.shape == shown.shape
    jpeg_error = np.abs(np.stack(lossy).astype(int) - frames).mean()  # of this fine random texture: about 5
    assert np.abs(unwound.astype(int) - shown).mean() < 1.2 * jpeg_error


def test_a_sweep_dicom_reads_as_the_recording_with_its_calibration(tmp_path, caplog):
    long_image = streaky_image(M_MODE_HEIGHT, 400, seed=3)
    sweep, shown = sweep_frames(long_image, M_MODE_WIDTH, [9] * 12, 6, 80)
    x0, y0, x1, y1 = M_MODE_BOX
    frames = np.random.default_rng(0).integers(0, 256, size=(1, *FRAME_SHAPE), dtype=np.uint8).repeat(len(sweep), 0)
    frames[:, y0:y1 + 1, x0:x1 + 1] = sweep  # the rest of the display stays as it is, as on a scanner
    path = write_dicom(tmp_path / "sweep.dcm", frames, regions=two_regions())
    with caplog.at_level(logging.INFO):
        recording = read_recording(path)
    np.testing.assert_array_equal(recording.image, shown)
    assert recording.calibration.s_per_px == pytest.approx(S_PER_PX, rel=1e-9)
    assert "sweep display" in caplog.text
