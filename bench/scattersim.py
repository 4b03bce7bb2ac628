"""A third M-mode generator, built from point scatterers, for a figure on recordings no model was selected on.

The training simulator (`preprocess.simulate`) and `bench/altsim.py` both paint a reflectivity map and
multiply it by a noise field. This one shares neither code nor design with them; it follows the physics of
a 30-40 MHz single-element scanner instead:

- echoes: every tissue layer holds point scatterers at fixed positions in its own normalised depth (0 at
  its top, 1 at its bottom), so they ride and stretch with the tissue. Per column each deposits its
  baseband echo a * exp(-4j pi depth / wavelength) (wavelength 0.04-0.05 mm, split between the two nearest
  rows), the columns are convolved along depth with a Gaussian pulse envelope of 1-2 wavelengths FWHM (FFT),
  and the magnitude is the envelope. Speckle thus changes only as tissue moves or deforms, and as
  scatterers leave the beam: each is visible over its own Gaussian window in time (8-60 ms in tissue,
  1.5-5 ms in flowing blood). Blood scatters 30-50 dB below myocardium: faint speckle, not nothing;
- specular interfaces: point reflectors, one per column, on the skin, the chest-wall fasciae, the RV
  epicardium, the RV face of the septum, the posterior epicardium, the pericardium and the pleura, with a
  brightness that drifts as the angle of incidence changes; weak ones on the two LV endocardial surfaces;
- lung: the pleura reflects everything; below it only reverberation between the pleura and the posterior
  epicardium (copies at that fixed spacing, each weaker) over a haze of scattered reverberation;
- motion (HR 300-750 bpm, LVIDd 2.8-4.8 mm, FS 15-55 %): LVID(t) is a sum of smooth steps, one per cardiac
  event (isovolumic contraction, ejection, isovolumic relaxation, rapid filling, diastasis, atrial kick),
  each shaped by the integral of a beta-shaped velocity lobe, timed by power laws in the cycle length
  (systole shortens less than diastole, so E and A fuse at high rates); respiratory sinus arrhythmia,
  Frank-Starling sizing from the preceding cycle, and in some recordings one premature beat (small stroke)
  with a compensatory pause and a potentiated next beat. Walls keep the volume of a spherical shell
  (thicker as the cavity shrinks); septum and posterior wall share the diameter change in a drawn
  proportion; the heart moves toward the probe in systole and with each breath (a gamma-shaped displacement
  pulse); the RV cavity empties with its own delay;
- confounders the truth excludes: papillary muscle (a tissue slab above the posterior wall, detached by a
  thin blood gap in diastole, thickening and closing the gap in systole, drifting in and out of the beam
  with breathing) or chordae (thin bright lines above the posterior wall that ride on it and come and
  go), or neither ("plain");
- image formation: frequency-dependent attenuation (blood much less than tissue), a fixed focus, electronic
  noise, time-gain compensation of a drawn fraction of the mean loss down to the pleura plus slider offsets,
  log compression over a drawn 40-65 dB with the gain setting the picture's 90th percentile at a drawn grey,
  a drawn display gamma, 8-bit quantisation; depth settings and display heights as on a scanner (about
  0.01-0.026 mm/px), sweep speeds of 0.6-1.5 ms per column;
- artefacts (`artefacts=True`, one to three): reverberation of the skin and fascia lines at twice and three
  times their depth, side-lobe clutter from the septum haunting the near cavity, interference stripes.

`scattersim_recording(seed, duration_s, artefacts, name)` returns `preprocess.simulate.SimulatedRecording`
(the only thing shared) with the fields `bench/accuracy.py` reads; `condition` is "papillary muscle",
"chordae" or "plain". The truth borders are the compact myocardium's blood-tissue interfaces; after log
compression a bright wall's pulse tail blooms a pixel or two (under half a pulse) into the cavity, as on a
scanner, and the truth stays at the interface.
"""
import numpy as np

from preprocess.simulate import SimulatedRecording

STREAM_KEY = 4409  # this generator's constant in every seed, so its draws share nothing with the others
HR_BPM = (300, 750)
LVID_D_MM = (2.8, 4.8)
FS_PCT = (15, 55)
RESP_BPM = (60, 200)
FREQUENCY_MHZ = (30, 40)
SOUND_MM_PER_US = 1.54
DEPTH_SETTINGS_MM = (6, 7, 8, 9, 10, 11, 12, 14)
DISPLAY_HEIGHTS_PX = (432, 480, 512, 576, 600, 640, 700, 768, 800, 864)
MM_PER_PX = (0.0095, 0.026)
S_PER_PX = (0.0006, 0.0008, 0.001, 0.00125, 0.0015)
# Event durations (s) at a 0.12 s cycle and their power in the cycle length: systole stretches less than filling.
EVENT_TIMING = dict(ivc=(0.006, 0.3), ejection=(0.040, 0.4), ivr=(0.010, 0.5), rapid=(0.028, 0.6),
                    atrial=(0.020, 0.4))
SCATTERERS_PER_MM = 100.0  # visible at any moment: six or more per axial resolution cell, developed speckle
VISIBLE_SIGMAS = 2.2  # a scatterer is rendered while within this many widths of its visibility centre
WIDTH_SPREAD = 0.4  # log-normal spread of the scatterers' visibility widths about a layer's median
PAIRS_PER_CHUNK = 2_000_000
CONDITIONS = ("papillary muscle", "chordae", "plain")
ARTEFACT_KINDS = ("reverberation", "side lobes", "interference")


