"""A second, independent M-mode generator, for measuring the default model away from its training simulator.

`preprocess.simulate` made every recording the networks learnt from, so figures measured on it flatter
them: a generator with other geometry, motion and rendering shows what survives the change. This one
shares no generation code with the training simulator and makes different choices on purpose:

- motion: a fixed cosine-shaped ejection and relaxation per beat, then slow filling (no atrial kick,
  no condition classes), a fixed share of the diameter change taken by the septum, respiration moving
  the whole heart up and down, walls thickening by a drawn fraction;
- geometry: the image height is drawn first and the depth calibration follows from the heart's depth
  (about 0.010-0.027 mm/px, coarser than most training recordings); the pericardium is a thin bright
  layer with lung reverberation bands below it;
- rendering: tissue texture read from one random profile per layer along the layer's own depth (so it
  follows the walls), slowly mixed with a second one over time, times per-pixel Rayleigh speckle;
  blurred in amplitude, then log-compressed with the walls' median at a drawn grey, a drawn dynamic
  range and gamma;
- papillary muscles in half the recordings: a bump rising from the posterior wall in systole, as bright
  as a fraction of the wall, which the truth (the wall) excludes;
- artefacts (optional): static reverberation bands crossing the cavity and a slow gain drift.

`altsim_recording(seed, duration_s, artefacts)` returns the training simulator's record type,
`preprocess.simulate.SimulatedRecording` (the only thing shared), with the fields `bench/accuracy.py`
compares against: `image`, `upper_px`, `lower_px`, `lvid_mm`, `mm_per_px`,
`s_per_px`, `beats` (t_ed_s, t_es_s, lvid_d_mm, lvid_s_mm, rr_s), `lost_contact`, `name` and `condition`
("papillary muscle" or "no papillary muscle").
"""
import numpy as np

from preprocess.simulate import SimulatedRecording

HEIGHT_PX = (450, 900)
S_PER_PX = (0.0006, 0.0012)
HR_BPM = (330, 720)
LVID_D_MM = (2.6, 4.6)
FS_PCT = (22, 55)


def _blur(array, sigma, axis):
    """Gaussian blur of `array` along `axis`, `sigma` in samples, edges held."""
    if sigma < 0.3:
        return array
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    pad = [(0, 0)] * array.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(array, pad, mode="edge")
    length = array.shape[axis]
    out = np.zeros_like(array)
    for tap, weight in enumerate(kernel):
        out += weight * np.take(padded, np.arange(tap, tap + length), axis=axis)
    return out


def beat_shape(phase, eject, relax, refill):
    """Share (0..1) of the stroke still to go at `phase` (0..1 of the beat): 1 at end-diastole (phase 0),
    0 at end-systole (phase `eject`), back to 1 - `refill` after relaxation, rising linearly to 1."""
    shape = np.ones_like(phase)
    systole = phase < eject
    shape[systole] = 0.5 * (1 + np.cos(np.pi * phase[systole] / eject))
    relaxing = (phase >= eject) & (phase < eject + relax)
    shape[relaxing] = (1 - refill) * 0.5 * (1 - np.cos(np.pi * (phase[relaxing] - eject) / relax))
    late = phase >= eject + relax
    shape[late] = 1 - refill * (1 - (phase[late] - eject - relax) / (1 - eject - relax))
    return shape


def _schedule(rng, duration_s, hr_bpm):
    """Beat onsets (s) and lengths (s) covering [0, duration_s), the first starting before 0."""
    rr_s = 60.0 / hr_bpm
    onsets, lengths = [-rng.uniform(0, rr_s)], []
    while onsets[-1] < duration_s:
        lengths.append(rr_s * (1 + rng.normal(0, 0.02)))
        onsets.append(onsets[-1] + lengths[-1])
    return np.array(onsets[:-1]), np.array(lengths)


def _layer_texture(rng, n):
    """A random Rayleigh-like profile of `n` samples, correlated over about a sample."""
    parts = rng.standard_normal((2, n + 8))
    parts = _blur(parts, rng.uniform(0.6, 1.5), axis=1)[:, 4:-4]
    texture = np.hypot(parts[0], parts[1])
    return texture / texture.mean()


