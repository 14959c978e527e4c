"""Blocks shared by the real-time networks.

Strided downsampling units, factorized residual units, transposed-convolution upsamplers and input
injection, and :class:`RealtimeNet`, the networks' base class.

Each block cites the paper that introduced it; the networks in this package combine them as their papers
describe.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct, StridedNet


class RealtimeNet(StridedNet):
    """Base of the real-time networks: checks ``num_classes`` and ``in_channels`` and sets the stride.

    Args:
        num_classes: output classes.
        in_channels: image channels.
        stride: the network's output stride; inputs are padded to a multiple of it and logits cropped back.
    """

    def __init__(self, num_classes: int, in_channels: int, stride: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        self.num_classes, self.in_channels, self.stride = num_classes, in_channels, stride


def same_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Conv2d:
    """A convolution padded so that stride 1 keeps the size (odd kernels, also asymmetric ones)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return nn.Conv2d(
        in_channels,
        out_channels,
        (kh, kw),
        stride=stride,
        padding=(dilation * (kh - 1) // 2, dilation * (kw - 1) // 2),
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def upsample_to(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    """Bilinear upsampling to ``size`` (``align_corners=False``).

    Shape:
        ``N×C×h×w`` → ``N×C×size``.
    """
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DownsamplingUnit(nn.Module):
    """A 3×3 stride-2 convolution concatenated with 2×2 max pooling, then batch norm and activation.

    ENet's initial block (Paszke et al. 2016, arXiv 1606.02147), used for every downsampling by ERFNet,
    ESNet, LEDNet, EDANet and DABNet: the convolution gives ``out - in`` channels and the pooled input the
    other ``in``. When ``in_channels >= out_channels`` there is no pooling branch and the convolution gives
    all ``out_channels`` (EDANet's and DABNet's rule).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        activation: activation class (``nn.ReLU``, ``nn.PReLU``, ...).
        bias: whether the convolution has a bias (the ERFNet family's official code has one).

    Shape:
        ``N×in×H×W`` (H, W even) → ``N×out×H/2×W/2``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, activation: type[nn.Module] = nn.ReLU, bias: bool = True
    ) -> None:
        super().__init__()
        self.pool = in_channels < out_channels
        conv_out = out_channels - in_channels if self.pool else out_channels
        self.conv = same_conv(in_channels, conv_out, 3, stride=2, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation(out_channels) if activation is nn.PReLU else activation()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.pool:
            y = torch.cat([y, F.max_pool2d(x, 2)], dim=1)
        return self.act(self.bn(y))


class FactorizedConv(nn.Sequential):
    """A ``k×1`` then a ``1×k`` convolution, optionally dilated, depthwise and with a ReLU between.

    The factorization of a ``k×k`` convolution used by ENet's asymmetric bottleneck, ERFNet, ESNet,
    LEDNet, EDANet and (depthwise) DABNet.

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        kernel_size: ``k``.
        dilation: dilation of both convolutions.
        groups: convolution groups (``channels`` for depthwise).
        bias: whether the convolutions have a bias.
        vertical_first: ``k×1`` before ``1×k`` (LEDNet's second branch takes the other order).
        inner: a module between the two convolutions (``nn.ReLU()``, or ``None`` for nothing).

    Shape:
        ``N×in×H×W`` → ``N×out×H×W``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        vertical_first: bool = True,
        inner: nn.Module | None = None,
    ) -> None:
        shapes = [(kernel_size, 1), (1, kernel_size)]
        if not vertical_first:
            shapes.reverse()
        first = same_conv(in_channels, out_channels, shapes[0], dilation=dilation, groups=groups, bias=bias)
        second = same_conv(out_channels, out_channels, shapes[1], dilation=dilation, groups=groups, bias=bias)
        super().__init__(first, *([inner] if inner is not None else []), second)


def factorized_residual_body(
    channels: int, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.0, vertical_first: bool = True
) -> nn.Sequential:
    """The residual branch of ERFNet's non-bottleneck-1D unit (Romera et al. 2017), also LEDNet's halves.

    Two factorized ``k×k`` convolutions (the second dilated) with a ReLU inside each, batch norm after
    each, a ReLU between them, and spatial dropout at the end.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """
    return nn.Sequential(
        FactorizedConv(channels, channels, kernel_size, vertical_first=vertical_first, inner=nn.ReLU()),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        FactorizedConv(channels, channels, kernel_size, dilation, vertical_first=vertical_first, inner=nn.ReLU()),
        nn.BatchNorm2d(channels),
        nn.Dropout2d(dropout),
    )


class NonBottleneck1D(nn.Module):
    """ERFNet's non-bottleneck-1D residual unit, also ESNet's FCU.

    ERFNet's non-bottleneck-1D residual unit (Romera et al. 2017), also ESNet's FCU (kernel 3 or 5):
    :func:`factorized_residual_body`, the residual sum, then a ReLU.

    Args:
        channels: input and output channels.
        kernel_size: ``k`` (ERFNet 3; ESNet 3 or 5).
        dilation: dilation of the second factorized convolution.
        dropout: ``Dropout2d`` probability before the sum.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = factorized_residual_body(channels, kernel_size, dilation, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class TransposedUpsampler(nn.Sequential):
    """A 3×3 stride-2 transposed convolution, batch norm and ReLU: ERFNet's and ESNet's upsampling unit.

    Shape:
        ``N×in×H×W`` → ``N×out×2H×2W``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class InputInjection(nn.Module):
    """The image average-pooled ``times`` times by 2 (3×3 windows), concatenated to deeper features.

    ESPNet's input reinforcement (Mehta et al. 2018), also used by CGNet and DABNet.

    Shape:
        ``N×C×H×W`` → ``N×C×H/2^times×W/2^times``.
    """

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def forward(self, image: Tensor) -> Tensor:
        for _ in range(self.times):
            image = F.avg_pool2d(image, 3, stride=2, padding=1)
        return image


def bn_prelu(channels: int) -> nn.Sequential:
    """Batch norm then a per-channel PReLU (ESPNet, CGNet, DABNet)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))


def conv_bn_prelu(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int] = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> ConvBNAct:
    """:class:`ConvBNAct` with a per-channel PReLU (ENet, ESPNet, CGNet, DABNet)."""
    return ConvBNAct(
        in_channels, out_channels, kernel_size, stride, dilation, groups, activation=partial(nn.PReLU, out_channels)
    )
