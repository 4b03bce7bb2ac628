"""QuickNat: shapes, dense connectivity, the paper configuration's parameter count, validation and dropout."""
import pytest
import torch
from torch import nn

from quicknat import DEFAULT_PARAMS, SE_BLOCKS, DenseBlock, QuickNat

SMALL = dict(num_filters=4)


def dense_block_param_count(in_channels, num_filters, kernel_h, kernel_w):
    """Parameters of one dense block, from its three BN -> PReLU -> conv stages.

    BN: weight + bias per channel (running statistics are buffers, not parameters);
    PReLU: one shared slope per stage (nn.PReLU() with num_parameters=1);
    conv: in * out * kernel area weights + out biases.
    """
    count = 0
    stage_inputs = (in_channels, in_channels + num_filters, in_channels + 2 * num_filters)
    stage_kernel_areas = (kernel_h * kernel_w, kernel_h * kernel_w, 1)
    for channels, kernel_area in zip(stage_inputs, stage_kernel_areas):
        count += 2 * channels + 1 + channels * num_filters * kernel_area + num_filters
    return count


def test_paper_configuration_parameter_count_matches_the_architecture_formula():
    num_filters, kernel, num_channels, num_class = 64, 5, 1, 1
    expected = (
        dense_block_param_count(num_channels, num_filters, kernel, kernel)      # encoder 1
        + 3 * dense_block_param_count(num_filters, num_filters, kernel, kernel)  # encoders 2-4
        + dense_block_param_count(num_filters, num_filters, kernel, kernel)      # bottleneck
        + 4 * dense_block_param_count(2 * num_filters, num_filters, kernel, kernel)  # decoders: unpooled + skip
        + num_filters * num_class + num_class                                      # 1x1 classifier
    )
    # pooling, unpooling and Dropout2d have no parameters; worked out by hand: 3,515,234
    assert expected == 3_515_234
    net = QuickNat(dict(num_filters=64, kernel_h=5, kernel_w=5, num_channels=1, num_class=1))
    assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize("se_block, per_layer", [
    ("NONE", 0),
    ("CSE", 8 * 4 + 4 + 4 * 8 + 8),      # FC 8->4 and FC 4->8 with biases
    ("SSE", 8 + 1),                      # 1x1 conv 8->1 with bias
    ("CSSE", 8 * 4 + 4 + 4 * 8 + 8 + 8 + 1),
])
def test_se_layers_add_their_parameters_after_each_of_the_nine_blocks(se_block, per_layer):
    base = QuickNat(dict(num_filters=8))
    net = QuickNat(dict(num_filters=8, se_block=se_block))
    added = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in base.parameters())
    assert added == 9 * per_layer


@pytest.mark.parametrize("se_block", SE_BLOCKS)
@pytest.mark.parametrize("height_px, width_px", [(16, 32), (32, 32), (64, 48)])
def test_output_has_the_input_size_and_num_class_channels(se_block, height_px, width_px):
    torch.manual_seed(0)
    net = QuickNat(dict(SMALL, se_block=se_block)).eval()
    with torch.no_grad():
        logits = net(torch.rand(2, 1, height_px, width_px))
    assert logits.shape == (2, 1, height_px, width_px)
    assert torch.isfinite(logits).all()


def test_several_input_channels_and_classes():
    net = QuickNat(dict(SMALL, num_channels=3, num_class=2, kernel_h=3, kernel_w=7)).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 16)).shape == (1, 2, 32, 16)


def test_dense_block_concatenates_input_and_both_stage_outputs():
    in_channels, num_filters = 5, 3
    block = DenseBlock(in_channels, num_filters, 5, 5).eval()
    seen = {}
    for name in ("conv1", "conv2", "conv3"):
        getattr(block, name).register_forward_hook(
            lambda module, inputs, output, name=name: seen.update({name: (inputs[0].shape[1], output.shape[1])}))
    with torch.no_grad():
        out = block(torch.rand(2, in_channels, 8, 12))
    assert seen == {"conv1": (in_channels, num_filters),
                    "conv2": (in_channels + num_filters, num_filters),
                    "conv3": (in_channels + 2 * num_filters, num_filters)}
    assert (block.bn1.num_features, block.bn2.num_features, block.bn3.num_features) == (5, 8, 11)
    assert block.conv3.kernel_size == (1, 1)
    assert out.shape == (2, num_filters, 8, 12)


def test_block_input_channels_follow_the_architecture():
    net = QuickNat(dict(num_filters=6, num_channels=2))
    assert net.encode1.dense.conv1.in_channels == 2
    assert [getattr(net, f"encode{k}").dense.conv1.in_channels for k in (2, 3, 4)] == [6, 6, 6]
    assert net.bottleneck.dense.conv1.in_channels == 6
    assert [getattr(net, f"decode{k}").dense.conv1.in_channels for k in (1, 2, 3, 4)] == [12] * 4


@pytest.mark.parametrize("height_px, width_px", [(100, 130), (16, 40), (8, 16)])
def test_size_not_a_multiple_of_16_is_refused_naming_it(height_px, width_px):
    net = QuickNat(SMALL)
    with pytest.raises(ValueError, match=f"input size {height_px}x{width_px} is not a multiple of 16"):
        net(torch.rand(1, 1, height_px, width_px))


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match=r"not \(N, 1, H, W\)"):
        QuickNat(SMALL)(torch.rand(1, 3, 16, 16))


def test_eval_is_deterministic():
    torch.manual_seed(1)
    net = QuickNat(dict(SMALL, drop_out=0.5, se_block="CSSE")).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_test_dropout_samples_while_batch_norm_stays_in_eval():
    torch.manual_seed(2)
    net = QuickNat(dict(SMALL, drop_out=0.5)).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        reference = net(x)
        net.enable_test_dropout()
        batch_norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        running_means = [m.running_mean.clone() for m in batch_norms]
        first, second = net(x), net(x)
    assert not torch.equal(first, second)
    assert not torch.equal(first, reference)
    assert all(m.training for m in net.modules() if isinstance(m, nn.Dropout2d))
    assert not any(m.training for m in batch_norms)
    # BN in eval mode neither uses nor updates batch statistics
    assert all(torch.equal(m.running_mean, before) for m, before in zip(batch_norms, running_means))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), reference)


def test_missing_keys_take_the_defaults_and_params_rebuild_the_network():
    net = QuickNat(dict(num_filters=8, se_block="sse"))
    assert net.params == {**DEFAULT_PARAMS, "num_filters": 8, "se_block": "SSE"}
    rebuilt = QuickNat(net.params)
    rebuilt.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), rebuilt.eval()(x))


@pytest.mark.parametrize("params, message", [
    (dict(num_filter=8), "unknown QuickNat parameter"),
    (dict(se_block="SCSE"), "se_block"),
    (dict(se_block=None), "se_block"),
    (dict(num_filters=0), "num_filters"),
    (dict(num_filters=8.0), "num_filters"),
    (dict(kernel_h=4), "kernel_h"),
    (dict(stride_conv=2), "stride_conv"),
    (dict(pool=2, stride_pool=1), "stride_pool"),
    (dict(drop_out=1.0), "drop_out"),
])
def test_bad_params_are_refused_naming_the_key(params, message):
    with pytest.raises(ValueError, match=message):
        QuickNat(dict(SMALL, **params))


def test_default_params_are_the_papers():
    assert DEFAULT_PARAMS == dict(num_channels=1, num_class=1, num_filters=64, kernel_h=5, kernel_w=5, kernel_c=1,
                                  stride_conv=1, pool=2, stride_pool=2, se_block="NONE", drop_out=0.2)
