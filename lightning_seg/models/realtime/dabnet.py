"""DABNet: depth-wise asymmetric bottleneck network (Li et al. 2019, arXiv 1907.11357)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import (
    DownsamplingUnit,
    InputInjection,
    RealtimeNet,
    bn_prelu,
    conv_bn_prelu,
    upsample_to,
)


class DepthwiseAsymmetricBottleneck(nn.Module):
    """DABNet's depth-wise asymmetric bottleneck (DAB) module.

    Fig. 2c of the paper: batch norm and PReLU, a 3×3 convolution halving the channels, two
    depthwise factorized branches (``3×1``, ``1×3``; the second dilated) summed, batch norm and PReLU, a
    1×1 convolution back to the channels, and the residual sum.

    Args:
        channels: input and output channels (even).
        dilation: dilation of the second branch.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = nn.Sequential(bn_prelu(channels), conv_bn_prelu(channels, half, 3))
        self.local = nn.Sequential(
            conv_bn_prelu(half, half, (3, 1), groups=half), conv_bn_prelu(half, half, (1, 3), groups=half)
        )
        self.context = nn.Sequential(
            conv_bn_prelu(half, half, (3, 1), dilation=dilation, groups=half),
            conv_bn_prelu(half, half, (1, 3), dilation=dilation, groups=half),
        )
        self.expand = nn.Sequential(bn_prelu(half), nn.Conv2d(half, channels, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        y = self.reduce(x)
        return x + self.expand(self.local(y) + self.context(y))


class DABNet(RealtimeNet):
    """DABNet, the depth-wise asymmetric bottleneck network (arXiv 1907.11357).

    DABNet (Li, Zhao, Jiang, Yu, "DABNet: Depth-wise Asymmetric Bottleneck for Real-time Semantic
    Segmentation", BMVC 2019, arXiv 1907.11357).

    Fig. 3 / Table 1 of the paper: three 3×3 convolutions (32 channels, the first with stride 2),
    concatenated with the image at 1/2; a downsampling block to 64 and DAB block 1 (three DAB modules,
    dilation 2), concatenated with the block's input and the image at 1/4; a downsampling block to 128
    and DAB block 2 (six modules, dilations 4, 4, 8, 8, 16, 16), concatenated likewise with the image at
    1/8; a 1×1 convolution to the classes and bilinear upsampling. Convolutions have no bias, PReLUs are
    per channel. 0.76 M parameters at 19 classes (the paper's figure), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        self.init_convs = nn.Sequential(
            conv_bn_prelu(in_channels, 32, 3, stride=2), conv_bn_prelu(32, 32, 3), conv_bn_prelu(32, 32, 3)
        )
        self.image_2, self.image_4, self.image_8 = InputInjection(1), InputInjection(2), InputInjection(3)
        stage1 = 32 + in_channels
        self.norm1 = bn_prelu(stage1)
        self.down1 = DownsamplingUnit(stage1, 64, activation=nn.PReLU, bias=False)
        self.block1 = nn.Sequential(*(DepthwiseAsymmetricBottleneck(64, 2) for _ in range(3)))
        stage2 = 2 * 64 + in_channels
        self.norm2 = bn_prelu(stage2)
        self.down2 = DownsamplingUnit(stage2, 128, activation=nn.PReLU, bias=False)
        self.block2 = nn.Sequential(*(DepthwiseAsymmetricBottleneck(128, d) for d in (4, 4, 8, 8, 16, 16)))
        stage3 = 2 * 128 + in_channels
        self.norm3 = bn_prelu(stage3)
        self.classifier = nn.Conv2d(stage3, num_classes, 1, bias=False)

    def forward_padded(self, image: Tensor) -> Tensor:
        x = self.norm1(torch.cat([self.init_convs(image), self.image_2(image)], dim=1))
        down = self.down1(x)
        x = self.norm2(torch.cat([self.block1(down), down, self.image_4(image)], dim=1))
        down = self.down2(x)
        x = self.norm3(torch.cat([self.block2(down), down, self.image_8(image)], dim=1))
        return upsample_to(self.classifier(x), image.shape[-2:])
