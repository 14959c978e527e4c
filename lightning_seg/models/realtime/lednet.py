"""LEDNet: a lightweight encoder-decoder network (Wang et al. 2019, arXiv 1905.02423)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import (
    DownsamplingUnit,
    RealtimeNet,
    factorized_residual_body,
    upsample_to,
)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle (Zhang et al. 2018): interleave the channels of ``groups`` groups.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SplitShuffleUnit(nn.Module):
    """LEDNet's split-shuffle-non-bottleneck unit (SS-nbt, Fig. 1d).

    The channels are split in two halves; each goes through two factorized 3×3 convolutions (the second
    dilated) — ``3×1`` first on one half, ``1×3`` first on the other — the halves are concatenated, added
    to the input, and the channels shuffled so that the next unit mixes them.

    Args:
        channels: input and output channels (even).
        dilation: dilation of the second factorized convolution.
        dropout: ``Dropout2d`` probability in each half.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        half = channels // 2
        self.left = factorized_residual_body(half, 3, dilation, dropout, vertical_first=True)
        self.right = factorized_residual_body(half, 3, dilation, dropout, vertical_first=False)

    def forward(self, x: Tensor) -> Tensor:
        left, right = x.chunk(2, dim=1)
        y = torch.cat([self.left(left), self.right(right)], dim=1)
        return channel_shuffle(F.relu(x + y), 2)


class AttentionPyramid(nn.Module):
    """LEDNet's attention pyramid network (APN, Fig. 2 and Sec. III-B), the decoder.

    A three-level pyramid of one-channel maps (7×7, 5×5 and 3×3 convolutions, each with stride 2) is
    refined level by level (7×7, 5×5 and 3×3 convolutions) and merged top-down by upsampling and adding,
    giving a spatial attention map at 1/8 resolution; it multiplies a 1×1 convolution of the features to
    the classes, and a global-average-pooling branch (a 1×1 convolution with bias, no batch norm, so that
    a batch of one image trains) is added.

    Shape:
        ``N×in×H×W`` (H, W multiples of 8) → ``N×num_classes×H×W``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.down1 = ConvBNAct(in_channels, 1, 7, stride=2)
        self.down2 = ConvBNAct(1, 1, 5, stride=2)
        self.down3 = ConvBNAct(1, 1, 3, stride=2)
        self.refine1 = ConvBNAct(1, 1, 7)
        self.refine2 = ConvBNAct(1, 1, 5)
        self.refine3 = ConvBNAct(1, 1, 3)
        self.mid = ConvBNAct(in_channels, num_classes, 1)
        self.pooled = nn.Conv2d(in_channels, num_classes, 1)  # no batch norm on 1×1 maps: batch 1 must train

    def forward(self, x: Tensor) -> Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.refine3(self.down3(d2))
        merged = self.refine2(d2) + upsample_to(d3, d2.shape[-2:])
        merged = self.refine1(d1) + upsample_to(merged, d1.shape[-2:])
        attention = upsample_to(merged, x.shape[-2:])
        glob = self.pooled(x.mean((2, 3), keepdim=True))
        return self.mid(x) * attention + glob


class LEDNet(RealtimeNet):
    """LEDNet, the lightweight encoder-decoder network (arXiv 1905.02423).

    LEDNet (Wang, Zhou, Ye, Zhou, Jiang, Ai, Gao, Liu, "LEDNet: A Lightweight Encoder-Decoder Network for
    Real-Time Semantic Segmentation", arXiv 1905.02423).

    Table 1 of the paper: a downsampling unit to 32 channels and three SS-nbt units; a downsampling unit
    to 64 and two SS-nbt units; a downsampling unit to 128 and eight SS-nbt units dilated 1, 2, 5, 9, 2,
    5, 9, 17; then the attention pyramid decoder at 1/8 and bilinear upsampling to the input. Dropout
    0.03 in the first two stages and 0.3 in the third (ERFNet's rates; the paper gives none).
    Convolutions of the units carry biases as in the authors' code. 0.94 M parameters at 19 classes (the
    paper's figure), output stride 64 (the pyramid halves the 1/8 features three times).

    Args:
        num_classes: output classes.
        in_channels: image channels.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 64).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=64)
        self.encoder = nn.Sequential(
            DownsamplingUnit(in_channels, 32),
            *(SplitShuffleUnit(32, dropout=0.03) for _ in range(3)),
            DownsamplingUnit(32, 64),
            *(SplitShuffleUnit(64, dropout=0.03) for _ in range(2)),
            DownsamplingUnit(64, 128),
            *(SplitShuffleUnit(128, d, dropout=0.3) for d in (1, 2, 5, 9, 2, 5, 9, 17)),
        )
        self.decoder = AttentionPyramid(128, num_classes)

    def forward_padded(self, image: Tensor) -> Tensor:
        return upsample_to(self.decoder(self.encoder(image)), image.shape[-2:])
