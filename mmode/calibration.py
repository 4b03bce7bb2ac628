"""Pixel calibration of M-mode recordings: depth (rows) in mm, time (columns) in s."""
from dataclasses import dataclass

from mmode.errors import InputError

# The seed's calibration, used when neither the user nor the file says otherwise.
DEFAULT_MM_PER_PX = 0.011525974
DEFAULT_S_PER_PX = 0.00083334
# Pixel sizes of the shipped models' training recordings (the simulator draws within 30 % of the defaults;
# measured over the 800 recordings of a stage: 0.00807-0.01495 mm and 0.00058-0.00108 s per pixel). The
# border refiner reads coarser recordings zoomed to this range (`mmode.refine.strip_zoom`); analysis warns
# about pixels coarser than it (`coarser_than_trained`), where the shipped pair was measured to read worse.
TRAINED_MM_PER_PX = (0.0081, 0.0150)
TRAINED_S_PER_PX = (0.00058, 0.00108)


@dataclass(frozen=True)
class Calibration:
    """Size of one pixel: `mm_per_px` along depth (rows), `s_per_px` along time (columns).

    `source` says where the values came from: "default", "user" or "dicom"; `origin` the file they were read from
    when a user gave them in one (a calibration CSV), else None.
    """

    mm_per_px: float = DEFAULT_MM_PER_PX
    s_per_px: float = DEFAULT_S_PER_PX
    source: str = "default"
    origin: str = None

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


def coarser_than_trained(calibration):
    """One sentence per axis on which `calibration`'s pixels are coarser than the shipped models' training
    recordings (TRAINED_MM_PER_PX, TRAINED_S_PER_PX), with what that cost on simulated recordings (README,
    "Pixel sizes outside the training range"); an empty list inside the range or finer, which reads as well."""
    notes = []
    if calibration.mm_per_px > TRAINED_MM_PER_PX[1]:
        notes.append(f"{calibration.mm_per_px:.4g} mm per row is coarser than the {TRAINED_MM_PER_PX[0]}-"
                     f"{TRAINED_MM_PER_PX[1]} mm the shipped models were trained on (simulated hearts at 0.03 mm "
                     f"read LVID 0.02-0.03 mm wide)")
    if calibration.s_per_px > TRAINED_S_PER_PX[1]:
        notes.append(f"{calibration.s_per_px * 1000:.3g} ms per column is coarser than the "
                     f"{TRAINED_S_PER_PX[0] * 1000:g}-{TRAINED_S_PER_PX[1] * 1000:g} ms the shipped models were "
                     f"trained on (simulated hearts at 1.5 ms read LVID up to 0.014 mm worse per column)")
    return notes