def altsim_recording(seed, duration_s=3.0, artefacts=False, name=None):
    """One recording from the alternative generator, deterministic in `seed`."""
    rng = np.random.default_rng([int(seed), 71])
    s_per_px = rng.uniform(*S_PER_PX)
    width = int(round(duration_s / s_per_px))
    time_s = np.arange(width) * s_per_px
    hr_bpm = rng.uniform(*HR_BPM)
    lvid_d_mm = rng.uniform(*LVID_D_MM)
    lvid_s_mm = lvid_d_mm * (1 - rng.uniform(*FS_PCT) / 100)
    eject, relax, refill = rng.uniform(0.3, 0.42), rng.uniform(0.18, 0.3), rng.uniform(0.04, 0.15)

    onsets_s, lengths_s = _schedule(rng, duration_s, hr_bpm)
    beat = np.searchsorted(onsets_s, time_s, side="right") - 1
    phase = (time_s - onsets_s[beat]) / lengths_s[beat]
    shape = beat_shape(phase, eject, relax, refill)
    lvid_mm = lvid_s_mm + (lvid_d_mm - lvid_s_mm) * shape
    stroke = 1 - shape  # 0 at end-diastole, 1 at end-systole

    # Walls thicken as the cavity shrinks; the septum takes a share of the diameter change.
    septum_share = rng.uniform(0.3, 0.55)
    ivs_mm = rng.uniform(0.6, 1.1) * (1 + rng.uniform(0.3, 0.7) * stroke)
    lvpw_mm = rng.uniform(0.6, 1.1) * (1 + rng.uniform(0.3, 0.8) * stroke)
    resp_mm = rng.uniform(0, 0.2) * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * time_s + rng.uniform(0, 2 * np.pi))
    gel_mm, chest_mm = rng.uniform(0.1, 0.3), rng.uniform(0.8, 2.0)
    rv_wall_mm, rv_cavity_mm = rng.uniform(0.3, 0.6), rng.uniform(0.3, 1.2)
    pericardium_mm, lung_mm = rng.uniform(0.08, 0.2), rng.uniform(0.6, 2.0)
    top_mm = gel_mm + chest_mm + rv_wall_mm + rv_cavity_mm + ivs_mm.max() + 0.1
    upper_mm = top_mm + septum_share * (lvid_d_mm - lvid_mm) + resp_mm - resp_mm.min()
    lower_mm = upper_mm + lvid_mm
    depth_mm = lower_mm.max() + lvpw_mm.max() + pericardium_mm + lung_mm
    height = int(rng.integers(HEIGHT_PX[0], HEIGHT_PX[1] + 1))
    mm_per_px = depth_mm / height

    # Layer edges (mm, per column), top to bottom: gel | chest wall | mediastinal gap | RV wall | RV cavity |
    # septum | LV cavity | posterior wall | pericardium | lung.
    septum_top = upper_mm - ivs_mm
    rv_top = septum_top - rv_cavity_mm
    edges_mm = np.stack([np.full(width, gel_mm), np.full(width, gel_mm + chest_mm), rv_top - rv_wall_mm, rv_top,
                         septum_top, upper_mm, lower_mm, lower_mm + lvpw_mm, lower_mm + lvpw_mm + pericardium_mm])
    edges_px = (edges_mm / mm_per_px).astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    layer = np.zeros((height, width), dtype=np.intp)
    for edge in edges_px:
        layer += rows >= edge[None, :]

    wall = rng.uniform(0.6, 1.2)
    # gel, chest wall, mediastinal gap, RV wall, RV cavity, septum, LV cavity, posterior wall, pericardium, lung
    level = np.array([0.01, rng.uniform(0.5, 1.5), rng.uniform(0.2, 0.8), rng.uniform(0.5, 1.0),
                      rng.uniform(0.02, 0.4), wall * rng.uniform(0.8, 1.2), 10 ** (-rng.uniform(35, 55) / 20),
                      wall * rng.uniform(0.8, 1.2), rng.uniform(2, 8), rng.uniform(0.5, 2.0)], dtype=np.float32)
    # Texture along each layer's own depth: the position inside the layer, scaled to its mean thickness.
    top_px = np.vstack([np.zeros((1, width), np.float32), edges_px])
    bottom_px = np.vstack([edges_px, np.full((1, width), height, np.float32)])
    thickness_px = np.maximum(bottom_px - top_px, 1e-3)
    mean_thickness = thickness_px.mean(axis=1)
    columns = np.arange(width)
    inside = (rows - top_px[layer, columns]) / thickness_px[layer, columns]
    position = np.clip(inside * mean_thickness[layer], 0, None)
    size = int(np.ceil(mean_thickness.max())) + 2
    textures = [np.stack([_layer_texture(rng, size) for _ in level]) for _ in range(2)]
    mix = np.cumsum(rng.normal(0, rng.uniform(0.01, 0.05), width))
    index = np.minimum(position.astype(np.intp), size - 1)
    texture = (np.cos(mix) ** 2 * textures[0][layer, index] + np.sin(mix) ** 2 * textures[1][layer, index])

    reflectivity = level[layer] * texture
    # Lung: reverberation bands below the pleura, fading with depth.
    below = np.clip(rows - edges_px[-1][None, :], 0, None) * mm_per_px
    spacing_mm = rng.uniform(0.25, 0.8)
    bands = np.exp(-0.5 * ((below % spacing_mm) / (0.25 * spacing_mm)) ** 2) * np.exp(-below / rng.uniform(0.5, 2))
    reflectivity = np.where(layer == 9, reflectivity * (0.3 + bands), reflectivity)
    papillary = bool(rng.random() < 0.5)
    if papillary:
        _add_papillary(rng, reflectivity, rows, edges_px[6], stroke, wall, mm_per_px)
    if artefacts:
        _add_artefacts(rng, reflectivity, rows, edges_px, mm_per_px)

    # Speckle: a complex Gaussian field, elongated along time, its magnitude normalised to mean square 1.
    field = _blur(rng.standard_normal((2, height, width), dtype=np.float32), rng.uniform(0.5, 4.0), axis=2)
    speckle = np.hypot(field[0], field[1])
    speckle /= np.sqrt(np.mean(speckle[::5, ::5] ** 2))
    grain = rng.uniform(0.4, 1.0)
    amplitude = reflectivity * ((1 - grain) + grain * speckle) + 10 ** (-rng.uniform(45, 60) / 20) * speckle
    amplitude = _blur(amplitude, rng.uniform(0.4, 2.5), axis=0)
    amplitude = _blur(amplitude, rng.uniform(0, 2.0), axis=1)
    if artefacts:
        amplitude *= 10 ** (rng.uniform(0, 3) * np.sin(2 * np.pi * time_s / duration_s + rng.uniform(0, 6)) / 20)

    walls = (layer == 5) | (layer == 7)
    # Log compression: the walls' median echo lands at a drawn grey; `range_db` spans black to white.
    reference = np.median(amplitude[:, ::7][walls[:, ::7]])
    range_db = rng.uniform(35, 60)
    wall_grey = rng.uniform(0.3, 0.7)
    grey = np.clip(wall_grey + 20 * np.log10(amplitude / reference + 1e-9) / range_db, 0, 1) ** rng.uniform(0.8, 1.3)
    image = np.clip(grey * 255 + rng.normal(0, 2, grey.shape), 0, 255).astype(np.uint8)

    upper_px = (upper_mm / mm_per_px).astype(np.float64)
    lower_px = (lower_mm / mm_per_px).astype(np.float64)
    beats = []
    for onset_s, length_s in zip(onsets_s, lengths_s):
        if onset_s >= 0 and onset_s + length_s < duration_s:
            beats.append(dict(t_ed_s=float(onset_s), t_es_s=float(onset_s + eject * length_s),
                              lvid_d_mm=float(lvid_d_mm), lvid_s_mm=float(lvid_s_mm), rr_s=float(length_s)))
    hr_bpm = 60.0 / np.mean([beat["rr_s"] for beat in beats]) if beats else hr_bpm
    return SimulatedRecording(
        image=image, upper_px=upper_px, lower_px=lower_px, mm_per_px=float(mm_per_px), s_per_px=float(s_per_px),
        beats=beats, hr_bpm=float(hr_bpm), artefact_columns=[], name=name or f"alt_{seed}",
        condition="papillary muscle" if papillary else "no papillary muscle", seed=int(seed),
        lost_contact=np.zeros(width, dtype=bool))


