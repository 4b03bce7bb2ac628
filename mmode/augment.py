"""Augmentation for `run.py --augment`: torchvision `transforms.v2` on image and mask together.

The model is trained on simulated recordings and must work on real ones, which differ in gain,
contrast, gamma, depth attenuation, speckle size, noise and blur; the photometric steps below draw
each of these at random, on the image only (v2 passes `tv_tensors.Mask` through them). The geometric
steps move image and mask together: time flips (a beat read backwards is still a beat), small
vertical shifts (depth of the heart) and scaling by 0.85-1.15 (heart size, heart rate); the mask is
resampled by nearest neighbour, so it stays 0/1.

Imported only when augmentation is asked for (torch and torchvision load with it). Arithmetic on a
tv_tensor returns a plain tensor, so the custom steps wrap their results back into the input's type.
"""
import math

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

MAX_SHIFT_FRACTION = 0.08  # of the image height
SCALE_RANGE = (0.85, 1.15)
# The photometric steps' ranges (`run.py --augment`), and the wider ones of `--wide-photometric`: about twice
# each range on a log scale (gamma 0.6-1.6 -> 0.4-2.5), grain up to 6 rows, noise of a drawn SD rather than a
# fixed one. `bench/robustness.py` measured the shipped model losing accuracy past the default ranges.
PHOTOMETRIC_RANGES = dict(speckle_sigma=(0.05, 0.35), speckle_grain_rows_px=(1, 4), gamma=(0.6, 1.6),
                          blur_sigma_px=(0.3, 1.5), noise_sd=(0.04, 0.04))
# `RandomWallGain`'s band, in fractions of the image height (a window is the recording's height, 4-9 mm of
# depth; a mouse's walls are 0.6-1.2 mm thick, a tenth to a fifth of it)
WALL_BAND_THICKNESS, WALL_BAND_FADE = (0.06, 0.14), 0.05
WALL_BAND_CAVITY, WALL_BAND_CAVITY_FADE = 0.005, 0.015
WIDE_PHOTOMETRIC_RANGES = dict(speckle_sigma=(0.05, 0.7), speckle_grain_rows_px=(1, 6), gamma=(0.4, 2.5),
                               blur_sigma_px=(0.3, 2.5), noise_sd=(0.0, 0.12))


class RandomGamma(v2.Transform):
    """image ** gamma with log(gamma) uniform in log(`gamma_range`); the image clamped to [0, 1] first."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, gamma_range=(0.6, 1.6)):
        super().__init__()
        self.log_gamma_range = (math.log(gamma_range[0]), math.log(gamma_range[1]))

    def make_params(self, flat_inputs):
        return {"gamma": math.exp(torch.empty(1).uniform_(*self.log_gamma_range).item())}

    def transform(self, inpt, params):
        return tv_tensors.wrap(inpt.clamp(0.0, 1.0) ** params["gamma"], like=inpt)


class RandomDepthGain(v2.Transform):
    """Multiply by a linear ramp over depth (rows), 1 at the top and `end_gain` at the bottom:
    a time-gain-compensation setting or attenuation different from the training data's."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, end_gain_range=(0.6, 1.4)):
        super().__init__()
        self.end_gain_range = end_gain_range

    def make_params(self, flat_inputs):
        return {"end_gain": torch.empty(1).uniform_(*self.end_gain_range).item()}

    def transform(self, inpt, params):
        height_px = inpt.shape[-2]
        ramp = torch.linspace(1.0, params["end_gain"], height_px, dtype=inpt.dtype, device=inpt.device)
        return tv_tensors.wrap(inpt * ramp[:, None], like=inpt)


class _MultiplyByFactor(v2.Transform):
    """Base of the steps that multiply the image by a drawn map: `make_params` returns {"factor": map}."""

    _transformed_types = (tv_tensors.Image,)

    def transform(self, inpt, params):
        return tv_tensors.wrap(inpt * params["factor"].to(device=inpt.device, dtype=inpt.dtype), like=inpt)


