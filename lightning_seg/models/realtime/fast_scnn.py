"""Fast-SCNN (Poudel et al. 2019, arXiv 1902.04502)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import RealtimeNet, upsample_to
from lightning_seg.models.realtime.two_branch import (
    DepthwiseSeparableConv,
    FeatureFusion,
    bottleneck_stage,
)

#: The global feature extractor's bottlenecks, rows ``(t, c, n, s)`` of the paper's Table 1.
GLOBAL_FEATURES = ((6, 64, 3, 2), (6, 96, 3, 2), (6, 128, 3, 1))


def adaptive_pool_matrix(size: int, bins: int, like: Tensor) -> Tensor:
    """The ``bins×size`` matrix of adaptive average pooling along one axis (PyTorch's bin edges).

    Bin ``i`` averages positions ``⌊i·size/bins⌋ … ⌈(i+1)·size/bins⌉ − 1``, as ``F.adaptive_avg_pool2d``
    does; written as a matrix product so that it exports to ONNX for any input size (ONNX's own
    adaptive pooling needs a static size).
    """
    index = torch.arange(bins, device=like.device).unsqueeze(1)
    start, end = (index * size) // bins, ((index + 1) * size + bins - 1) // bins
    position = torch.arange(size, device=like.device).unsqueeze(0)
    inside = (position >= start) & (position < end)
    return inside.to(like.dtype) / (end - start).to(like.dtype)


def adaptive_avg_pool(x: Tensor, bins: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as two matrix products (exportable with dynamic H and W).

    Shape:
        ``N×C×H×W`` → ``N×C×bins×bins``.
    """
    if bins == 1:
        # The mean (a 1×size matrix product reshapes in a way torch.export cannot prove valid for every size).
        return x.mean(dim=(-2, -1), keepdim=True)
    height, width = x.shape[-2:]
    rows, columns = adaptive_pool_matrix(height, bins, x), adaptive_pool_matrix(width, bins, x)
    return rows @ x @ columns.T


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling (Zhao et al. 2017, arXiv 1612.01105) as Fast-SCNN uses it.

    The features are average-pooled to each of ``bins``×``bins`` grids, reduced by a 1×1 conv-BN-ReLU
    to ``channels / len(bins)`` (conv-ReLU with a bias for the 1×1 grid, whose batch statistics would
    be those of a single value per image), upsampled back and concatenated with the input; a 1×1 conv-BN-ReLU
    maps the result to ``out_channels``.

    Shape:
        ``N×channels×h×w`` → ``N×out_channels×h×w``.
    """

    def __init__(self, channels: int, out_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        reduced = channels // len(bins)
        self.reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.ReLU()) if b == 1 else ConvBNAct(channels, reduced, 1)
            for b in bins
        )
        self.project = ConvBNAct(channels + reduced * len(bins), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [
            upsample_to(reduce(adaptive_avg_pool(x, b)), size) for b, reduce in zip(self.bins, self.reduce, strict=True)
        ]
        return self.project(torch.cat([x, *pooled], dim=1))


class FastSCNN(RealtimeNet):
    """Fast-SCNN: a shared "learning to downsample" module feeding a global feature extractor.

    Poudel, Liwicki & Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", BMVC 2019, arXiv
    1902.04502. Published: 1.11 M parameters, 123.5 fps at 1024×2048 on a Titan Xp, 68.0 % mIoU on
    Cityscapes test.

    - Learning to downsample: a 3×3 convolution (32, stride 2) and two depthwise separable
      convolutions (48, 64; stride 2) → 1/8 of the input.
    - Global feature extractor: the bottleneck rows of :data:`GLOBAL_FEATURES` (→ 1/32) and pyramid
      pooling (bins 1, 2, 3, 6) to 128 channels.
    - Feature fusion of the 1/8 and 1/32 features (upsampling ×4, depthwise convolution dilated by 4).
    - Classifier: two depthwise separable convolutions (128) and a 1×1 convolution; the logits are
      upsampled ×8 (bilinear).

    This gives 1.14 M parameters at 19 classes (+2.5 % on the published count).

    Args:
        num_classes: output channels.
        in_channels: input image channels.

    Shape:
        input ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (any H, W: padded to 32, cropped back).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=32)
        self.downsample = nn.Sequential(
            ConvBNAct(in_channels, 32, 3, stride=2),
            DepthwiseSeparableConv(32, 48, stride=2),
            DepthwiseSeparableConv(48, 64, stride=2),
        )
        stages: list[nn.Module] = []
        channels = 64
        for expansion, out_channels, repeats, stride in GLOBAL_FEATURES:
            stages.append(bottleneck_stage(channels, out_channels, repeats, stride, expansion))
            channels = out_channels
        self.global_features = nn.Sequential(*stages, PyramidPooling(channels, 128))
        self.fusion = FeatureFusion(64, 128, 128, factor=4)
        self.classifier = nn.Sequential(
            DepthwiseSeparableConv(128, 128),
            DepthwiseSeparableConv(128, 128),
            nn.Conv2d(128, num_classes, 1),
        )

    def forward_padded(self, image: Tensor) -> Tensor:
        detail = self.downsample(image)
        fused = self.fusion(detail, self.global_features(detail))
        return upsample_to(self.classifier(fused), image.shape[-2:])
