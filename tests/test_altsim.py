"""The independent generator of bench/altsim.py: deterministic, truth consistent with its own motion and image."""
import numpy as np
import pytest

from bench.altsim import altsim_recording, beat_shape


def test_beat_shape_hits_its_landmarks_and_is_continuous():
    eject, relax, refill = 0.35, 0.25, 0.1
    phase = np.linspace(0, 1, 20001)[:-1]
    shape = beat_shape(phase, eject, relax, refill)
    assert shape[0] == pytest.approx(1.0)
    assert shape.min() == pytest.approx(0.0, abs=1e-6)
    assert phase[np.argmin(shape)] == pytest.approx(eject, abs=1e-4)
    assert beat_shape(np.array([eject + relax]), eject, relax, refill)[0] == pytest.approx(1 - refill)
    assert shape[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.abs(np.diff(shape)).max() < 1e-3  # no jumps between samples 5e-5 of a beat apart


def test_same_seed_same_recording_other_seed_differs():
    first, again, other = (altsim_recording(seed, 0.6) for seed in (5, 5, 6))
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.upper_px, again.upper_px)
    assert not np.array_equal(first.image, other.image) or first.mm_per_px != other.mm_per_px


def test_truth_beats_follow_the_diameter_curve():
    recording = altsim_recording(21, 1.5)
    lvid_mm = recording.lvid_mm
    assert np.allclose(lvid_mm, (recording.lower_px - recording.upper_px) * recording.mm_per_px)
    assert len(recording.beats) >= 2
    for beat in recording.beats:
        ed = int(round(beat["t_ed_s"] / recording.s_per_px))
        es = int(round(beat["t_es_s"] / recording.s_per_px))
        stroke_mm = beat["lvid_d_mm"] - beat["lvid_s_mm"]
        assert lvid_mm[ed] == pytest.approx(beat["lvid_d_mm"], abs=0.02 * stroke_mm)
        assert lvid_mm[es] == pytest.approx(beat["lvid_s_mm"], abs=0.02 * stroke_mm)
        assert lvid_mm.max() <= beat["lvid_d_mm"] + 1e-9 and lvid_mm.min() >= beat["lvid_s_mm"] - 1e-9
    onsets_s = np.array([beat["t_ed_s"] for beat in recording.beats])
    lengths_s = np.array([beat["rr_s"] for beat in recording.beats])
    assert np.allclose(np.diff(onsets_s), lengths_s[:-1])


@pytest.mark.parametrize("seed", [3, 8])
def test_image_is_dark_between_the_truth_borders_and_bright_outside(seed):
    recording = altsim_recording(seed, 0.8)
    image = recording.image.astype(float)
    columns = np.arange(image.shape[1])
    # columns in diastole, where no papillary muscle rises from the posterior wall
    diastole = recording.lvid_mm > np.percentile(recording.lvid_mm, 70)

    def mean_at(trace_px, offset_px):
        rows = np.round(trace_px + offset_px).astype(int)
        return image[rows[diastole], columns[diastole]].mean()

    septum, cavity_top = mean_at(recording.upper_px, -4), mean_at(recording.upper_px, +4)
    cavity_bottom, posterior = mean_at(recording.lower_px, -4), mean_at(recording.lower_px, +4)
    assert septum > 3 * cavity_top + 10
    assert posterior > 3 * cavity_bottom + 10


def test_artefacts_add_bands_but_keep_the_truth():
    clean, with_artefacts = altsim_recording(30, 0.6), altsim_recording(30, 0.6, artefacts=True)
    assert np.array_equal(clean.upper_px, with_artefacts.upper_px)
    assert np.array_equal(clean.lower_px, with_artefacts.lower_px)
    assert not np.array_equal(clean.image, with_artefacts.image)
