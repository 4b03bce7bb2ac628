"""QuickNAT (Roy et al., NeuroImage 2019) for LV cavity segmentation.

`from quicknat import DEFAULT_PARAMS` does not import torch (entry scripts' --help stays instant);
`QuickNat` and the blocks import it on first use.
"""
from quicknat.params import DEFAULT_PARAMS, SE_BLOCKS, validate_params

_TORCH_NAMES = {
    "QuickNat": "quicknat.quicknat",
    "DenseBlock": "quicknat.blocks",
    "ChannelSELayer": "quicknat.blocks",
    "SpatialSELayer": "quicknat.blocks",
    "ChannelSpatialSELayer": "quicknat.blocks",
}

__all__ = ["DEFAULT_PARAMS", "SE_BLOCKS", "validate_params", *_TORCH_NAMES]


def __getattr__(name):
    if name in _TORCH_NAMES:
        import importlib

        return getattr(importlib.import_module(_TORCH_NAMES[name]), name)
    raise AttributeError(f"module 'quicknat' has no attribute {name!r}")
