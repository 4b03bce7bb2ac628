"""Dice and MSE on hand-made masks whose values are known."""
import numpy as np
import pytest

from mmode.metrics import dice_per_image, mse_per_image


def test_dice_and_mse_of_overlapping_squares():
    prediction = np.zeros((1, 10, 10))
    mask = np.zeros((1, 10, 10))
    prediction[0, 0:4, 0:5] = 1  # 20 pixels
    mask[0, 2:6, 0:5] = 1  # 20 pixels, 10 shared
    assert dice_per_image(prediction, mask)[0] == pytest.approx(2 * 10 / 40)
    assert mse_per_image(prediction, mask)[0] == pytest.approx(20 / 100)


def test_identical_disjoint_and_empty_masks():
    mask = np.zeros((3, 4, 4))
    mask[0, 1:3, 1:3] = 1
    prediction = mask.copy()
    prediction[1, 0, 0] = 1  # second image: prediction where the mask is empty
    dice = dice_per_image(prediction, mask)
    assert dice.tolist() == [1.0, 0.0, 1.0]  # equal; disjoint; both empty counts as perfect
    assert mse_per_image(prediction, mask).tolist() == [0.0, 1 / 16, 0.0]


def test_metrics_accept_torch_tensors():
    torch = pytest.importorskip("torch")
    prediction = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert dice_per_image(prediction, mask)[0] == pytest.approx(2 / 3)
    assert mse_per_image(prediction, mask)[0] == pytest.approx(0.25)
