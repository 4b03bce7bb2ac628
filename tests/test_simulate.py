"""The simulator: determinism, truth consistency, annotations that rebuild the truth mask, ranges, artefacts."""
import csv
import json

import numpy as np
import pytest

from mmode.errors import InputError
from mmode.io import read_image
from preprocess.annotations import read_annotations
from preprocess.masks import interpolate_trace, traces_to_mask
from preprocess.sim_motion import (CONDITIONS, beat_phase, beat_schedule, contraction, draw_parameters,
                                   teichholz_volume_ul)
from preprocess.sim_render import (AXIAL_FWHM_MM, FWHM_PER_SIGMA, PULSE_CUT_SIGMAS, _add_cavity_echoes, _blur_rows,
                                   axial_sigma_px, cavity_echoes, riding_chordae)
from preprocess.simulate import (CLICK_TOLERANCE_PX, SIMULATOR_VERSION, random_streams, refine_clicks,
                                 simulate_recording, write_simulations)

TRUTH_KEYS = {"upper_px", "lower_px", "lvid_mm", "beats", "hr_bpm", "mm_per_px", "s_per_px", "artefact_columns",
              "condition", "simulator_version", "seed", "lost_contact_columns", "annotated_columns", "name"}
BEAT_KEYS = {"t_ed_s", "t_es_s", "lvid_d_mm", "lvid_s_mm"}


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Four short recordings, the last two with artefacts, written as the command line writes them."""
    out = tmp_path_factory.mktemp("sim")
    names = write_simulations(out, 2, seed=3, progress=False, duration_s=1.2)
    out_artefacts = tmp_path_factory.mktemp("sim_artefacts")
    names_artefacts = write_simulations(out_artefacts, 2, seed=4, progress=False, duration_s=1.5, artefacts=True,
                                        artefact_kinds=("lost_contact", "probe_motion"))
    return [(out, names), (out_artefacts, names_artefacts)]


def test_same_seed_same_recording_other_seed_differs():
    first = simulate_recording(11, duration_s=1.0)
    again = simulate_recording(11, duration_s=1.0)
    other = simulate_recording(12, duration_s=1.0)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.upper_px, again.upper_px) and np.array_equal(first.lower_px, again.lower_px)
    assert first.beats == again.beats
    assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)


def test_written_files_and_truth_keys(written):
    out, names = written[0]
    assert names == ["sim_s3_000", "sim_s3_001"]
    with open(out / "annotations.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["image", "trace", "x", "y"]
    for name in names:
        image = read_image(out / f"{name}.png")
        truth = json.loads((out / "truth" / f"{name}.json").read_text())
        assert TRUTH_KEYS <= set(truth)
        assert truth["simulator_version"] == SIMULATOR_VERSION
        assert all(BEAT_KEYS <= set(beat) for beat in truth["beats"]) and truth["beats"]
        height, width = image.shape
        assert len(truth["upper_px"]) == len(truth["lower_px"]) == len(truth["lvid_mm"]) == width
        lvid_mm = (np.array(truth["lower_px"]) - np.array(truth["upper_px"])) * truth["mm_per_px"]
        assert np.allclose(lvid_mm, truth["lvid_mm"], atol=2e-3)
        assert 0 < min(truth["upper_px"]) and max(truth["lower_px"]) < height
        # The stored seed reproduces the recording.
        assert np.array_equal(simulate_recording(truth["seed"], duration_s=1.2).image, image)


def test_the_calibration_csv_gives_each_recordings_truth_calibration(written):
    from preprocess.annotations import read_calibration_csv

    for out, names in written:
        calibrations = read_calibration_csv(out / "calibration.csv")
        assert sorted(calibrations) == names
        for name in names:
            truth = json.loads((out / "truth" / f"{name}.json").read_text())
            assert calibrations[name].mm_per_px == truth["mm_per_px"]
            assert calibrations[name].s_per_px == truth["s_per_px"]


def test_mask_from_annotations_matches_truth(written):
    for out, names in written:
        annotations = read_annotations(out / "annotations.csv")
        for name in names:
            truth = json.loads((out / "truth" / f"{name}.json").read_text())
            height, width = truth["height_px"], truth["width_px"]
            start, stop = truth["annotated_columns"]
            assert stop - start > width // 3
            upper = interpolate_trace(*annotations[name]["upper"], width)
            lower = interpolate_trace(*annotations[name]["lower"], width)
            assert np.isfinite(upper[start:stop]).all() and np.isnan(upper[:start]).all()
            annotated = traces_to_mask(upper, lower, height)[:, start:stop]
            exact = traces_to_mask(truth["upper_px"], truth["lower_px"], height)[:, start:stop]
            assert dice(annotated, exact) > 0.99
            # The annotator clicks until the drawn traces follow the walls, cusps included.
            for drawn, true in ((upper, truth["upper_px"]), (lower, truth["lower_px"])):
                assert np.abs(drawn[start:stop] - np.asarray(true)[start:stop]).max() <= CLICK_TOLERANCE_PX + 1e-9


def test_refined_clicks_follow_a_cusp_that_sparse_clicks_round_off():
    columns = np.arange(101)
    trace_px = 100 + 6.0 * np.abs(columns - 50)  # a V: the end-systolic cusp, 6 rows per column either side
    sparse = np.array([0, 40, 50, 60, 100])
    rounded = interpolate_trace(sparse, trace_px[sparse], columns.size)
    assert np.abs(rounded - trace_px).max() > 5 * CLICK_TOLERANCE_PX  # PCHIP flattens the cusp (8.8 px here)
    click_px, click_y_px = refine_clicks(sparse, trace_px[sparse], trace_px, lambda cols: trace_px[cols])
    assert set(sparse) <= set(click_px) and np.all(np.diff(click_px) > 0)
    assert np.array_equal(click_y_px, trace_px[click_px])
    drawn = interpolate_trace(click_px, click_y_px, columns.size)
    assert np.abs(drawn - trace_px).max() <= CLICK_TOLERANCE_PX
    assert click_px.size < 40  # clicks where the curve bends, not at every column


def test_clicks_include_every_end_diastole_and_end_systole(written):
    out, names = written[0]
    annotations = read_annotations(out / "annotations.csv")
    for name in names:
        truth = json.loads((out / "truth" / f"{name}.json").read_text())
        clicked = set(annotations[name]["upper"][0].astype(int)) & set(annotations[name]["lower"][0].astype(int))
        for beat in truth["beats"]:
            assert round(beat["t_ed_s"] / truth["s_per_px"]) in clicked
            assert round(beat["t_es_s"] / truth["s_per_px"]) in clicked


@pytest.mark.parametrize("condition", ["conscious", "anaesthetised", "failing"])
def test_heart_rate_size_and_function_in_requested_ranges(condition):
    ranges = CONDITIONS[condition]
    for seed in range(3):
        recording = simulate_recording(seed, duration_s=1.5, condition=condition)
        assert recording.condition == condition
        assert ranges["hr_bpm"][0] <= recording.hr_bpm <= ranges["hr_bpm"][1]
        lvid_d_mm = np.median([beat["lvid_d_mm"] for beat in recording.beats])
        lvid_s_mm = np.median([beat["lvid_s_mm"] for beat in recording.beats])
        # Per-beat sizes vary by a few % around the drawn value.
        assert ranges["lvid_d_mm"][0] * 0.95 <= lvid_d_mm <= ranges["lvid_d_mm"][1] * 1.05
        ef_pct = 100 * (1 - teichholz_volume_ul(lvid_s_mm) / teichholz_volume_ul(lvid_d_mm))
        assert ranges["ef_pct"][0] - 5 <= ef_pct <= ranges["ef_pct"][1] + 3


def test_fixed_options_are_honoured():
    recording = simulate_recording(5, duration_s=1.5, hr_bpm=600, lvid_d_mm=3.0, ef_pct=80, height_px=512,
                                   mm_per_px=0.0115, s_per_px=0.001)
    assert recording.image.shape == (512, 1500)
    assert recording.mm_per_px == 0.0115 and recording.s_per_px == 0.001
    assert abs(recording.hr_bpm - 600) < 70
    assert abs(np.median([b["lvid_d_mm"] for b in recording.beats]) - 3.0) < 0.15


def test_beats_agree_with_the_lvid_curve():
    for seed in (21, 22):
        recording = simulate_recording(seed, duration_s=1.5)
        lvid_mm, s_per_px = recording.lvid_mm, recording.s_per_px
        ed_cols = [round(b["t_ed_s"] / s_per_px) for b in recording.beats]
        es_cols = [round(b["t_es_s"] / s_per_px) for b in recording.beats]
        for beat, ed, es in zip(recording.beats, ed_cols, es_cols):
            assert ed < es
            assert lvid_mm[ed] == pytest.approx(beat["lvid_d_mm"], abs=1e-3)
            assert lvid_mm[es] == pytest.approx(beat["lvid_s_mm"], abs=1e-3)
            # End-diastole is the beat's maximum, end-systole its minimum.
            assert lvid_mm[ed] == pytest.approx(lvid_mm[ed:es + 1].max())
            assert lvid_mm[es] == pytest.approx(lvid_mm[ed:es + 1].min())
        assert all(es < next_ed for es, next_ed in zip(es_cols, ed_cols[1:]))
        rr_s = np.diff(ed_cols) * s_per_px
        assert recording.hr_bpm == pytest.approx(60 / rr_s.mean())


def test_cavity_darker_than_the_walls():
    for seed in range(4):
        recording = simulate_recording(seed, duration_s=1.0)
        image = recording.image.astype(float)
        height = image.shape[0]
        cavity = traces_to_mask(recording.upper_px, recording.lower_px, height).astype(bool)
        band_px = 0.4 / recording.mm_per_px
        septum = traces_to_mask(recording.upper_px - band_px, recording.upper_px - 2, height).astype(bool)
        posterior = traces_to_mask(recording.lower_px + 2, recording.lower_px + band_px, height).astype(bool)
        assert image[cavity].mean() < 0.6 * image[septum].mean()
        assert image[cavity].mean() < 0.6 * image[posterior].mean()


def test_artefacts_listed_and_lost_contact_never_annotated(written):
    recording = simulate_recording(7, duration_s=1.5, artefacts=True, artefact_kinds=("lost_contact",))
    assert recording.artefact_columns and recording.lost_contact.any()
    assert all(a["kind"] == "lost_contact" for a in recording.artefacts)
    assert not simulate_recording(7, duration_s=1.5).artefact_columns
    out, names = written[1]
    annotations = read_annotations(out / "annotations.csv")
    for name in names:
        truth = json.loads((out / "truth" / f"{name}.json").read_text())
        assert truth["artefact_columns"]
        for start, stop in truth["lost_contact_columns"]:
            for trace in ("upper", "lower"):
                xs = annotations[name][trace][0]
                assert not ((xs >= start) & (xs < stop)).any()


def test_refuses_a_folder_with_recordings_unless_overwrite(tmp_path):
    write_simulations(tmp_path, 1, seed=0, progress=False, duration_s=0.5)
    with pytest.raises(InputError, match="already holds recordings"):
        write_simulations(tmp_path, 1, seed=0, progress=False, duration_s=0.5)
    assert write_simulations(tmp_path, 1, seed=1, progress=False, duration_s=0.5, overwrite=True) == ["sim_s1_000"]


def test_command_line(tmp_path):
    from preprocess.__main__ import main

    assert main(["simulate", "--out", str(tmp_path / "out"), "--n", "1", "--seed", "2", "--duration", "0.6",
                 "--height", "400", "--quiet"]) == 0
    assert read_image(tmp_path / "out" / "sim_s2_000.png").shape[0] == 400


def test_conscious_hearts_close_almost_completely():
    """Conscious mice: FS within the range EF 59-97 % gives (Teichholz), mostly 45-65 %; LVIDs 0.6-2.9 mm."""
    fs_pct = []
    for seed in range(10):
        recording = simulate_recording(seed, duration_s=0.8, condition="conscious", height_px=700,
                                       mm_per_px=0.0115)
        lvid_d_mm = np.median([beat["lvid_d_mm"] for beat in recording.beats])
        lvid_s_mm = np.median([beat["lvid_s_mm"] for beat in recording.beats])
        fs_pct.append(100 * (1 - lvid_s_mm / lvid_d_mm))
        assert 0.6 - 0.01 <= lvid_s_mm <= 2.9
    assert 28 <= min(fs_pct) and max(fs_pct) <= 76
    assert 45 <= np.median(fs_pct) <= 65


def test_condition_mix_and_high_ejection_fractions_occur():
    from preprocess.sim_motion import draw_parameters

    drawn = [draw_parameters(np.random.default_rng(seed)) for seed in range(400)]
    share = {name: np.mean([p.condition == name for p in drawn]) for name in CONDITIONS}
    assert share["conscious"] == pytest.approx(0.5, abs=0.08)
    assert share["anaesthetised"] == pytest.approx(0.3, abs=0.08)
    conscious_ef_pct = np.array([p.ef_pct for p in drawn if p.condition == "conscious"])
    assert (conscious_ef_pct > 90).any() and (conscious_ef_pct < 70).any()
    assert min(p.lvid_s_mm for p in drawn) >= 0.6 - 1e-9


def test_calibration_is_drawn_around_the_defaults():
    from mmode.calibration import DEFAULT_MM_PER_PX, DEFAULT_S_PER_PX

    recordings = [simulate_recording(seed, duration_s=0.3) for seed in range(20)]
    mm_per_px = np.array([r.mm_per_px for r in recordings]) / DEFAULT_MM_PER_PX
    s_per_px = np.array([r.s_per_px for r in recordings]) / DEFAULT_S_PER_PX
    heights = np.array([r.image.shape[0] for r in recordings])
    assert (mm_per_px < 1).sum() >= 4 and (mm_per_px > 1).sum() >= 4
    assert (s_per_px < 1).sum() >= 4 and (s_per_px > 1).sum() >= 4
    assert 0.7 - 1e-9 <= mm_per_px.min() and mm_per_px.max() <= 1.3 + 1e-9
    assert 350 <= heights.min() and heights.max() <= 800


def test_systole_takes_about_forty_percent_of_a_fast_beat():
    recording = simulate_recording(9, duration_s=0.8, condition="conscious", hr_bpm=790)
    rr_s = 60 / recording.hr_bpm
    systole = [(beat["t_es_s"] - beat["t_ed_s"]) / rr_s for beat in recording.beats]
    assert len(systole) >= 5 and 0.36 <= min(systole) and max(systole) <= 0.5


def _papillary_echoes(seed):
    """A 2-s recording's cavity echoes on a flat wall (cavity_echoes' tuple), its contraction curve and beat
    index per column."""
    streams = random_streams(seed)
    params = draw_parameters(streams[0], duration_s=2.0)
    schedule = beat_schedule(streams[1], params)
    index, phase = beat_phase(np.arange(params.width_px) * params.s_per_px, schedule)
    lower_px, lvid_px = np.full(index.size, 400.0), np.full(index.size, 200.0)
    echoes = cavity_echoes(streams[4], index, phase, schedule, lower_px, lvid_px, params.mm_per_px, streams[5])
    return echoes, contraction(index, phase, schedule), index


def test_a_papillary_tip_fades_or_ends_as_sharply_as_a_wall():
    """Tip exponent 0: as bright at the tip as at the base; 0.5 (simulator 1.2's only profile): fades to dark."""
    rows = np.arange(100, dtype=np.float32)[:, None]
    top, bottom = np.full((2, 2), 40.0), np.full((2, 2), 80.0)
    level, tip = np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[0.0, 0.5], [0.0, 0.0]])
    reflectivity = np.zeros((100, 2), dtype=np.float32)
    _add_cavity_echoes(reflectivity, rows, (top, bottom, level, tip, np.zeros((2, 2), dtype=bool)))
    assert reflectivity[41, 0] == pytest.approx(1.0) and reflectivity[79, 0] == pytest.approx(1.0)
    assert reflectivity[41, 1] < 0.2 and reflectivity[79, 1] > 0.9
    assert reflectivity[:40].max() == 0 and reflectivity[81:].max() == 0


