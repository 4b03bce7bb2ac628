"""Simulator physiology: drawn parameters, beat timing, the wall-motion waveform and the per-column anatomy.

Everything here is in physical units (mm of depth, s of time) and vectorised over columns; the renderer
(`preprocess.sim_render`) turns the boundaries into pixels. Depth grows away from the transducer.
"""
from dataclasses import dataclass, field

import numpy as np

from mmode.calibration import DEFAULT_MM_PER_PX, DEFAULT_S_PER_PX

# Ranges per condition (DESIGN.md "Physiology"; failing = dilated, poorly contracting hearts). `ef_pct`
# is the range; `ef_typical_pct` the band most draws fall in (the rest spread over the whole range), so
# conscious hearts mostly close almost completely (FS 45-65 %) while EF 59 and 97 % still occur.
CONDITIONS = {
    "conscious": dict(probability=0.50, hr_bpm=(420, 840), lvid_d_mm=(2.0, 4.0), ef_pct=(59, 97),
                      ef_typical_pct=(76, 94), wall_mm=(0.7, 1.2), resp_bpm=(60, 200)),
    "anaesthetised": dict(probability=0.30, hr_bpm=(350, 550), lvid_d_mm=(3.5, 4.5), ef_pct=(45, 85),
                          ef_typical_pct=(55, 80), wall_mm=(0.7, 1.1), resp_bpm=(50, 120)),
    "failing": dict(probability=0.20, hr_bpm=(350, 700), lvid_d_mm=(3.6, 4.5), ef_pct=(25, 55),
                    ef_typical_pct=(25, 55), wall_mm=(0.5, 0.9), resp_bpm=(60, 180)),
}
# Share of EF draws spread over a condition's whole range rather than its typical band.
EF_TAIL_SHARE = 0.3
# The smallest end-systolic diameter (mm) of the physiological range (DESIGN.md: LVIDs 0.6-2.9 mm).
MIN_LVID_S_MM = 0.6
# The beat detector's range: a few recordings go this far, whatever the condition.
DETECTOR_HR_BPM = (250, 900)
HEIGHT_PX = (350, 800)
CALIBRATION_SPREAD = 0.3
# Lung shown below the pericardium (mm): at least this much, even when the image is cropped to fit.
MIN_LUNG_MM = 0.3


def teichholz_volume_ul(lvid_mm):
    """Teichholz volume in µL of an LV inner diameter in mm (DESIGN.md)."""
    return 7.0 / (2.4 + lvid_mm) * lvid_mm ** 3


def lvid_s_for_ef(lvid_d_mm, ef_pct):
    """End-systolic diameter (mm) giving ejection fraction `ef_pct` with end-diastolic `lvid_d_mm`."""
    grid_mm = np.linspace(0.05, lvid_d_mm, 4000)
    target_ul = teichholz_volume_ul(lvid_d_mm) * (1 - ef_pct / 100)
    return float(np.interp(target_ul, teichholz_volume_ul(grid_mm), grid_mm))


def ef_for_lvid_s(lvid_d_mm, lvid_s_mm):
    """Ejection fraction (%) of end-diastolic `lvid_d_mm` and end-systolic `lvid_s_mm` (Teichholz)."""
    return 100.0 * (1 - teichholz_volume_ul(lvid_s_mm) / teichholz_volume_ul(lvid_d_mm))


def draw_ef_pct(rng, ranges):
    """EF (%) of one recording: mostly inside the condition's typical band, sometimes anywhere in its range."""
    tail = rng.random() < EF_TAIL_SHARE
    return rng.uniform(*(ranges["ef_pct"] if tail else ranges["ef_typical_pct"]))


@dataclass
class Parameters:
    """What one recording's draw fixed: physiology, anatomy (mm), calibration, image size."""

    condition: str
    hr_bpm: float
    hr_spread_bpm: float
    lvid_d_mm: float
    ef_pct: float
    lvid_s_mm: float
    resp_bpm: float
    resp_amplitude_mm: float
    mm_per_px: float
    s_per_px: float
    height_px: int
    duration_s: float
    septum_share: float
    ivs_d_mm: float
    lvpw_d_mm: float
    extra: dict = field(default_factory=dict)

    @property
    def width_px(self):
        return int(round(self.duration_s / self.s_per_px))


