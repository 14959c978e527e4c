"""Attention U-Net (Oktay et al., MIDL 2018, arXiv 1804.03999)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.unet.blocks import UNetSkeleton


class AttentionGate(nn.Module):
    """Additive attention gate (Fig. 2 of the paper) on a skip connection.

    With skip features ``x`` and the coarser gating signal ``g`` (half the resolution):
    ``q = ψᵀ ReLU(W_xᵀ x + W_gᵀ g + b_g) + b_ψ``, where ``W_x`` is a 2×2 stride-2 convolution that brings
    ``x`` to ``g``'s grid and ``W_g``, ``ψ`` are 1×1 convolutions; ``α = σ(q)`` is resampled (bilinear) to
    ``x``'s grid and the gate returns ``W (α ⊙ x)``, a 1×1 conv-BN.

    Shape:
        ``x`` ``N×channels×H×W``, ``g`` ``N×gating_channels×H/2×W/2`` → ``N×channels×H×W``.
    """

    def __init__(self, channels: int, gating_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gating_channels, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)
        self.out = ConvBNAct(channels, channels, 1, activation=None)

    def coefficients(self, x: Tensor, gating: Tensor) -> Tensor:
        """The attention coefficients ``α`` on ``x``'s grid, ``N×1×H×W`` in ``(0, 1)``."""
        q = self.psi(F.relu(self.theta(x) + self.phi(gating)))
        return F.interpolate(q, size=x.shape[-2:], mode="bilinear", align_corners=False).sigmoid()

    def forward(self, x: Tensor, gating: Tensor) -> Tensor:
        return self.out(self.coefficients(x, gating) * x)


class AttentionUNet(UNetSkeleton):
    """U-Net whose skip connections pass through attention gates driven by the coarser decoder level.

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        base_channels: channels of the first level (the paper: 64 → 1024 over four poolings).
        depth: number of poolings.
        deep_supervision: also output ``aux_2``, ``aux_4``, ... (the paper trains with deep supervision).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}`` (+ ``"aux_<s>": N×C×H/s×W/s``).
    """

    def skip(self, channels: int, gating_channels: int) -> nn.Module:
        return AttentionGate(channels, gating_channels)