def _streams(seed):
    """Independent generators for motion, anatomy, scatterers, display and artefacts of one seed."""
    return [np.random.default_rng([int(seed), STREAM_KEY, part]) for part in range(5)]


def beta_step(u, a, b, samples=2049):
    """Smooth step from 0 (u <= 0) to 1 (u >= 1): the share of a velocity lobe u^(a-1) (1-u)^(b-1) already
    travelled (the regularised incomplete beta function); a, b >= 1 place the lobe's peak early or late."""
    grid = np.linspace(0.0, 1.0, samples)
    lobe = grid ** (a - 1) * (1 - grid) ** (b - 1)
    area = np.concatenate([[0.0], np.cumsum(0.5 * (lobe[1:] + lobe[:-1]))])
    return np.interp(np.clip(u, 0.0, 1.0), grid, area / area[-1])


def breath_times(rng, start_s, stop_s, resp_bpm):
    """Breath onsets (s) covering [start_s, stop_s], 15 % irregular, and the pulse's peak (share of a breath)
    and sharpness: the breathing pattern of one recording."""
    period_s = 60.0 / resp_bpm
    count = int(np.ceil((stop_s - start_s) / period_s)) + 4
    onsets_s = start_s - period_s * rng.uniform(1, 2) + np.cumsum(period_s * rng.uniform(0.85, 1.15, count))
    return dict(onset_s=onsets_s, peak=rng.uniform(0.15, 0.3), sharpness=rng.uniform(2.0, 3.0))


def breath_pulse(time_s, breaths):
    """Displacement (0..1) at `time_s` of breaths from `breath_times`: a quick inspiration, passive expiration
    and a pause, a gamma-shaped pulse per breath that returns to 0 at the next onset."""
    onsets_s, peak, sharpness = breaths["onset_s"], breaths["peak"], breaths["sharpness"]
    index = np.clip(np.searchsorted(onsets_s, time_s, side="right") - 1, 0, onsets_s.size - 2)
    phase = (time_s - onsets_s[index]) / (onsets_s[index + 1] - onsets_s[index])

    def gamma_pulse(x):
        return (x / peak) ** sharpness * np.exp(sharpness * (1 - x / peak))

    return gamma_pulse(phase) - phase * gamma_pulse(1.0)


def _wander(rng, time_s, spread):
    """A slow random quantity over time: three sinusoids of 0.2-2 Hz, `spread` RMS."""
    frequencies_hz, phases = rng.uniform(0.2, 2.0, 3), rng.uniform(0, 2 * np.pi, 3)
    return spread * np.sqrt(2 / 3) * np.sin(2 * np.pi * frequencies_hz[:, None] * time_s + phases[:, None]).sum(0)


def beat_plan(rng, duration_s, hr_bpm, lvid_d_mm, fs_pct, breaths):
    """Onsets (end-diastoles, s) and per-beat LVIDd and LVIDs (mm) covering [0, duration_s] with margins.

    `breaths` from `breath_times`: inspiration shortens the cycle (RSA). Each beat's size follows
    the cycle before it (Frank-Starling). With probability 0.3 one beat comes early (60-78 % of a cycle)
    and the next after a compensatory pause. Returns dict onset_s (n,), lvid_d_mm (n,), lvid_s_mm (n,),
    premature (index or -1)."""
    rr_s = 60.0 / hr_bpm
    count = int(np.ceil(duration_s / (0.85 * rr_s))) + 6
    start_s = -rng.uniform(1.3, 2.2) * rr_s
    rsa, jitter = rng.uniform(0.005, 0.03), rng.uniform(0.003, 0.012)
    nominal_s = start_s + rr_s * np.arange(count)
    ratio = 1 - rsa * (breath_pulse(nominal_s, breaths) - 0.3) + rng.normal(0, jitter, count)
    premature = -1
    if rng.random() < 0.3:
        onsets_s = start_s + np.concatenate([[0.0], np.cumsum(ratio[:-1]) * rr_s])
        premature = int(np.searchsorted(onsets_s, rng.uniform(0.25, 0.75) * duration_s))
        nominal = ratio[premature - 1] + ratio[premature]
        ratio[premature - 1] *= rng.uniform(0.6, 0.78)
        ratio[premature] = nominal - ratio[premature - 1]
    onsets_s = start_s + np.concatenate([[0.0], np.cumsum(ratio[:-1]) * rr_s])
    preceding = np.concatenate([[1.0], ratio[:-1]])
    filling_gain, stroke_gain = rng.uniform(0.15, 0.3), rng.uniform(0.8, 1.5)
    stroke_mm = lvid_d_mm * fs_pct / 100
    beat_d_mm = lvid_d_mm * (1 + filling_gain * (preceding - 1)) * (1 + rng.normal(0, 0.008, count))
    beat_stroke_mm = stroke_mm * np.clip(1 + stroke_gain * (preceding - 1), 0.25, 1.8)
    beat_stroke_mm *= 1 + rng.normal(0, 0.03, count)
    beat_s_mm = np.maximum(beat_d_mm - beat_stroke_mm, 0.8)
    return dict(onset_s=onsets_s, lvid_d_mm=beat_d_mm, lvid_s_mm=beat_s_mm, premature=premature)


