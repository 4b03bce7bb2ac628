"""QuickNat: the assembled network (Roy et al., NeuroImage 2019)."""
from torch import nn

from quicknat.blocks import BottleneckBlock, ClassifierBlock, DecoderBlock, EncoderBlock
from quicknat.params import size_multiple, validate_params


class QuickNat(nn.Module):
    """Four encoder dense blocks (each max-pooled, indices kept), a dense bottleneck, four decoder dense
    blocks (each after max-unpooling with those indices and concatenation with the matching encoder
    output) and a classifier.

    `params`: dict of QuickNAT settings; missing keys take DEFAULT_PARAMS, unknown keys or bad values
    raise ValueError. `net.params` holds the full, validated dict (saved in checkpoints as model_params;
    `QuickNat(net.params)` rebuilds the same architecture).
    """

    def __init__(self, params=None):
        super().__init__()
        self.params = validate_params(params)
        self.size_multiple = size_multiple(self.params)
        num_filters = self.params["num_filters"]
        self.encode1 = EncoderBlock(self.params["num_channels"], self.params)
        self.encode2 = EncoderBlock(num_filters, self.params)
        self.encode3 = EncoderBlock(num_filters, self.params)
        self.encode4 = EncoderBlock(num_filters, self.params)
        self.bottleneck = BottleneckBlock(self.params)
        self.decode4 = DecoderBlock(self.params)
        self.decode3 = DecoderBlock(self.params)
        self.decode2 = DecoderBlock(self.params)
        self.decode1 = DecoderBlock(self.params)
        self.classifier = ClassifierBlock(self.params)

    def check_input_shape(self, shape):
        """ValueError unless `shape` is (N, num_channels, H, W) with H and W multiples of 16."""
        if len(shape) != 4 or shape[1] != self.params["num_channels"]:
            raise ValueError(f"input shape {tuple(shape)} is not (N, {self.params['num_channels']}, H, W)")
        height_px, width_px = shape[-2:]
        multiple = self.size_multiple
        if height_px % multiple or width_px % multiple:
            fit_h = -(-height_px // multiple) * multiple
            fit_w = -(-width_px // multiple) * multiple
            raise ValueError(f"input size {height_px}x{width_px} is not a multiple of {multiple} on both sides "
                             f"(QuickNat pools 4 times); pad or resize it, e.g. to {fit_h}x{fit_w}")

    def forward(self, x):
        """x (N, num_channels, H, W), H and W multiples of 16 -> logits (N, num_class, H, W)."""
        self.check_input_shape(x.shape)
        pooled1, skip1, indices1 = self.encode1(x)
        pooled2, skip2, indices2 = self.encode2(pooled1)
        pooled3, skip3, indices3 = self.encode3(pooled2)
        pooled4, skip4, indices4 = self.encode4(pooled3)
        decoded = self.bottleneck(pooled4)
        decoded = self.decode4(decoded, skip4, indices4)
        decoded = self.decode3(decoded, skip3, indices3)
        decoded = self.decode2(decoded, skip2, indices2)
        decoded = self.decode1(decoded, skip1, indices1)
        return self.classifier(decoded)

    def enable_test_dropout(self):
        """Put the network in eval mode with its Dropout2d layers switched on (Monte-Carlo dropout):
        batch norm keeps its running statistics, so repeated forward passes sample the dropout only.
        `net.eval()` switches dropout off again. Returns the network."""
        self.eval()
        for module in self.modules():
            if isinstance(module, nn.Dropout2d):
                module.train()
        return self
