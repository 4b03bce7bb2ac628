"""Segmentation metrics of a thresholded prediction against a binary mask, as the seed reports them.

Both functions take torch tensors or numpy arrays of shape (N, ...) holding 0/1 values and return
one value per image, so batch averages and per-image tables come from the same numbers.
"""
import numpy as np


def _as_float_batch(values):
    array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    return array.reshape(array.shape[0], -1).astype(np.float64)


def dice_per_image(prediction, mask):
    """Dice 2|P∩M| / (|P| + |M|) per image; 1.0 where both prediction and mask are empty."""
    pred, truth = _as_float_batch(prediction), _as_float_batch(mask)
    intersection = (pred * truth).sum(axis=1)
    total = pred.sum(axis=1) + truth.sum(axis=1)
    return np.where(total > 0, 2.0 * intersection / np.maximum(total, 1e-12), 1.0)


def mse_per_image(prediction, mask):
    """Mean squared error per image; for 0/1 inputs, the fraction of pixels classified wrongly."""
    pred, truth = _as_float_batch(prediction), _as_float_batch(mask)
    return ((pred - truth) ** 2).mean(axis=1)
