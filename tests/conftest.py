"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture
def one_torch_thread():
    """Run a torch test on one thread: two CI cores are shared by the data loader and the test runner."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