def test_papillary_muscles_range_from_faint_and_fading_to_wall_bright_and_sharp():
    levels, tips = [], []
    for seed in range(20):
        (_, _, level, tip, _), _, _ = _papillary_echoes(seed)
        levels.append(level[0][level[0] > 0])
        tips.append(tip[0][level[0] > 0])
    levels, tips = np.concatenate(levels), np.concatenate(tips)
    # The posterior wall's reflectivity is drawn from 0.6-1.5.
    assert levels.min() < 0.3 and levels.max() > 0.9
    assert tips.min() < 0.1 and tips.max() > 0.4


def test_papillary_muscles_are_spires_in_some_recordings_and_caps_growing_with_the_contraction_in_others():
    forms, high, low, diastole, end_systole, spire_end_diastole = [], [], [], [], [], []
    for seed in range(40):
        (top, bottom, level, _, anchored), f, index = _papillary_echoes(seed)
        height, on, anchored = bottom[0] - top[0], level[0] > 0, anchored[0]
        assert anchored.all() or not anchored.any()
        forms.append(anchored[0])
        if anchored[0]:
            high.append(height[on & (f > 0.9)])
            low.append(height[on & (f < 0.6)])
            diastole.append(on[f < 0.1])
            end_systole += [on[index == beat][np.argmax(f[index == beat])] for beat in np.unique(index[on])]
        else:
            spire_end_diastole.append(on[f == 0])
    assert 0.25 <= np.mean(forms) <= 0.75
    # A cap thickens with the contraction past its onset (0.1-0.5), and is there at every end-systole of a
    # beat that has one.
    assert np.concatenate(high).mean() > 2 * np.concatenate(low).mean()
    assert not np.concatenate(diastole).any()
    assert len(end_systole) > 20 and all(end_systole)
    # A spire ends within its beat: never there at end-diastole.
    assert not np.concatenate(spire_end_diastole).any()


