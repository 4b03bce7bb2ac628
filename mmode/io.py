"""Reading M-mode recordings (PNG, JPEG, TIFF, BMP, DICOM) as one long grey image with its calibration.

Every reader returns a 2-D uint8 array: row 0 nearest the transducer, one column per time step.
Colour becomes grey with the ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B); data deeper than 8 bits
is scaled to 0..255 by its bit depth; an alpha channel is dropped (the echo lives in the colour channels).
"""
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from mmode.calibration import Calibration
from mmode.cli import AUTO_CROP
from mmode.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
RECORDING_SUFFIXES = IMAGE_SUFFIXES | DICOM_SUFFIXES
# A DICOM file of any name is known by these bytes after its 128-byte preamble (PS3.10 7.1): scanners and PACS
# exports often name their files IM_0001 or by UID (1.2.840....123), without .dcm.
DICOM_PREAMBLE_BYTES, DICOM_MAGIC = 128, b"DICM"

LUMA_601 = np.array([0.299, 0.587, 0.114])

# DICOM Sequence of Ultrasound Regions codes (PS3.3 C.8.5.5.1).
REGION_SPATIAL_FORMAT_M_MODE = 3
PHYSICAL_UNITS_CM = 3
PHYSICAL_UNITS_SECONDS = 4

# Stitching scrolling frames. A shift is taken as the frame's overlap with the previous one when its mean absolute
# difference is near-exact (<= STITCH_MAX_MEAN_ABS_DIFF grey levels: lossless data, light compression) or, for
# lossy-compressed speckle, when its RMS difference is at most STITCH_MAX_RELATIVE_RMS of the median RMS over all
# shifts tried (true overlaps measured ~0.04-0.1 up to JPEG quality 50, unrelated frames >= 0.4).
# Overlaps shorter than STITCH_MIN_OVERLAP_FRACTION of the width are not tried (too few columns to tell);
# STITCH_CANDIDATES best shifts by the FFT sum of squared differences get the exact mean-absolute test.
STITCH_MAX_MEAN_ABS_DIFF = 2.0
STITCH_MAX_RELATIVE_RMS = 0.2
STITCH_MIN_OVERLAP_FRACTION = 0.1
STITCH_CANDIDATES = 8
# Sweep displays redraw the trace in place: a write head moves left to right across a still frame (often with an
# erase bar of blank columns ahead of it) and wraps around, instead of the frame scrolling. Between two frames only
# a band of columns changes (`sweep_band`): columns whose mean absolute change exceeds SWEEP_CHANGE_SHARE of the
# largest column's (and STITCH_MAX_MEAN_ABS_DIFF), within one cyclic run of at most SWEEP_MAX_BAND_FRACTION of the
# width.
# A recording is read as a sweep when at least SWEEP_MIN_SHARE of its frame pairs that differ look like that.
SWEEP_CHANGE_SHARE = 0.05
SWEEP_MAX_BAND_FRACTION = 0.5
SWEEP_END_SHARE = 0.25  # the band's first and last columns changed by at least this share of the largest change
SWEEP_MIN_CHANGED_SHARE = 0.5  # of the band's columns changed past the threshold: one redrawn band, not scattered
SWEEP_MIN_SHARE = 0.5
# A blank column (erase bar, display not written yet) spans at most this many grey levels from top to bottom: 2-22
# for a black bar saved as JPEG of quality 95-50, at least 149 for the example recordings' columns.
SWEEP_BLANK_RANGE = 32
# Said when pydicom has no decoder for a file's compression (JPEG-LS, JPEG Lossless): its requirements install RLE,
# JPEG Baseline and JPEG 2000 decoding only.
DECODER_HINT = ("; install a decoder pydicom names there, e.g. pip install pylibjpeg pylibjpeg-libjpeg, or export "
                "the recording uncompressed")


