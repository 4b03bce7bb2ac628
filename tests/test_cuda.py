"""CUDA: training, bf16 autocast and analysis on a GPU agree with the CPU. Skipped on machines without CUDA
(CI has none); run them where a GPU is: `python -m pytest -q tests/test_cuda.py`."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmode.analysis import analyse_recording  # noqa: E402
from mmode.calibration import Calibration  # noqa: E402
from mmode.checkpoint import input_shape, load_model, ms_per_column  # noqa: E402
from mmode.io import read_recording  # noqa: E402
from trainer import Trainer, TrainingOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE_PX = 64

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def band_data(tmp_path_factory, write_band_pairs):
    """16 pairs from 8 recordings: a bright noisy image with a dark cavity band, the band as 0/255 mask."""
    return write_band_pairs(tmp_path_factory.mktemp("band_data"), 8, 2, SIZE_PX, (8, 24), (36, 56), 1, "rec")


def train(data, output_dir, **changes):
    settings = dict(data_dir=data, output_dir=output_dir, epochs=4, batch_size=4, img_size=32, lr=0.01, val_pct=25,
                    model_params=dict(num_filters=8), quiet=True, seed=3)
    settings.update(changes)
    return Trainer(TrainingOptions(**settings)).fit()


def test_training_on_cuda_follows_the_cpu_run(band_data, tmp_path):
    # Without dropout: its masks come from each device's own random generator, so with it the two runs take
    # different steps from the first batch on (seen on an H200: losses 7-40 % apart).
    no_dropout = dict(num_filters=8, drop_out=0.0)
    cpu = train(band_data, tmp_path / "cpu", device="cpu", model_params=no_dropout)
    cuda = train(band_data, tmp_path / "cuda", device="cuda", model_params=no_dropout)
    # Same seed, same batches, same initial weights: only floating-point order (and TF32) differs.
    assert [r["train_loss"] for r in cuda] == pytest.approx([r["train_loss"] for r in cpu], rel=0.05)
    assert cuda[-1]["val_dice"] > 0.9
    assert cuda[-1]["val_dice"] == pytest.approx(cpu[-1]["val_dice"], abs=0.02)


def test_bf16_autocast_learns_the_band(band_data, tmp_path):
    history = train(band_data, tmp_path / "amp", device="cuda", amp=True)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_dice"] > 0.9
    net, _ = load_model(tmp_path / "amp" / f"CP_last_e{len(history)}.pt")  # saved in float32, loads on the CPU
    assert next(net.parameters()).dtype == torch.float32


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.png"))[:1], ids=lambda p: p.stem)
def test_the_default_model_measures_the_same_on_cuda(path):
    recording = read_recording(path, Calibration())
    results = {}
    for device in ("cpu", "cuda"):
        net, checkpoint = load_model(ROOT / "checkpoints" / "heart-seg-net.pt", device)
        results[device] = analyse_recording(recording, net, input_shape(checkpoint), device,
                                            ms_per_column=ms_per_column(checkpoint))
    cpu, cuda = results["cpu"], results["cuda"]
    assert np.mean(cpu.mask == cuda.mask) > 0.999
    assert np.nanmax(np.abs(cpu.lvid_mm - cuda.lvid_mm)) < 0.05  # mm: a border pixel or two at most
    assert cuda.summary["hr_bpm"] == pytest.approx(cpu.summary["hr_bpm"], rel=0.01)
    assert cuda.summary["ef_pct"] == pytest.approx(cpu.summary["ef_pct"], abs=0.5)
