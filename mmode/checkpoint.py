"""Saving and loading checkpoints as the dict DESIGN.md fixes, rebuilding the network from it."""
from pathlib import Path

from mmode.errors import InputError
from mmode.version import software

REQUIRED_KEYS = ("net_state_dict", "model_params", "img_size", "epoch", "optimizer",
                 "loss", "dice", "mse", "best_dice", "best_mse")


def save_checkpoint(path, net, model_params, img_size, epoch, optimizer, loss, dice, mse,
                    best_dice, best_mse, **extra):
    """Write the checkpoint dict to `path` atomically (a temporary file, then a rename).

    `optimizer` is the optimiser's state dict (or None); `extra` keys are stored as they are.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "net_state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        "model_params": dict(model_params),
        "img_size": int(img_size),
        "epoch": int(epoch),
        "optimizer": optimizer,
        "loss": float(loss),
        "dice": float(dice),
        "mse": float(mse),
        "best_dice": float(best_dice),
        "best_mse": float(best_mse),
        **software(),
        **extra,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)
    return path


def input_shape(checkpoint):
    """(rows, columns) of the network input a checkpoint was trained at: `img_size` rows by `img_width`
    columns; checkpoints without `img_width` were trained on squares."""
    rows = int(checkpoint["img_size"])
    return rows, int(checkpoint.get("img_width") or rows)


def ms_per_column(checkpoint, option=None):
    """The time one network column spans (ms) that recordings are resized to, or None for the height rule
    (a square window of the recording's height is `columns` wide): `option` (a --ms-per-column value; 0
    asks for the height rule) when given, else the checkpoint's `ms_per_column` key, absent from
    checkpoints that predate it."""
    value = checkpoint.get("ms_per_column") if option is None else (option or None)
    return None if value is None else float(value)


def read_checkpoint(path):
    """The checkpoint dict at `path`, checked for every documented key; InputError otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({error.__class__.__name__}: {error})") from error
    if not isinstance(checkpoint, dict):
        raise InputError(f"{path}: not a Heart-Segmentation checkpoint (a {type(checkpoint).__name__}, not a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise InputError(f"{path}: not a Heart-Segmentation checkpoint, missing keys: {', '.join(missing)}")
    return checkpoint


def build_network(model_params):
    """A QuickNat built from a checkpoint's `model_params`."""
    from quicknat import QuickNat

    return QuickNat(dict(model_params))


def load_weights(net, state_dict, path):
    """Load `state_dict` into `net`; a shape or key mismatch becomes an InputError naming `path`."""
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(f"{path}: checkpoint does not fit this network ({detail})") from error


def channels_last_on_cpu(net, device):
    """On a CPU, `net`'s weights and every input it is given in the channels-last memory layout, which the CPU's
    convolutions run faster (1.2-1.5x per forward pass here, "Benchmarks"); the results agree to float32 rounding.
    On other devices `net` is left as it is (not measured there). Returns `net`."""
    import torch

    if torch.device(device).type == "cpu":
        net.to(memory_format=torch.channels_last)
        net.register_forward_pre_hook(_channels_last_input)
    return net


def _channels_last_input(module, inputs):
    import torch

    return (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])


def load_model(path, device="cpu", channels_last=True):
    """Rebuild the network stored in the checkpoint at `path`, in eval mode on `device`: channels-last on a CPU
    (`channels_last_on_cpu`) unless `channels_last` is False (the plain layout, which bench/speed.py times beside it).

    Returns (net, checkpoint dict).
    """
    checkpoint = read_checkpoint(path)
    try:
        net = build_network(checkpoint["model_params"])
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(f"{path}: its model_params do not describe a QuickNat ({error})") from error
    load_weights(net, checkpoint["net_state_dict"], path)
    net = net.to(device).eval()
    return (channels_last_on_cpu(net, device) if channels_last else net), checkpoint