@dataclass
class Recording:
    """One long M-mode recording: `image` uint8 (H, W) (rows = depth, columns = time),
    its `calibration` (mm per row, s per column) and the `path` it was read from."""

    image: np.ndarray
    calibration: Calibration
    path: Path
    crop: tuple = None  # (left, top, right, bottom) of the image as read, when only that box is kept
    crop_auto: bool = False  # whether the box was looked for (`crop_to_panel`), rather than given
    # (start, end) s of the image as read (and cut to `crop`), when only that stretch is kept (`cut_time`); the
    # image's first column then lies at start_s, so that the times written are the recording's
    time_cut: tuple = None
    # the image as read, before `crop`, kept when a box was asked for (`crop_recording`), so the box can be shown on it
    uncut_image: np.ndarray = field(default=None, repr=False, compare=False)

    @property
    def start_s(self):
        """Time (s) of the image's first column in the recording as read: 0 unless a stretch was cut out."""
        return 0.0 if self.time_cut is None else self.time_cut[0]

    @property
    def analysed_box(self):
        """(left, top, right, bottom) of the pixels analysed in the image as read, before `crop` and `time_cut`; right
        and bottom exclusive, as `--crop` takes them."""
        left, top = (0, 0) if self.crop is None else self.crop[:2]
        if self.time_cut is not None:
            left += round(self.time_cut[0] / self.calibration.s_per_px)
        height, width = self.image.shape
        return left, top, left + width, top + height

    @property
    def name(self):
        """The recording's name: its file stem, as annotations and window names use it (`recording_name`)."""
        return recording_name(self.path)


def is_dicom_file(path):
    """Whether `path` is read as DICOM: a .dcm/.dicom suffix, or any other name but an image's whose bytes say
    DICOM (DICOM_MAGIC after the preamble)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(DICOM_PREAMBLE_BYTES + len(DICOM_MAGIC))
    except OSError:
        return False
    return head[DICOM_PREAMBLE_BYTES:] == DICOM_MAGIC


def is_recording_file(path):
    """Whether `path` is a recording the tools read: an image file (IMAGE_SUFFIXES) or a DICOM (`is_dicom_file`)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES or is_dicom_file(path)


def recording_name(path):
    """A recording file's name in outputs, annotations and calibration tables: its stem where the suffix is a
    recording's (`mouse07` for mouse07.png), the whole file name otherwise (a DICOM named IM_0001 or by UID, whose
    last dotted part is no file type)."""
    path = Path(path)
    return path.stem if path.suffix.lower() in RECORDING_SUFFIXES else path.name


def crop_recording(recording, box):
    """`recording` cut to `box` = (left, top, right, bottom) in the pixels of its image as read, right and bottom
    exclusive (PIL's crop box), with `crop` set to it; AUTO_CROP: to the M-mode panel found in it
    (`crop_to_panel`). The calibration is kept: cutting does not change the pixel size. InputError naming the file
    when the box reaches outside the image."""
    if box == AUTO_CROP:
        return crop_to_panel(recording)
    left, top, right, bottom = check_crop(recording.path, box, recording.image.shape)
    return replace(recording, image=recording.image[top:bottom, left:right].copy(), crop=tuple(box),
                   uncut_image=recording.image)


def crop_to_panel(recording):
    """`recording` cut to the M-mode panel `mmode.panel.find_panel` finds in its image, with `crop` set to the box
    and `crop_auto` True; left whole (`crop` None) when the panel is the whole image. The box is logged. InputError
    naming the file when no panel is found."""
    from mmode.panel import find_panel, surround_grey

    height, width = recording.image.shape
    box = find_panel(recording.image)
    if box is None:
        raise InputError(f"{recording.path}: --crop auto found no M-mode panel: no block of rows and columns of this "
                         f"{width} x {height} px image is mostly other than its surround's grey "
                         f"{surround_grey(recording.image)}; give the panel's box with --crop LEFT,TOP,RIGHT,BOTTOM")
    if box == (0, 0, width, height):
        log.info("%s: --crop auto: the image has no surround of one grey level, so the whole of it is analysed",
                 recording.path)
        return replace(recording, crop_auto=True, uncut_image=recording.image)
    left, top, right, bottom = box
    log.info("%s: --crop auto found the M-mode panel at %d,%d,%d,%d (left,top,right,bottom): %d columns by %d rows "
             "of the image's %d by %d", recording.path, *box, right - left, bottom - top, width, height)
    return replace(crop_recording(recording, box), crop_auto=True)


