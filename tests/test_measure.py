"""mmode.measure: LVID from masks, Teichholz volumes, beat detection and per-beat parameters, against truth."""
import numpy as np
import pytest

from mmode.measure import (BEAT_COLUMNS, FEW_BEATS, MOUSE_LVID_D_MM, RR_TOLERANCE, SPREAD_KEYS, SPREAD_MIN_BEATS,
                           SUMMARY_KEYS, UNCERTAINTY_LIMIT, Beats, beat_parameters, beat_uncertainty,
                           cavity_borders_px, detect_beats, disagreement_px, few_beats_in_medians, flag_beats,
                           lvid_px, outside_mouse_range, summarise, teichholz_clinical_volume_ml, teichholz_volume_ul,
                           volume_ul)
from preprocess.masks import traces_to_mask
from preprocess.simulate import simulate_recording

S_PER_PX = 0.00083334
MM_PER_PX = 0.011525974


# --------------------------------------------------------------------------- volumes

def test_teichholz_against_hand_computed_values():
    # 7 / (2.4 + D) * D^3, D in mm -> µL
    assert teichholz_volume_ul(4.0) == pytest.approx(70.0)          # 7 / 6.4 * 64
    assert teichholz_volume_ul(3.0) == pytest.approx(35.0)          # 7 / 5.4 * 27
    assert teichholz_volume_ul(2.0) == pytest.approx(56.0 / 4.4)    # 7 / 4.4 * 8 = 12.7272...
    assert teichholz_volume_ul(1.6) == pytest.approx(7.168)         # 7 / 4.0 * 4.096
    np.testing.assert_allclose(teichholz_volume_ul(np.array([4.0, np.nan, 0.0])), [70.0, np.nan, 0.0])


def test_clinical_teichholz_is_a_separate_convention():
    # D = 0.4 cm: 7 / 2.8 * 0.064 = 0.16 mL, i.e. 160 µL; the mouse convention gives 70 µL for the same 4 mm
    assert teichholz_clinical_volume_ml(0.4) == pytest.approx(0.16)
    assert volume_ul(4.0, "clinical") == pytest.approx(160.0)
    assert volume_ul(4.0, "mouse") == pytest.approx(70.0)
    with pytest.raises(ValueError, match="unknown volume formula"):
        volume_ul(4.0, "cube")


# --------------------------------------------------------------------------- LVID from a mask

def test_lvid_px_counts_the_run_and_marks_empty_columns_nan():
    mask = np.zeros((20, 5), np.uint8)
    mask[3:10, 0] = 1
    mask[0:20, 1] = 255
    mask[19, 3] = 1
    mask[4:16, 4] = 1
    # Column 3's lone pixel is a speck: shorter than a quarter of the median column LVID (9.5 px).
    np.testing.assert_array_equal(lvid_px(mask), [7, 20, np.nan, np.nan, 12])
    upper, lower = cavity_borders_px(mask)
    np.testing.assert_array_equal(upper[[0, 1, 4]], [2.5, -0.5, 3.5])
    np.testing.assert_array_equal(lower[[0, 1, 4]], [9.5, 19.5, 15.5])


def test_borders_from_the_probability_map_are_sub_pixel():
    height_px, width_px = 200, 50
    rows = np.arange(height_px)[:, None]
    upper = 60.3 + 5 * np.sin(np.arange(width_px) / 5)
    lower = 140.7 - 3 * np.cos(np.arange(width_px) / 7)
    # A map falling linearly through 0.5 at each border, as bilinear upsampling makes it near one.
    probability = np.clip(np.minimum(0.5 + 0.05 * (rows - upper), 0.5 + 0.05 * (lower - rows)), 0, 1)
    mask = probability > 0.5
    sub_upper, sub_lower = cavity_borders_px(mask, probability)
    np.testing.assert_allclose(sub_upper, upper, atol=1e-9)
    np.testing.assert_allclose(sub_lower, lower, atol=1e-9)
    np.testing.assert_allclose(lvid_px(mask, probability), lower - upper, atol=1e-9)
    whole_upper, whole_lower = cavity_borders_px(mask)  # from the mask alone: half a row at worst
    assert np.abs(whole_upper - upper).max() <= 0.5 and np.abs(whole_lower - lower).max() <= 0.5


