"""Fixtures shared by the test modules."""
import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def one_torch_thread():
    """Run a torch test on one thread: two CI cores are shared by the data loader and the test runner."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_band_pairs(folder, recordings, windows, size_px, top_px, bottom_px, seed, prefix):
    """Write `recordings` x `windows` pairs into folder/img and folder/mask, named <prefix><r>_win<w>.png: a
    bright noisy size_px-square image with a dark band from a row drawn in [top_px) to one in [bottom_px),
    and the band as a 0/255 mask. Returns the folder."""
    (folder / "img").mkdir(parents=True)
    (folder / "mask").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for recording in range(recordings):
        for window in range(windows):
            top, bottom = rng.integers(*top_px), rng.integers(*bottom_px)
            image = np.full((size_px, size_px), 190.0)
            image[top:bottom] = 40
            image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
            mask = np.zeros((size_px, size_px), np.uint8)
            mask[top:bottom] = 255
            name = f"{prefix}{recording}_win{window}.png"
            Image.fromarray(image).save(folder / "img" / name)
            Image.fromarray(mask).save(folder / "mask" / name)
    return folder


@pytest.fixture(scope="session")
def write_band_pairs():
    """The writer of small band data sets (image/mask pairs whose cavity is a dark horizontal band)."""
    return _write_band_pairs