def cut_time(recording, start_s, end_s=None):
    """`recording` cut to the stretch from `start_s` to `end_s` (s from its first column; None: to its end), each
    rounded to the nearest column boundary, with `time_cut` set to the stretch kept. InputError naming the file
    when the stretch reaches past the recording's end or holds no whole column."""
    s_per_px = recording.calibration.s_per_px
    width = recording.image.shape[1]
    first, last = round(start_s / s_per_px), width if end_s is None else round(end_s / s_per_px)
    asked = f"the stretch from {start_s:g} s to {'the end' if end_s is None else f'{end_s:g} s'}"
    if last > width or first >= width:
        raise InputError(f"{recording.path}: {asked} reaches past the recording's end at {width * s_per_px:.3f} s "
                         f"({width} columns of {1000 * s_per_px:.4g} ms)")
    if last <= first:
        raise InputError(f"{recording.path}: {asked} holds no whole column of {1000 * s_per_px:.4g} ms")
    return replace(recording, image=recording.image[:, first:last].copy(),
                   time_cut=(first * s_per_px, last * s_per_px))


def check_crop(path, box, shape):
    """`box` = (left, top, right, bottom) if it lies inside an image of `shape` = (height, width), else InputError
    naming `path`."""
    left, top, right, bottom = box
    height, width = shape
    if right > width or bottom > height:
        raise InputError(f"{path}: --crop {left},{top},{right},{bottom} reaches outside the image, "
                         f"which is {width} columns by {height} rows (right <= {width}, bottom <= {height})")
    return tuple(box)


def to_uint8(values, bits=None):
    """Integer or float grey values -> uint8.

    8-bit data stays as it is. Deeper data is scaled by its bit depth: `bits` when the file declares it
    (DICOM BitsStored), otherwise the depth its largest value needs (at least 8), so a 12-bit image stored
    in 16 bits keeps its full contrast. Float data within [0, 1] (and no declared depth) is a fraction of white.
    """
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    if values.size == 0:
        return values.astype(np.uint8)
    is_fraction = bits is None and np.issubdtype(values.dtype, np.floating) and values.max() <= 1.0
    values = np.clip(values.astype(np.float64), 0, None)
    if is_fraction:
        return np.round(values * 255.0).astype(np.uint8)
    if bits is None:
        bits = max(8, int(values.max()).bit_length())
    full_scale = float(2 ** int(bits) - 1)
    return np.round(np.clip(values, 0, full_scale) * (255.0 / full_scale)).astype(np.uint8)


def rgb_to_grey(rgb):
    """(..., 3) RGB values -> (...) grey with the ITU-R 601 luma, same scale as the input (float)."""
    return np.asarray(rgb, dtype=np.float64)[..., :3] @ LUMA_601


def _pil_to_grey(image):
    """A PIL image of any mode -> uint8 (H, W)."""
    if image.mode in ("L", "LA", "La"):
        return np.asarray(image.getchannel(0), dtype=np.uint8)
    if image.mode.startswith("I") or image.mode == "F":
        return to_uint8(np.asarray(image))
    if image.mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    # RGB, RGBA, P, PA, CMYK, YCbCr, ...: through RGB (drops alpha, expands palettes).
    return to_uint8(rgb_to_grey(np.asarray(image.convert("RGB"))), bits=8)


