"""The shipped model and examples: the README's quick start measures what the simulator drew."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmode.analysis import analyse_recording  # noqa: E402
from mmode.calibration import Calibration  # noqa: E402
from mmode.checkpoint import REQUIRED_KEYS, input_shape, load_model, ms_per_column, read_checkpoint  # noqa: E402
from mmode.io import read_recording  # noqa: E402
from mmode.refine import TASK, check_refiner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "checkpoints" / "heart-seg-net.pt"
REFINER = ROOT / "checkpoints" / "heart-seg-refine.pt"
EXAMPLES = sorted((ROOT / "examples").glob("*.png"))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_default_model_is_a_complete_small_checkpoint():
    checkpoint = read_checkpoint(MODEL)
    assert set(REQUIRED_KEYS) <= set(checkpoint)
    assert MODEL.stat().st_size < 20 * 2 ** 20
    assert checkpoint["img_size"] % 16 == 0
    # time read in milliseconds per network column, inside what its training windows spanned (1.6-4.4 ms)
    assert 1.6 <= ms_per_column(checkpoint) <= 4.4


def test_the_model_card_names_the_shipped_files_by_their_sha256():
    # a checkpoint replaced without its model card would leave the card describing other weights
    card = (ROOT / "checkpoints" / "MODEL_CARD.md").read_text()
    for path in (MODEL, REFINER):
        assert f"`{hashlib.sha256(path.read_bytes()).hexdigest()}`" in card, path


def test_the_default_refiner_is_a_complete_small_border_refiner():
    checkpoint = read_checkpoint(REFINER)
    assert set(REQUIRED_KEYS) <= set(checkpoint)
    assert REFINER.stat().st_size < 20 * 2 ** 20
    assert checkpoint["task"] == TASK and check_refiner(checkpoint, REFINER) == 96


@pytest.mark.parametrize("refine", [True, False], ids=["refined", "no-refine"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_examples_are_measured_close_to_their_truth(path, refine):
    truth = json.loads((ROOT / "examples" / "truth" / f"{path.stem}.json").read_text())
    net, checkpoint = load_model(MODEL)
    recording = read_recording(path, Calibration())
    # the examples are drawn at the default calibration, so the quick start needs no flags
    assert (truth["mm_per_px"], truth["s_per_px"]) == (recording.calibration.mm_per_px,
                                                       recording.calibration.s_per_px)
    refiner = None
    if refine:  # as test.py runs by default
        refiner_net, refiner_checkpoint = load_model(REFINER)
        refiner = refiner_net, check_refiner(refiner_checkpoint, REFINER)
    analysis = analyse_recording(recording, net, input_shape(checkpoint), refiner=refiner,
                                 ms_per_column=ms_per_column(checkpoint))
    summary = analysis.summary

    truth_lvid_mm = np.asarray(truth["lvid_mm"])
    assert np.nanmean(np.abs(analysis.lvid_mm - truth_lvid_mm)) < 0.1  # mm; bench/accuracy.py gives the figures
    beats = truth["beats"]
    assert summary["lvid_d_mm"] == pytest.approx(np.median([b["lvid_d_mm"] for b in beats]), abs=0.15)
    assert summary["lvid_s_mm"] == pytest.approx(np.median([b["lvid_s_mm"] for b in beats]), abs=0.15)
    assert summary["hr_bpm"] == pytest.approx(np.median([60 / b["rr_s"] for b in beats]), rel=0.02)
    # Every truth beat is found (end-diastoles within a quarter RR); the truth lists whole cycles only, so
    # the detector may add a beat whose cycle the recording cuts, but only within one RR of either end.
    rr_s = np.median([b["rr_s"] for b in beats])
    found_ed_s = np.asarray(analysis.parameters["t_ed_s"])
    distance_s = np.abs(found_ed_s[None, :] - np.array([b["t_ed_s"] for b in beats])[:, None])
    assert (distance_s.min(axis=1) < 0.25 * rr_s).all()
    extra_ed_s = found_ed_s[distance_s.min(axis=0) >= 0.25 * rr_s]
    duration_s = recording.image.shape[1] * recording.calibration.s_per_px
    assert ((extra_ed_s < rr_s) | (extra_ed_s > duration_s - rr_s)).all()
    assert extra_ed_s.size <= 2
