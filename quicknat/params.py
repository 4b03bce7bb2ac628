"""QuickNAT configuration: the paper's defaults and their validation (no torch needed here)."""
from numbers import Integral, Real

DEFAULT_PARAMS = dict(num_channels=1, num_class=1, num_filters=64, kernel_h=5, kernel_w=5, kernel_c=1,
                      stride_conv=1, pool=2, stride_pool=2, se_block="NONE", drop_out=0.2)

SE_BLOCKS = ("NONE", "CSE", "SSE", "CSSE")

NUM_POOLINGS = 4


def _positive_int(key, value):
    # bool is an Integral in Python, but True filters is a mistake, not a size
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"QuickNat parameter {key}={value!r} must be a positive integer")
    return int(value)


def _odd_kernel(key, value):
    value = _positive_int(key, value)
    if value % 2 == 0:
        # an odd kernel pads symmetrically, so every block keeps the map's height and width
        raise ValueError(f"QuickNat parameter {key}={value} must be odd (same padding keeps the map size)")
    return value


def validate_params(params=None):
    """The full configuration: `params` (dict, may be partial or None) over DEFAULT_PARAMS, checked.

    Unknown keys or bad values raise ValueError naming the key. `se_block` is accepted in any case and
    stored upper-case; integers are stored as Python ints and `drop_out` as a float, so the dict can be
    saved in a checkpoint and rebuild the same network.
    """
    params = {} if params is None else dict(params)
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown QuickNat parameter(s): {', '.join(map(str, unknown))} "
                         f"(known: {', '.join(DEFAULT_PARAMS)})")
    full = {**DEFAULT_PARAMS, **params}

    for key in ("num_channels", "num_class", "num_filters"):
        full[key] = _positive_int(key, full[key])
    for key in ("kernel_h", "kernel_w", "kernel_c"):
        full[key] = _odd_kernel(key, full[key])

    full["stride_conv"] = _positive_int("stride_conv", full["stride_conv"])
    if full["stride_conv"] != 1:
        raise ValueError(f"QuickNat parameter stride_conv={full['stride_conv']} must be 1 "
                         "(a strided convolution would break the skip connections)")

    full["pool"] = _positive_int("pool", full["pool"])
    full["stride_pool"] = _positive_int("stride_pool", full["stride_pool"])
    if full["pool"] < 2 or full["stride_pool"] != full["pool"]:
        raise ValueError(f"QuickNat parameters pool={full['pool']} and stride_pool={full['stride_pool']} "
                         "must be equal and at least 2 (non-overlapping pooling that unpooling inverts)")

    se_block = full["se_block"]
    if not isinstance(se_block, str) or se_block.upper() not in SE_BLOCKS:
        raise ValueError(f"QuickNat parameter se_block={se_block!r} must be one of {', '.join(SE_BLOCKS)}")
    full["se_block"] = se_block.upper()

    drop_out = full["drop_out"]
    if isinstance(drop_out, bool) or not isinstance(drop_out, Real) or not 0.0 <= drop_out < 1.0:
        raise ValueError(f"QuickNat parameter drop_out={drop_out!r} must be a number in [0, 1)")
    full["drop_out"] = float(drop_out)
    return full


def size_multiple(params):
    """The number both input sides must be a multiple of: pool ** 4 (16 with the defaults)."""
    return params["pool"] ** NUM_POOLINGS