def diameter_curve(rng, time_s, plan):
    """LVID (mm) at `time_s`: LVIDd of the first beat plus one smooth step per cardiac event of every beat.

    Beat k empties (IVC creep, ejection) from its LVIDd to its LVIDs and fills (IVR creep, rapid filling,
    diastasis, atrial kick) to the next beat's LVIDd, which it reaches at the next onset; the maximum is
    thus at each onset and the minimum at the end of ejection."""
    onset_s, lvid_d_mm, lvid_s_mm = plan["onset_s"], plan["lvid_d_mm"], plan["lvid_s_mm"]
    cycle_s = np.diff(onset_s)
    start_s, next_s = onset_s[:-1], onset_s[1:]
    scale = {name: rng.uniform(0.85, 1.15) for name in EVENT_TIMING}
    length_s = {name: scale[name] * base_s * (cycle_s / 0.12) ** power
                for name, (base_s, power) in EVENT_TIMING.items()}
    systole_s = length_s["ivc"] + length_s["ejection"] + length_s["ivr"]
    squeeze = np.minimum(1.0, 0.62 * cycle_s / systole_s)  # short (premature) cycles keep some filling time
    for name in ("ivc", "ejection", "ivr"):
        length_s[name] = length_s[name] * squeeze
    filling_s = cycle_s - systole_s * squeeze
    rapid_s = np.minimum(length_s["rapid"], 0.75 * filling_s)
    atrial_s = np.minimum(length_s["atrial"], 0.45 * filling_s)
    ejection_start_s = start_s + length_s["ivc"]
    filling_start_s = ejection_start_s + length_s["ejection"] + length_s["ivr"]
    gap_s = next_s - atrial_s - (filling_start_s + rapid_s)  # diastasis; negative when E and A fuse

    stroke_mm = lvid_d_mm[:-1] - lvid_s_mm[:-1]
    fill_mm = lvid_d_mm[1:] - lvid_s_mm[:-1]
    ivc_share, ivr_share, atrial_share = rng.uniform(0.01, 0.05), rng.uniform(0.02, 0.08), rng.uniform(0.18, 0.35)
    diastasis_share = np.clip(rng.uniform(0.3, 0.8) * gap_s / cycle_s, 0.0, 0.2)
    rapid_share = 1 - ivr_share - atrial_share - diastasis_share
    events = [  # start (s), duration (s), change (mm), velocity lobe (a, b)
        (start_s, length_s["ivc"], -ivc_share * stroke_mm, (1.5, 1.5)),
        (ejection_start_s, length_s["ejection"], -(1 - ivc_share) * stroke_mm,
         (rng.uniform(1.6, 2.2), rng.uniform(1.8, 2.8))),
        (filling_start_s - length_s["ivr"], length_s["ivr"], ivr_share * fill_mm, (1.5, 1.5)),
        (filling_start_s, rapid_s, rapid_share * fill_mm, (rng.uniform(1.4, 1.9), rng.uniform(2.5, 4.0))),
        (filling_start_s + rapid_s, np.maximum(gap_s, 1e-6), diastasis_share * fill_mm, (1.0, 1.0)),
        (next_s - atrial_s, atrial_s, atrial_share * fill_mm, (rng.uniform(2.0, 3.0), rng.uniform(1.2, 2.0))),
    ]
    lvid_mm = np.full(time_s.shape, lvid_d_mm[0])
    for event_start_s, event_s, change_mm, (a, b) in events:
        progress = (time_s[None, :] - event_start_s[:, None]) / event_s[:, None]
        lvid_mm += (change_mm[:, None] * beta_step(progress, a, b)).sum(axis=0)
    return lvid_mm


def wall_thickness_mm(lvid_mm, lvid_d_mm, wall_d_mm, gain):
    """Wall thickness (mm) keeping the volume of a spherical shell around the cavity, `gain` of that change."""
    radius_mm, radius_d_mm = lvid_mm / 2, lvid_d_mm / 2
    shell = (radius_d_mm + wall_d_mm) ** 3 - radius_d_mm ** 3
    return wall_d_mm + gain * (np.cbrt(radius_mm ** 3 + shell) - radius_mm - wall_d_mm)


def truth_beats(lvid_mm, onset_s, s_per_px):
    """Beats whose end-diastole and the next lie in the recording: dicts t_ed_s, t_es_s, lvid_d_mm, lvid_s_mm
    (the curve's maximum near the onset, the minimum before the next maximum) and rr_s (the cycle length)."""
    width = lvid_mm.size
    last_s = (width - 1) * s_per_px
    beats = []
    for start_s, next_s in zip(onset_s[:-1], onset_s[1:]):
        if start_s < 0 or next_s > last_s:
            continue
        margin_s = 0.2 * (next_s - start_s)
        ed, following = (_peak_column(lvid_mm, time_s - margin_s, time_s + margin_s, s_per_px)
                         for time_s in (start_s, next_s))
        es = ed + int(np.argmin(lvid_mm[ed:following + 1]))
        beats.append(dict(t_ed_s=float(ed * s_per_px), t_es_s=float(es * s_per_px), lvid_d_mm=float(lvid_mm[ed]),
                          lvid_s_mm=float(lvid_mm[es]), rr_s=float(next_s - start_s)))
    return beats


def _peak_column(lvid_mm, from_s, to_s, s_per_px):
    """Column of the largest LVID between two times (s), clipped to the recording."""
    first = max(0, int(np.ceil(from_s / s_per_px)))
    last = min(lvid_mm.size - 1, int(np.floor(to_s / s_per_px)))
    return first + int(np.argmax(lvid_mm[first:last + 1]))