def read_image(path):
    """Read a PNG, JPEG, TIFF or BMP file as a uint8 (H, W) grey image.

    Colour -> ITU-R 601 luma, 16-bit -> 8-bit by the data's bit depth, palette expanded, alpha dropped;
    a multi-page TIFF gives its first page. An unknown suffix or an unreadable file -> InputError naming it.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: unknown image type '{path.suffix}', expected one of {_listed(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            image.load()
            grey = _pil_to_grey(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from error
    if grey.ndim != 2 or grey.size == 0:
        raise InputError(f"{path}: not a 2-D image (shape {grey.shape})")
    return grey


def write_png(path, array_uint8):
    """Write a uint8 (H, W) array as a grey PNG; via a temporary name, so `path` is whole or absent."""
    array = np.asarray(array_uint8)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"write_png needs a 2-D uint8 array, got {array.dtype} {array.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(array).save(partial, format="PNG")
    partial.replace(path)
    return path


def recording_files(folder, collision="their result files would collide", recursive=False, skip=None):
    """The recording files (`is_recording_file`) directly in `folder`, or with `recursive` in it and all its
    sub-folders, sorted by their path within it; hidden files and folders, and anything inside `skip` (the output
    folder), left out. An InputError naming both files when two in one folder share a name (`recording_name`;
    `collision` says why that matters)."""
    folder = Path(folder)
    skip = None if skip is None else Path(skip).resolve()
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(path for path in candidates
                   if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
                   and (skip is None or not path.resolve().is_relative_to(skip)) and is_recording_file(path))
    names = {}
    for path in files:
        name = (path.parent, recording_name(path))
        if name in names:
            raise InputError(f"{path} and {names[name]} share the name '{name[1]}', so {collision}; rename one")
        names[name] = path
    return files


def check_recording_type(path):
    """InputError naming `path` unless it is a recording file (`is_recording_file`); a missing file is left to the
    reader, which says so."""
    path = Path(path)
    if path.suffix.lower() not in RECORDING_SUFFIXES and not is_dicom_file(path):
        raise InputError(f"{path}: unknown recording type '{path.suffix}', expected one of "
                         f"{_listed(RECORDING_SUFFIXES)} or a DICOM file of any name")


def read_recording(path, calibration=None, crop=None, time_range=None):
    """Read one recording (image file or DICOM) -> Recording, cut to `crop` (left, top, right, bottom) when given
    (`crop_recording`), then to `time_range` (start_s, end_s or None) when given (`cut_time`).

    Image files take `calibration` (Calibration() when None). A DICOM's own ultrasound-region calibration
    wins (source "dicom"); without a usable one it falls back to `calibration`, with a warning.
    """
    path = Path(path)
    fallback = calibration if calibration is not None else Calibration()
    check_recording_type(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        recording = Recording(read_image(path), fallback, path)
    else:
        image, dicom_calibration = read_dicom(path)
        if dicom_calibration is None:
            log.warning("%s: no usable M-mode calibration in the file, using %s (%.6g mm/px, %.6g s/px)",
                        path, fallback.source, fallback.mm_per_px, fallback.s_per_px)
            dicom_calibration = fallback
        recording = Recording(image, dicom_calibration, path)
    if crop is not None:
        recording = crop_recording(recording, crop)
    if time_range is not None:
        recording = cut_time(recording, *time_range)
    check_has_echoes(recording)
    return recording


def check_has_echoes(recording):
    """InputError naming the file when its image (or the crop of it) is one grey level throughout: a blank
    frame, or a crop box on a screenshot's margin. The network would still draw a cavity on it, and the beat
    detector beats on that cavity, so it is refused here rather than measured."""
    image = recording.image
    if image.size and image.min() == image.max():
        where = "" if recording.crop is None else " inside --crop {},{},{},{}".format(*recording.crop)
        if recording.time_cut is not None:
            where += " from {:.3f} to {:.3f} s".format(*recording.time_cut)
        raise InputError(f"{recording.path}: every pixel{where} has the grey level {int(image.min())}, so there "
                         f"are no echoes to measure (a blank image, or a crop box off the M-mode panel?)")


def read_dicom(path):
    """Read a DICOM M-mode recording -> (uint8 (H, W) long image, Calibration or None).

    Frames are converted to grey (RGB/YBR -> luma, MONOCHROME1 inverted, >8 bits scaled by BitsStored),
    cropped to the M-mode region of the Sequence of Ultrasound Regions, and, for a multi-frame scrolling
    display, stitched into one long image. The calibration is that region's (None when it has none usable).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable DICOM file ({error})") from error
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError(f"{path}: DICOM file has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom's decoders raise many types for unsupported or broken data
        syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None)
        detail = " ".join(str(error).split())  # one line: pydicom lists the plugins it lacks on lines of their own
        raise InputError(f"{path}: cannot decode the DICOM pixel data"
                         f"{'' if syntax is None else f' ({syntax.name})'}: {error.__class__.__name__}: {detail}"
                         f"{DECODER_HINT if 'plugins are missing' in detail else ''}") from error
    frames = _dicom_grey_frames(dataset, pixels, path)
    region = _m_mode_region(dataset, path)
    if region is not None:
        frames = _crop_to_region(frames, region, path)
    image = stitch_frames(frames, name=str(path))
    calibration = _region_calibration(region, path) if region is not None else None
    return image, calibration


