"""A lab's border convention: constant depth offsets (mm) added to the model's two cavity borders.

Readers place the endocardial border at different depths within an echo's blur (its leading edge, its
half-way point, the image's visible edge), and the shipped models learnt one simulator's choice, so a lab
whose readers measure otherwise sees the model's LVID off by a near-constant amount (README, "Your lab's
border convention"). `bench/accuracy.py --fit-offsets` measures that amount on a lab's own measured
recordings; `test.py --border-offsets` adds it to every border before anything is measured.

Offsets are outward: a positive `upper_mm` moves the upper (septal) border up, a positive `lower_mm` the lower
(posterior) border down, both widening the cavity; LVID grows by their sum.
"""
import json
from dataclasses import dataclass

import numpy as np

from mmode.errors import InputError
from mmode.measure import without_crossed

# Larger offsets than this are not a convention but a model that reads the recordings wrongly: refused.
MAX_OFFSET_MM = 0.5


# BorderOffsets.refiner_sha256 of a file that does not say which refiner, if any, the offsets were fitted behind
REFINER_NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class BorderOffsets:
    """Outward offsets of the upper and lower cavity border in mm; `model_sha256` the segmentation checkpoint
    they were fitted behind (None: not recorded); `refiner_sha256` the border refiner's (None: fitted without
    one; REFINER_NOT_RECORDED)."""

    upper_mm: float
    lower_mm: float
    model_sha256: str = None
    refiner_sha256: str = REFINER_NOT_RECORDED

    @property
    def lvid_mm(self):
        """What the offsets add to every LVID."""
        return self.upper_mm + self.lower_mm


def read_border_offsets(path):
    """BorderOffsets from a JSON file with `upper_mm` and `lower_mm` (what `--fit-offsets` writes; other keys
    are its record of the fit). InputError naming the file for anything else."""
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: border offsets file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable border offsets JSON ({error})") from None
    if not isinstance(content, dict) or not {"upper_mm", "lower_mm"} <= content.keys():
        raise InputError(f"{path}: a border offsets JSON is an object with upper_mm and lower_mm (mm, outward)")
    values = []
    for key in ("upper_mm", "lower_mm"):
        value = content[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError(f"{path}: {key} must be a number of mm, got {value!r}")
        if abs(value) > MAX_OFFSET_MM:
            raise InputError(f"{path}: {key} {value:g} mm is more than {MAX_OFFSET_MM:g} mm: that is not a border "
                             "convention but the model misreading these recordings; check their overlays")
        values.append(float(value))
    sha = content.get("model_sha256")
    refiner_sha = content.get("refiner_sha256", REFINER_NOT_RECORDED)
    return BorderOffsets(*values, model_sha256=sha if isinstance(sha, str) else None,
                         refiner_sha256=refiner_sha if isinstance(refiner_sha, str) or refiner_sha is None
                         else REFINER_NOT_RECORDED)


def shift_borders(upper_px, lower_px, offsets, mm_per_px):
    """The borders (W,) in rows moved outward by `offsets` (BorderOffsets, mm) at `mm_per_px`; NaN stays NaN.
    Where the offsets would make the borders meet or cross, there is no cavity: NaN."""
    return without_crossed(np.asarray(upper_px, dtype=float) - offsets.upper_mm / mm_per_px,
                           np.asarray(lower_px, dtype=float) + offsets.lower_mm / mm_per_px)


def border_errors_mm(upper_px, lower_px, truth_upper_px, truth_lower_px, mm_per_px):
    """Outward errors (W,) of each measured border against the truth in mm, (upper, lower): positive where the
    model's border lies outside the truth's (the cavity read too wide on that side); NaN where either is."""
    upper_mm = (np.asarray(truth_upper_px, dtype=float) - np.asarray(upper_px, dtype=float)) * mm_per_px
    lower_mm = (np.asarray(lower_px, dtype=float) - np.asarray(truth_lower_px, dtype=float)) * mm_per_px
    return upper_mm, lower_mm


def densest_half_median(values):
    """The median of the densest half of `values`: of the n // 2 + 1 sorted values that span the shortest interval
    (the "shorth", Andrews et al. 1972; Rousseeuw's least median of squares location, 1984). Like the median it
    ignores anything a minority of values do; unlike the median it is not pulled towards a minority that all lie on
    one side, which is how misread recordings lie (an echo taken for the posterior wall always narrows the
    cavity)."""
    values = np.sort(np.asarray(values, dtype=float))
    half = values.size // 2 + 1
    spans = values[half - 1:] - values[:values.size - half + 1]
    shortest = np.flatnonzero(spans <= spans.min() + 1e-12)
    start = int(shortest[shortest.size // 2])  # of equally short ones (evenly spread values), the middle one
    return float(np.median(values[start:start + half]))


def fit_offsets(upper_errors_mm, lower_errors_mm):
    """The offsets that take out the outward error the recordings share: minus the `densest_half_median` over
    recordings of each recording's median error per border (mm; sequences of one value per recording, NaN
    skipped), so that the recordings the model misreads (a third of scattersim's, all to one side) do not set
    the convention of the rest. -> (upper_mm, lower_mm)."""
    fitted = []
    for errors in (upper_errors_mm, lower_errors_mm):
        errors = np.asarray(errors, dtype=float)
        errors = errors[np.isfinite(errors)]
        if errors.size == 0:
            raise InputError("no recording with measured borders to fit the offsets on")
        fitted.append(-densest_half_median(errors))
    return tuple(fitted)
