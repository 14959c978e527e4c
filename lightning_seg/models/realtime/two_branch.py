"""Blocks shared by the two-branch real-time networks: ContextNet, Fast-SCNN, BiSeNet V1 and V2.

ContextNet (Poudel et al. 2018, arXiv 1805.04554) and Fast-SCNN (Poudel et al. 2019, arXiv 1902.04502)
are built from MobileNetV2's inverted residuals (Sandler et al. 2018, arXiv 1801.04381), depthwise
separable convolutions and the same feature fusion unit; BiSeNet V1 (arXiv 1808.00897) and V2 (arXiv
2004.02147) share the segmentation head that their main and auxiliary outputs use.
"""

from __future__ import annotations

from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import upsample_to


class DepthwiseSeparableConv(nn.Sequential):
    """3×3 depthwise convolution, BN, ReLU, then 1×1 pointwise convolution, BN, ReLU ("DSConv").

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×⌈H/stride⌉×⌈W/stride⌉``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride=stride, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck: 1×1 expansion (×``expansion``), 3×3 depthwise, linear 1×1 projection.

    The expansion convolution is left out when ``expansion == 1`` (as in MobileNetV2); the input is
    added back when the stride is 1 and the channel count does not change.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×⌈H/stride⌉×⌈W/stride⌉``.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 6, stride: int = 1) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [ConvBNAct(in_channels, hidden, 1)]
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden),
            ConvBNAct(hidden, out_channels, 1, activation=None),
        ]
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


def bottleneck_stage(
    in_channels: int, out_channels: int, repeats: int, stride: int, expansion: int = 6
) -> nn.Sequential:
    """``repeats`` inverted residuals, the first with ``stride`` (one row ``t, c, n, s`` of MobileNetV2's table)."""
    blocks = [InvertedResidual(in_channels, out_channels, expansion, stride)]
    blocks += [InvertedResidual(out_channels, out_channels, expansion, 1) for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


class FeatureFusion(nn.Module):
    """The feature fusion unit of ContextNet and Fast-SCNN.

    The low-resolution (context) features are upsampled to the high-resolution ones, pass a 3×3
    depthwise convolution dilated by the upsampling factor and a linear 1×1 convolution; the
    high-resolution features pass a linear 1×1 convolution; the two are added and passed through ReLU.

    Shape:
        high ``N×high_channels×H×W``, low ``N×low_channels×(H/f)×(W/f)`` → ``N×out_channels×H×W``.
    """

    def __init__(self, high_channels: int, low_channels: int, out_channels: int, factor: int) -> None:
        super().__init__()
        self.low = nn.Sequential(
            ConvBNAct(low_channels, low_channels, 3, dilation=factor, groups=low_channels),
            ConvBNAct(low_channels, out_channels, 1, activation=None),
        )
        self.high = ConvBNAct(high_channels, out_channels, 1, activation=None)
        self.act = nn.ReLU()

    def forward(self, high: Tensor, low: Tensor) -> Tensor:
        low = self.low(upsample_to(low, high.shape[-2:]))
        return self.act(self.high(high) + low)


class SegmentationHead(nn.Sequential):
    """BiSeNet's segmentation head: 3×3 conv-BN-ReLU to ``hidden`` channels, dropout, 1×1 conv to classes.

    Shape:
        ``N×in_channels×h×w`` → ``N×num_classes×h×w`` (the network upsamples it).
    """

    def __init__(self, in_channels: int, hidden: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__(ConvBNAct(in_channels, hidden, 3), nn.Dropout(dropout), nn.Conv2d(hidden, num_classes, 1))
