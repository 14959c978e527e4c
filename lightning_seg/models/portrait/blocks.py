"""What the portrait networks share: PortraitNet's texture augmentation and its decoder block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct


def texture_augment(image: Tensor, strength: float = 1.0) -> Tensor:
    """PortraitNet's texture augmentation (Section 3.3 of the paper), on the device.

    Each image gets its own random draw of brightness, contrast and colour change, Gaussian blur and
    Gaussian noise. Works on normalised images (the shifts are in units of the normalised intensity). Geometry is left
    unchanged, so the mask still applies.

    Args:
        image: ``N×C×H×W`` normalised images.
        strength: scales every perturbation (0 = identity).

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """
    n, channels = image.shape[:2]

    def uniform(*shape: int, low: float, high: float) -> Tensor:
        return torch.empty(*shape, device=image.device, dtype=image.dtype).uniform_(low, high)

    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + strength * uniform(n, 1, 1, 1, low=-0.3, high=0.3)
    brightness = strength * uniform(n, 1, 1, 1, low=-0.4, high=0.4)
    colour = strength * uniform(n, channels, 1, 1, low=-0.2, high=0.2)
    out = (image - mean) * contrast + mean + brightness + colour
    # Gaussian blur (3×3, σ per image) on half the images.
    sigma = uniform(n, 1, 1, low=0.3, high=1.5)
    offsets = torch.arange(-1, 2, device=image.device, dtype=image.dtype)
    taps = torch.exp(-(offsets.view(1, 1, 3) ** 2) / (2 * sigma**2))  # N×1×3
    taps = taps / taps.sum(-1, keepdim=True)
    kernel = taps.transpose(1, 2) * taps  # N×3×3, separable
    blurred = F.conv2d(
        F.pad(out.reshape(1, n * channels, *out.shape[-2:]), (1, 1, 1, 1), mode="replicate"),
        kernel.repeat_interleave(channels, 0).unsqueeze(1),
        groups=n * channels,
    ).reshape_as(out)
    blur = (torch.rand(n, 1, 1, 1, device=image.device) < 0.5 * min(strength, 1.0)).to(image.dtype)
    out = blur * blurred + (1 - blur) * out
    noise = strength * uniform(n, 1, 1, 1, low=0.0, high=0.1)
    return out + noise * torch.randn_like(out)


class DBlock(nn.Module):
    """PortraitNet's decoder block (Fig. 3b): a residual block of depthwise-separable convolutions.

    Main branch: depthwise 3×3-BN-ReLU, 1×1-BN-ReLU, depthwise 3×3-BN-ReLU, 1×1-BN; shortcut: 1×1-BN;
    their sum through a ReLU.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H×W``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            ConvBNAct(in_channels, in_channels, 3, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
            ConvBNAct(out_channels, out_channels, 3, groups=out_channels),
            ConvBNAct(out_channels, out_channels, 1, activation=None),
        )
        self.shortcut = ConvBNAct(in_channels, out_channels, 1, activation=None)

    def forward(self, x: Tensor) -> Tensor:
        return (self.main(x) + self.shortcut(x)).relu()
