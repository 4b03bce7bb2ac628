"""A trained QuickNat widened to more filters per block, computing the same function (Net2WiderNet).

Chen, Goodfellow and Shlens, "Net2Net: accelerating learning via knowledge transfer", ICLR 2016: a layer gets
new units that copy existing ones, and the layers reading it divide the weights from each copied unit among
its copies, so the wider network's output equals the narrow one's. Copies with the same incoming and outgoing
weights would get the same gradients and stay copies: a little noise on their incoming weights starts them
apart (Dropout2d, which drops a block's output channels independently, also separates those).

Every block of a QuickNat has `num_filters` output channels; one map `copy_of` (new channel -> old channel:
the old channels in order, then copies drawn at random) widens all of them, so every feature map, and every
concatenation of them in the dense blocks and decoders, maps to the old one the same way. Batch norm and
max-pooling act per channel (copies keep the same statistics and the same pooling indices) and each PReLU has
one parameter, so nothing else changes. Squeeze-and-excitation blocks are not widened (refused).
"""
import numpy as np

from quicknat.params import validate_params

DENSE_STAGES = ("conv1", "conv2", "conv3")
BLOCKS = ("encode1", "encode2", "encode3", "encode4", "bottleneck", "decode4", "decode3", "decode2", "decode1")


def channel_map(old_filters, new_filters, seed=0):
    """(new_filters,) int array: new channel i copies old channel `map[i]`; the first `old_filters` are themselves."""
    if new_filters < old_filters:
        raise ValueError(f"cannot widen {old_filters} filters to fewer ({new_filters})")
    extra = np.random.default_rng(seed).integers(0, old_filters, new_filters - old_filters)
    return np.concatenate([np.arange(old_filters), extra])


def _block_input_map(block, copy_of, old_filters, num_channels):
    """Old channel index of every new input channel of `block`'s dense block, and the old input width."""
    if block == "encode1":
        return np.arange(num_channels), num_channels
    if block.startswith("decode"):  # cat(unpooled, skip)
        return np.concatenate([copy_of, old_filters + copy_of]), 2 * old_filters
    return copy_of, old_filters


def _take(tensor, rows=None, columns=None):
    import torch

    if rows is not None:
        tensor = tensor.index_select(0, torch.as_tensor(rows))
    if columns is not None:
        tensor = tensor.index_select(1, torch.as_tensor(columns))
    return tensor


def _split_among_copies(weight, input_map):
    """`weight` (out, new_in, ...) with input channel i copying old channel input_map[i]: divided by how many
    copies that old channel has, so the copies together contribute what the one channel did."""
    import torch

    counts = np.bincount(input_map)[input_map].astype(np.float32)
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    return weight / torch.as_tensor(counts).reshape(shape)


def widen_state_dict(state_dict, model_params, num_filters, seed=0, noise=0.01):
    """The state dict of a QuickNat with `num_filters` filters that computes what the network with
    `state_dict` and `model_params` computes (up to float rounding, before `noise`).

    `noise`: the copies' incoming weights get Gaussian noise of this fraction of each weight tensor's SD (0: an
    exact copy, whose copies would train alike but for dropout). Returns (new state dict, new model_params).
    Raises ValueError for SE blocks or fewer filters than the network has.
    """
    import torch

    params = validate_params(model_params)
    if params["se_block"] != "NONE":
        raise ValueError(f"widening a network with squeeze-and-excitation blocks ({params['se_block']}) is not "
                         "supported")
    old = params["num_filters"]
    new_params = validate_params({**params, "num_filters": num_filters})
    copy_of = channel_map(old, int(num_filters), seed)
    is_copy = torch.as_tensor(np.arange(num_filters) >= old)
    generator = torch.Generator().manual_seed(seed)
    out = {}

    def perturb(weight):
        if noise == 0 or not bool(is_copy.any()):
            return weight
        shape = (-1,) + (1,) * (weight.dim() - 1)
        jitter = torch.randn(weight.shape, generator=generator) * (noise * float(weight.std()))
        return weight + jitter * is_copy.reshape(shape).to(weight.dtype)

    for block in BLOCKS:
        prefix = f"{block}.dense."
        input_map, input_width = _block_input_map(block, copy_of, old, params["num_channels"])
        stage_inputs = [input_map,
                        np.concatenate([input_map, input_width + copy_of]),
                        np.concatenate([input_map, input_width + copy_of, input_width + old + copy_of])]
        for stage, (conv, stage_map) in enumerate(zip(DENSE_STAGES, stage_inputs), start=1):
            bn = f"{prefix}bn{stage}."
            for key in ("weight", "bias", "running_mean", "running_var"):
                out[bn + key] = _take(state_dict[bn + key], stage_map).clone()
            out[bn + "num_batches_tracked"] = state_dict[bn + "num_batches_tracked"].clone()
            out[f"{prefix}prelu{stage}.weight"] = state_dict[f"{prefix}prelu{stage}.weight"].clone()
            weight = _take(state_dict[f"{prefix}{conv}.weight"], copy_of, stage_map)
            out[f"{prefix}{conv}.weight"] = perturb(_split_among_copies(weight, stage_map))
            out[f"{prefix}{conv}.bias"] = _take(state_dict[f"{prefix}{conv}.bias"], copy_of).clone()
    out["classifier.conv.weight"] = _split_among_copies(_take(state_dict["classifier.conv.weight"], None, copy_of),
                                                        copy_of)
    out["classifier.conv.bias"] = state_dict["classifier.conv.bias"].clone()
    unknown = sorted(set(state_dict) - set(out))
    if unknown:
        raise ValueError(f"state dict has keys widening does not know: {', '.join(unknown[:5])}")
    return out, new_params
