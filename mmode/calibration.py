"""Pixel calibration of M-mode recordings: depth (rows) in mm, time (columns) in s."""
from dataclasses import dataclass

from mmode.errors import InputError

# The seed's calibration, used when neither the user nor the file says otherwise.
DEFAULT_MM_PER_PX = 0.011525974
DEFAULT_S_PER_PX = 0.00083334


@dataclass(frozen=True)
class Calibration:
    """Size of one pixel: `mm_per_px` along depth (rows), `s_per_px` along time (columns).

    `source` says where the values came from: "default", "user" or "dicom".
    """

    mm_per_px: float = DEFAULT_MM_PER_PX
    s_per_px: float = DEFAULT_S_PER_PX
    source: str = "default"

    def __post_init__(self):
        for name in ("mm_per_px", "s_per_px"):
            value = getattr(self, name)
            if not value > 0:
                raise InputError(f"calibration {name} must be > 0, got {value}")


def calibration_from_options(mm_per_px=None, s_per_px=None):
    """Calibration from command-line overrides; missing values take the seed's defaults."""
    if mm_per_px is None and s_per_px is None:
        return Calibration()
    return Calibration(
        mm_per_px=DEFAULT_MM_PER_PX if mm_per_px is None else float(mm_per_px),
        s_per_px=DEFAULT_S_PER_PX if s_per_px is None else float(s_per_px),
        source="user",
    )