def truth_mask(recording):
    return traces_to_mask(recording.upper_px, recording.lower_px, recording.image.shape[0])


@pytest.fixture(scope="module")
def simulated():
    """Three simulated recordings of different conditions and heart rates (2 s each)."""
    return [simulate_recording(seed, duration_s=2.0) for seed in (0, 3, 5)]


def match_beats(found_ed_s, truth_ed_s):
    """Index of the detected beat nearest to every true end-diastole."""
    return np.abs(np.asarray(found_ed_s)[None, :] - np.asarray(truth_ed_s)[:, None]).argmin(axis=1)


def test_truth_mask_of_simulated_recordings_gives_lvid_beats_hr_ef_fs(simulated):
    for recording in simulated:
        mask = truth_mask(recording)
        lvid = lvid_px(mask)
        # The mask holds the rows strictly between the continuous traces: within a pixel of their distance.
        assert np.abs(lvid - (recording.lower_px - recording.upper_px)).max() <= 1.0
        lvid_mm = lvid * recording.mm_per_px
        beats = detect_beats(lvid_mm, recording.s_per_px)
        table = beat_parameters(beats, recording.s_per_px)
        truth = recording.beats
        ed_s = np.array([beat["t_ed_s"] for beat in truth])
        rr_s = np.diff(ed_s).mean()
        found = match_beats(table["t_ed_s"], ed_s)
        assert len(set(found)) == len(truth), f"{recording.name}: a true beat was missed"
        # Extra detections may only be beats at the recording's ends that the truth leaves out.
        extra = np.setdiff1d(np.arange(len(beats)), found)
        duration_s = lvid.size * recording.s_per_px
        assert all(min(table["t_ed_s"][i], duration_s - table["t_es_s"][i]) < 0.3 * rr_s for i in extra)
        np.testing.assert_allclose(table["t_ed_s"][found], ed_s, atol=0.08 * rr_s)
        np.testing.assert_allclose(table["t_es_s"][found], [beat["t_es_s"] for beat in truth], atol=0.06 * rr_s)
        pixel_mm = recording.mm_per_px
        np.testing.assert_allclose(table["lvid_d_mm"][found], [beat["lvid_d_mm"] for beat in truth],
                                   atol=1.5 * pixel_mm)
        np.testing.assert_allclose(table["lvid_s_mm"][found], [beat["lvid_s_mm"] for beat in truth],
                                   atol=1.5 * pixel_mm)
        # HR over the matched beats (60 / mean RR) within 1 % of the truth's; per beat within 10 % (a single
        # RR moves with the whole-row steps of a failing heart's flat end-diastole in a binary mask).
        hr = table["hr_bpm"][found[:-1]]
        assert 60.0 / np.mean(60.0 / hr) == pytest.approx(recording.hr_bpm, rel=0.01)
        np.testing.assert_allclose(hr, 60.0 / np.diff(ed_s), rtol=0.1)
        # EF and FS exactly as the formulas give them from the measured LVIDd / LVIDs.
        d, s = table["lvid_d_mm"], table["lvid_s_mm"]
        vd, vs = 7.0 / (2.4 + d) * d ** 3, 7.0 / (2.4 + s) * s ** 3
        np.testing.assert_allclose(table["vol_d_ul"], vd, rtol=1e-12)
        np.testing.assert_allclose(table["ef_pct"], 100 * (vd - vs) / vd, rtol=1e-12)
        np.testing.assert_allclose(table["fs_pct"], 100 * (d - s) / d, rtol=1e-12)
        np.testing.assert_allclose(table["sv_ul"], vd - vs, rtol=1e-12)