def anatomy(rng, time_s, lvid_mm, lvid_d_mm, stroke_mm, pulse):
    """Depths (mm, per column) of every boundary, top to bottom, and the drawn sizes.

    Returns (edges, sizes): edges a dict of (W,) arrays gel, skin, chest, rv_epicardium, rv_cavity,
    septum, upper, lower, epicardium, pericardium, pleura, plus `contraction` (0 diastole, ~1 systole)."""
    contraction = (lvid_d_mm - lvid_mm) / stroke_mm
    sizes = dict(gel_mm=rng.uniform(0.2, 0.7), skin_mm=rng.uniform(0.2, 0.5), muscle_mm=rng.uniform(0.7, 1.8),
                 fat_mm=rng.uniform(0.1, 0.4), rv_wall_mm=rng.uniform(0.18, 0.38),
                 rv_cavity_mm=rng.uniform(0.4, 1.3), ivs_d_mm=rng.uniform(0.6, 1.05),
                 lvpw_d_mm=rng.uniform(0.6, 1.05), pericardium_mm=rng.uniform(0.03, 0.07),
                 pleural_gap_mm=rng.uniform(0.1, 0.35), lung_mm=rng.uniform(0.6, 2.0),
                 septum_share=rng.uniform(0.25, 0.5), resp_mm=float(rng.choice([-1, 1]) * rng.uniform(0.04, 0.25)),
                 systolic_shift_mm=rng.uniform(0.02, 0.12))
    resp_mm = sizes["resp_mm"] * pulse
    heart_shift_mm = resp_mm - sizes["systolic_shift_mm"] * np.clip(contraction, 0, None)
    rv_delay_s = rng.uniform(-0.006, 0.01)
    rv_contraction = np.clip(np.interp(time_s - rv_delay_s, time_s, contraction), 0, 1.2)
    rv_cavity_mm = sizes["rv_cavity_mm"] * (1 - rng.uniform(0.2, 0.5) * rv_contraction)
    rv_wall_mm = sizes["rv_wall_mm"] * (1 + 0.35 * rv_contraction)
    ivs_mm = wall_thickness_mm(lvid_mm, lvid_d_mm, sizes["ivs_d_mm"], rng.uniform(0.6, 1.0))
    lvpw_mm = wall_thickness_mm(lvid_mm, lvid_d_mm, sizes["lvpw_d_mm"], rng.uniform(0.6, 1.0))

    upper = sizes["septum_share"] * (lvid_d_mm - lvid_mm) + heart_shift_mm
    septum = upper - ivs_mm
    rv_cavity = septum - rv_cavity_mm
    rv_epicardium = rv_cavity - rv_wall_mm
    gel = np.full(time_s.shape, sizes["gel_mm"])
    skin = gel + sizes["skin_mm"] + 0.5 * 0.3 * resp_mm  # the chest wall moves a third as far as the heart
    chest = gel + sizes["skin_mm"] + sizes["muscle_mm"] + 0.3 * resp_mm
    offset_mm = np.max(chest - rv_epicardium) + sizes["fat_mm"]  # the thinnest fat layer is fat_mm
    upper, septum, rv_cavity, rv_epicardium = (edge + offset_mm for edge in (upper, septum, rv_cavity, rv_epicardium))
    lower = upper + lvid_mm
    epicardium = lower + lvpw_mm
    pericardium = epicardium + sizes["pericardium_mm"]
    pleura = pericardium + sizes["pleural_gap_mm"]
    edges = dict(gel=gel, skin=skin, chest=chest, rv_epicardium=rv_epicardium, rv_cavity=rv_cavity, septum=septum,
                 upper=upper, lower=lower, epicardium=epicardium, pericardium=pericardium, pleura=pleura,
                 contraction=contraction)
    return edges, sizes


def display_geometry(rng, deepest_mm):
    """Image depth (mm) and height (px): the shallowest depth setting showing `deepest_mm`, sometimes the next,
    on a display height giving 0.0095-0.026 mm/px."""
    settings = [depth for depth in DEPTH_SETTINGS_MM if depth >= deepest_mm] or [deepest_mm]
    depth_mm = float(settings[min(len(settings) - 1, int(rng.random() < 0.3))])
    heights = [h for h in DISPLAY_HEIGHTS_PX if MM_PER_PX[0] <= depth_mm / h <= MM_PER_PX[1]]
    height = int(rng.choice(heights)) if heights else int(round(depth_mm / np.mean(MM_PER_PX)))
    return depth_mm, height


class Scatterers:
    """Point scatterers of several layers: layer index, normalised depth, signed amplitude, visibility centre
    and width (s). Amplitudes are scaled so that a layer's mean echo intensity per mm is 10^(level_db/10)."""

    def __init__(self):
        self.parts = []

    def add(self, rng, layer, mean_thickness_mm, level_db, width_s, duration_s, s_per_px, spread=0.5,
            taper=None):
        """Scatterers filling `layer` (mean thickness in mm) with visibility windows of median `width_s`;
        `taper(position)` scales amplitude with the normalised depth (lung haze, side-lobe clutter)."""
        mean_width_s = width_s * np.exp(0.5 * WIDTH_SPREAD ** 2)
        expected = SCATTERERS_PER_MM * mean_thickness_mm * (duration_s + 2 * VISIBLE_SIGMAS * width_s)
        count = int(rng.poisson(expected / (mean_width_s * np.sqrt(np.pi))))
        widths_s = np.maximum(width_s * np.exp(WIDTH_SPREAD * rng.standard_normal(count)), 0.8 * s_per_px)
        centres_s = rng.uniform(-VISIBLE_SIGMAS * widths_s, duration_s + VISIBLE_SIGMAS * widths_s)
        position = rng.random(count)
        # log-normal magnitudes (fibre bundles, heterogeneous tissue), random sign; E[a^2] = exp(2 spread^2)
        amplitude = np.exp(spread * rng.standard_normal(count)) * rng.choice([-1.0, 1.0], count)
        amplitude *= 10 ** (level_db / 20) / np.sqrt(SCATTERERS_PER_MM * np.exp(2 * spread ** 2))
        if taper is not None:
            amplitude *= taper(position)
        self.parts.append((np.full(count, layer), position, amplitude, centres_s, widths_s))

    def arrays(self):
        """(layer, position, amplitude, centre_s, width_s), concatenated over all layers."""
        return [np.concatenate(column) for column in zip(*self.parts)]