def draw_parameters(rng, condition=None, hr_bpm=None, lvid_d_mm=None, ef_pct=None, mm_per_px=None,
                    s_per_px=None, height_px=None, duration_s=None):
    """Draw one recording's parameters; every keyword given fixes that value (the draws still happen,
    so fixing one value leaves the others as they were for that seed)."""
    names = list(CONDITIONS)
    drawn_condition = names[rng.choice(len(names), p=[CONDITIONS[n]["probability"] for n in names])]
    if condition is not None and condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    # A few recordings of a drawn condition go to the detector's range; a requested condition keeps its own.
    detector_range = rng.random() < 0.05 and condition is None
    condition = condition or drawn_condition
    ranges = CONDITIONS[condition]
    drawn_hr = rng.uniform(*(DETECTOR_HR_BPM if detector_range else ranges["hr_bpm"]))
    drawn = dict(
        hr_bpm=drawn_hr,
        lvid_d_mm=rng.uniform(*ranges["lvid_d_mm"]),
        ef_pct=draw_ef_pct(rng, ranges),
        mm_per_px=DEFAULT_MM_PER_PX * rng.uniform(1 - CALIBRATION_SPREAD, 1 + CALIBRATION_SPREAD),
        s_per_px=DEFAULT_S_PER_PX * rng.uniform(1 - CALIBRATION_SPREAD, 1 + CALIBRATION_SPREAD),
        height_px=int(rng.integers(HEIGHT_PX[0], HEIGHT_PX[1] + 1)),
        duration_s=rng.uniform(2.0, 5.0),
    )
    given = dict(hr_bpm=hr_bpm, lvid_d_mm=lvid_d_mm, ef_pct=ef_pct, mm_per_px=mm_per_px, s_per_px=s_per_px,
                 height_px=height_px, duration_s=duration_s)
    values = {key: (drawn[key] if given[key] is None else given[key]) for key in drawn}
    wall_mm = ranges["wall_mm"]
    # The smallest LVIDs is physiological: a very high EF of a small heart stops there.
    lvid_s_mm = max(lvid_s_for_ef(float(values["lvid_d_mm"]), float(values["ef_pct"])),
                    min(MIN_LVID_S_MM, 0.5 * float(values["lvid_d_mm"])))
    return Parameters(
        condition=condition,
        hr_bpm=float(values["hr_bpm"]),
        hr_spread_bpm=float(rng.uniform(5, 60)),
        lvid_d_mm=float(values["lvid_d_mm"]),
        ef_pct=ef_for_lvid_s(float(values["lvid_d_mm"]), lvid_s_mm),
        lvid_s_mm=lvid_s_mm,
        resp_bpm=float(rng.uniform(*ranges["resp_bpm"])),
        resp_amplitude_mm=float(rng.uniform(0.03, 0.25)),
        mm_per_px=float(values["mm_per_px"]),
        s_per_px=float(values["s_per_px"]),
        height_px=int(values["height_px"]),
        duration_s=float(values["duration_s"]),
        septum_share=float(rng.uniform(0.4, 0.62)),
        ivs_d_mm=float(rng.uniform(*wall_mm)),
        lvpw_d_mm=float(rng.uniform(*wall_mm)),
        extra=dict(height_given=height_px is not None, mm_per_px_given=mm_per_px is not None,
                   crop_first=bool(rng.random() < 0.5)),
    )


