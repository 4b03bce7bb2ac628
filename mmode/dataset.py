"""The training data set: `img/` and `mask/` folders with identical PNG names, checked up front.

Layout: `DATA/img/<name>.png` (grey or colour M-mode windows) and `DATA/mask/<name>.png` (the LV cavity).
Names `<recording>_win<k>.png` tie a window to its recording, so training and validation can be split
by recording (overlapping windows of one recording would otherwise leak between them).

Mask rule: a mask whose values are all 0 or 1 is used as it is; any other mask is thresholded, pixels
>= 128 -> 1 (cavity) and < 128 -> 0, so 0/255 masks (what `python -m preprocess` writes) and 0/1 masks
both work. Masks with a few other values (anti-aliased edges, JPEG-like noise) are thresholded the same way,
with a warning naming them. What thresholding would turn into nonsense is refused (`mask_problem`): a label
image of small integers (0, 1, 2, ...: nothing reaches 128, so the mask would come out empty) and a grey
image (fewer than NEAR_BINARY_SHARE of its pixels near black or white: an echo image in mask/). Files are
read with `mmode.io.read_image` (colour -> grey, 16-bit -> 8-bit), masks included.
"""
import logging
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image

from mmode.errors import InputError
from mmode.io import read_image

MASK_THRESHOLD = 128
# A mask that is not plain 0/1 or 0/255 must still have this share of its pixels within NEAR_BINARY_GREY grey levels
# of 0 or 255: masks saved as JPEG of quality 50-90 have 99-100 %, a 40-row mask with two anti-aliased rows at each
# edge 90 %, the example recordings' images 54-56 %.
NEAR_BINARY_SHARE = 0.85
NEAR_BINARY_GREY = 32

_WINDOW_NAME = re.compile(r"^(?P<recording>.+)_win\d+$")

log = logging.getLogger(__name__)


def recording_of(name):
    """The recording a window belongs to: `rec_a` for `rec_a_win3.png`; None for a name without `_win<k>`."""
    match = _WINDOW_NAME.match(Path(name).stem)
    return match.group("recording") if match else None


def binarise_mask(mask):
    """uint8 (H, W) mask -> uint8 0/1 (H, W) by the module's rule (0/1 kept, otherwise >= 128 -> 1)."""
    if mask.max(initial=0) <= 1:
        return mask.astype(np.uint8)
    return (mask >= MASK_THRESHOLD).astype(np.uint8)


def _is_plain_binary(mask):
    """True when the mask holds only {0, 1} or only {0, 255}: thresholding changes nothing."""
    return bool(np.isin(mask, (0, 1)).all() or np.isin(mask, (0, 255)).all())


def mask_problem(mask):
    """Why the uint8 mask (H, W) cannot be thresholded into a cavity mask (the module's rule), or None when it can:
    a label image (values above 1, none reaching MASK_THRESHOLD) or a grey image (NEAR_BINARY_SHARE)."""
    if _is_plain_binary(mask):
        return None
    values = np.unique(mask)
    if values.max() < MASK_THRESHOLD:
        shown = ", ".join(str(value) for value in values[:6]) + (", ..." if values.size > 6 else "")
        return (f"holds the values {shown}, none reaching {MASK_THRESHOLD}: a label image? A mask holds 0 and 255 "
                f"(or 0 and 1), the cavity 255")
    near = np.mean((mask <= NEAR_BINARY_GREY) | (mask >= 255 - NEAR_BINARY_GREY))
    if near < NEAR_BINARY_SHARE:
        return (f"is not a mask: only {100 * near:.0f} % of its pixels are black or white (within "
                f"{NEAR_BINARY_GREY} grey levels), a mask has at least {100 * NEAR_BINARY_SHARE:.0f} %; an image "
                f"saved in mask/?")
    return None


def _png_names(folder):
    return {path.name for path in folder.iterdir()
            if path.is_file() and path.suffix.lower() == ".png" and not path.name.startswith(".")}


