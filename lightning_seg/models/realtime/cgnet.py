"""CGNet: a light-weight context guided network (Wu et al. 2018, arXiv 1811.08201)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import (
    InputInjection,
    RealtimeNet,
    bn_prelu,
    conv_bn_prelu,
    same_conv,
    upsample_to,
)


class GlobalContext(nn.Module):
    """CGNet's global context extractor f_glo.

    Channel weights from global average pooling through two
    fully connected layers (a squeeze-and-excitation gate).

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x.mean((2, 3)))[:, :, None, None]


class ContextGuidedBlock(nn.Module):
    """CGNet's context guided block (CG block).

    Fig. 3 of the paper: a joint feature of a local extractor f_loc (3×3 depthwise)
    and a surrounding-context extractor f_sur (dilated 3×3 depthwise), batch norm and PReLU, refined by
    the global context f_glo, with a global residual.

    The first block of a stage downsamples: its input convolution is 3×3 with stride 2 to ``out``
    channels, f_loc and f_sur each keep ``out`` channels and a 1×1 convolution reduces the joint 2×out
    back to ``out``; there is no residual. Otherwise the input convolution is 1×1 to ``out / 2``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        dilation: dilation of f_sur.
        reduction: reduction of f_glo's hidden layer.
        down: whether this block halves the resolution.

    Shape:
        ``N×in×H×W`` → ``N×out×H×W`` (``H/2×W/2`` when ``down``).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, reduction: int, down: bool = False) -> None:
        super().__init__()
        branch = out_channels if down else out_channels // 2
        self.down = down
        self.stem = conv_bn_prelu(in_channels, branch, 3, stride=2) if down else conv_bn_prelu(in_channels, branch, 1)
        self.local = same_conv(branch, branch, 3, groups=branch, bias=False)
        self.surround = same_conv(branch, branch, 3, dilation=dilation, groups=branch, bias=False)
        self.joint = bn_prelu(2 * branch)
        self.reduce = nn.Conv2d(2 * branch, out_channels, 1, bias=False) if down else nn.Identity()
        self.glob = GlobalContext(out_channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        y = self.stem(x)
        y = self.glob(self.reduce(self.joint(torch.cat([self.local(y), self.surround(y)], dim=1))))
        return y if self.down else x + y


def _stage(in_channels: int, channels: int, blocks: int, dilation: int, reduction: int) -> nn.ModuleList:
    return nn.ModuleList(
        ContextGuidedBlock(in_channels if i == 0 else channels, channels, dilation, reduction, down=i == 0)
        for i in range(blocks)
    )


class CGNet(RealtimeNet):
    """CGNet, the context guided network (arXiv 1811.08201).

    CGNet (Wu, Tang, Zhang, Zhang, "CGNet: A Light-weight Context Guided Network for Semantic
    Segmentation", IEEE TIP 2020, arXiv 1811.08201).

    Table 1 / Fig. 5 of the paper: stage 1 is three 3×3 convolutions (32 channels, the first with stride
    2); stage 2 is M context guided blocks at 64 channels (dilation 2, f_glo reduction 8), stage 3 N
    blocks at 128 (dilation 4, reduction 16), the first block of each downsampling. The input of stages
    2 and 3 is the previous stage's first and last outputs concatenated with the image average-pooled to
    that resolution (input injection); a 1×1 convolution after dropout 0.1 gives the classes at 1/8,
    upsampled bilinearly. With the paper's M = 3, N = 21: 0.49 M parameters at 19 classes (the paper
    quotes 0.5 M), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.
        blocks_stage2: M, context guided blocks in stage 2.
        blocks_stage3: N, context guided blocks in stage 3.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, blocks_stage2: int = 3, blocks_stage3: int = 21) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        if blocks_stage2 < 1 or blocks_stage3 < 1:
            raise ValueError(f"CGNet needs M, N >= 1 blocks per stage, got M={blocks_stage2}, N={blocks_stage3}")
        self.stage1 = nn.Sequential(
            conv_bn_prelu(in_channels, 32, 3, stride=2), conv_bn_prelu(32, 32, 3), conv_bn_prelu(32, 32, 3)
        )
        self.image_2, self.image_4 = InputInjection(1), InputInjection(2)
        self.norm1 = bn_prelu(32 + in_channels)
        self.stage2 = _stage(32 + in_channels, 64, blocks_stage2, dilation=2, reduction=8)
        self.norm2 = bn_prelu(2 * 64 + in_channels)
        self.stage3 = _stage(2 * 64 + in_channels, 128, blocks_stage3, dilation=4, reduction=16)
        self.norm3 = bn_prelu(2 * 128)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(2 * 128, num_classes, 1))

    @staticmethod
    def _first_and_last(stage: nn.ModuleList, x: Tensor) -> list[Tensor]:
        first = x = stage[0](x)
        for block in stage[1:]:
            x = block(x)
        return [x, first]

    def forward_padded(self, image: Tensor) -> Tensor:
        x = self.norm1(torch.cat([self.stage1(image), self.image_2(image)], dim=1))
        x = self.norm2(torch.cat([*self._first_and_last(self.stage2, x), self.image_4(image)], dim=1))
        x = self.norm3(torch.cat(self._first_and_last(self.stage3, x), dim=1))
        return upsample_to(self.classifier(x), image.shape[-2:])
