"""R2U-Net: recurrent residual convolutional U-Net (Alom et al., arXiv 1802.06955)."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.unet.blocks import UNetSkeleton


class RecurrentConv(nn.Module):
    """Recurrent convolutional layer (Eq. 1–2 of the paper), unrolled for ``steps`` time steps.

    ``h(0) = ReLU(BN(w_f ∗ x))`` and ``h(t) = ReLU(BN(w_f ∗ x + w_r ∗ h(t−1)))`` for ``t = 1..steps``: a
    feed-forward and a recurrent 3×3 convolution, their weights shared over time.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, steps: int = 2) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.feedforward = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.recurrent = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.steps = steps

    def forward(self, x: Tensor) -> Tensor:
        drive = self.feedforward(x)
        h = self.norm(drive).relu()
        for _ in range(self.steps):
            h = self.norm(drive + self.recurrent(h)).relu()
        return h


class RecurrentResidualBlock(nn.Module):
    """The RRCNN block (Fig. 3d): a 1×1 conv, two recurrent conv layers, and the residual sum.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H×W``.
    """

    def __init__(self, in_channels: int, out_channels: int, steps: int = 2) -> None:
        super().__init__()
        self.project = ConvBNAct(in_channels, out_channels, 1, activation=None)
        self.recurrent = nn.Sequential(RecurrentConv(out_channels, steps), RecurrentConv(out_channels, steps))

    def forward(self, x: Tensor) -> Tensor:
        x = self.project(x)
        return x + self.recurrent(x)


class R2UNet(UNetSkeleton):
    """U-Net whose levels are recurrent residual blocks (``t = 2`` as in the paper).

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        base_channels: channels of the first level (the paper: 64 → 1024 over four poolings).
        depth: number of poolings.
        steps: recurrent time steps ``t`` of each recurrent conv layer.
        deep_supervision: also output ``aux_2``, ``aux_4``, ...

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}`` (+ ``"aux_<s>": N×C×H/s×W/s``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 64,
        depth: int = 4,
        steps: int = 2,
        deep_supervision: bool = False,
    ) -> None:
        self.steps = steps  # read by block(), which the skeleton calls while it builds the levels
        super().__init__(num_classes, in_channels, base_channels, depth, deep_supervision)

    def block(self, in_channels: int, out_channels: int) -> nn.Module:
        return RecurrentResidualBlock(in_channels, out_channels, self.steps)