def deposit(field, depth_mm, columns, magnitude, wavelength_mm, mm_per_px):
    """Add echoes magnitude * exp(-4j pi depth / wavelength) of point reflectors to `field` (rows = depth,
    columns = time), each split linearly between the two rows around its depth; points outside are dropped."""
    depth_px = depth_mm / mm_per_px
    row = np.floor(depth_px).astype(np.intp)
    keep = (row >= 0) & (row + 1 < field.shape[0])
    if not keep.any():
        return
    row, columns, magnitude, fraction = row[keep], columns[keep], magnitude[keep], (depth_px - row)[keep]
    phase = ((4 * np.pi / wavelength_mm) * depth_mm[keep]).astype(np.float32)  # 1e-3 rad is precise enough
    first = int(columns.min())
    span = int(columns.max()) - first + 1
    flat = row * span + (columns - first)
    flat = np.concatenate([flat, flat + span])
    weight = np.concatenate([magnitude * (1 - fraction), magnitude * fraction])
    size = field.shape[0] * span
    real = np.bincount(flat, weight * np.tile(np.cos(phase), 2), size)
    imaginary = np.bincount(flat, weight * np.tile(-np.sin(phase), 2), size)
    field[:, first:first + span] += (real + 1j * imaginary).reshape(field.shape[0], span)


def render_scatterers(field, scatterers, tops_mm, thicknesses_mm, presence, wavelength_mm, mm_per_px, s_per_px):
    """Deposit every scatterer's echo in every column where it is visible.

    `tops_mm`, `thicknesses_mm`, `presence` are (layers, W): each layer's top depth, thickness and an
    amplitude factor per column (a structure drifting out of the beam)."""
    layer, position, amplitude, centre_s, width_s = scatterers.arrays()
    width = field.shape[1]
    first = np.clip(np.ceil((centre_s - VISIBLE_SIGMAS * width_s) / s_per_px), 0, width).astype(np.intp)
    last = np.clip(np.floor((centre_s + VISIBLE_SIGMAS * width_s) / s_per_px), -1, width - 1).astype(np.intp)
    count = np.maximum(last - first + 1, 0)
    order = np.argsort(first, kind="stable")
    ends = np.cumsum(count[order])
    bounds = np.searchsorted(ends, np.arange(PAIRS_PER_CHUNK, ends[-1] + PAIRS_PER_CHUNK, PAIRS_PER_CHUNK))
    starts = np.concatenate([[0], bounds[:-1] + 1])
    tops, thicknesses, presences = tops_mm.ravel(), thicknesses_mm.ravel(), presence.ravel()
    for chunk in (order[a:b + 1] for a, b in zip(starts, np.minimum(bounds, order.size - 1)) if a <= b):
        owner = np.repeat(chunk, count[chunk])
        offsets = np.arange(owner.size) - np.repeat(np.cumsum(count[chunk]) - count[chunk], count[chunk])
        columns = first[owner] + offsets
        cell = layer[owner] * width + columns
        depth_mm = tops[cell] + position[owner] * thicknesses[cell]
        visibility = np.exp(-0.5 * ((columns * s_per_px - centre_s[owner]) / width_s[owner]) ** 2)
        deposit(field, depth_mm, columns, amplitude[owner] * visibility * presences[cell], wavelength_mm, mm_per_px)


def specular(field, lines, wavelength_mm, mm_per_px):
    """Specular interfaces: one point reflector per column and line; `lines` a list of (depth_mm, amplitude),
    each (W,)."""
    columns = np.tile(np.arange(field.shape[1]), len(lines))
    depth_mm = np.concatenate([np.broadcast_to(depth, field.shape[1]) for depth, _ in lines])
    amplitude = np.concatenate([np.broadcast_to(level, field.shape[1]) for _, level in lines])
    deposit(field, depth_mm, columns, amplitude, wavelength_mm, mm_per_px)