def test_holes_and_specks_leave_the_measurements_unchanged(simulated):
    recording = simulated[1]
    clean = truth_mask(recording)
    dirty = clean.copy()
    rng = np.random.default_rng(7)
    width = clean.shape[1]
    for start in rng.integers(0, width - 40, 25):
        columns = slice(start, start + rng.integers(3, 40))
        top = int(np.ceil(recording.upper_px[columns].max())) + 4
        bottom = int(np.floor(recording.lower_px[columns].min())) - 4
        if bottom - top > 6:  # a hole well inside the cavity (a papillary echo left out)
            rows = np.sort(rng.integers(top, bottom, 2))
            dirty[rows[0]:rows[1] + 1, columns] = 0
    for start in rng.integers(0, width - 10, 25):
        columns = slice(start, start + rng.integers(1, 10))
        wall = int(recording.upper_px[columns].min()) - 25  # in the septum, 25 px above the cavity
        dirty[wall - 6:wall, columns] = 1
        dirty[-8:-2, columns] = 1  # deep, in the lung
        dirty[2:5, columns] = 1  # near the transducer
    assert (dirty != clean).sum() > 1000
    np.testing.assert_array_equal(lvid_px(dirty), lvid_px(clean))
    lvid_mm = lvid_px(dirty) * recording.mm_per_px
    clean_beats = detect_beats(lvid_px(clean) * recording.mm_per_px, recording.s_per_px)
    dirty_beats = detect_beats(lvid_mm, recording.s_per_px)
    np.testing.assert_array_equal(dirty_beats.ed_index, clean_beats.ed_index)
    np.testing.assert_array_equal(dirty_beats.lvid_d_mm, clean_beats.lvid_d_mm)


def test_speck_in_a_stretch_without_ventricle_is_no_lvid(simulated):
    recording = simulated[0]
    mask = truth_mask(recording)
    mask[:, 400:600] = 0  # lost contact: no ventricle in view
    mask[300:306, 450:455] = 1
    lvid = lvid_px(mask)
    assert np.isnan(lvid[400:600]).all()
    assert np.isfinite(lvid[:400]).all() and np.isfinite(lvid[600:]).all()


# --------------------------------------------------------------------------- beat detection

def synthetic_lvid(hr_bpm, seed, duration_s=3.0, noise_mm=0.02):
    """A noisy LVID curve (mm per column) with known beats: per-beat HR varying by up to ±60 bpm,
    ejection over 42 % of the cycle, rapid filling, diastasis and an atrial kick up to the next
    end-diastole, respiration drift, Gaussian noise, pixel quantisation, spikes and short NaN gaps.
    Returns (lvid_mm, end-diastole times s (one more than beats: the last is the next beat's),
    end-systole times s)."""
    rng = np.random.default_rng(seed)
    n_columns = int(duration_s / S_PER_PX)
    time_s = np.arange(n_columns) * S_PER_PX
    ed_s = [-rng.uniform(0, 60 / hr_bpm)]
    while ed_s[-1] < duration_s + 1:
        ed_s.append(ed_s[-1] + 60 / np.clip(hr_bpm + rng.normal(0, 30), hr_bpm - 60, hr_bpm + 60))
    ed_s = np.array(ed_s)
    diastolic = rng.uniform(3.3, 3.7) + rng.normal(0, 0.05, ed_s.size)
    systolic = diastolic * rng.uniform(0.45, 0.6) + rng.normal(0, 0.04, ed_s.size)
    es_fraction = 0.42
    beat = np.searchsorted(ed_s, time_s, side="right") - 1
    phase = (time_s - ed_s[beat]) / (ed_s[beat + 1] - ed_s[beat])
    d, s, d_next = diastolic[beat], systolic[beat], diastolic[beat + 1]
    ejecting = d - (d - s) * (1 - np.cos(np.pi * phase / es_fraction)) / 2

    def filling(p):
        return 0.8 * (1 - np.exp(-(p - es_fraction) / 0.08)) + 0.2 * np.clip((p - 0.82) / 0.18, 0, 1) ** 2

    refilling = s + (d_next - s) * filling(phase) / filling(1.0)
    lvid = np.where(phase < es_fraction, ejecting, refilling)
    lvid += 0.08 * np.sin(2 * np.pi * time_s / 0.4 + rng.uniform(0, 6))
    lvid += rng.normal(0, noise_mm, n_columns)
    lvid = np.round(lvid / MM_PER_PX) * MM_PER_PX
    for column in rng.integers(0, n_columns - 5, 6):
        lvid[column:column + 3] += rng.choice([-1, 1]) * 0.3
    for column in rng.choice(np.arange(20, n_columns - 20, 200), 4, replace=False):
        lvid[column:column + rng.integers(3, 12)] = np.nan
    es_s = ed_s[:-1] + es_fraction * np.diff(ed_s)
    return lvid, ed_s, es_s