def _dicom_grey_frames(dataset, pixels, path):
    """pydicom's pixel array (any frame count and sample count) -> uint8 (frames, H, W)."""
    samples = int(dataset.get("SamplesPerPixel", 1))
    n_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(dataset.get("BitsStored", dataset.get("BitsAllocated", 8)))
    frame_ndim = 3 if samples > 1 else 2
    if pixels.ndim == frame_ndim:
        pixels = pixels[np.newaxis]
    if pixels.ndim != frame_ndim + 1 or pixels.shape[0] != n_frames:
        raise InputError(f"{path}: unexpected DICOM pixel array shape {pixels.shape} "
                         f"for {n_frames} frame(s) of {samples} sample(s)")
    if samples == 3:
        # pydicom returns YBR_FULL / YBR_FULL_422 already converted to RGB (its default, not raw).
        return np.stack([to_uint8(rgb_to_grey(frame), bits=bits) for frame in pixels])
    if samples != 1:
        raise InputError(f"{path}: unsupported DICOM with {samples} samples per pixel")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"{path}: unsupported DICOM photometric interpretation {photometric}")
    grey = np.stack([to_uint8(frame, bits=bits) for frame in pixels])
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _m_mode_region(dataset, path):
    """The first region of the Sequence of Ultrasound Regions whose spatial format is M-mode, or None."""
    regions = dataset.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None
    for region in regions:
        if int(region.get("RegionSpatialFormat", -1)) == REGION_SPATIAL_FORMAT_M_MODE:
            return region
    formats = [int(region.get("RegionSpatialFormat", -1)) for region in regions]
    log.warning("%s: none of its %d ultrasound regions is M-mode (spatial formats %s), using the whole frame",
                path, len(regions), formats)
    return None


def _crop_to_region(frames, region, path):
    """Crop uint8 (frames, H, W) to the region's inclusive bounds MinX0..MaxX1, MinY0..MaxY1."""
    try:
        x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
        x1, y1 = int(region.RegionLocationMaxX1), int(region.RegionLocationMaxY1)
    except AttributeError:
        log.warning("%s: the M-mode region has no location, using the whole frame", path)
        return frames
    height, width = frames.shape[1:]
    clipped = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
    if clipped != (x0, y0, x1, y1):
        log.warning("%s: M-mode region (%d, %d)-(%d, %d) reaches beyond the %dx%d frame, clipped",
                    path, x0, y0, x1, y1, width, height)
    x0, y0, x1, y1 = clipped
    if x1 < x0 or y1 < y0:
        raise InputError(f"{path}: the M-mode region lies outside the {width}x{height} frame")
    return frames[:, y0:y1 + 1, x0:x1 + 1]