def scattersim_recording(seed, duration_s=3.0, artefacts=False, name=None):
    """One recording from the scatterer generator, deterministic in `seed`; `artefacts` adds one to three
    artefacts without changing the truth. Returns a `SimulatedRecording`."""
    motion_rng, anatomy_rng, scatter_rng, display_rng, artefact_rng = _streams(seed)
    physiology = dict(hr_bpm=motion_rng.uniform(*HR_BPM), lvid_d_mm=motion_rng.uniform(*LVID_D_MM),
                      fs_pct=motion_rng.uniform(*FS_PCT), resp_bpm=motion_rng.uniform(*RESP_BPM))
    s_per_px = float(motion_rng.choice(S_PER_PX))
    width = int(round(duration_s / s_per_px))
    time_s = np.arange(width) * s_per_px
    breaths = breath_times(motion_rng, -3 * 60.0 / HR_BPM[0], duration_s + 2.0, physiology["resp_bpm"])
    plan = beat_plan(motion_rng, duration_s, physiology["hr_bpm"], physiology["lvid_d_mm"], physiology["fs_pct"],
                     breaths)
    lvid_mm = diameter_curve(motion_rng, time_s, plan)
    pulse = breath_pulse(time_s, breaths)
    stroke_mm = physiology["lvid_d_mm"] * physiology["fs_pct"] / 100
    edges, sizes = anatomy(anatomy_rng, time_s, lvid_mm, physiology["lvid_d_mm"], stroke_mm, pulse)
    depth_mm, height = display_geometry(anatomy_rng, edges["pleura"].max() + sizes["lung_mm"])
    mm_per_px = depth_mm / height
    condition = CONDITIONS[int(anatomy_rng.choice(3, p=[0.35, 0.3, 0.35]))]

    frequency_mhz = scatter_rng.uniform(*FREQUENCY_MHZ)
    wavelength_mm = SOUND_MM_PER_US / frequency_mhz
    pulse_sigma_mm = scatter_rng.uniform(1.0, 2.0) * wavelength_mm / 2.355  # envelope FWHM 1-2 wavelengths
    speckle_rms = np.sqrt(pulse_sigma_mm * np.sqrt(np.pi))  # envelope RMS of a 0 dB layer; speculars scale by it
    layers = _tissue_layers(edges, depth_mm, width)
    presence = {name: np.ones(width) for name in layers}
    tissue_s = scatter_rng.uniform(0.008, 0.03)  # out-of-plane decorrelation time of myocardium
    scatterers = _tissue_scatterers(scatter_rng, layers, tissue_s, duration_s, s_per_px)
    lines = _interfaces(scatter_rng, edges, time_s, speckle_rms)
    if condition == "papillary muscle":
        top, thickness, presence["papillary"], level_db = _papillary(anatomy_rng, edges, lvid_mm, pulse, time_s)
        layers["papillary"] = (top, thickness)
        scatterers.add(scatter_rng, len(layers) - 1, thickness.mean(), level_db, tissue_s, duration_s, s_per_px)
    elif condition == "chordae":
        lines += _chordae(anatomy_rng, edges, lvid_mm, time_s, speckle_rms)

    # echoes from just below the image still blur into its last rows
    field = np.zeros((height + int(np.ceil(6 * pulse_sigma_mm / mm_per_px)) + 2, width), dtype=np.complex128)
    kinds, interference = [], None
    if artefacts:
        kinds = [ARTEFACT_KINDS[i] for i in artefact_rng.permutation(3)[:int(artefact_rng.integers(1, 4))]]
        if "reverberation" in kinds:
            lines += _reverberations(artefact_rng, lines[:4], width)
        if "side lobes" in kinds:
            fraction = artefact_rng.uniform(0.2, 0.5)
            layers["clutter"], presence["clutter"] = (edges["upper"], fraction * lvid_mm), _segment(artefact_rng, width)
            scatterers.add(artefact_rng, len(layers) - 1, (fraction * lvid_mm).mean(), artefact_rng.uniform(-26, -14),
                           tissue_s, duration_s, s_per_px, taper=lambda position: (1 - position) ** 1.5)
        if "interference" in kinds:
            interference = _interference(artefact_rng, field.shape, _segment(artefact_rng, width))

    tops = np.stack([top for top, _ in layers.values()])
    thicknesses = np.stack([np.maximum(thickness, 0.0) for _, thickness in layers.values()])
    render_scatterers(field, scatterers, tops, thicknesses, np.stack([presence[name] for name in layers]),
                      wavelength_mm, mm_per_px, s_per_px)
    specular(field, lines, wavelength_mm, mm_per_px)
    image = form_image(display_rng, field, edges, frequency_mhz, pulse_sigma_mm, mm_per_px, height, interference)

    upper_px, lower_px = edges["upper"] / mm_per_px, edges["lower"] / mm_per_px
    beats = truth_beats((lower_px - upper_px) * mm_per_px, plan["onset_s"], s_per_px)
    mean_hr_bpm = 60.0 / np.mean([beat["rr_s"] for beat in beats]) if beats else physiology["hr_bpm"]
    return SimulatedRecording(
        image=image, upper_px=upper_px, lower_px=lower_px, mm_per_px=float(mm_per_px), s_per_px=s_per_px,
        beats=beats, hr_bpm=float(mean_hr_bpm), artefact_columns=[], name=name or f"scatter_{seed}",
        condition=condition, seed=int(seed), lost_contact=np.zeros(width, dtype=bool),
        parameters=dict(physiology, premature_beat=bool(plan["premature"] >= 0), frequency_mhz=frequency_mhz,
                        pulse_fwhm_mm=2.355 * pulse_sigma_mm, artefacts=kinds, **sizes))


def _tissue_scatterers(rng, layers, tissue_s, duration_s, s_per_px):
    """Scatterers of the anatomical layers, levels in dB re myocardium: chest wall slower to decorrelate than
    the heart (it barely moves through the beam), blood fast and 30-50 dB down, lung haze fading with depth."""
    blood_s, blood_db = rng.uniform(0.0015, 0.005), -rng.uniform(30, 50)
    lung_decay = rng.uniform(0.5, 2.5)
    levels = dict(skin=(rng.uniform(-2, 4), 2 * tissue_s), muscle=(rng.uniform(-4, 2), 2 * tissue_s),
                  fat=(rng.uniform(-12, -4), 2 * tissue_s), rv_wall=(rng.uniform(-3, 3), tissue_s),
                  rv_blood=(blood_db + rng.uniform(-3, 3), blood_s), septum=(rng.uniform(-1.5, 1.5), tissue_s),
                  lv_blood=(blood_db, blood_s), posterior=(rng.uniform(-1.5, 1.5), tissue_s),
                  pericardium=(rng.uniform(6, 12), tissue_s), pleural_gap=(rng.uniform(-10, -3), tissue_s),
                  lung=(rng.uniform(0, 6), tissue_s))
    scatterers = Scatterers()
    for index, (name, (_, thickness_mm)) in enumerate(layers.items()):
        level_db, visible_s = levels[name]
        taper = (lambda position: np.exp(-lung_decay * position)) if name == "lung" else None
        scatterers.add(rng, index, thickness_mm.mean(), level_db, visible_s, duration_s, s_per_px, taper=taper)
    return scatterers