def _blur_reach_px(mm_per_px):
    """How far below the posterior wall rendering can move a pixel: the longest pulse, cut at its 50 dB
    points, and the post-detection smoothing's 4 rows."""
    return np.ceil(PULSE_CUT_SIGMAS * AXIAL_FWHM_MM[1] / FWHM_PER_SIGMA / mm_per_px) + 4


def test_a_papillary_caps_speckle_moves_with_the_wall_and_changes_nothing_else(monkeypatch):
    drawn = []

    def unanchored(*args):
        echoes = cavity_echoes(*args)
        drawn.append((echoes[2][0] > 0) & echoes[4][0])
        echoes[4][:] = False
        return echoes

    seed = 7  # its papillary muscles are caps (1.2 s: in 405 columns)
    anchored = simulate_recording(seed, duration_s=1.2)
    monkeypatch.setattr("preprocess.simulate.cavity_echoes", unanchored)
    free = simulate_recording(seed, duration_s=1.2)
    assert drawn[0].sum() > 100
    differs = anchored.image != free.image
    assert differs[:, drawn[0]].mean() > 10 * differs[:, ~drawn[0]].mean()
    # Only inside the cavity and the point-spread blur (the longest pulse, cut at 3.4 sigmas, and the
    # post-detection smoothing's 4 rows) below it; elsewhere by at most one grey level, where the blurred cap
    # moves the wall's median echo, to which the log compression is referred.
    rows = np.arange(differs.shape[0])[:, None]
    blur_px = _blur_reach_px(anchored.mm_per_px)
    outside = (rows > anchored.lower_px[None, :] + blur_px) | (rows < anchored.upper_px[None, :])
    assert not (outside & (np.abs(anchored.image.astype(int) - free.image) > 1)).any()


