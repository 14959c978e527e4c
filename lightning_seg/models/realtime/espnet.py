"""ESPNet: efficient spatial pyramid of dilated convolutions (Mehta et al. 2018, arXiv 1803.06815)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import InputInjection, RealtimeNet, bn_prelu, conv_bn_prelu, same_conv


class ESPModule(nn.Module):
    """ESPNet's efficient spatial pyramid module (Fig. 1b / 3) with hierarchical feature fusion (HFF).

    A reduction to ``d = out / K`` channels (1×1; 3×3 with stride 2 when downsampling), K = 5 parallel
    3×3 convolutions dilated 1, 2, 4, 8, 16 (the first takes the remainder so that the concatenation has
    ``out`` channels), the dilated outputs summed hierarchically before concatenation to avoid gridding
    artefacts, a residual sum when shapes allow, then batch norm and PReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        down: whether the reduction has stride 2 (no residual).
        residual: add the input (only when ``in == out`` and not ``down``).

    Shape:
        ``N×in×H×W`` → ``N×out×H×W`` (``H/2×W/2`` when ``down``).
    """

    dilations = (1, 2, 4, 8, 16)

    def __init__(self, in_channels: int, out_channels: int, down: bool = False, residual: bool = True) -> None:
        super().__init__()
        if out_channels < len(self.dilations):
            raise ValueError(f"an ESP module needs at least {len(self.dilations)} output channels, got {out_channels}")
        width = out_channels // len(self.dilations)
        first = out_channels - width * (len(self.dilations) - 1)
        self.reduce = (
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
            if down
            else nn.Conv2d(in_channels, width, 1, bias=False)
        )
        self.branches = nn.ModuleList(
            same_conv(width, first if i == 0 else width, 3, dilation=d, bias=False)
            for i, d in enumerate(self.dilations)
        )
        self.residual = residual and not down and in_channels == out_channels
        self.out = bn_prelu(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.reduce(x)
        outputs = [branch(y) for branch in self.branches]
        fused = [outputs[0], outputs[1]]
        for branch_out in outputs[2:]:
            fused.append(fused[-1] + branch_out)
        y = torch.cat(fused, dim=1)
        return self.out(x + y if self.residual else y)


class ESPNet(RealtimeNet):
    """ESPNet, the efficient spatial pyramid network (arXiv 1803.06815).

    ESPNet (Mehta, Rastegari, Caspi, Shapiro, Hajishirzi, "ESPNet: Efficient Spatial Pyramid of Dilated
    Convolutions for Semantic Segmentation", ECCV 2018, arXiv 1803.06815).

    Fig. 4d of the paper, the full ESPNet: a 3×3 stride-2 convolution (16 channels) concatenated with the
    image at 1/2 (input reinforcement); a downsampling ESP module to 64 and α2 ESP modules, concatenated
    with the stage's first output and the image at 1/4; a downsampling ESP module to 128 and α3 ESP
    modules, concatenated with the stage's first output. The decoder projects the 1/8 features to the
    classes (1×1), upsamples (2×2 transposed convolution), concatenates a 1×1 projection of the 1/4
    features, fuses them with an ESP module, upsamples, concatenates the 1/2 features, fuses them with
    a 3×3 convolution and upsamples to full resolution. With the paper's α2 = 2, α3 = 8: 0.36 M parameters
    at 19 classes (the paper's figure; the authors' code defaults to α3 = 3, 0.20 M), output stride 8.
    Below 5 classes the decoder's first stages are 5 channels wide (the ESP module has 5 branches).

    Args:
        num_classes: output classes.
        in_channels: image channels.
        alpha2: ESP modules at 1/4 resolution.
        alpha3: ESP modules at 1/8 resolution.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, alpha2: int = 2, alpha3: int = 8) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        if alpha2 < 1 or alpha3 < 1:
            raise ValueError(f"ESPNet needs alpha2, alpha3 >= 1, got alpha2={alpha2}, alpha3={alpha3}")
        # An ESP module needs a channel per branch: below 5 classes the decoder works at 5 channels.
        c = max(num_classes, len(ESPModule.dilations))
        level1, level2, level3 = 16 + in_channels, 2 * 64 + in_channels, 2 * 128
        self.image_2, self.image_4 = InputInjection(1), InputInjection(2)
        self.conv1 = conv_bn_prelu(in_channels, 16, 3, stride=2)
        self.norm1 = bn_prelu(level1)
        self.down2 = ESPModule(level1, 64, down=True)
        self.stage2 = nn.Sequential(*(ESPModule(64, 64) for _ in range(alpha2)))
        self.norm2 = bn_prelu(level2)
        self.down3 = ESPModule(level2, 128, down=True)
        self.stage3 = nn.Sequential(*(ESPModule(128, 128) for _ in range(alpha3)))
        self.norm3 = bn_prelu(level3)
        self.project3 = nn.Conv2d(level3, c, 1, bias=False)
        self.project2 = nn.Conv2d(level2, c, 1, bias=False)
        self.up3 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False), bn_prelu(c))
        self.fuse2 = nn.Sequential(bn_prelu(2 * c), ESPModule(2 * c, c, residual=False))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False), bn_prelu(c))
        self.fuse1 = conv_bn_prelu(level1 + c, num_classes, 3)
        self.up1 = nn.ConvTranspose2d(num_classes, num_classes, 2, stride=2, bias=False)

    def forward_padded(self, image: Tensor) -> Tensor:
        x1 = self.norm1(torch.cat([self.conv1(image), self.image_2(image)], dim=1))
        first2 = self.down2(x1)
        x2 = self.norm2(torch.cat([self.stage2(first2), first2, self.image_4(image)], dim=1))
        first3 = self.down3(x2)
        x3 = self.norm3(torch.cat([self.stage3(first3), first3], dim=1))
        y = self.up3(self.project3(x3))
        y = self.up2(self.fuse2(torch.cat([self.project2(x2), y], dim=1)))
        return self.up1(self.fuse1(torch.cat([x1, y], dim=1)))
