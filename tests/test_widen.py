"""quicknat.widen: a trained QuickNat widened to more filters computes the same function (Net2WiderNet)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quicknat import QuickNat  # noqa: E402
from quicknat.widen import channel_map, widen_state_dict  # noqa: E402

SMALL = dict(num_filters=4, kernel_h=3, kernel_w=3, drop_out=0.1)


def trained_looking(params, seed=0):
    """A network whose batch norms have non-trivial statistics and affine parameters, as training leaves them."""
    torch.manual_seed(seed)
    net = QuickNat(params)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.4)
    return net.eval()


def widened(net, num_filters, **options):
    state_dict, params = widen_state_dict(net.state_dict(), net.params, num_filters, **options)
    wide = QuickNat(params)
    wide.load_state_dict(state_dict)
    return wide.eval()


@pytest.mark.parametrize("num_filters", [4, 5, 7, 12])
def test_the_widened_network_computes_the_same_logits(num_filters):
    net = trained_looking(SMALL)
    wide = widened(net, num_filters, noise=0)
    assert wide.params["num_filters"] == num_filters
    x = torch.rand(3, 1, 32, 48)
    with torch.no_grad():
        expected, got = net(x), wide(x)
    assert expected.abs().max() > 0.1  # a network that computes something
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_noise_moves_only_the_copies_and_only_a_little():
    net = trained_looking(SMALL)
    exact, noisy = widened(net, 8, noise=0), widened(net, 8, noise=0.001)
    for name, value in exact.state_dict().items():
        if name.endswith("conv1.weight") or name.endswith("conv2.weight") or name.endswith("conv3.weight"):
            changed = (noisy.state_dict()[name] != value).flatten(1).any(dim=1)
            assert not changed[:4].any() and changed[4:].all(), name  # old filters kept, copies moved
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(noisy(x), exact(x), atol=0.05)


def test_copies_train_apart_under_dropout():
    # the copies start equal; Dropout2d drops a block's output channels independently, so one training step
    # separates the copied filters of the last dense stage (the stages inside a block rely on the noise)
    net = trained_looking(SMALL)
    wide = widened(net, 8, noise=0).train()
    optimiser = torch.optim.SGD(wide.parameters(), lr=0.1)
    torch.manual_seed(1)
    x, y = torch.rand(4, 1, 32, 32), (torch.rand(4, 1, 32, 32) > 0.5).float()
    torch.nn.functional.binary_cross_entropy_with_logits(wide(x), y).backward()
    optimiser.step()
    weight = wide.state_dict()["encode2.dense.conv3.weight"]
    copies = channel_map(4, 8, seed=0)
    assert not torch.allclose(weight[4], weight[copies[4]])


def test_channel_map_keeps_the_old_channels_first_and_copies_only_them():
    copy_of = channel_map(16, 24, seed=3)
    assert copy_of[:16].tolist() == list(range(16))
    assert copy_of.min() >= 0 and copy_of.max() < 16 and copy_of.size == 24
    assert np.array_equal(copy_of, channel_map(16, 24, seed=3))


def test_fewer_filters_and_se_blocks_are_refused():
    with pytest.raises(ValueError, match="cannot widen 4 filters to fewer"):
        widen_state_dict(trained_looking(SMALL).state_dict(), SMALL, 3)
    se = QuickNat({**SMALL, "se_block": "CSE"})
    with pytest.raises(ValueError, match="squeeze-and-excitation"):
        widen_state_dict(se.state_dict(), se.params, 8)
