"""ENet: a deep neural network architecture for real-time semantic segmentation (Paszke et al. 2016)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import DownsamplingUnit, RealtimeNet, conv_bn_prelu


class Bottleneck(nn.Module):
    """ENet's regular, dilated or asymmetric bottleneck.

    Fig. 2b of the paper: a 1×1 projection to a quarter of the channels, a main convolution,
    1×1 expansion, spatial dropout, residual sum and PReLU.

    Args:
        channels: input and output channels.
        kind: main convolution — ``"regular"`` (3×3), ``"dilated"`` (3×3 dilated by ``dilation``) or
            ``"asymmetric"`` (5×1 then 1×5).
        dilation: dilation of a ``"dilated"`` bottleneck.
        dropout: ``Dropout2d`` probability (0.01 in stage 1, 0.1 after).

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, kind: str = "regular", dilation: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        if kind not in ("regular", "dilated", "asymmetric"):
            raise ValueError(f"ENet bottleneck kind must be 'regular', 'dilated' or 'asymmetric', got {kind!r}")
        inner = channels // 4
        if kind == "asymmetric":
            main: nn.Module = nn.Sequential(
                nn.Conv2d(inner, inner, (5, 1), padding=(2, 0), bias=False),
                conv_bn_prelu(inner, inner, (1, 5)),
            )
        else:
            main = conv_bn_prelu(inner, inner, 3, dilation=dilation if kind == "dilated" else 1)
        self.ext = nn.Sequential(
            conv_bn_prelu(channels, inner, 1),
            main,
            ConvBNAct(inner, channels, 1, activation=None),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.ext(x))


class DownsamplingBottleneck(nn.Module):
    """ENet's downsampling bottleneck.

    A 2×2 stride-2 projection in the extension; the main branch is max
    pooling (indices kept for the decoder's unpooling) padded with zero channels.

    Shape:
        ``N×in×H×W`` → (``N×out×H/2×W/2``, pooling indices ``N×in×H/2×W/2``).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        inner = in_channels // 4
        self.extra_channels = out_channels - in_channels
        self.ext = nn.Sequential(
            conv_bn_prelu(in_channels, inner, 2, stride=2),
            conv_bn_prelu(inner, inner, 3),
            ConvBNAct(inner, out_channels, 1, activation=None),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        main, indices = F.max_pool2d(x, 2, return_indices=True)
        main = F.pad(main, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(main + self.ext(x)), indices


class UpsamplingBottleneck(nn.Module):
    """ENet's upsampling bottleneck.

    The main branch is a 1×1 convolution and max unpooling with the
    matching encoder indices; the extension has a 3×3 stride-2 transposed convolution.

    Shape:
        ``N×in×H×W`` and the indices of pooling ``N×out×2H×2W`` (``N×out×H×W``) → ``N×out×2H×2W``.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        inner = in_channels // 4
        self.main = ConvBNAct(in_channels, out_channels, 1, activation=None)
        self.ext = nn.Sequential(
            conv_bn_prelu(in_channels, inner, 1),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(inner),
            nn.PReLU(inner),
            ConvBNAct(inner, out_channels, 1, activation=None),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor, indices: Tensor) -> Tensor:
        ext = self.ext(x)
        main = F.max_unpool2d(self.main(x), indices, 2, output_size=ext.shape[-2:])
        return self.act(main + ext)


def _stage(dropout: float) -> nn.Sequential:
    """ENet's stages 2 and 3 (without the downsampling): eight 128-channel bottlenecks (Table 1)."""
    kinds = [("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4)]
    kinds += [("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16)]
    return nn.Sequential(*(Bottleneck(128, kind, d, dropout) for kind, d in kinds))


class ENet(RealtimeNet):
    """ENet, the efficient neural network (arXiv 1606.02147).

    ENet (Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network Architecture for Real-Time
    Semantic Segmentation", arXiv 1606.02147).

    Table 1 of the paper: the initial block (13 convolution filters beside max pooling, 16 channels),
    stage 1 (a downsampling bottleneck to 64 and four bottlenecks, dropout 0.01), stages 2 and 3 (128
    channels: regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5, dilated 16;
    stage 2 starts with a downsampling bottleneck), stage 4 (upsampling to 64 and two bottlenecks), stage
    5 (upsampling to 16 and one bottleneck) and a 2×2 full (transposed) convolution to the classes.
    Convolutions have no bias, PReLUs are per channel. 0.36 M parameters at 19 classes (the paper quotes
    0.37 M), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        self.initial = DownsamplingUnit(in_channels, 16, activation=nn.PReLU, bias=False)
        self.down1 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.down2 = DownsamplingBottleneck(64, 128)
        self.stage2 = _stage(0.1)
        self.stage3 = _stage(0.1)
        self.up4 = UpsamplingBottleneck(128, 64)
        self.stage4 = nn.Sequential(Bottleneck(64), Bottleneck(64))
        self.up5 = UpsamplingBottleneck(64, 16)
        self.stage5 = Bottleneck(16)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2, bias=False)

    def forward_padded(self, image: Tensor) -> Tensor:
        x = self.initial(image)
        x, indices1 = self.down1(x)
        x, indices2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2))
        x = self.stage5(self.up5(x, indices1))
        return self.fullconv(x)