class RandomSpeckle(_MultiplyByFactor):
    """Multiplicative log-normal speckle (mean 1) of random strength and grain size.

    The grain is `grain_rows_px` rows by `streak_ratio` times as many columns: M-mode speckle forms
    horizontal streaks because tissue at one depth echoes alike from column to column.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, sigma_range=(0.05, 0.35), grain_rows_px=(1, 4), streak_ratio=(2.0, 8.0)):
        super().__init__()
        self.sigma_range = sigma_range
        self.grain_rows_px = grain_rows_px
        self.streak_ratio = streak_ratio

    def make_params(self, flat_inputs):
        height_px, width_px = v2.query_size(flat_inputs)
        rows_px = int(torch.randint(self.grain_rows_px[0], self.grain_rows_px[1] + 1, (1,)).item())
        cols_px = rows_px * torch.empty(1).uniform_(*self.streak_ratio).item()
        sigma = torch.empty(1).uniform_(*self.sigma_range).item()
        grain = torch.randn(1, 1, max(1, math.ceil(height_px / rows_px)), max(1, math.ceil(width_px / cols_px)))
        noise = torch.nn.functional.interpolate(grain, size=(height_px, width_px), mode="bilinear",
                                                align_corners=False)[0]
        return {"factor": torch.exp(sigma * noise - 0.5 * sigma ** 2)}


class RandomGainField(_MultiplyByFactor):
    """Multiply by a smooth random gain field over depth and time: log-gain = s x field, s uniform in
    [0, `max_sd`], the field bicubically interpolated from a coarse grid of standard normals (3-8 intervals,
    so 4-9 knots, over depth; 1-3 intervals over time). Walls, pericardium and echoes in the cavity then come
    out brighter or darker against each other than in the simulator, not only all together as with a global
    gain."""

    def __init__(self, max_sd, depth_knots=(3, 8), time_knots=(1, 3)):
        super().__init__()
        self.max_sd = float(max_sd)
        self.depth_knots = depth_knots
        self.time_knots = time_knots

    def make_params(self, flat_inputs):
        height_px, width_px = v2.query_size(flat_inputs)
        rows = int(torch.randint(self.depth_knots[0], self.depth_knots[1] + 1, (1,)).item())
        cols = int(torch.randint(self.time_knots[0], self.time_knots[1] + 1, (1,)).item())
        grid = torch.randn(1, 1, rows + 1, cols + 1)  # + 1: at least two knots each way to interpolate between
        field = torch.nn.functional.interpolate(grid, size=(height_px, width_px), mode="bicubic",
                                                align_corners=True)[0]
        sd = torch.empty(1).uniform_(0.0, self.max_sd).item()
        return {"factor": torch.exp(sd * field)}


class RandomWallGain(v2.Transform):
    """The walls' echoes stronger or weaker than the rest of the image, each wall by its own gain: the grey above
    the image's black level (its 1st percentile) times g over the band the mask puts each wall in, g drawn
    log-uniformly in [1 / `max_gain`, `max_gain`] for the septum and the posterior wall apart.

    The band of each wall runs from `WALL_BAND_CAVITY` of the image height inside the cavity (where a wall's echo
    spreads) to a thickness drawn in `WALL_BAND_THICKNESS` beyond the mask's border, then fades to no change by a
    raised cosine over `WALL_BAND_FADE` (into the tissue) and `WALL_BAND_CAVITY_FADE` (into the cavity), so the
    step draws no edge of its own; a wall is the band of the cavity's upper border above the middle of the cavity,
    of its lower border below. Columns without cavity are left as they are. The global gain, the depth gain and
    the smooth gain field change every tissue together or by depth; this one is the issue's "wall brightness",
    where the model measured worst (`bench/robustness.py` `wall=0.5`, README "When recordings look otherwise")."""

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)  # the mask too, so that make_params sees it

    def __init__(self, max_gain):
        super().__init__()
        if max_gain < 1:
            raise ValueError(f"the most wall gain {max_gain} must be at least 1")
        self.log_max = math.log(float(max_gain))

    def make_params(self, flat_inputs):
        masks = [inpt for inpt in flat_inputs if isinstance(inpt, tv_tensors.Mask)]
        if not masks:
            raise ValueError("RandomWallGain places the walls by the mask: pass the mask with the image")
        cavity = masks[0].reshape(masks[0].shape[-2:]) > 0.5
        height_px = cavity.shape[0]
        rows = torch.arange(height_px, dtype=torch.float32)[:, None]
        present = cavity.any(dim=0)
        upper = torch.where(present, cavity.float().argmax(dim=0).float(), 0.0)
        lower = torch.where(present, height_px - 1 - cavity.flip(0).float().argmax(dim=0).float(), 0.0)
        middle = (upper + lower) / 2
        thickness = torch.empty(1).uniform_(*WALL_BAND_THICKNESS).item() * height_px
        gains = torch.exp(torch.empty(2).uniform_(-self.log_max, self.log_max))
        factor = torch.ones(cavity.shape)
        # depth: rows into the wall beyond the cavity's last row on that side (1 = the first wall row)
        for depth, side, gain in ((upper - rows, rows < middle, gains[0]), (rows - lower, rows >= middle, gains[1])):
            fade = torch.maximum((-WALL_BAND_CAVITY * height_px - depth) / (WALL_BAND_CAVITY_FADE * height_px),
                                 (depth - thickness) / (WALL_BAND_FADE * height_px))
            band = 0.5 * (1.0 + torch.cos(math.pi * fade.clamp(0.0, 1.0)))
            factor = torch.where(side & present, factor + (gain - 1.0) * band, factor)
        return {"factor": factor}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Mask):
            return inpt
        factor = params["factor"].to(device=inpt.device, dtype=inpt.dtype)
        floor = torch.quantile(inpt.flatten().float(), 0.01).to(inpt.dtype)
        return tv_tensors.wrap(floor + (inpt - floor) * factor, like=inpt)


class RandomAxialBloom(v2.Transform):
    """Blur along depth in echo amplitude, not in grey: the grey g (0..1) read as a log-compressed echo of
    a drawn dynamic range, amplitude 10^((g - 1) range / 20), blurred by a Gaussian of sigma drawn up to
    `max_sigma_px` rows, compressed back. A bright wall's echo then spreads into the dark cavity by about two
    sigmas, as a longer pulse's does on a scanner, while the mask stays at the blood-tissue interface."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, max_sigma_px, range_db=(30.0, 60.0)):
        super().__init__()
        self.max_sigma_px = float(max_sigma_px)
        self.range_db = range_db

    def make_params(self, flat_inputs):
        sigma_px = torch.empty(1).uniform_(0.3, max(0.3, self.max_sigma_px)).item()
        radius = math.ceil(3 * sigma_px)
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (taps / sigma_px) ** 2)
        return {"kernel": kernel / kernel.sum(), "range_db": torch.empty(1).uniform_(*self.range_db).item()}

    def transform(self, inpt, params):
        kernel, range_db = params["kernel"].to(device=inpt.device, dtype=inpt.dtype), params["range_db"]
        amplitude = 10.0 ** ((inpt.clamp(0.0, 1.0) - 1.0) * range_db / 20.0)
        radius = kernel.numel() // 2
        # each channel as a one-channel image, a column kernel, rows past the edges held
        padded = torch.nn.functional.pad(amplitude.unsqueeze(-3), (0, 0, radius, radius), mode="replicate")
        blurred = torch.nn.functional.conv2d(padded, kernel.view(1, 1, -1, 1)).squeeze(-3)
        grey = 1.0 + 20.0 * torch.log10(blurred.clamp_min(1e-12)) / range_db
        return tv_tensors.wrap(grey.clamp(0.0, 1.0), like=inpt)


