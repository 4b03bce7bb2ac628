"""The point-scatterer generator of bench/scattersim.py: deterministic, truth consistent with its own motion and
with its image (dark cavity between the borders, speckle that decorrelates, confounders inside the cavity)."""
from functools import lru_cache

import numpy as np
import pytest

from bench.scattersim import beta_step, scattersim_recording

# Seeds drawn once: their condition is asserted where it matters.
PLAIN_SEEDS = (23, 24, 28)
CONFOUNDER_SEEDS = {20: "papillary muscle", 26: "papillary muscle", 21: "chordae", 22: "chordae"}
PREMATURE_SEED = 10  # one premature beat in the first 1.5 s


@lru_cache(maxsize=None)
def recording(seed, duration_s=0.8, artefacts=False):
    return scattersim_recording(seed, duration_s, artefacts=artefacts)


def margin_px(simulated):
    """Rows kept clear of a border: the pulse's blur (FWHM <= 2 wavelengths, <= 0.1 mm) and a little more."""
    return max(3, int(np.ceil(0.12 / simulated.mm_per_px)))


def test_beta_step_is_a_smooth_step_with_its_lobe_where_asked():
    u = np.linspace(-0.5, 1.5, 4001)
    step = beta_step(u, 2.0, 4.0)
    assert step[u <= 0].max() == 0 and step[u >= 1].min() == pytest.approx(1.0)
    assert np.all(np.diff(step) >= 0)
    velocity = np.gradient(step, u)
    assert u[np.argmax(velocity)] == pytest.approx((2 - 1) / (2 + 4 - 2), abs=0.01)  # the beta mode


def test_same_seed_same_recording_other_seed_differs():
    first, again, other = (scattersim_recording(seed, 0.4) for seed in (5, 5, 6))
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.upper_px, again.upper_px) and np.array_equal(first.lower_px, again.lower_px)
    assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)
    assert first.name == "scatter_5" and first.artefact_columns == [] and not first.lost_contact.any()


@pytest.mark.parametrize("seed", [PREMATURE_SEED, 11])
def test_truth_beats_follow_the_diameter_curve(seed):
    simulated = recording(seed, 1.5)
    lvid_mm = simulated.lvid_mm
    assert lvid_mm.shape == (simulated.image.shape[1],)
    assert len(simulated.beats) >= 3
    for beat, following in zip(simulated.beats[:-1], simulated.beats[1:]):
        ed, es, next_ed = (int(round(time_s / simulated.s_per_px))
                           for time_s in (beat["t_ed_s"], beat["t_es_s"], following["t_ed_s"]))
        filling_start = max(0, ed - int(0.3 * beat["rr_s"] / simulated.s_per_px))
        assert ed < es < next_ed
        # end-diastole: the largest diameter from late filling to end-systole; end-systole: the smallest until
        # the next end-diastole
        assert beat["lvid_d_mm"] == pytest.approx(lvid_mm[ed], abs=1e-9)
        assert beat["lvid_d_mm"] == pytest.approx(lvid_mm[filling_start:es + 1].max(), abs=1e-3)
        assert beat["lvid_s_mm"] == pytest.approx(lvid_mm[es], abs=1e-9)
        assert beat["lvid_s_mm"] == pytest.approx(lvid_mm[ed:next_ed + 1].min(), abs=1e-3)
        assert following["t_ed_s"] - beat["t_ed_s"] == pytest.approx(beat["rr_s"], abs=1.01 * simulated.s_per_px)
    rr_s = np.array([beat["rr_s"] for beat in simulated.beats])
    assert simulated.hr_bpm == pytest.approx(60 / rr_s.mean())
    assert 300 * 0.8 < simulated.hr_bpm < 750 * 1.2


