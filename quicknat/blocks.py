"""QuickNAT's building blocks (Roy et al., NeuroImage 2019): the dense block, squeeze-and-excitation,
encoder, bottleneck, decoder and classifier.

Every block keeps the feature map's height and width (odd kernels, same padding, stride 1); only the
encoder's max-pooling halves them and the decoder's max-unpooling restores them.
"""
import torch
from torch import nn


class DenseBlock(nn.Module):
    """Three BN -> PReLU -> conv stages with dense connections.

    in (N, in_channels, H, W) -> out (N, num_filters, H, W). Stage 1 sees the input (in_channels),
    stage 2 the input and stage 1's output (in_channels + F), stage 3 (a 1x1 conv) all three
    (in_channels + 2F). Each stage has its own single-parameter PReLU.
    """

    def __init__(self, in_channels, num_filters, kernel_h, kernel_w):
        super().__init__()
        padding = (kernel_h // 2, kernel_w // 2)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.prelu1 = nn.PReLU()
        self.conv1 = nn.Conv2d(in_channels, num_filters, (kernel_h, kernel_w), padding=padding)
        self.bn2 = nn.BatchNorm2d(in_channels + num_filters)
        self.prelu2 = nn.PReLU()
        self.conv2 = nn.Conv2d(in_channels + num_filters, num_filters, (kernel_h, kernel_w), padding=padding)
        self.bn3 = nn.BatchNorm2d(in_channels + 2 * num_filters)
        self.prelu3 = nn.PReLU()
        self.conv3 = nn.Conv2d(in_channels + 2 * num_filters, num_filters, kernel_size=1)

    def forward(self, x):
        out1 = self.conv1(self.prelu1(self.bn1(x)))
        out2 = self.conv2(self.prelu2(self.bn2(torch.cat((x, out1), dim=1))))
        return self.conv3(self.prelu3(self.bn3(torch.cat((x, out1, out2), dim=1))))


class ChannelSELayer(nn.Module):
    """Channel squeeze-and-excitation: global average pool -> FC (C -> C/2) -> ReLU -> FC (C/2 -> C)
    -> sigmoid, which rescales each channel. in and out (N, C, H, W)."""

    def __init__(self, channels, reduction_ratio=2):
        super().__init__()
        reduced = max(1, channels // reduction_ratio)
        self.fc1 = nn.Linear(channels, reduced)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(reduced, channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        squeezed = x.mean(dim=(2, 3))
        weights = self.sigmoid(self.fc2(self.relu(self.fc1(squeezed))))
        return x * weights[:, :, None, None]


class SpatialSELayer(nn.Module):
    """Spatial squeeze-and-excitation: 1x1 conv to one channel -> sigmoid, which rescales each pixel.
    in and out (N, C, H, W)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.conv(x))


class ChannelSpatialSELayer(nn.Module):
    """Concurrent channel and spatial SE, combined by the element-wise maximum (as the QuickNAT authors'
    ChannelSpatialSELayer does): each activation keeps whichever recalibration favours it more."""

    def __init__(self, channels, reduction_ratio=2):
        super().__init__()
        self.cse = ChannelSELayer(channels, reduction_ratio)
        self.sse = SpatialSELayer(channels)

    def forward(self, x):
        return torch.maximum(self.cse(x), self.sse(x))


def make_se_layer(se_block, channels):
    """The SE module for `se_block` (NONE, CSE, SSE or CSSE) on `channels` channels; NONE is an identity."""
    if se_block == "NONE":
        return nn.Identity()
    return {"CSE": ChannelSELayer, "SSE": SpatialSELayer, "CSSE": ChannelSpatialSELayer}[se_block](channels)


class EncoderBlock(nn.Module):
    """Dense block -> SE -> Dropout2d, then max-pooling that keeps its indices.

    in (N, C, H, W) -> (pooled (N, F, H/p, W/p), skip (N, F, H, W), indices of the pooling).
    """

    def __init__(self, in_channels, params):
        super().__init__()
        self.dense = DenseBlock(in_channels, params["num_filters"], params["kernel_h"], params["kernel_w"])
        self.se = make_se_layer(params["se_block"], params["num_filters"])
        self.dropout = nn.Dropout2d(params["drop_out"])
        self.pool = nn.MaxPool2d(params["pool"], stride=params["stride_pool"], return_indices=True)

    def forward(self, x):
        skip = self.dropout(self.se(self.dense(x)))
        pooled, indices = self.pool(skip)
        return pooled, skip, indices


class BottleneckBlock(nn.Module):
    """Dense block -> SE between encoder and decoder. in (N, F, h, w) -> out (N, F, h, w)."""

    def __init__(self, params):
        super().__init__()
        self.dense = DenseBlock(params["num_filters"], params["num_filters"], params["kernel_h"], params["kernel_w"])
        self.se = make_se_layer(params["se_block"], params["num_filters"])

    def forward(self, x):
        return self.se(self.dense(x))


class DecoderBlock(nn.Module):
    """Max-unpooling with the matching encoder's indices, concatenation with its skip output,
    then dense block (2F in) -> SE -> Dropout2d.

    in x (N, F, h, w), skip (N, F, H, W), indices -> out (N, F, H, W).
    """

    def __init__(self, params):
        super().__init__()
        self.unpool = nn.MaxUnpool2d(params["pool"], stride=params["stride_pool"])
        self.dense = DenseBlock(2 * params["num_filters"], params["num_filters"], params["kernel_h"], params["kernel_w"])
        self.se = make_se_layer(params["se_block"], params["num_filters"])
        self.dropout = nn.Dropout2d(params["drop_out"])

    def forward(self, x, skip, indices):
        unpooled = self.unpool(x, indices, output_size=skip.shape[-2:])
        return self.dropout(self.se(self.dense(torch.cat((unpooled, skip), dim=1))))


class ClassifierBlock(nn.Module):
    """kernel_c x kernel_c conv (1x1 in the paper) from F channels to num_class logits."""

    def __init__(self, params):
        super().__init__()
        self.conv = nn.Conv2d(params["num_filters"], params["num_class"], params["kernel_c"],
                              padding=params["kernel_c"] // 2)

    def forward(self, x):
        return self.conv(x)