class RandomNoise(v2.Transform):
    """Gaussian noise added to the image, its SD drawn uniformly in `sd_range`."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, sd_range):
        super().__init__()
        self.sd_range = sd_range

    def make_params(self, flat_inputs):
        return {"sd": torch.empty(1).uniform_(*self.sd_range).item()}

    def transform(self, inpt, params):
        return tv_tensors.wrap(inpt + params["sd"] * torch.randn_like(inpt), like=inpt)


class ClampImage(v2.Transform):
    """Clamp the image to [0, 1] after the photometric steps."""

    _transformed_types = (tv_tensors.Image,)

    def transform(self, inpt, params):
        return tv_tensors.wrap(inpt.clamp(0.0, 1.0), like=inpt)


class PairAugmentation:
    """(image, mask) float tensors (1, S, S) -> the same, augmented together.

    `transforms` is the v2 pipeline; it sees the image as `tv_tensors.Image` and the mask as
    `tv_tensors.Mask`, and the results come back as plain tensors.
    """

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, image, mask):
        image, mask = self.transforms(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def geometric_transforms():
    """The steps applied to image and mask alike: time flip, vertical shift, scaling."""
    return [
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomAffine(degrees=0, translate=(0.0, MAX_SHIFT_FRACTION), scale=SCALE_RANGE,
                        interpolation=v2.InterpolationMode.BILINEAR, fill=0),
    ]


def photometric_transforms(gain_field=None, axial_bloom=None, wide=False, wall_gain=None):
    """The steps applied to the image only: (with `wall_gain`, the most gain of a RandomWallGain) the walls'
    brightness, depth gain, (with `gain_field`, the most log-gain SD of a RandomGainField) a smooth gain field,
    (with `axial_bloom`, the most sigma in rows of a RandomAxialBloom) blur in echo amplitude along depth,
    speckle, gain and contrast, gamma, blur, noise; drawn within `PHOTOMETRIC_RANGES`, or with `wide` within
    `WIDE_PHOTOMETRIC_RANGES`."""
    ranges = WIDE_PHOTOMETRIC_RANGES if wide else PHOTOMETRIC_RANGES
    walls = [] if wall_gain is None else [v2.RandomApply([RandomWallGain(wall_gain)], p=0.5)]
    field = [] if gain_field is None else [v2.RandomApply([RandomGainField(gain_field)], p=0.7)]
    bloom = [] if axial_bloom is None else [v2.RandomApply([RandomAxialBloom(axial_bloom)], p=0.5)]
    low_sd, high_sd = ranges["noise_sd"]
    # a fixed SD keeps torchvision's step (and the random draws of the recipes trained with it)
    noise = v2.GaussianNoise(sigma=low_sd) if low_sd == high_sd else RandomNoise((low_sd, high_sd))
    blur_sigma = ranges["blur_sigma_px"]
    return [
        *walls,
        v2.RandomApply([RandomDepthGain()], p=0.5),
        *field,
        *bloom,
        v2.RandomApply([RandomSpeckle(ranges["speckle_sigma"], ranges["speckle_grain_rows_px"])], p=0.5),
        v2.ColorJitter(brightness=0.4, contrast=0.4),
        v2.RandomApply([RandomGamma(ranges["gamma"])], p=0.5),
        # the wide blur's kernel 3 sigmas either side; the default's 7 taps as the shipped models were trained
        v2.RandomApply([v2.GaussianBlur(kernel_size=2 * math.ceil(3 * blur_sigma[1]) + 1 if wide else 7,
                                        sigma=blur_sigma)], p=0.3),
        v2.RandomApply([noise], p=0.4),
        ClampImage(),
    ]


def build_augmentation(gain_field=None, axial_bloom=None, wide_photometric=False, wall_gain=None):
    """The `--augment` pipeline: a PairAugmentation of the geometric, then the photometric steps
    (`gain_field`: `--gain-field`, the smooth gain field's most log-gain SD; `axial_bloom`: `--axial-bloom`,
    the amplitude blur's most sigma in rows; `wall_gain`: `--wall-gain`, the walls' most gain; None leaves
    each out; `wide_photometric`: `--wide-photometric`, the wider ranges)."""
    return PairAugmentation(v2.Compose(geometric_transforms()
                                       + photometric_transforms(gain_field, axial_bloom, wide_photometric,
                                                                wall_gain)))
