"""ContextNet (Poudel et al. 2018, arXiv 1805.04554)."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import RealtimeNet, upsample_to
from lightning_seg.models.realtime.two_branch import (
    DepthwiseSeparableConv,
    FeatureFusion,
    bottleneck_stage,
)

#: The deep branch's bottlenecks, rows ``(t, c, n, s)`` of the paper's Table 1.
DEEP_BRANCH = ((1, 32, 1, 1), (6, 32, 1, 1), (6, 48, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 128, 2, 1))


class ContextNet(RealtimeNet):
    """ContextNet-14: a deep branch on the image sub-sampled by 4 and a shallow one at full resolution.

    Poudel, Bonde, Liwicki & Zach, "ContextNet: Exploring Context and Detail for Semantic Segmentation
    in Real-time", BMVC 2018, arXiv 1805.04554. Published: 0.85 M parameters, 18.3 fps at 1024×2048
    on a Titan X (Maxwell), 66.1 % mIoU on Cityscapes test.

    - Deep branch (context, Table 1): the image resized to 1/4, a 3×3 convolution (32, stride 2), the
      bottleneck rows of :data:`DEEP_BRANCH` and a final convolution (128) → 1/32 of the input.
    - Shallow branch (detail): a 3×3 convolution (32, stride 2) and three depthwise separable
      convolutions (64, 128, 128; strides 2, 2, 1) → 1/8.
    - Feature fusion: the deep features upsampled ×4, a 3×3 depthwise convolution dilated by 4 and 1×1
      convolutions on both branches, added; a 1×1 classifier; logits upsampled ×8 (bilinear).

    The deep branch's last convolution is 1×1 here: that gives 0.856 M parameters at 19 classes, the
    published 0.85 M (a 3×3 kernel would give 0.98 M, 15 % over it).

    Args:
        num_classes: output channels.
        in_channels: input image channels (both branches read the image).

    Shape:
        input ``N×in_channels×H×W`` → logits ``N×num_classes×H×W``; any H and W (padded to a multiple of
        32, the deep branch's stride, and cropped back).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=32)
        deep: list[nn.Module] = [ConvBNAct(in_channels, 32, 3, stride=2)]
        channels = 32
        for expansion, out_channels, repeats, stride in DEEP_BRANCH:
            deep.append(bottleneck_stage(channels, out_channels, repeats, stride, expansion))
            channels = out_channels
        deep.append(ConvBNAct(channels, 128, 1))
        self.deep = nn.Sequential(*deep)
        self.shallow = nn.Sequential(
            ConvBNAct(in_channels, 32, 3, stride=2),
            DepthwiseSeparableConv(32, 64, stride=2),
            DepthwiseSeparableConv(64, 128, stride=2),
            DepthwiseSeparableConv(128, 128),
        )
        self.fusion = FeatureFusion(128, 128, 128, factor=4)
        self.classifier = nn.Conv2d(128, num_classes, 1)

    def forward_padded(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        context = self.deep(upsample_to(image, (height // 4, width // 4)))
        fused = self.fusion(self.shallow(image), context)
        return upsample_to(self.classifier(fused), (height, width))