def _region_calibration(region, path):
    """Calibration from an M-mode region: PhysicalDeltaY in cm (x10 -> mm), PhysicalDeltaX in s; None if unusable."""
    units_x = int(region.get("PhysicalUnitsXDirection", -1))
    units_y = int(region.get("PhysicalUnitsYDirection", -1))
    delta_x = abs(float(region.get("PhysicalDeltaX", 0) or 0))
    delta_y = abs(float(region.get("PhysicalDeltaY", 0) or 0))
    if units_x != PHYSICAL_UNITS_SECONDS or units_y != PHYSICAL_UNITS_CM:
        log.warning("%s: M-mode region units are x=%d, y=%d (expected 4 = seconds, 3 = cm)", path, units_x, units_y)
        return None
    if not (delta_x > 0 and delta_y > 0):
        log.warning("%s: M-mode region has no physical pixel size (PhysicalDeltaX=%g, PhysicalDeltaY=%g)",
                    path, delta_x, delta_y)
        return None
    return Calibration(mm_per_px=delta_y * 10.0, s_per_px=delta_x, source="dicom")


def stitch_frames(frames, name="recording"):
    """Stitch the frames of an M-mode display, uint8 (F, H, W), into one long uint8 (H, W') image.

    A sweep display (`sweep_band`, SWEEP_MIN_SHARE) is unwound by `unsweep_frames`. Otherwise the display scrolls:
    each frame is matched against the previous one: the shift s (columns scrolled) is the one with the
    smallest mean absolute difference between frame[:, :W-s] and previous[:, s:], tried over the best
    candidates of an FFT sum-of-squared-differences search. Only the last s columns are appended; s = 0
    (an identical frame) appends nothing; a frame without a plausible overlap is appended whole, with a warning.
    """
    frames = np.asarray(frames)
    bands = [sweep_band(frames[index - 1], frames[index]) for index in range(1, len(frames))]
    alike = [np.array_equal(frames[index - 1], frames[index]) for index in range(1, len(frames))]
    differing = alike.count(False)
    if differing and sum(band is not None for band in bands) >= max(2, SWEEP_MIN_SHARE * differing):
        return unsweep_frames(frames, bands, alike, name)
    pieces = [frames[0]]
    for index in range(1, len(frames)):
        shift = scroll_shift(frames[index - 1], frames[index])
        if shift is None:
            log.warning("%s: frame %d does not overlap frame %d, appended whole", name, index, index - 1)
            pieces.append(frames[index])
        elif shift > 0:
            pieces.append(frames[index][:, -shift:])
    return np.ascontiguousarray(np.concatenate(pieces, axis=1))


def sweep_band(previous, frame):
    """(start, length) of the cyclic band of columns in which `frame` differs from `previous`, every other column as
    it was: what a sweep display redrew between them (SWEEP_ constants); None when the frames are alike or differ
    otherwise (a scrolled display changes every column). The band runs from the first changed column after the
    longest cyclic run of unchanged ones to the last before it: a column redrawn with what looks like its old
    content (a static depth, a cavity as dark as before) still lies inside it."""
    change = np.abs(frame.astype(np.int16) - previous).mean(axis=0)
    if change.max() <= STITCH_MAX_MEAN_ABS_DIFF:
        return None
    changed = change > max(STITCH_MAX_MEAN_ABS_DIFF, SWEEP_CHANGE_SHARE * change.max())
    width = changed.size
    origin = int(np.argmax(changed))  # a changed column: from it, no run of unchanged ones wraps around
    rolled = np.roll(changed, -origin)
    edges = np.flatnonzero(np.diff(np.concatenate(([1], rolled.astype(np.int8), [1]))))  # unchanged runs' bounds
    gaps = edges.reshape(-1, 2)  # [start, stop) of each run of unchanged columns
    if gaps.size == 0:
        return None
    gap_start, gap_stop = gaps[np.argmax(gaps[:, 1] - gaps[:, 0])]
    start, length = (origin + int(gap_stop)) % width, width - int(gap_stop - gap_start)
    # its ends trimmed to columns that changed clearly: a JPEG's ringing reaches a few columns past the redrawn ones
    band_change = change[(start + np.arange(length)) % width]
    clear = np.flatnonzero(band_change > SWEEP_END_SHARE * change.max())
    start, length = (start + int(clear[0])) % width, int(clear[-1] - clear[0] + 1)
    if length > SWEEP_MAX_BAND_FRACTION * width or changed.sum() < SWEEP_MIN_CHANGED_SHARE * length:
        return None
    return start, length


