"""Simulator rendering: boundaries (mm per column) to an 8-bit M-mode image, with artefacts and cavity echoes.

Echo amplitude = layer reflectivity x Rayleigh speckle, both looked up by *material depth*: each pixel's
depth mapped piecewise-linearly from its layer's current extent to that layer's mean extent, so speckle
streaks follow (and stretch with) the moving walls. Then noise, a coherent point-spread blur along depth and
time, depth gain (imperfect TGC), smoothing, log compression relative to the myocardium and a display gamma,
all drawn per recording so that the look varies widely. Everything is vectorised over the whole image.
"""
import numpy as np

from preprocess.sim_motion import BOUNDARIES, contraction as contraction_curve

ARTEFACT_KINDS = ("probe_motion", "lost_contact", "reverberation")
# Axial resolution (mm, full width at half maximum of the pulse envelope), drawn log-uniformly: 30-40 MHz
# probes resolve 40-75 um axially (VisualSonics MS-550D 40, MS-400 50, MS-250 75 um), worse with depth and
# at low transmit frequency. Simulators 1.0-1.4 drew 0.5-4 px (median about 0.016 mm at 0.0115 mm/px).
AXIAL_FWHM_MM = (0.03, 0.12)
# The pulse envelope is cut where it is 50 dB down: exp(-x^2 / 2 sigma^2) = 10^(-50/20) at x = 3.4 sigma.
PULSE_CUT_SIGMAS = 3.4
FWHM_PER_SIGMA = 2.3548  # a Gaussian's 2 sqrt(2 ln 2), to the digits simulator 1.5's recordings were drawn with
# Fraction of recordings with chordae that ride on the posterior wall through the whole cycle (since 1.5).
RIDING_CHORDAE_FRACTION = 0.4
# Fraction of recordings whose papillary muscles are caps that blend into the posterior wall (simulator 1.4).
CAP_FRACTION = 0.5


