"""bench/write_recordings.py: another generator's recordings on disk, with annotations that are its truth."""
import json

import numpy as np
import pytest

from bench.accuracy import generate
from bench.truth_files import load_truth, truth_sources
from bench.write_recordings import dense_annotation_rows, main, write_recordings
from mmode.cli import run_main
from mmode.errors import InputError
from mmode.io import read_image
from preprocess.annotations import read_annotations, read_calibration_csv
from preprocess.masks import annotation_traces

SEED = 8123  # bench seed of test_bench_recordings.py; no model trained on altsim or scattersim recordings of it
DURATION_S = 0.6


def test_dense_rows_are_every_column_of_the_longest_stretch_with_contact():
    upper_px = np.linspace(10.0, 20.0, 12)
    lower_px = upper_px + 30.5
    lost_contact = np.zeros(12, bool)
    lost_contact[3:5] = True
    lower_px[10] = np.nan  # a border unknown in a column splits a stretch like lost contact
    rows, span = dense_annotation_rows("rec", upper_px, lower_px, lost_contact)
    assert span == [5, 10]
    assert [row[2] for row in rows] == [5, 6, 7, 8, 9] * 2
    assert [row[1] for row in rows] == ["upper"] * 5 + ["lower"] * 5
    assert [float(row[3]) for row in rows[:5]] == pytest.approx(upper_px[5:10], abs=5e-4)
    assert [float(row[3]) for row in rows[5:]] == pytest.approx(lower_px[5:10], abs=5e-4)


def test_a_recording_with_no_known_column_is_refused_by_name():
    with pytest.raises(InputError, match="rec: no column"):
        dense_annotation_rows("rec", np.zeros(4), np.full(4, np.nan), np.zeros(4, bool))


@pytest.mark.parametrize("generator", ["alt", "scatter"])
def test_written_recordings_are_the_benchs_and_their_annotations_draw_the_truth(generator, tmp_path):
    names = write_recordings(tmp_path, generator, 2, SEED, duration_s=DURATION_S, artefacts=0.0)
    assert names == [f"{generator}_s{SEED}_000", f"{generator}_s{SEED}_001"]
    annotations = read_annotations(tmp_path / "annotations.csv")
    calibrations = read_calibration_csv(tmp_path / "calibration.csv")
    sources = truth_sources(tmp_path)
    for index, name in enumerate(names):
        # --artefacts 0: recording i is the bench's clean recording i of the same seed
        expected = generate(generator, SEED, index, DURATION_S, False, name)
        image = read_image(tmp_path / f"{name}.png")
        np.testing.assert_array_equal(image, expected.image)
        assert calibrations[name].mm_per_px == pytest.approx(expected.mm_per_px, rel=1e-12)
        # the traces preprocess build draws through the dense points are the truth borders
        upper_px, lower_px, span = annotation_traces(name, annotations[name], image.shape)
        columns = np.arange(*span)
        assert span[1] - span[0] == int((~expected.lost_contact).sum())
        assert np.abs(upper_px[columns] - expected.upper_px[columns]).max() < 1e-3
        assert np.abs(lower_px[columns] - expected.lower_px[columns]).max() < 1e-3
        truth = json.loads((tmp_path / "truth" / f"{name}.json").read_text())
        assert truth["generator"] == generator and "simulator_version" not in truth
        assert truth["annotated_columns"] == list(span)
        on_disk = load_truth(tmp_path / f"{name}.png", sources)
        np.testing.assert_allclose(on_disk.lower_px, expected.lower_px, atol=1e-3)
        assert len(on_disk.beats) == len(expected.beats)


def test_an_artefact_share_of_1_writes_the_benchs_artefact_set(tmp_path):
    write_recordings(tmp_path / "all", "alt", 2, SEED + 1, duration_s=DURATION_S, artefacts=1.0)
    for index in range(2):
        name = f"alt_s{SEED + 1}_{index:03d}"
        # --seed S+1 --artefacts 1: the bench's artefact set of seed S
        expected = generate("alt", SEED + 1, index, DURATION_S, True, name)
        np.testing.assert_array_equal(read_image(tmp_path / "all" / f"{name}.png"), expected.image)
        assert not np.array_equal(expected.image, generate("alt", SEED + 1, index, DURATION_S, False, name).image)


def test_an_occupied_folder_and_bad_options_are_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        write_recordings(tmp_path, "alt", 1, SEED)
    with pytest.raises(SystemExit) as stop:
        run_main(main, ["--generator", "alt", "--n", "0", "--seed", "1", "--out", str(tmp_path / "new")])
    assert stop.value.code == 2 and "--n must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        run_main(main, ["--generator", "alt", "--n", "1", "--seed", "1", "--duration", "0",
                        "--out", str(tmp_path / "new")])
    assert stop.value.code == 2 and "--duration must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and (tmp_path / "notes.txt").read_text() == "mine"
