"""Building blocks shared by every network family: conv-BN-activation and padding to a stride."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn


class ConvBNAct(nn.Sequential):
    """Convolution (no bias), batch norm and an activation, with "same" padding for odd kernels.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: an int or ``(kh, kw)`` (asymmetric kernels such as ``(3, 1)`` are padded per side).
        stride: convolution stride.
        dilation: an int or ``(dh, dw)``.
        groups: convolution groups (``groups=in_channels`` for a depthwise convolution).
        activation: a module class called without arguments (``nn.ReLU``, ``nn.PReLU``, ...), or ``None``
            for conv-BN only.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×⌈H/stride⌉×⌈W/stride⌉``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                (kh, kw),
                stride=stride,
                padding=(dh * (kh - 1) // 2, dw * (kw - 1) // 2),
                dilation=(dh, dw),
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


def pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    """Pad ``image`` at the bottom and right so that H and W are multiples of ``multiple``.

    Reflection padding where the image is large enough for it, replication otherwise.

    Shape:
        ``N×C×H×W`` → ``N×C×(H + (-H mod m))×(W + (-W mod m))``.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


class StridedNet(nn.Module, ABC):
    """Base class of networks whose input must be a multiple of their output stride.

    A subclass sets ``self.stride`` and ``self.in_channels`` and implements :meth:`forward_padded`, which
    sees an image padded to a multiple of the stride and returns logits (or a dict with ``logits`` and
    named auxiliary outputs). :meth:`forward` checks the input, pads it, and crops back to the input size
    every output that has the padded image's size. Lower-resolution maps are returned as they are when
    nothing was padded (a loss term upsamples them to the mask); when the image was padded, a map whose
    size divides the padded size is upsampled (bilinear) to the padded size and cropped too, so that it
    stays aligned with the image instead of being stretched over it.
    """

    stride: int = 1
    in_channels: int = 3

    @abstractmethod
    def forward_padded(self, image: Tensor) -> Tensor | dict[str, Tensor]:
        """The network on an image whose H and W are multiples of ``self.stride``."""

    def forward(self, image: Tensor) -> Tensor | dict[str, Tensor]:
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects images of shape N×{self.in_channels}×H×W, got {tuple(image.shape)}"
            )
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.stride)
        out = self.forward_padded(padded)
        if padded is image:
            return out

        def crop(value: Tensor) -> Tensor:
            if value.ndim != 4:
                return value
            (pad_h, pad_w), (h, w) = padded.shape[-2:], value.shape[-2:]
            if (h, w) != (pad_h, pad_w) and pad_h % h == 0 and pad_w % w == 0 and value.is_floating_point():
                value = F.interpolate(value, size=(pad_h, pad_w), mode="bilinear", align_corners=False)
            return value[..., :height, :width] if tuple(value.shape[-2:]) == (pad_h, pad_w) else value

        return {key: crop(value) for key, value in out.items()} if isinstance(out, dict) else crop(out)