def draw_artefacts(rng, width_px, s_per_px, probability, kinds=ARTEFACT_KINDS):
    """Artefacts of one recording: a list of dicts `kind`, `start`, `stop` (columns, stop exclusive).

    With probability `probability` the recording gets one to all of the allowed `kinds`, each once; lost
    contact lies at the start, the end or the middle and covers 10-33 % of the recording (at most 1 s).
    """
    draw = rng.random()
    count = int(rng.integers(1, len(kinds) + 1)) if kinds else 0
    picks = rng.permutation(len(kinds))[:count]
    if draw >= probability or not kinds:
        return []
    artefacts = []
    for kind in [kinds[p] for p in picks]:
        if kind == "lost_contact":
            length = int(min(rng.uniform(0.25, 1.0) / s_per_px, rng.uniform(0.1, 0.33) * width_px))
            where = rng.choice(["start", "end", "middle"])
            start = 0 if where == "start" else width_px - length if where == "end" else \
                int(rng.integers(width_px // 4, max(width_px // 4 + 1, 3 * width_px // 4 - length)))
            artefacts.append(dict(kind=kind, start=int(start), stop=int(start + length)))
        elif kind == "probe_motion":
            length = int(rng.uniform(0.005, 0.04) / s_per_px) + 2
            start = int(rng.integers(0, max(1, width_px - length)))
            artefacts.append(dict(kind=kind, start=start, stop=start + length,
                                  shift_mm=float(rng.choice([-1, 1]) * rng.uniform(0.08, 0.5)),
                                  returns=bool(rng.random() < 0.4)))
        elif kind == "reverberation":
            length = int(width_px * rng.uniform(0.2, 1.0))
            start = int(rng.integers(0, width_px - length + 1))
            artefacts.append(dict(kind=kind, start=start, stop=start + length,
                                  spacing_mm=float(rng.uniform(0.35, 1.4)), level=float(rng.uniform(0.15, 1.0))))
    return sorted(artefacts, key=lambda a: a["start"])


def probe_shift_mm(artefacts, width_px):
    """Depth shift (mm) per column from probe-motion artefacts: a smooth step, sometimes shifting back later."""
    shift_mm = np.zeros(width_px)
    columns = np.arange(width_px)
    for artefact in artefacts:
        if artefact["kind"] != "probe_motion":
            continue
        start, stop = artefact["start"], artefact["stop"]
        step = np.clip((columns - start) / max(stop - start, 1), 0, 1)
        step = 0.5 - 0.5 * np.cos(np.pi * step)
        if artefact["returns"]:
            back = np.clip((columns - stop - 4 * (stop - start)) / max(stop - start, 1), 0, 1)
            step = step - (0.5 - 0.5 * np.cos(np.pi * back))
        shift_mm += artefact["shift_mm"] * step
    return shift_mm


def cavity_echoes(rng, index, phase, schedule, lower_px, lvid_px, mm_per_px, shape_rng):
    """Papillary-muscle blobs (systole) and mitral/chordal lines (diastole) inside the cavity near the
    posterior wall, in some beats. They never bridge the cavity (at most ~45 % of the LVID).

    A papillary muscle is myocardium: from dim to as bright as the posterior wall (0.6-1.5), and from
    fading towards its tip to as sharply bounded as the wall. It takes one of two forms per recording: a
    spire rising from the wall and falling back within systole (simulators 1.0-1.3), or (since 1.4, half
    the recordings) a cap, where the cursor crosses the muscle's body, that thickens with the contraction
    past an onset, over the whole systolic peak, and whose speckle moves with the wall, so that it blends
    into the wall.
    `shape_rng` draws the tip's profile and the form; a stream of its own, so that `rng`'s draws, and with
    them the rest of the image, are those of simulator 1.2.

    Returns (top_px, bottom_px, level, tip, anchored) with arrays of shape (2, W); level 0 where there is
    none; tip the exponent of the fade from base to tip (0: none, a sharp edge; 0.5: a square-root fade to
    zero); anchored True where the echo's speckle moves with the posterior wall (a cap).
    """
    n_beats = schedule["t_ed_s"].size
    papillary_rate, chordae_rate = rng.uniform(0.1, 1.0), rng.uniform(0, 0.5)
    papillary = rng.random(n_beats) < papillary_rate
    start_frac = rng.uniform(0.0, 0.15, n_beats)
    stop_frac = schedule["es_frac"] + rng.uniform(0.0, 0.25, n_beats)
    height_frac = rng.uniform(0.1, 0.45, n_beats)
    gap_px = np.where(rng.random(n_beats) < 0.5, 0.0, rng.uniform(0.01, 0.08, n_beats) / mm_per_px)
    level = rng.uniform(0.12, 1.2, n_beats)
    tip = shape_rng.uniform(0.0, 0.5, n_beats)
    # Drawn after the tips, so that a seed's tips are those of simulator 1.3.
    caps = shape_rng.random() < CAP_FRACTION
    cap_frac = shape_rng.uniform(0.08, 0.35, n_beats)
    cap_power = shape_rng.uniform(0.7, 2.0, n_beats)
    cap_onset = shape_rng.uniform(0.1, 0.5, n_beats)
    chordae = rng.random(n_beats) < chordae_rate
    chord_offset = rng.uniform(0.15, 0.5, n_beats)
    chord_px = rng.uniform(0.015, 0.05, n_beats) / mm_per_px
    chord_level = rng.uniform(0.08, 0.4, n_beats)

    s = np.clip((phase - start_frac[index]) / (stop_frac[index] - start_frac[index]), 0, 1)
    wobble = np.clip(1 + 0.25 * _smooth_noise(rng, index.size, rng.uniform(3, 15)), 0.5, 1.5)
    height_px = height_frac[index] * lvid_px * np.sin(np.pi * s) ** 0.6 * wobble
    on = papillary[index] & (s > 0) & (s < 1)
    if caps:
        # Grows with the contraction (0 at end-diastole, 1 at end-systole) once past its onset: a systolic
        # thickening, gone again by the slow filling of diastole.
        f = np.clip((contraction_curve(index, phase, schedule) - cap_onset[index]) / (1 - cap_onset[index]), 0, 1)
        height_px = cap_frac[index] * lvid_px * f ** cap_power[index] * wobble
        on = papillary[index]
    height_px = np.minimum(height_px, 0.45 * lvid_px - gap_px[index])
    on &= height_px > 1
    pap_bottom = lower_px - gap_px[index]
    pap_top = pap_bottom - height_px

    d = np.clip((phase - schedule["rf_end_frac"][index]) / (1 - schedule["rf_end_frac"][index]), 0, 1)
    chord_on = chordae[index] & (d > 0) & (d < 1)
    chord_bottom = lower_px - chord_offset[index] * lvid_px
    chord_top = chord_bottom - chord_px[index]
    levels = [np.where(on, level[index], 0.0), np.where(chord_on, chord_level[index] * np.sin(np.pi * d), 0.0)]
    tips = [tip[index], np.zeros(index.size)]
    anchored = np.stack([np.full(index.size, caps), np.zeros(index.size, dtype=bool)])
    return (np.stack([pap_top, chord_top]), np.stack([pap_bottom, chord_bottom]), np.stack(levels), np.stack(tips),
            anchored)


def riding_chordae(rng, time_s, lower_px, lvid_px, mm_per_px):
    """Chordae tendineae crossed by the cursor (since 1.5): in RIDING_CHORDAE_FRACTION of recordings one to
    three thin lines 0.1-0.6 mm above the posterior wall's surface (closer as the cavity shrinks) that ride on
    the wall through the whole cycle, flutter a little, fade in and out over fractions of a second, and range
    from faint to brighter than the wall (specular). The truth excludes them: they lie inside the cavity.
    `rng` is a stream of its own, so a seed's other draws are those of simulator 1.4.

    `time_s` (W,) each column's time. Returns (top_px, bottom_px, level, tip, anchored) as `cavity_echoes`,
    shape (K, W), K = 0-3.
    """
    width = lower_px.size
    count = int(rng.integers(1, 4)) if rng.random() < RIDING_CHORDAE_FRACTION else 0
    shrink = lvid_px / lvid_px.max()
    tops, bottoms, levels = [], [], []
    for _ in range(count):
        height_px = rng.uniform(0.1, 0.6) / mm_per_px * shrink
        flutter_px = 0.015 / mm_per_px * np.sin(2 * np.pi * rng.uniform(5, 15) * time_s + rng.uniform(0, 2 * np.pi))
        bottom = lower_px - np.minimum(height_px + flutter_px, 0.45 * lvid_px)
        thickness_px = max(rng.uniform(0.01, 0.04) / mm_per_px, 1.2)
        on = np.clip(0.5 + 1.5 * np.sin(2 * np.pi * time_s / rng.uniform(0.3, 1.2) + rng.uniform(0, 2 * np.pi)), 0, 1)
        tops.append(bottom - thickness_px)
        bottoms.append(bottom)
        levels.append(np.exp(rng.uniform(np.log(0.3), np.log(3.0))) * on)
    shape = (count, width)
    return (np.array(tops).reshape(shape), np.array(bottoms).reshape(shape), np.array(levels).reshape(shape),
            np.zeros(shape), np.zeros(shape, dtype=bool))


def _smooth_noise(rng, n, sigma):
    """Zero-mean, unit-variance noise of length n, Gaussian-correlated over `sigma` samples."""
    radius = max(1, int(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-3)) ** 2)
    noise = np.convolve(rng.normal(0, 1, n + 2 * radius), kernel, mode="valid")
    return noise / (noise.std() + 1e-9)


def _gaussian(x, centre, width):
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def _material_profile(rng, reference_px, material_px, dm_px, mm_per_px):
    """Reflectivity (linear amplitude, myocardium ~1) along the material-depth grid `material_px` (px),
    and the weight (0..1) of the systolic brightening of the pericardium and the lung behind it."""
    layer = np.clip(np.searchsorted(reference_px, material_px, side="right") - 1, 0, len(reference_px) - 2)
    n = material_px.size
    texture = 0.6 * _smooth_noise(rng, n, rng.uniform(0.03, 0.15) / mm_per_px / dm_px) \
        + 0.4 * _smooth_noise(rng, n, rng.uniform(0.005, 0.02) / mm_per_px / dm_px)
    # The right-ventricular cavity: a dark band in some recordings, hardly distinct from the walls in most.
    rv_level = rng.uniform(0.02, 0.15) if rng.random() < 0.35 else rng.uniform(0.2, 0.9)
    # The pericardium: the brightest echo of most recordings, dim in some.
    pericardium_level = rng.uniform(3.0, 15.0) if rng.random() < 0.75 else rng.uniform(0.8, 3.0)
    # One reflectivity per layer: above the skin (coupling gel), then the layers between BOUNDARIES.
    base = np.array([
        rng.uniform(0.005, 0.03),  # gel above the skin
        rng.uniform(0.5, 1.6),  # chest wall
        rng.uniform(0.3, 1.2),  # mediastinal gap
        rng.uniform(0.6, 1.3),  # right-ventricular free wall
        rv_level,  # right-ventricular cavity
        rng.uniform(0.6, 1.3),  # septum
        10 ** (rng.uniform(-40, -12) / 20),  # LV cavity (blood)
        rng.uniform(0.6, 1.5),  # posterior wall
        pericardium_level,  # pericardium
        rng.uniform(0.15, 0.8),  # lung
    ])
    texture_depth = np.array([0.1, 0.35, 0.3, 0.15, 0.2, 0.15, 0.3, 0.15, 0.25, 0.3])
    profile = base[layer] * np.exp(texture_depth[layer] * texture)
    # A few bright fascia lines in the chest wall and the skin line.
    for _ in range(int(rng.integers(0, 4))):
        centre = rng.uniform(reference_px[1], reference_px[2])
        profile += (layer == 1) * rng.uniform(0.5, 3.0) * _gaussian(material_px, centre, rng.uniform(0.5, 3.0))
    profile += rng.uniform(0.3, 3) * _gaussian(material_px, reference_px[1], 2.0)
    # Sometimes a brighter endocardial surface on the wall side of each border.
    septum_side, posterior_side = material_px < reference_px[6], material_px > reference_px[7]
    for edge, side in ((reference_px[6], septum_side), (reference_px[7], posterior_side)):
        if rng.random() < 0.5:
            profile += side * rng.uniform(0.3, 1.2) * _gaussian(material_px, edge, rng.uniform(0.01, 0.03) / mm_per_px)
    # Lung: a pleural echo and reverberation lines at a regular spacing, fading with depth.
    depth_px = np.maximum(material_px - reference_px[9], 0)
    decay = np.exp(-depth_px * mm_per_px / rng.uniform(0.4, 2.5))
    spacing_px = rng.uniform(0.3, 1.2) / mm_per_px
    phase = depth_px % spacing_px
    lines = _gaussian(np.minimum(phase, spacing_px - phase), 0, rng.uniform(1.5, 5.0))
    lung = layer == 9
    profile = np.where(lung, profile * (0.4 + decay) + rng.uniform(0.5, 4) * decay * lines, profile)
    # Pericardium and the near lung brighten with each contraction (changing angle of incidence).
    weight = np.where(layer == 8, 1.0, np.where(lung, decay, 0.0))
    return profile.astype(np.float32), weight.astype(np.float32)


def _blur_rows(image, sigma, truncate=2.0):
    """Gaussian blur along axis 0 (depth), `sigma` in pixels, cut at `truncate` sigmas, edges clamped by truncation."""
    radius = int(np.ceil(truncate * sigma))
    if sigma < 0.3 or radius < 1:
        return image
    taps = np.exp(-0.5 * (np.arange(radius + 1) / sigma) ** 2)
    taps /= taps[0] + 2 * taps[1:].sum()
    out = image * taps[0]
    for t in range(1, radius + 1):
        out[t:] += taps[t] * image[:-t]
        out[:-t] += taps[t] * image[t:]
    return out


def render(rng, boundaries_mm, params, contraction, echoes, artefacts):
    """The uint8 image (height_px, W) of one recording.

    `boundaries_mm`: dict of (W,) depths for BOUNDARIES; `contraction` (W,) 0..1; `echoes`: (top_px,
    bottom_px, level, tip, anchored) from cavity_echoes; `artefacts`: from draw_artefacts.
    """
    height, mm_per_px = params.height_px, params.mm_per_px
    width = contraction.size
    # Boundaries in px, with a far-above sentinel so every pixel falls in a layer.
    edges = np.stack([boundaries_mm["skin"] / mm_per_px - 1000.0]
                     + [boundaries_mm[name] / mm_per_px for name in BOUNDARIES]).astype(np.float32)
    reference = edges.mean(axis=1)
    slope = (np.diff(reference)[:, None] / np.maximum(np.diff(edges, axis=0), 1e-3)).astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    layer = np.zeros((height, width), dtype=np.intp)
    for edge in edges[1:-1]:
        layer += rows >= edge[None, :]
    flat = layer * width + np.arange(width)
    material = reference[layer] + (rows - edges[:-1].ravel()[flat]) * slope.ravel()[flat]

    # Material grid: the speckle grain size varies between recordings.
    dm_px = rng.uniform(0.6, 1.4)
    material_lo = reference[1] - max(edges[1].max(), 0) - 2
    material_grid = np.arange(material_lo, reference[-1] + 2 * dm_px, dm_px)
    profile, flash_weight = _material_profile(rng, reference, material_grid, dm_px, mm_per_px)
    # A papillary cap's material continues the posterior wall's upwards: its speckle moves with the wall.
    cap = _anchored_pixels(rows, echoes)
    material = np.where(cap, reference[7] + (rows - edges[7][None, :]), material)
    m_index = np.clip(((material - material_lo) / dm_px).astype(np.intp), 0, material_grid.size - 1)

    # Reflectivity map: layers (with systolic flash), cavity echoes, artefacts, near-field ring-down.
    flash = rng.uniform(0, 1.5) * contraction.astype(np.float32)
    reflectivity = profile[m_index] * (1 + flash_weight[m_index] * flash[None, :])
    _add_cavity_echoes(reflectivity, rows, echoes)
    _add_reverberation(rng, reflectivity, rows, artefacts, mm_per_px)
    _apply_lost_contact(rng, reflectivity, rows, artefacts, mm_per_px)
    near = int(min(height, 0.4 / mm_per_px))
    line_px = rng.uniform(0.02, 0.3) / mm_per_px
    ring = rng.uniform(0.5, 5) * _gaussian(rows[:near, 0], line_px, rng.uniform(1, 4))
    reflectivity[:near] += ring.astype(np.float32)[:, None]
    # Near-field clutter: a haze fading with depth, from none to as bright as the walls.
    clutter = rng.uniform(0, 1) ** 2 * np.exp(-rows[:, 0] * mm_per_px / rng.uniform(0.2, 1.2))
    reflectivity += clutter.astype(np.float32)[:, None]

    # Echo = reflectivity x speckle. Speckle: a complex field on the material grid that decorrelates
    # slowly along time (coarse time grid, interpolated) plus a per-pixel part; the per-pixel part
    # also carries the electronic noise floor.
    corr_px = max(2.0, np.exp(rng.uniform(np.log(0.002), np.log(0.025))) / params.s_per_px)
    n_coarse = int(width / corr_px) + 3
    # Streak thickness: the complex field is correlated along material depth.
    streak_sigma = rng.uniform(0.4, 1.8) / dm_px
    parts = [_blur_rows(rng.standard_normal((material_grid.size, n_coarse), dtype=np.float32), streak_sigma)
             for _ in range(2)]
    field = (parts[0] + 1j * parts[1]).astype(np.complex64)
    field /= np.sqrt(np.mean(np.abs(field) ** 2) / 2)
    position = np.arange(width) / corr_px + rng.uniform(0, 1)
    i0 = position.astype(np.intp)
    w = (position - i0).astype(np.float32)
    norm = (1 / np.sqrt((1 - w) ** 2 + w ** 2)).astype(np.float32)
    speckle_flat = m_index * n_coarse + i0
    flat_field = field.ravel()
    slow = (flat_field[speckle_flat] * ((1 - w) * norm) + flat_field[speckle_flat + 1] * (w * norm))
    fast = rng.standard_normal((height, width), dtype=np.float32) \
        + 1j * rng.standard_normal((height, width), dtype=np.float32)
    grain = np.exp(rng.uniform(np.log(0.1), np.log(1.5)))
    noise_level = 10 ** (rng.uniform(-38, -14) / 20)
    echo = reflectivity * slow + (reflectivity * grain + noise_level) * fast
    # Point-spread function: a coherent blur of the echo along depth (the transducer's axial resolution,
    # in mm: a Gaussian pulse envelope of AXIAL_FWHM_MM, cut where it is 50 dB down, since 1.5) and along
    # time (beam width / line density).
    echo = _blur_rows(echo, axial_sigma_px(rng, mm_per_px), truncate=PULSE_CUT_SIGMAS)
    sigma_t = rng.uniform(0, 2.5)
    if sigma_t > 0.4:
        echo = _blur_rows(echo.T, sigma_t).T
    amplitude = np.abs(echo)

    # Depth gain: attenuation imperfectly compensated by TGC; slow gain drift along time.
    depth_mm = rows[:, 0] * mm_per_px
    tgc_db = rng.uniform(-2.5, 1.5) * (depth_mm - depth_mm.mean()) + 1.5 * _smooth_noise(rng, height, height / 6)
    drift_db = rng.uniform(0, 1.5) * _smooth_noise(rng, width, rng.uniform(0.2, 1.0) / params.s_per_px)
    amplitude *= (10 ** (tgc_db / 20)).astype(np.float32)[:, None]
    amplitude *= (10 ** (drift_db / 20)).astype(np.float32)[None, :]
    # Post-detection smoothing lowers the speckle contrast (from grainy to smooth walls).
    amplitude = _blur_rows(amplitude, rng.uniform(0.3, 2.0))

    # Log compression relative to the median myocardial echo, which lands at grey `wall_grey` (after the
    # display gamma); `range_db` spans black to white; the black level lifts the cavity's noise floor.
    myocardium = (layer == 5) | (layer == 7)
    sample = (slice(None), slice(None, None, 8))
    wall_amplitude = np.median(amplitude[sample][myocardium[sample]]) if myocardium.any() else 1.0
    range_db = rng.uniform(30, 65)
    gamma = rng.uniform(0.75, 1.35)
    wall_grey = 0.08 + 0.34 * rng.uniform(0, 1) ** 1.5
    grey = (20 * np.log10(amplitude / wall_amplitude + 1e-6)) / range_db + wall_grey ** (1 / gamma)
    np.clip(grey, 0, 1, out=grey)
    grey **= gamma
    black = 0.12 * rng.uniform(0, 1) ** 2
    return ((black + (1 - black) * grey) * 255 + 0.5).astype(np.uint8)


def axial_sigma_px(rng, mm_per_px):
    """The axial point-spread's Gaussian sigma in rows: a pulse of FWHM drawn log-uniformly in AXIAL_FWHM_MM."""
    return np.exp(rng.uniform(*np.log(AXIAL_FWHM_MM))) / FWHM_PER_SIGMA / mm_per_px


def _anchored_pixels(rows, echoes):
    """(H, W) bool: the pixels of the echoes whose speckle moves with the posterior wall (papillary caps)."""
    top_px, bottom_px, level, _, anchored = echoes
    mask = np.zeros((rows.shape[0], level.shape[1]), dtype=bool)
    for k in range(level.shape[0]):
        cols = np.flatnonzero((level[k] > 0) & anchored[k])
        mask[:, cols] |= (rows >= top_px[k, cols]) & (rows < bottom_px[k, cols])
    return mask


def _add_cavity_echoes(reflectivity, rows, echoes):
    """Papillary / chordal echoes: papillary muscles brightest at their base, fading towards their tip by
    their `tip` exponent (0: not at all); chordal lines uniform."""
    top_px, bottom_px, level, tip = echoes[:4]
    for k in range(level.shape[0]):
        cols = np.flatnonzero(level[k] > 0)
        if cols.size:
            height_px = np.maximum(bottom_px[k, cols] - top_px[k, cols], 1e-3)
            frac = (bottom_px[k, cols] - rows) / height_px
            inside = (frac > 0) & (frac < 1)
            # Papillary muscles (k = 0) fade towards their tip, or not at all (tip 0); chordal lines are uniform.
            shade = level[k, cols] * np.clip(1 - frac, 0, 1) ** tip[k, cols]
            sub = reflectivity[:, cols]
            reflectivity[:, cols] = np.where(inside, np.maximum(sub, shade), sub)


def _add_reverberation(rng, reflectivity, rows, artefacts, mm_per_px):
    """Reverberation: static horizontal bands at multiples of a spacing, fading in and out over their columns."""
    for artefact in artefacts:
        if artefact["kind"] != "reverberation":
            continue
        start, stop = artefact["start"], artefact["stop"]
        spacing_px = artefact["spacing_mm"] / mm_per_px
        phase = rows[:, 0] % spacing_px
        band = _gaussian(np.minimum(phase, spacing_px - phase), 0, rng.uniform(1.0, 3.0))
        band *= np.exp(-rows[:, 0] / (rng.uniform(2, 6) * spacing_px)) * artefact["level"]
        band[rows[:, 0] < spacing_px / 2] = 0
        n = stop - start
        ramp = np.clip(np.minimum(np.arange(n) + 1, n - np.arange(n)) / 30, 0, 1)
        reflectivity[:, start:stop] += (band[:, None] * ramp[None, :]).astype(np.float32)


def _apply_lost_contact(rng, reflectivity, rows, artefacts, mm_per_px):
    """Lost contact: the anatomy fades (irregularly, deep echoes first) to a faint haze, sometimes with a
    stray wavy echo; no ventricle is visible."""
    for artefact in artefacts:
        if artefact["kind"] != "lost_contact":
            continue
        start, stop = artefact["start"], artefact["stop"]
        n = stop - start
        ramp_px = max(2, int(n * rng.uniform(0.03, 0.25)))
        ramp = np.clip(np.minimum(np.arange(n) + 1, n - np.arange(n)) / ramp_px, 0, 1)
        ramp = np.clip(ramp * (1 + 0.3 * _smooth_noise(rng, n, max(2.0, n / 20))), 0, 1)
        dim = rng.uniform(0.005, 0.06)
        shallow = np.exp(-rows * mm_per_px / rng.uniform(0.05, 1.0))  # what stays of the near structures
        residual = dim + (1 - dim) * rng.uniform(0, 0.5) * shallow
        keep = (1 - ramp[None, :] * (1 - residual)).astype(np.float32)
        reflectivity[:, start:stop] *= keep
        if rng.random() < 0.6:
            depth_px = rows.shape[0] * rng.uniform(0.3, 0.85) + rng.uniform(5, 30) * np.sin(
                np.linspace(0, rng.uniform(2, 12), n) + rng.uniform(0, 6))
            line = rng.uniform(0.5, 3) * _gaussian(rows, depth_px[None, :], rng.uniform(2, 6)) * ramp[None, :]
            reflectivity[:, start:stop] += line.astype(np.float32)