def test_chordae_ride_on_the_posterior_wall_in_some_recordings_and_come_and_go():
    width, mm_per_px = 3000, 0.01
    columns = np.arange(width)
    lower_px = 500 + 25 * np.sin(2 * np.pi * columns / 120)  # the wall moves 0.5 mm; the cavity keeps its size
    lvid_px = np.full(width, 300.0)
    counts = []
    for seed in range(300):
        top, bottom, level, tip, anchored = riding_chordae(np.random.default_rng(seed), columns * 0.001, lower_px,
                                                           lvid_px, mm_per_px)
        counts.append(level.shape[0])
        for k in range(level.shape[0]):
            height_mm = (lower_px - bottom[k]) * mm_per_px
            assert 0.1 - 0.016 < height_mm.min() and height_mm.max() < 0.6 + 0.016
            # Rides on the wall: follows its 50-row excursion to within the flutter.
            assert np.corrcoef(bottom[k], lower_px)[0, 1] > 0.95
            assert (bottom[k] - top[k]).min() >= 1.2 - 1e-9
            # Comes and goes: absent somewhere in 3 s, and never brighter than 3x the myocardium.
            assert level[k].min() == 0 and 0 < level[k].max() <= 3.0
        assert not tip.any() and not anchored.any()
    counts = np.array(counts)
    assert 0.3 < np.mean(counts > 0) < 0.5
    assert set(counts[counts > 0]) == {1, 2, 3}