def beat_schedule(rng, params):
    """End-diastole times (s) and per-beat timing/size for beats covering [-2 RR, duration + 2 RR].

    Returns a dict of per-beat arrays: `t_ed_s`, `rr_s`, `es_frac` (end-systole as a fraction of the cycle),
    `rf_end_frac`, `atrial_frac` (start of the atrial kick), `ivc_frac`, `lvid_d_mm`, `lvid_s_mm`,
    `eject_power`, `fill_power`, `residual` (contraction left after rapid filling), `atrial_residual`,
    `kick_sharpness` (0: end-diastole rounded, 1: a cusp).
    """
    mean_rr_s = 60.0 / params.hr_bpm
    n_beats = int(np.ceil(params.duration_s / (60.0 / DETECTOR_HR_BPM[1]))) + 8
    # Beat-to-beat HR: respiratory sinus arrhythmia plus a slow random walk, within the detector's range.
    walk = np.cumsum(rng.normal(0, 1, n_beats)) * 0.35
    walk -= walk.mean()
    rsa_phase = rng.uniform(0, 2 * np.pi)
    beat_index = np.arange(n_beats)
    rsa = np.sin(2 * np.pi * beat_index * mean_rr_s * params.resp_bpm / 60 + rsa_phase)
    hr_beat_bpm = params.hr_bpm + params.hr_spread_bpm * np.clip(0.6 * rsa + 0.4 * walk, -1.3, 1.3)
    hr_beat_bpm = np.clip(hr_beat_bpm, *DETECTOR_HR_BPM)
    rr_s = 60.0 / hr_beat_bpm
    t_ed_s = np.concatenate([[0.0], np.cumsum(rr_s)[:-1]]) - 2 * mean_rr_s - rng.uniform(0, mean_rr_s)
    keep = t_ed_s < params.duration_s + 3 * mean_rr_s
    t_ed_s, rr_s, hr_beat_bpm = t_ed_s[keep], rr_s[keep], hr_beat_bpm[keep]
    n = t_ed_s.size
    # Systole takes a larger share of a short cycle; diastasis vanishes at high HR (E/A fusion).
    es_frac = np.clip(rng.uniform(0.36, 0.42) + 0.08 * (hr_beat_bpm - 600) / 300 + rng.normal(0, 0.01, n),
                      0.3, 0.48)
    diastasis = np.clip(0.4 * (rr_s - 0.075) / rr_s, 0.0, 0.32) * rng.uniform(0.6, 1.2)
    rest = 1.0 - es_frac - diastasis
    rapid_share = rng.uniform(0.5, 0.68)
    rf_end_frac = es_frac + rapid_share * rest
    atrial_frac = rf_end_frac + diastasis
    # Frank-Starling: longer cycles fill a little more.
    size_jitter = 1 + rng.normal(0, 0.012, n) + 0.08 * (rr_s / mean_rr_s - 1)
    fs_jitter = 1 + rng.normal(0, 0.02, n)
    lvid_d_mm = params.lvid_d_mm * size_jitter
    fs = 1 - params.lvid_s_mm / params.lvid_d_mm
    lvid_s_mm = lvid_d_mm * (1 - np.clip(fs * fs_jitter, 0.02, 0.95))
    lvid_s_mm = np.maximum(lvid_s_mm, min(params.lvid_s_mm, MIN_LVID_S_MM))
    # Contraction left after rapid filling: large when diastasis separates E and A, small when they fuse
    # at high HR (the cavity then refills in one rounded wave, the dome of the reference recordings).
    residual = np.clip(rng.uniform(0.05, 0.3) + 0.5 * diastasis, 0.0, 0.45)
    atrial_residual = residual * (1 - np.where(diastasis > 0.01, rng.uniform(0.05, 0.3), 0.0))
    return dict(
        t_ed_s=t_ed_s, rr_s=rr_s, es_frac=es_frac, rf_end_frac=rf_end_frac, atrial_frac=atrial_frac,
        ivc_frac=np.full(n, rng.uniform(0.03, 0.07)), ivc_level=np.full(n, rng.uniform(0.01, 0.05)),
        lvid_d_mm=lvid_d_mm, lvid_s_mm=lvid_s_mm, eject_power=np.full(n, rng.uniform(1.2, 2.0)),
        fill_power=np.full(n, rng.uniform(1.4, 2.6)), residual=residual, atrial_residual=atrial_residual,
        kick_sharpness=np.full(n, rng.uniform(0.0, 1.0)),
    )


def beat_phase(time_s, schedule):
    """Beat index and phase in [0, 1) of each time (s)."""
    index = np.searchsorted(schedule["t_ed_s"], time_s, side="right") - 1
    phase = (time_s - schedule["t_ed_s"][index]) / schedule["rr_s"][index]
    return index, phase