@pytest.mark.parametrize("hr_bpm", [300, 600, 900])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beat_detector_finds_every_beat_of_noisy_curves(hr_bpm, seed):
    lvid, ed_s, es_s = synthetic_lvid(hr_bpm, seed)
    true_hr_bpm = 60.0 / np.diff(ed_s)
    ed_s = ed_s[:-1]
    duration_s = lvid.size * S_PER_PX
    table = beat_parameters(detect_beats(lvid, S_PER_PX), S_PER_PX)
    rr_s = 60.0 / hr_bpm
    # Every beat whose end-diastole and end-systole lie a quarter beat inside the recording, and more than
    # 10 columns (1/8 of the shortest beat) from missing columns, is found. (Near a gap the measured
    # extreme may sit at the gap's edge; the detector drops such a beat rather than guess.)
    missing_s = np.flatnonzero(np.isnan(lvid)) * S_PER_PX
    near_gap = np.abs(np.concatenate([ed_s, es_s])[:, None] - missing_s[None, :]).min(axis=1) <= 10 * S_PER_PX
    inside = (ed_s > 0.25 * rr_s) & (es_s < duration_s - 0.25 * rr_s) & ~near_gap.reshape(2, -1).any(axis=0)
    found = match_beats(table["t_ed_s"], ed_s[inside])
    assert len(set(found)) == inside.sum()
    np.testing.assert_allclose(table["t_ed_s"][found], ed_s[inside], atol=0.1 * rr_s)
    np.testing.assert_allclose(table["t_es_s"][found], es_s[inside], atol=0.1 * rr_s)
    # ...and nothing else: each detection is a true beat.
    nearest = np.abs(table["t_ed_s"][:, None] - ed_s[None, :]).min(axis=1)
    assert nearest.max() < 0.1 * rr_s
    # Per-beat HR (60 / time to the next end-diastole) within 10 %: the end-diastole of a noisy curve
    # is a rounded maximum, its column uncertain by a few ms (2 % is typical, 8 % the worst seen).
    measured = np.isfinite(table["hr_bpm"])
    truth = match_beats(ed_s, table["t_ed_s"][measured])
    np.testing.assert_allclose(table["hr_bpm"][measured], true_hr_bpm[truth], rtol=0.1)
    # Over the beats, 60 / mean RR within 1 %.
    assert 60 / np.mean(60 / table["hr_bpm"][measured]) == pytest.approx(60 / np.mean(60 / true_hr_bpm[truth]),
                                                                      rel=0.01)