def test_riding_chordae_are_drawn_in_the_cavity_and_change_nothing_else(monkeypatch):
    def none(rng, time_s, lower_px, *args):
        return tuple(np.zeros((0, lower_px.size), dtype=dtype) for dtype in (float, float, float, float, bool))

    seed = 3  # it has chordae riding on the wall
    with_chordae = simulate_recording(seed, duration_s=1.2)
    monkeypatch.setattr("preprocess.simulate.riding_chordae", none)
    without = simulate_recording(seed, duration_s=1.2)
    # The truth is the same: the chordae lie inside the cavity, which the truth keeps.
    assert np.array_equal(with_chordae.upper_px, without.upper_px)
    assert np.array_equal(with_chordae.lower_px, without.lower_px)
    rows = np.arange(without.image.shape[0])[:, None]
    above_wall_mm = (without.lower_px - rows) * without.mm_per_px
    near_wall = (above_wall_mm > 0.05) & (above_wall_mm < 0.6)
    brighter = with_chordae.image.astype(int) - without.image
    assert brighter[near_wall].mean() > 5.0
    blur_px = _blur_reach_px(without.mm_per_px)
    outside = (rows > without.lower_px + blur_px) | (rows < without.upper_px)
    assert np.abs(brighter[outside]).max() <= 1