def contraction(index, phase, schedule):
    """Contraction fraction per column: 0 at end-diastole, 1 at end-systole.

    Isovolumic contraction, fast ejection (ending with zero slope at end-systole), rapid early filling
    (steep at first), a slow diastasis and an atrial kick that ends, with a cusp or rounded off, at the next
    end-diastole.
    """
    s = {key: value[index] for key, value in schedule.items()}
    ivc = np.clip(phase / s["ivc_frac"], 0, 1) * s["ivc_level"]
    u = np.clip((phase - s["ivc_frac"]) / (s["es_frac"] - s["ivc_frac"]), 0, 1)
    eject = s["ivc_level"] + (1 - s["ivc_level"]) * (1 - (1 - u) ** s["eject_power"])
    v = np.clip((phase - s["es_frac"]) / (s["rf_end_frac"] - s["es_frac"]), 0, 1)
    fill = s["residual"] + (1 - s["residual"]) * (1 - v) ** s["fill_power"]
    d = np.clip((phase - s["rf_end_frac"]) / np.maximum(s["atrial_frac"] - s["rf_end_frac"], 1e-9), 0, 1)
    diastasis = s["residual"] + (s["atrial_residual"] - s["residual"]) * d
    w = np.clip((phase - s["atrial_frac"]) / (1 - s["atrial_frac"]), 0, 1)
    # The atrial kick ends in a cusp (sharpness 1) or, with E/A fusion, rounds off into end-diastole (0).
    atrial = s["atrial_residual"] * (s["kick_sharpness"] * np.cos(0.5 * np.pi * w)
                                     + (1 - s["kick_sharpness"]) * 0.5 * (1 + np.cos(np.pi * w)))
    return np.select(
        [phase < s["ivc_frac"], phase < s["es_frac"], phase < s["rf_end_frac"], phase < s["atrial_frac"]],
        [ivc, eject, fill, diastasis], atrial)


def respiration_mm(rng, time_s, params):
    """Vertical shift (mm) from breathing: a brief displacement pulse per breath, then a pause."""
    period_s = 60.0 / params.resp_bpm
    n = int(np.ceil(time_s[-1] / period_s)) + 3
    starts_s = np.cumsum(period_s * rng.uniform(0.85, 1.15, n)) - period_s * rng.uniform(1, 2)
    index = np.clip(np.searchsorted(starts_s, time_s, side="right") - 1, 0, n - 2)
    phase = (time_s - starts_s[index]) / (starts_s[index + 1] - starts_s[index])
    width = rng.uniform(0.3, 0.7)
    amplitude_mm = params.resp_amplitude_mm * rng.uniform(0.7, 1.3, n)[index]
    pulse = np.where(phase < width, 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(phase / width, 0, 1)), 0.0)
    return amplitude_mm * pulse * rng.choice([-1.0, 1.0])


def wall_thickness_mm(lvid_mm, lvid_d_mm, wall_d_mm, gain):
    """Wall thickness (mm) conserving the wall's cross-section of a cylinder: thicker as the cavity shrinks."""
    r_mm, r_d_mm = lvid_mm / 2, lvid_d_mm / 2
    conserved_mm = np.sqrt(r_mm ** 2 + wall_d_mm * (2 * r_d_mm + wall_d_mm)) - r_mm
    return wall_d_mm + gain * (conserved_mm - wall_d_mm)


# Boundary names, top to bottom (the renderer maps each layer between consecutive boundaries).
BOUNDARIES = ("skin", "chest_bottom", "rv_wall_top", "rv_cavity_top", "septum_top", "upper", "lower",
              "posterior_epicardium", "pericardium_bottom", "bottom")