def test_a_premature_beat_comes_early_with_a_small_stroke_and_a_pause_after_it():
    simulated = recording(PREMATURE_SEED, 1.5)
    assert simulated.parameters["premature_beat"]
    rr_s = np.array([beat["rr_s"] for beat in simulated.beats])
    stroke_mm = np.array([beat["lvid_d_mm"] - beat["lvid_s_mm"] for beat in simulated.beats])
    early = int(np.argmin(rr_s)) + 1  # the beat that ends the short cycle
    assert rr_s[early - 1] < 0.8 * np.median(rr_s) and rr_s[early] > 1.2 * np.median(rr_s)
    assert stroke_mm[early] < 0.8 * np.median(stroke_mm)


def test_cavity_is_darker_than_the_walls_just_outside_the_borders():
    for seed in PLAIN_SEEDS + tuple(CONFOUNDER_SEEDS):
        simulated = recording(seed)
        image = simulated.image.astype(float)
        rows = np.arange(image.shape[0])[:, None]
        upper, lower = simulated.upper_px[None, :], simulated.lower_px[None, :]
        margin, band = margin_px(simulated), int(np.ceil(0.25 / simulated.mm_per_px))
        cavity = np.median(image[(rows > upper + margin) & (rows < lower - margin)])
        septum = np.median(image[(rows < upper - margin) & (rows >= upper - margin - band)])
        posterior = np.median(image[(rows > lower + margin) & (rows <= lower + margin + band)])
        assert septum > cavity + 50 and posterior > cavity + 50, seed


def test_wall_speckle_persists_between_neighbouring_columns_and_decorrelates_over_time():
    for seed in PLAIN_SEEDS:
        simulated = recording(seed)
        image = simulated.image.astype(float)
        columns = np.arange(image.shape[1])
        # 12 rows of posterior wall below the border, following it
        first_row = np.round(simulated.lower_px).astype(int) + margin_px(simulated)
        profiles = np.stack([image[first_row + offset, columns] for offset in range(12)], axis=1)
        profiles -= profiles.mean(axis=1, keepdims=True)
        profiles /= np.linalg.norm(profiles, axis=1, keepdims=True) + 1e-9
        far = int(round(0.3 / simulated.s_per_px))
        near_correlation = np.median((profiles[:-1] * profiles[1:]).sum(axis=1))
        far_correlation = np.median((profiles[:-far] * profiles[far:]).sum(axis=1))
        assert near_correlation > 0.8 and abs(far_correlation) < 0.3, seed


def test_artefacts_change_the_image_but_not_the_truth():
    for seed in (30, 31):
        clean, with_artefacts = recording(seed, 0.6), recording(seed, 0.6, True)
        assert with_artefacts.parameters["artefacts"]
        assert np.array_equal(clean.upper_px, with_artefacts.upper_px)
        assert np.array_equal(clean.lower_px, with_artefacts.lower_px)
        assert clean.beats == with_artefacts.beats
        assert np.mean(clean.image != with_artefacts.image) > 0.05


def bright_share_in_cavity(simulated):
    """Share of the cavity's pixels (clear of the borders) brighter than the posterior wall's median."""
    image = simulated.image.astype(float)
    rows = np.arange(image.shape[0])[:, None]
    upper, lower = simulated.upper_px[None, :], simulated.lower_px[None, :]
    margin, band = margin_px(simulated), int(np.ceil(0.25 / simulated.mm_per_px))
    wall = np.median(image[(rows > lower + margin) & (rows <= lower + margin + band)])
    return np.mean(image[(rows > upper + margin) & (rows < lower - margin)] > wall)


def test_papillary_muscle_and_chordae_show_inside_the_truth_cavity_and_plain_cavities_stay_dark():
    for seed, condition in CONFOUNDER_SEEDS.items():
        simulated = recording(seed)
        assert simulated.condition == condition
        assert bright_share_in_cavity(simulated) > 0.004, seed
    for seed in PLAIN_SEEDS:
        simulated = recording(seed)
        assert simulated.condition == "plain"
        assert bright_share_in_cavity(simulated) < 0.0005, seed
