"""ESNet: an efficient symmetric network (Wang et al. 2019, arXiv 1906.09826)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import (
    DownsamplingUnit,
    FactorizedConv,
    NonBottleneck1D,
    RealtimeNet,
    TransposedUpsampler,
)


class ParallelFactorizedUnit(nn.Module):
    """ESNet's PFCU: one factorized 3×3 convolution, then three dilated factorized branches summed.

    Args:
        channels: input and output channels.
        dilations: dilation of each parallel branch (the paper's 2, 5, 9).
        dropout: ``Dropout2d`` probability before the residual sum.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, dilations: tuple[int, ...] = (2, 5, 9), dropout: float = 0.3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            FactorizedConv(channels, channels, 3, inner=nn.ReLU()), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.branches = nn.ModuleList(
            nn.Sequential(FactorizedConv(channels, channels, 3, dilation=d, inner=nn.ReLU()), nn.BatchNorm2d(channels))
            for d in dilations
        )
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.stem(x)
        summed = sum(branch(y) for branch in self.branches)
        return F.relu(x + self.dropout(summed))


class ESNet(RealtimeNet):
    """ESNet, the efficient symmetric network (arXiv 1906.09826).

    ESNet (Wang, Zhou, Zhang, Xu, Wang, Zhang, Song, "ESNet: An Efficient Symmetric Network for Real-time
    Semantic Segmentation", arXiv 1906.09826).

    Table 1 of the paper: encoder = downsampling unit (16) + 3 FCU (K=3), downsampling unit (64) + 2 FCU
    (K=5), downsampling unit (128) + 3 PFCU (dilations 2, 5, 9); a symmetric decoder = upsampling to 64 +
    2 FCU (K=5), upsampling to 16 + 2 FCU (K=3), and a 2×2 transposed convolution to the classes. The FCU
    is ERFNet's non-bottleneck-1D unit with kernel K and no dilation. 1.66 M parameters at 19 classes (the
    paper's figure), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        self.encoder = nn.Sequential(
            DownsamplingUnit(in_channels, 16),
            *(NonBottleneck1D(16, 3, dropout=0.03) for _ in range(3)),
            DownsamplingUnit(16, 64),
            *(NonBottleneck1D(64, 5, dropout=0.03) for _ in range(2)),
            DownsamplingUnit(64, 128),
            *(ParallelFactorizedUnit(128) for _ in range(3)),
        )
        self.decoder = nn.Sequential(
            TransposedUpsampler(128, 64),
            *(NonBottleneck1D(64, 5) for _ in range(2)),
            TransposedUpsampler(64, 16),
            *(NonBottleneck1D(16, 3) for _ in range(2)),
            nn.ConvTranspose2d(16, num_classes, 2, stride=2),
        )

    def forward_padded(self, image: Tensor) -> Tensor:
        return self.decoder(self.encoder(image))
