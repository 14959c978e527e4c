"""EDANet: efficient dense modules of asymmetric convolution (Lo et al. 2018, arXiv 1809.06323)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import DownsamplingUnit, FactorizedConv, RealtimeNet, upsample_to


class EDAModule(nn.Module):
    """EDANet's efficient dense module of asymmetric convolution (EDA module).

    Fig. 3 of the paper: a 1×1 convolution to ``growth`` channels, a factorized 3×3
    convolution, a dilated factorized 3×3 convolution (batch norm and ReLU after each stage), dropout,
    and the result concatenated to the input (dense connectivity).

    Args:
        in_channels: input channels.
        growth: channels added (the paper's k = 40).
        dilation: dilation of the second factorized convolution.
        dropout: ``Dropout2d`` probability (0.02 in the paper).

    Shape:
        ``N×in×H×W`` → ``N×(in + growth)×H×W``.
    """

    def __init__(self, in_channels: int, growth: int, dilation: int, dropout: float = 0.02) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, growth, 1),
            nn.BatchNorm2d(growth),
            nn.ReLU(),
            FactorizedConv(growth, growth, 3),
            nn.BatchNorm2d(growth),
            nn.ReLU(),
            FactorizedConv(growth, growth, 3, dilation=dilation),
            nn.BatchNorm2d(growth),
            nn.ReLU(),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def _dense_block(in_channels: int, growth: int, dilations: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*(EDAModule(in_channels + i * growth, growth, d) for i, d in enumerate(dilations)))


class EDANet(RealtimeNet):
    """EDANet, efficient dense modules of asymmetric convolution (arXiv 1809.06323).

    EDANet (Lo, Hang, Chan, Lin, "Efficient Dense Modules of Asymmetric Convolution for Real-Time
    Semantic Segmentation", arXiv 1809.06323).

    Table 1 of the paper: downsampling blocks to 15 and 60 channels, EDA block 1 (five modules, k = 40,
    dilations 1, 1, 1, 2, 2; 260 channels), a downsampling block to 130, EDA block 2 (eight modules,
    dilations 2, 2, 4, 4, 8, 8, 16, 16; 450 channels), a 1×1 projection to the classes and bilinear
    upsampling by 8. A downsampling block is ENet's initial block, or only its 3×3 stride-2 convolution
    when it reduces channels (260 → 130). Convolutions carry biases as in the authors' code. 0.68 M
    parameters at 19 classes (the paper's figure), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.
        growth: the EDA modules' growth rate k.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, growth: int = 40) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        if growth < 1:
            raise ValueError(f"growth must be a positive int, got {growth!r}")
        block1, block2 = (1, 1, 1, 2, 2), (2, 2, 4, 4, 8, 8, 16, 16)
        self.features = nn.Sequential(
            DownsamplingUnit(in_channels, 15),
            DownsamplingUnit(15, 60),
            _dense_block(60, growth, block1),
            DownsamplingUnit(60 + len(block1) * growth, 130),
            _dense_block(130, growth, block2),
        )
        self.projection = nn.Conv2d(130 + len(block2) * growth, num_classes, 1)

    def forward_padded(self, image: Tensor) -> Tensor:
        return upsample_to(self.projection(self.features(image)), image.shape[-2:])