def plateau_lvid(seed, hr_bpm=500, duration_s=3.0, noise_mm=0.03):
    """An LVID curve whose beats eject over a fixed 30 ms and refill within 40 ms, then hold a flat,
    noisy end-diastolic plateau to the next beat: (lvid_mm, beat start times s, each beat's RR s: the
    time to the next beat's start)."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(int(duration_s / S_PER_PX)) * S_PER_PX
    rr_s = 60.0 / rng.uniform(hr_bpm - 40, hr_bpm + 40, 40)
    start_s = np.cumsum(rr_s) - rr_s[0] * rng.uniform(0.5, 1.0)
    beat = np.clip(np.searchsorted(start_s, time_s, side="right") - 1, 0, None)
    since_s = time_s - start_s[beat]
    ejecting = 3.6 - 1.4 * (1 - np.cos(np.pi * np.clip(since_s / 0.03, 0, 1))) / 2
    lvid = np.where(since_s < 0.03, ejecting, 2.2 + 1.4 * np.clip((since_s - 0.03) / 0.04, 0, 1))
    lvid = lvid + rng.normal(0, noise_mm, time_s.size)
    return lvid, start_s, np.diff(start_s)


def test_heart_rate_is_timed_on_the_steep_downstroke_not_the_flat_maximum():
    # Beats eject over a fixed time, so the downstroke of each follows its start by the same delay, and
    # RR between downstrokes is the true RR; the end-diastolic maxima are flat and noisy.
    errors_pct, ed_errors_pct = [], []
    for seed in range(4):
        lvid, start_s, rr_s = plateau_lvid(seed)
        beats = detect_beats(lvid, S_PER_PX)
        table = beat_parameters(beats, S_PER_PX)
        measured = np.isfinite(table["hr_bpm"])
        truth = np.searchsorted(start_s, beats.downstroke_px[measured] * S_PER_PX) - 1
        assert measured.sum() >= 20
        true_hr = 60.0 / rr_s[truth]
        errors_pct.append(100 * np.abs(table["hr_bpm"][measured] / true_hr - 1))
        ed_hr = 60.0 / (np.diff(beats.ed_index) * S_PER_PX)
        ed_errors_pct.append(100 * np.abs(ed_hr[measured[:-1]] / true_hr - 1))
    errors_pct, ed_errors_pct = np.concatenate(errors_pct), np.concatenate(ed_errors_pct)
    assert errors_pct.mean() < 0.3 and errors_pct.max() < 1.0
    assert ed_errors_pct.mean() > 5.0  # what the end-diastolic maxima would have given


def test_a_long_gap_drops_the_beats_it_touches_and_never_doubles_rr():
    lvid, ed_s, _ = synthetic_lvid(600, seed=4)
    gap = slice(1200, 1500)  # 0.25 s without cavity, about 2.5 beats
    lvid[gap] = np.nan
    beats = detect_beats(lvid, S_PER_PX)
    table = beat_parameters(beats, S_PER_PX)
    assert not ((beats.ed_index >= gap.start - 60) & (beats.ed_index < gap.stop)).any()
    assert (beats.ed_index < gap.start).sum() >= 10 and (beats.ed_index >= gap.stop).sum() >= 10
    hr = table["hr_bpm"][np.isfinite(table["hr_bpm"])]
    assert hr.min() > 450 and hr.max() < 750
    last_before = np.flatnonzero(beats.ed_index < gap.start)[-1]
    assert np.isnan(table["hr_bpm"][last_before])


def test_flat_or_missing_curves_give_no_beats():
    rng = np.random.default_rng(0)
    assert len(detect_beats(3.0 + rng.normal(0, 0.02, 3000), S_PER_PX)) == 0
    assert len(detect_beats(np.full(3000, 3.0), S_PER_PX)) == 0
    assert len(detect_beats(np.full(3000, np.nan), S_PER_PX)) == 0


# --------------------------------------------------------------------------- parameters and summary

def test_beat_parameters_and_summary_follow_the_formulas():
    beats = detect_beats(synthetic_lvid(600, seed=5)[0], S_PER_PX)
    table = beat_parameters(beats, S_PER_PX)
    assert tuple(table) == BEAT_COLUMNS
    np.testing.assert_allclose(table["t_ed_s"], beats.ed_index * S_PER_PX)
    np.testing.assert_allclose(table["hr_bpm"][:-1], 60.0 / (np.diff(beats.downstroke_px) * S_PER_PX))
    # the downstroke lies between the beat's end-diastole and end-systole
    assert ((beats.downstroke_px > beats.ed_index) & (beats.downstroke_px < beats.es_index)).all()
    assert np.isnan(table["hr_bpm"][-1])  # the last beat has no next end-diastole
    summary = summarise(table)
    assert set(SUMMARY_KEYS) | set(SPREAD_KEYS) | {"n_beats", "n_beats_used"} == set(summary)
    assert summary["n_beats"] == summary["n_beats_used"] == len(beats)
    for key in SUMMARY_KEYS[:-1]:
        assert summary[key] == pytest.approx(np.nanmedian(table[key]))
    assert summary["co_ml_min"] == pytest.approx(summary["sv_ul"] * summary["hr_bpm"] / 1000)


def test_the_spread_beside_each_median_is_its_interquartile_range_over_the_same_beats():
    n_beats = 9
    table = {key: np.arange(1.0, n_beats + 1) for key in BEAT_COLUMNS}
    table["hr_bpm"] = np.array([600, 610, 620, 630, 640, 650, 660, 670, np.nan])  # the last beat has no RR
    used = np.ones(n_beats, dtype=bool)
    used[0] = False  # a flagged beat stays out of the spread as out of the median
    summary = summarise(table, used)
    # beats 2..9: quartiles by linear interpolation at 3.75 and 7.25
    assert summary["ef_pct"] == 5.5 and summary["ef_pct_iqr"] == pytest.approx(3.5)
    # HR over 610..670 (7 values): quartiles 625 and 655
    assert summary["hr_bpm"] == 640 and summary["hr_bpm_iqr"] == pytest.approx(30.0)
    few = np.zeros(n_beats, dtype=bool)
    few[:SPREAD_MIN_BEATS - 1] = True
    assert summarise(table, few)["lvid_d_mm_iqr"] is None and summarise(table, few)["lvid_d_mm"] == 1.5


def test_summary_without_beats_is_empty_not_zero():
    summary = summarise(beat_parameters(detect_beats(np.full(100, np.nan), S_PER_PX), S_PER_PX))
    assert summary["n_beats"] == 0
    assert all(summary[key] is None for key in SUMMARY_KEYS + SPREAD_KEYS)


# --------------------------------------------------------------------------- beats the tool doubts

def test_summary_takes_medians_over_the_used_beats_only():
    table = beat_parameters(detect_beats(synthetic_lvid(600, seed=5)[0], S_PER_PX), S_PER_PX)
    used = np.arange(table["t_ed_s"].size) % 3 != 0
    summary = summarise(table, used)
    assert summary["n_beats"] == used.size and summary["n_beats_used"] == used.sum()
    for key in SUMMARY_KEYS[:-1]:
        assert summary[key] == pytest.approx(np.nanmedian(table[key][used]))
    nothing = summarise(table, np.zeros(used.size, dtype=bool))
    assert nothing["n_beats_used"] == 0 and all(nothing[key] is None for key in SUMMARY_KEYS)


def test_disagreement_counts_hesitant_rows_and_cavity_the_borders_leave_out():
    probability = np.zeros((80, 4))
    probability[10:30] = 1.0             # the cavity the borders report: rows 10-29
    probability[30:40, 1] = 0.5          # column 1: ten hesitant rows below it
    probability[50:60, 2] = 1.0          # column 2: a second run of cavity the borders leave out
    probability[15:25, 3] = 0.0          # column 3: a hole the borders span
    upper, lower = np.full(4, 9.5), np.full(4, 29.5)
    np.testing.assert_allclose(disagreement_px(probability, upper, lower), [0.0, 5.0, 10.0, 10.0])
    # Where a column has no borders, everything the network calls cavity disagrees.
    np.testing.assert_allclose(disagreement_px(probability, [np.nan] * 4, lower), [20, 25, 30, 10])
    # Chunked over columns, the same as in one piece.
    wide = np.tile(probability, (1, 2500))
    np.testing.assert_allclose(disagreement_px(wide, np.full(10000, 9.5), np.full(10000, 29.5)),
                               np.tile([0.0, 5.0, 10.0, 10.0], 2500))


def test_disagreement_leaves_out_a_chamber_of_its_own_above_the_cavity_and_nothing_else():
    probability = np.zeros((80, 4))
    probability[30:50] = 1.0             # the cavity the borders report: rows 30-49
    probability[5:20, 0] = 0.9           # column 0: another chamber above it, across 10 rows of tissue (a septum)
    probability[5:20, 1] = 0.9           # column 1: the same, its edge hesitant down to the border
    probability[20:30, 1] = 0.3
    probability[20:30, 2] = 1.0          # column 2: the cavity seen 10 rows higher than the border, all one run
    probability[60:70, 3] = 1.0          # column 3: a run below the cavity (a lost posterior wall) still counts
    upper, lower = np.full(4, 29.5), np.full(4, 49.5)
    np.testing.assert_allclose(disagreement_px(probability, upper, lower), [0.0, 3.0, 10.0, 10.0])
    # the chamber above is told apart from the cavity at the threshold that found the borders
    np.testing.assert_allclose(disagreement_px(probability, upper, lower, threshold=0.95)[:2], [13.5, 16.5])


def test_beat_uncertainty_is_the_mean_disagreement_from_ed_to_es_over_lvidd():
    disagreement_mm = np.arange(10.0)
    beats = Beats(ed_index=np.array([0, 5]), es_index=np.array([2, 8]), lvid_d_mm=np.array([2.0, 4.0]),
                  lvid_s_mm=np.array([1.0, 2.0]), rr_s=np.array([0.1, np.nan]), downstroke_px=np.array([1.0, 6.0]))
    np.testing.assert_allclose(beat_uncertainty(disagreement_mm, beats), [1.0 / 2.0, 6.5 / 4.0])
    assert beat_uncertainty(disagreement_mm, detect_beats(np.full(10, np.nan), S_PER_PX)).size == 0


def test_beats_are_flagged_for_uncertainty_and_for_an_rr_off_the_median():
    hr_bpm = np.array([600, 640, 560, 600, 600 * (1 + RR_TOLERANCE) + 20, 600 * (1 - RR_TOLERANCE) - 20, 1000, 240,
                       np.nan, 610])
    uncertainty = np.zeros(hr_bpm.size)
    uncertainty[[3, 9]] = UNCERTAINTY_LIMIT + 0.01
    flags = flag_beats({"hr_bpm": hr_bpm}, uncertainty, min_hr_bpm=250, max_hr_bpm=900)
    assert flags == [(), (), (), ("uncertain",), ("rr",), ("rr",), ("rr",), ("rr",), (), ("uncertain",)]


def test_the_rr_reference_is_the_median_of_the_certain_beats():
    # Three uncertain beats at half the rate do not drag the reference: they are the irregular ones.
    hr_bpm = np.array([300, 300, 300, 600, 610])
    uncertainty = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    flags = flag_beats({"hr_bpm": hr_bpm}, uncertainty)
    assert flags == [("uncertain", "rr")] * 3 + [(), ()]
    # When every beat is uncertain, the reference is the median of all of them (300 bpm here).
    assert flag_beats({"hr_bpm": hr_bpm}, np.ones(5)) == [("uncertain",)] * 3 + [("uncertain", "rr")] * 2


@pytest.mark.parametrize("sound, total, few", [(1, 34, True), (2, 34, True), (1, 3, True), (3, 34, False),
                                                (2, 4, False), (2, 3, False), (0, 5, False), (5, 5, False),
                                                (0, 0, False)])
def test_medians_resting_on_a_few_beats_the_flags_left_are_told_apart(sound, total, few):
    flags = [("uncertain",)] * (total - sound) + [()] * sound
    assert FEW_BEATS == 3 and few_beats_in_medians(flags) is few


def test_a_sinus_pause_flags_the_beat_whose_rr_spans_it_and_no_other():
    lvid_mm, ed_s, _ = synthetic_lvid(600, seed=3)
    ed_px = np.round(ed_s / S_PER_PX).astype(int)
    ed_px = ed_px[(ed_px > 0) & (ed_px < lvid_mm.size)]
    start, stop = ed_px[6], ed_px[7]
    lvid_mm = lvid_mm.copy()
    lvid_mm[start:stop] = lvid_mm[start]  # beat 7 never ejects: one diastole two cycles long
    beats = detect_beats(lvid_mm, S_PER_PX)
    table = beat_parameters(beats, S_PER_PX)
    flags = flag_beats(table, np.zeros(len(beats)))
    flagged = [index for index, reasons in enumerate(flags) if reasons]
    assert len(flagged) == 1 and flags[flagged[0]] == ("rr",)
    # the flagged beat is the one before the pause, its rate about half the others'
    assert beats.es_index[flagged[0]] < start < beats.ed_index[flagged[0] + 1]
    others = np.delete(table["hr_bpm"], flagged)
    assert table["hr_bpm"][flagged[0]] == pytest.approx(np.nanmedian(others) / 2, rel=0.15)


def test_an_lvidd_no_mouse_heart_has_is_named_with_the_calibration_that_made_it():
    from mmode.calibration import Calibration, calibration_from_options

    low, high = MOUSE_LVID_D_MM
    for inside in (low, 3.5, high, None):  # the bounds are mouse hearts; no beats, no value: nothing to say
        assert outside_mouse_range(inside, Calibration()) == []
    (note,) = outside_mouse_range(0.873, Calibration())
    assert note.startswith("LVIDd 0.873 mm is below the 1.5-7 mm of mouse hearts")
    assert "0.011526 mm per row, the default, as no --mm-per-px was given" in note
    (note,) = outside_mouse_range(low - 0.01, calibration_from_options(0.004))
    assert "below" in note and "0.004 mm per row, given by --mm-per-px" in note
    (note,) = outside_mouse_range(high + 0.01, Calibration(0.05, 0.001, "dicom"))
    assert "LVIDd 7.01 mm is above" in note and "0.05 mm per row, the DICOM's own" in note