def _tissue_layers(edges, depth_mm, width):
    """(top, thickness) in mm per column of every scattering layer, top to bottom."""
    bottom = np.full(width, depth_mm)
    order = [("skin", "gel", "skin"), ("muscle", "skin", "chest"), ("fat", "chest", "rv_epicardium"),
             ("rv_wall", "rv_epicardium", "rv_cavity"), ("rv_blood", "rv_cavity", "septum"),
             ("septum", "septum", "upper"), ("lv_blood", "upper", "lower"), ("posterior", "lower", "epicardium"),
             ("pericardium", "epicardium", "pericardium"), ("pleural_gap", "pericardium", "pleura")]
    layers = {name: (edges[top], edges[below] - edges[top]) for name, top, below in order}
    layers["lung"] = (edges["pleura"], bottom - edges["pleura"])
    return layers


def _interfaces(rng, edges, time_s, speckle_rms):
    """Specular lines as (depth_mm, amplitude) per column: skin, fasciae, heart surfaces, pleura and its
    reverberation copies. The first four are the chest-wall lines (the artefacts reverberate those)."""
    contraction = np.clip(edges["contraction"], 0, 1.2)

    def line(depth_mm, level_db, cardiac_db=0.0):
        level = level_db + _wander(rng, time_s, rng.uniform(0.5, 2.0)) + cardiac_db * contraction
        return depth_mm, speckle_rms * 10 ** (level / 20)

    fascia = edges["skin"] + rng.uniform(0.3, 0.7) * (edges["chest"] - edges["skin"])
    lines = [line(edges["gel"], rng.uniform(12, 20)), line(edges["skin"], rng.uniform(6, 12)),
             line(fascia, rng.uniform(4, 12)), line(edges["chest"], rng.uniform(4, 10)),
             line(edges["rv_epicardium"], rng.uniform(6, 14), rng.uniform(-3, 3)),
             line(edges["septum"], rng.uniform(2, 8), rng.uniform(-3, 3)),
             line(edges["upper"], rng.uniform(-14, -4), rng.uniform(-3, 3)),
             line(edges["lower"], rng.uniform(-10, -2), rng.uniform(-3, 3)),
             line(edges["epicardium"], rng.uniform(14, 20), rng.uniform(-3, 3)),
             line(edges["pericardium"], rng.uniform(8, 14))]
    pleura_depth, pleura_amplitude = line(edges["pleura"], rng.uniform(16, 24))
    lines.append((pleura_depth, pleura_amplitude))
    spacing_mm = edges["pleura"] - edges["epicardium"]
    echo = rng.uniform(0.35, 0.65)  # round-trip loss of one reverberation between pleura and epicardium
    for copy in range(1, 12):
        lines.append((pleura_depth + copy * spacing_mm, pleura_amplitude * echo ** copy))
    return lines


def _papillary(rng, edges, lvid_mm, pulse, time_s):
    """Papillary muscle above the posterior wall: (top, thickness, presence per column, level_db). A blood gap
    separates it from the wall in diastole and closes in systole, as the muscle thickens; breathing moves it
    partly out of the beam."""
    contraction = np.clip(edges["contraction"], 0, 1)
    gap_mm = rng.uniform(0.03, 0.15) * (1 - contraction) ** 1.5
    thickness_mm = rng.uniform(0.05, 0.2) + rng.uniform(0.25, 0.8) * contraction ** 1.2
    thickness_mm *= 1 + 0.15 * _wander(rng, time_s, 1.0)
    thickness_mm = np.clip(thickness_mm, 0.02, np.maximum(0.45 * lvid_mm - gap_mm, 0.02))
    presence = 1 - rng.uniform(0, 0.9) * pulse
    top = edges["lower"] - gap_mm - thickness_mm
    return top, thickness_mm, presence, rng.uniform(-7, -1)


def _chordae(rng, edges, lvid_mm, time_s, speckle_rms):
    """One to three chordae: thin specular lines 0.15-0.6 mm above the posterior wall (closer as the cavity
    shrinks), fluttering a little and coming and going."""
    chordae = []
    for _ in range(int(rng.integers(1, 4))):
        height_mm = rng.uniform(0.15, 0.6) * lvid_mm / lvid_mm.max()
        height_mm = height_mm + 0.02 * np.sin(2 * np.pi * rng.uniform(5, 15) * time_s + rng.uniform(0, 2 * np.pi))
        height_mm = np.minimum(height_mm, 0.5 * lvid_mm)
        on = np.clip(0.5 + 1.5 * np.sin(2 * np.pi * time_s / rng.uniform(0.3, 1.2) + rng.uniform(0, 2 * np.pi)), 0, 1)
        level = speckle_rms * 10 ** (rng.uniform(0, 8) / 20)
        chordae.append((edges["lower"] - height_mm, level * on))
    return chordae