def test_the_axial_blur_is_the_transducers_pulse_in_mm_whatever_the_pixel_size():
    fwhm_mm = {}
    for mm_per_px in (0.008, 0.016):
        rng = np.random.default_rng(0)
        sigma_px = np.array([axial_sigma_px(rng, mm_per_px) for _ in range(2000)])
        fwhm_mm[mm_per_px] = sigma_px * FWHM_PER_SIGMA * mm_per_px
        assert AXIAL_FWHM_MM[0] <= fwhm_mm[mm_per_px].min() and fwhm_mm[mm_per_px].max() <= AXIAL_FWHM_MM[1]
    # The same pulses at both pixel sizes: twice the rows at half the pixel size.
    assert np.allclose(fwhm_mm[0.008], fwhm_mm[0.016])
    # Log-uniform: the median is the geometric mean of the range.
    assert abs(np.median(fwhm_mm[0.008]) / np.sqrt(np.prod(AXIAL_FWHM_MM)) - 1) < 0.05
    # Cut at 3.4 sigmas (50 dB down), not 2: the tail that log compression shows is kept.
    impulse = np.zeros((61, 1), dtype=np.float32)
    impulse[30] = 1
    response = _blur_rows(impulse, 4.0, truncate=PULSE_CUT_SIGMAS)[:, 0]
    assert response[30 + 14] > 0 and response[30 + 15] == 0  # radius ceil(3.4 x 4) = 14 rows
    assert abs(response[30 + 8] / response[30] - np.exp(-2)) < 1e-3