def _blank_columns(image):
    """Bool (W,): columns of about one grey from top to bottom (SWEEP_BLANK_RANGE): an erase bar, or display not
    written yet."""
    return np.ptp(image, axis=0) <= SWEEP_BLANK_RANGE


def unsweep_frames(frames, bands, alike, name="recording"):
    """One long uint8 (H, W') image from a sweep display's frames (F, H, W), `bands` the `sweep_band` of each frame
    against the one before (None where none was found), `alike` whether it equals the one before. The first frame is
    read from its write head, where the first band starts (oldest columns first), the columns written since from
    each band in turn; blank columns (`_blank_columns`) are left out: the erase bar, and a first sweep's part not
    written yet. A frame that changed otherwise than by a band is skipped, with a warning."""
    width = frames.shape[2]
    head = next(band[0] for band in bands if band is not None)
    first = frames[0][:, (head + np.arange(width)) % width]
    pieces = [first[:, ~_blank_columns(first)]]
    for index, band in enumerate(bands, start=1):
        if band is None:
            if not alike[index - 1]:
                log.warning("%s: frame %d of a sweep display did not redraw one band of frame %d, skipped", name,
                            index, index - 1)
            continue
        start, length = band
        written = frames[index][:, (start + np.arange(length)) % width]
        blank = _blank_columns(written)
        trailing = int(np.argmin(blank[::-1])) if not blank.all() else length  # the erase bar ends the band
        pieces.append(written[:, :length - trailing])
    log.info("%s: the frames are a sweep display (the trace redrawn in place), unwound to %d columns", name,
             sum(piece.shape[1] for piece in pieces))
    return np.ascontiguousarray(np.concatenate(pieces, axis=1))


def scroll_shift(previous, frame):
    """Columns the display scrolled from `previous` to `frame` (both (H, W)), or None without a plausible overlap.

    A shift s means frame[:, :W-s] equals previous[:, s:], exactly or up to compression noise (see the
    STITCH_ constants).
    """
    height, width = frame.shape
    max_shift = width - max(1, int(np.ceil(width * STITCH_MIN_OVERLAP_FRACTION)))
    shifts = np.arange(max_shift + 1)
    msd = _overlap_mean_squared_difference(previous.astype(np.float64), frame.astype(np.float64))[: max_shift + 1]
    candidates = shifts[np.argsort(msd, kind="stable")[:STITCH_CANDIDATES]]
    mad = np.array([np.abs(frame[:, :width - s].astype(np.int16) - previous[:, s:]).mean() for s in candidates])
    best = int(np.argmin(mad))
    near_exact = mad[best] <= STITCH_MAX_MEAN_ABS_DIFF
    stands_out = msd[candidates[best]] <= STITCH_MAX_RELATIVE_RMS ** 2 * np.median(msd)
    if not (near_exact or stands_out):
        return None
    # Among equally good shifts keep the smallest (an identical frame is shift 0, not a full period later).
    return int(candidates[mad <= mad[best]].min())


def _overlap_mean_squared_difference(previous, frame):
    """For every shift s in 0..W-1: mean of (frame[:, :W-s] - previous[:, s:])**2, all shifts at once by FFT."""
    height, width = frame.shape
    n_fft = 2 * width
    # cross[s] = sum over rows and j of frame[:, j] * previous[:, j + s]
    spectrum = (np.conj(np.fft.rfft(frame, n_fft, axis=1)) * np.fft.rfft(previous, n_fft, axis=1)).sum(axis=0)
    cross = np.fft.irfft(spectrum, n_fft)[:width]
    frame_energy = np.concatenate([[0.0], np.cumsum((frame ** 2).sum(axis=0))])
    previous_energy = np.cumsum(((previous ** 2).sum(axis=0))[::-1])[::-1]
    shifts = np.arange(width)
    overlap = width - shifts
    ssd = frame_energy[overlap] + previous_energy[shifts] - 2.0 * cross
    return np.maximum(ssd, 0.0) / (height * overlap)


def _listed(suffixes):
    return ", ".join(sorted(suffixes))