def _segment(rng, width):
    """A smooth on/off window (W,): the whole recording or a part of it, with soft edges."""
    if rng.random() < 0.4:
        return np.ones(width)
    start = rng.uniform(0, 0.6) * width
    stop = start + rng.uniform(0.25, 0.6) * width
    columns = np.arange(width)
    edge = max(4.0, 0.03 * width)
    return np.clip((columns - start) / edge, 0, 1) * np.clip((stop - columns) / edge, 0, 1)


def _reverberations(rng, chest_lines, width):
    """Copies of the skin and fascia lines at twice and three times their depth (echoes bouncing once or
    twice more between them and the transducer face), over a segment of the recording."""
    window = _segment(rng, width)
    loss = 10 ** (-rng.uniform(8, 18) / 20)  # transducer face times interface reflection
    copies = []
    for depth_mm, amplitude in chest_lines:
        for bounce in (2, 3):
            copies.append((bounce * depth_mm, amplitude * loss ** (bounce - 1) * window))
    return copies


def _interference(rng, shape, window):
    """Electrical interference, (rows, W) complex in units of the myocardium's echo amplitude: two tones either
    side of the centre frequency (a switching supply's harmonics) whose beat draws stripes slanted in depth
    and time, drifting because the interferer is not synchronous with the pulses."""
    rows, columns = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    cycles_per_px = rng.uniform(0.02, 0.08)
    radians_per_column = rng.uniform(0.01, 0.15)
    level = 10 ** (-rng.uniform(30, 42) / 20)
    beat = np.cos(2 * np.pi * cycles_per_px * rows + radians_per_column * columns)
    return level * window * beat * np.exp(1j * rng.uniform(0, 2 * np.pi))


def form_image(rng, field, edges, frequency_mhz, pulse_sigma_mm, mm_per_px, height, interference=None):
    """The 8-bit image from the field of deposited echoes: attenuation, focus, electronic noise, pulse
    envelope convolution, TGC, `interference` (complex, in units of the myocardium's echo), envelope detection,
    log compression and display gamma."""
    rows = field.shape[0]
    depth_mm = (np.arange(rows) * mm_per_px)[:, None]
    tissue_db_per_mm = 2 * rng.uniform(0.5, 0.8) * frequency_mhz / 10  # round trip, 0.5-0.8 dB/cm/MHz
    blood_db_per_mm = 2 * 0.15 * frequency_mhz / 10

    def path_mm(top, bottom):
        return np.clip(depth_mm - top[None, :], 0, np.maximum(bottom - top, 0)[None, :])

    blood_path = path_mm(edges["rv_cavity"], edges["septum"]) + path_mm(edges["upper"], edges["lower"])
    gel_path = np.minimum(depth_mm, edges["gel"][None, :])
    loss_db = tissue_db_per_mm * (depth_mm - gel_path - blood_path) + blood_db_per_mm * blood_path
    focus_mm = np.mean(edges["upper"] + edges["lower"]) / 2 + rng.uniform(-1.0, 1.0)
    focus_db = -np.minimum(6 * ((depth_mm - focus_mm) / rng.uniform(2.0, 4.0)) ** 2, 12)
    signal_gain = 10 ** ((focus_db - loss_db) / 20)

    sigma_px = pulse_sigma_mm / mm_per_px
    noise_std = 10 ** (rng.uniform(-62, -48) / 20) * np.sqrt(mm_per_px)  # white noise per pixel, pre-filter
    noise = noise_std * (rng.standard_normal(field.shape) + 1j * rng.standard_normal(field.shape)) / np.sqrt(2)
    field = field + noise / signal_gain  # noise enters after the tissue's losses, before the gains
    # zero-padded to twice the overhang, so that the circular convolution wraps nothing into the top rows
    length = 2 * rows - height
    frequency = np.fft.fftfreq(length)[:, None]
    transfer = sigma_px * np.sqrt(2 * np.pi) * np.exp(-2 * (np.pi * sigma_px * frequency) ** 2)
    echo = np.fft.ifft(np.fft.fft(field, n=length, axis=0) * transfer, axis=0)[:height]

    knots_mm = np.linspace(0, depth_mm[height - 1, 0], 7)
    sliders_db = np.interp(depth_mm[:height, 0], knots_mm, rng.uniform(-3, 3, 7))[:, None]
    # The sonographer's TGC evens out the mean loss down to the pleura (a drawn fraction of it), plus sliders;
    # beyond the pleura there is only reverberation, and raising the gain there would show noise alone.
    mean_loss_db = np.minimum(loss_db[:height].mean(axis=1), np.interp(edges["pleura"].mean(), depth_mm[:, 0],
                                                                       loss_db.mean(axis=1)))
    tgc_db = rng.uniform(0.8, 1.1) * mean_loss_db[:, None] + sliders_db
    echo *= signal_gain[:height] * 10 ** (tgc_db / 20)
    if interference is not None:
        echo += interference[:height] * np.sqrt(pulse_sigma_mm * np.sqrt(np.pi))
    level_db = 20 * np.log10(np.abs(echo) + 1e-12)
    # Gain set on the whole picture: its 90th percentile at a drawn grey, `range_db` from black to white.
    range_db = rng.uniform(40, 65)
    top_db = np.percentile(level_db[::3, ::3], 90) + range_db * (1 - rng.uniform(0.5, 0.8))
    grey = np.clip((level_db - top_db + range_db) / range_db, 0, 1) ** rng.uniform(0.8, 1.4)
    return np.round(255 * grey).astype(np.uint8)