def check_dataset(folder):
    """Check the data set in `folder` and return its sorted PNG names.

    Raises InputError naming the file for: a missing `folder`, `img/` or `mask/`; no PNG in `img/`;
    an image without its mask or a mask without its image; an unreadable file; an image and mask of
    different sizes; a mask that is no mask (`mask_problem`). Masks that are not plain 0/1 or 0/255 are
    thresholded (module docstring), with one warning that names them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: data folder not found")
    img_dir, mask_dir = folder / "img", folder / "mask"
    for sub_dir in (img_dir, mask_dir):
        if not sub_dir.is_dir():
            raise InputError(f"{sub_dir}: folder not found (a data set holds img/ and mask/ with identical PNG names)")
    image_names, mask_names = _png_names(img_dir), _png_names(mask_dir)
    if not image_names:
        raise InputError(f"{img_dir}: no PNG images")
    for missing, have_dir, lack_dir, kind in ((sorted(image_names - mask_names), img_dir, mask_dir, "mask"),
                                              (sorted(mask_names - image_names), mask_dir, img_dir, "image")):
        if missing:
            more = f"; {len(missing)} {kind}s missing in all" if len(missing) > 1 else ""
            raise InputError(f"{lack_dir / missing[0]}: missing, the {kind} for {have_dir / missing[0]}{more}")

    names = sorted(image_names)
    grey_masks = []
    for name in names:
        image = read_image(img_dir / name)
        mask = read_image(mask_dir / name)
        if image.shape != mask.shape:
            raise InputError(f"{mask_dir / name}: size {mask.shape[1]}x{mask.shape[0]} px differs from its image's "
                             f"{image.shape[1]}x{image.shape[0]} px")
        if not _is_plain_binary(mask):
            problem = mask_problem(mask)
            if problem is not None:
                raise InputError(f"{mask_dir / name}: {problem}")
            grey_masks.append(name)
    log.info("Checked %d image/mask pairs in %s", len(names), folder)
    if grey_masks:
        shown = ", ".join(grey_masks[:3]) + (", ..." if len(grey_masks) > 3 else "")
        log.warning("%d mask(s) in %s are not plain 0/255 or 0/1 (%s): thresholded at %d",
                    len(grey_masks), mask_dir, shown, MASK_THRESHOLD)
    return names


class SegmentationDataset:
    """Image/mask pairs of a checked data set, resized to `img_size` rows by `img_width` columns
    (default `img_width` = `img_size`: square).

    `names`: the PNG names to use (a subset chosen by the caller, already checked); None checks the
    folder with `check_dataset` and uses all of it. `augment`: apply `mmode.augment.build_augmentation()`
    to every pair as it is read.

    A narrower width than height compresses time: the same pixel count then resolves depth (where
    LVID is measured) more finely.

    `crop_width`: columns of a random stretch of each (augmented) pair to return instead of all
    `img_width` (training at a finer time scale for the cost of `crop_width` columns); None: all.

    `time_stretch` F (with `crop_width`): each pair is resized to round(img_width x f) columns instead, f drawn
    log-uniform in [1/F, F] (torch's generator), at least `crop_width`, before augmentation and the crop: the
    network sees each beat at many time scales.

    `gain_field` (with `augment`): the most log-gain SD of the augmentation's smooth random gain field
    (`mmode.augment.RandomGainField`); `axial_bloom` (with `augment`): the most sigma (rows) of its blur in
    echo amplitude along depth (`mmode.augment.RandomAxialBloom`); None leaves either step out.
    `wide_photometric` (with `augment`): the photometric steps drawn within `mmode.augment.WIDE_PHOTOMETRIC_RANGES`.
    `wall_gain` (with `augment`): the most gain of the walls' brightness (`mmode.augment.RandomWallGain`), None
    leaves it out.

    Item i -> (image, mask): float32 torch tensors (1, img_size, img_width or crop_width); the image grey in [0, 1]
    (resized bilinearly), the mask 0/1 (resized by nearest neighbour, so it stays binary). With `soft_masks`,
    the mask is area-averaged instead: each value is the fraction of that pixel inside the cavity, so
    a border's sub-pixel position survives the resizing (for training targets; metrics want 0/1).
    """

    def __init__(self, folder, img_size, augment=False, names=None, soft_masks=False, img_width=None,
                 crop_width=None, time_stretch=None, gain_field=None, axial_bloom=None, wide_photometric=False,
                 wall_gain=None):
        self.folder = Path(folder)
        self.img_size = int(img_size)
        self.img_width = self.img_size if img_width is None else int(img_width)
        self.crop_width = None if crop_width is None or int(crop_width) >= self.img_width else int(crop_width)
        if self.crop_width is not None and self.crop_width < 1:
            raise ValueError(f"crop width {crop_width} px must be positive")
        self.soft_masks = bool(soft_masks)
        self.time_stretch = None if time_stretch is None else float(time_stretch)
        if self.time_stretch is not None and (self.crop_width is None or self.time_stretch < 1):
            raise ValueError(f"time stretch {time_stretch} needs a crop width and must be at least 1")
        self.names = list(check_dataset(self.folder) if names is None else names)
        if (gain_field is not None or axial_bloom is not None or wide_photometric or wall_gain is not None) \
                and not augment:
            raise ValueError("a gain field, an axial bloom, wide photometric ranges or a wall gain: each is part of "
                             "the augmentation, which needs augment")
        self.gain_field = None if gain_field is None else float(gain_field)
        self.axial_bloom = None if axial_bloom is None else float(axial_bloom)
        self.wide_photometric = bool(wide_photometric)
        self.wall_gain = None if wall_gain is None else float(wall_gain)
        if augment:
            from mmode.augment import build_augmentation

            self.augmentation = build_augmentation(self.gain_field, self.axial_bloom, self.wide_photometric,
                                                   self.wall_gain)
        else:
            self.augmentation = None

    def __len__(self):
        return len(self.names)

    def read_pair(self, index, width=None):
        """Pair `index` as numpy float32 (img_size, `width` or img_width): image in [0, 1], mask 0/1 (or
        fractions with `soft_masks`), before augmentation."""
        name = self.names[index]
        size = (self.img_width if width is None else int(width), self.img_size)  # PIL sizes are (width, height)
        image = Image.fromarray(read_image(self.folder / "img" / name)).resize(size, Image.Resampling.BILINEAR)
        mask = binarise_mask(read_image(self.folder / "mask" / name))
        if self.soft_masks:
            mask = Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BOX)
        else:
            mask = Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)
        return np.asarray(image, dtype=np.float32) / 255.0, np.array(mask, dtype=np.float32)

    def __getitem__(self, index):
        import torch

        width = None
        if self.time_stretch is not None:
            log_f = (2 * float(torch.rand(())) - 1) * math.log(self.time_stretch)
            width = max(self.crop_width, round(self.img_width * math.exp(log_f)))
        image, mask = (torch.from_numpy(array).unsqueeze(0) for array in self.read_pair(index, width))
        if self.augmentation is not None:
            image, mask = self.augmentation(image, mask)
        if self.crop_width is not None:
            start = int(torch.randint(image.shape[-1] - self.crop_width + 1, ()))
            image, mask = (array[..., start:start + self.crop_width] for array in (image, mask))
        return image, mask