def anatomy(rng, params, time_s, schedule, shift_mm):
    """Per-column depth (mm) of every boundary in BOUNDARIES, plus the LVID and contraction curves.

    `shift_mm` (W,) moves everything (probe motion). Returns (boundaries dict, contraction (W,),
    params updated with the final height and calibration).
    """
    index, phase = beat_phase(time_s, schedule)
    f = contraction(index, phase, schedule)
    diastolic_mm = np.interp(time_s, schedule["t_ed_s"], schedule["lvid_d_mm"])
    systolic_mm = np.interp(time_s, schedule["t_ed_s"], schedule["lvid_s_mm"])
    lvid_mm = diastolic_mm - (diastolic_mm - systolic_mm) * f
    resp_mm = respiration_mm(rng, time_s, params)
    heart_shift_mm = rng.uniform(-0.08, 0.15) * f
    upper = resp_mm + heart_shift_mm + params.septum_share * (diastolic_mm - lvid_mm) + shift_mm
    lower = upper + lvid_mm
    ivs_mm = wall_thickness_mm(lvid_mm, diastolic_mm, params.ivs_d_mm, rng.uniform(0.6, 1.1))
    lvpw_mm = wall_thickness_mm(lvid_mm, diastolic_mm, params.lvpw_d_mm, rng.uniform(0.7, 1.2))
    septum_top = upper - ivs_mm
    rv_cavity_mm = rng.uniform(0.05, 0.8) * (1 - rng.uniform(0.2, 0.6) * f)
    rv_cavity_top = septum_top - rv_cavity_mm
    rv_wall_top = rv_cavity_top - rng.uniform(0.1, 0.3)
    posterior_epicardium = lower + lvpw_mm
    pericardium_bottom = posterior_epicardium + rng.uniform(0.06, 0.3)
    chest_motion = 0.4 * resp_mm + shift_mm
    chest_gap_mm = rng.uniform(0.03, 0.3)
    chest_bottom = chest_motion + np.min(rv_wall_top - chest_motion) - chest_gap_mm
    chest_mm = rng.uniform(0.4, 1.6)
    skin = chest_bottom - chest_mm
    # The image starts inside the chest wall or a little above the skin (coupling gel).
    top_mm = skin.mean() + rng.uniform(-0.15, chest_mm - 0.05)
    lung_mm = rng.uniform(0.4, 2.5)
    params, top_mm = _fit_field_of_view(params, top_mm, septum_top.min() - 0.1,
                                        pericardium_bottom.max(), lung_mm)
    offset_mm = -top_mm
    bottom = np.full_like(time_s, params.height_px * params.mm_per_px + 1.0)
    boundaries = dict(skin=skin, chest_bottom=chest_bottom, rv_wall_top=rv_wall_top, rv_cavity_top=rv_cavity_top,
                      septum_top=septum_top, upper=upper, lower=lower,
                      posterior_epicardium=posterior_epicardium, pericardium_bottom=pericardium_bottom)
    boundaries = {name: depth + offset_mm for name, depth in boundaries.items()}
    boundaries["bottom"] = bottom
    return boundaries, f, params


def _fit_field_of_view(params, top_mm, lowest_top_mm, pericardium_mm, lung_mm):
    """Fit the anatomy into the image: returns (params with the final height and mm_per_px, the depth (mm)
    of the image's first row).

    The image wants to show from `top_mm` down to `lung_mm` of lung below `pericardium_mm`. When that does
    not fit the drawn height, the height grows (up to HEIGHT_PX[1]) and the view is cropped (the lung down to
    MIN_LUNG_MM, then the top down to `lowest_top_mm`, just above the septum), in a drawn order; only a heart
    too large for even that coarsens the pixels. A drawn height leaving more than 3 mm of lung is trimmed.
    Given values (height, mm_per_px) are never changed; a heart that cannot fit them is a ValueError.
    """
    height_px, mm_per_px = params.height_px, params.mm_per_px
    fixed_height, fixed_scale = params.extra["height_given"], params.extra["mm_per_px_given"]
    wanted_mm = pericardium_mm + lung_mm - top_mm
    smallest_mm = pericardium_mm + MIN_LUNG_MM - lowest_top_mm

    def grow(needed_mm):
        return height_px if fixed_height else max(height_px, min(HEIGHT_PX[1], int(np.ceil(needed_mm / mm_per_px))))

    if height_px * mm_per_px < wanted_mm:
        if not params.extra["crop_first"]:
            height_px = grow(wanted_mm)
        height_px = grow(smallest_mm)
        if height_px * mm_per_px < smallest_mm:
            if fixed_scale:
                raise ValueError(f"an image of {height_px} rows at {mm_per_px} mm/px cannot hold this heart "
                                 f"({smallest_mm:.2f} mm needed); give a larger height or mm_per_px")
            mm_per_px = smallest_mm / height_px
        # Crop what does not fit: the lung first (the image's bottom cuts it), then the chest wall on top.
        top_excess_mm = wanted_mm - height_px * mm_per_px - (lung_mm - MIN_LUNG_MM)
        top_mm += float(np.clip(top_excess_mm, 0.0, max(lowest_top_mm - top_mm, 0.0)))
    elif height_px * mm_per_px > wanted_mm + 3.0 and not fixed_height:
        height_px = max(HEIGHT_PX[0], int(np.ceil((wanted_mm + 3.0) / mm_per_px)))
    params.height_px, params.mm_per_px = int(height_px), float(mm_per_px)
    return params, top_mm