def _add_papillary(rng, reflectivity, rows, lower_px, stroke, wall, mm_per_px):
    """A papillary muscle rising from the posterior wall through systole (brightest at its base)."""
    height_px = rng.uniform(0.15, 0.5) / mm_per_px * np.clip((stroke - 0.3) / 0.7, 0, 1)
    base = lower_px[None, :]
    inside = (rows < base) & (rows >= base - height_px[None, :])
    fade = np.clip((base - rows) / np.maximum(height_px[None, :], 1e-3), 0, 1)
    bump = wall * rng.uniform(0.3, 0.9) * (1 - 0.7 * fade)
    reflectivity[...] = np.where(inside, np.maximum(reflectivity, bump), reflectivity)


def _add_artefacts(rng, reflectivity, rows, edges_px, mm_per_px):
    """One or two static reverberation bands across the cavity, over part of the recording."""
    width = reflectivity.shape[1]
    for _ in range(int(rng.integers(1, 3))):
        depth_px = rng.uniform(edges_px[5].min(), edges_px[6].max())
        start = int(rng.uniform(0, 0.6) * width)
        stop = min(width, start + int(rng.uniform(0.2, 0.6) * width))
        line = rng.uniform(0.05, 0.3) * np.exp(-0.5 * ((rows - depth_px) / (0.02 / mm_per_px)) ** 2)
        reflectivity[:, start:stop] += line
