"""CCNet: criss-cross attention for semantic segmentation (Huang et al., ICCV 2019, arXiv 1811.11721)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_seg.models.context.blocks import ContextHeadNet


class CrissCrossAttention(nn.Module):
    """Criss-cross attention (Section 3.2 of the paper).

    Each position ``u`` attends to the ``H + W − 1`` positions of its row and column (itself counted once):
    ``d_{i,u} = Q_u · K_{i,u}``, ``A = softmax(d)`` over those positions, and
    ``H'_u = γ Σ_i A_{i,u} V_{i,u} + H_u`` with ``γ`` a learned scalar starting at 0. Queries and keys have
    ``channels / reduction`` channels (the paper: 1/8).

    Args:
        channels: input (= output) channels.
        reduction: channel reduction of the queries and keys.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        query, key, value = self.query(x), self.key(x), self.value(x)
        height = x.shape[-2]
        # Energies along the column (positions (k, w) for pixel (h, w)) and along the row ((h, k)).
        column = torch.einsum("nchw,nckw->nhwk", query, key)
        row = torch.einsum("nchw,nchk->nhwk", query, key)
        # The pixel itself lies on both; count it once, in the row.
        itself = torch.eye(height, dtype=torch.bool, device=x.device).unsqueeze(1)  # h×1×k
        column = column.masked_fill(itself, float("-inf"))
        attention = torch.cat([column, row], dim=-1).float().softmax(-1).to(value.dtype)
        on_column, on_row = attention[..., :height], attention[..., height:]
        out = torch.einsum("nhwk,nckw->nchw", on_column, value) + torch.einsum("nhwk,nchk->nchw", on_row, value)
        return self.gamma * out + x


class RecurrentCrissCross(nn.Module):
    """Criss-cross attention applied ``recurrence`` times with shared weights (the RCCA module, Fig. 2).

    Two loops let every position gather context from the whole image.

    Shape:
        ``N×C×H×W`` → ``N×C×H×W``.
    """

    def __init__(self, channels: int, recurrence: int = 2, reduction: int = 8) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"recurrence must be at least 1, got {recurrence}")
        self.attention = CrissCrossAttention(channels, reduction)
        self.recurrence = recurrence

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.recurrence):
            x = self.attention(x)
        return x


class CCNet(ContextHeadNet):
    """CCNet: a recurrent criss-cross attention head on a dilated encoder, plus the auxiliary FCN head.

    The head (Fig. 2, :class:`~lightning_seg.models.context.blocks.ContextHead`): the RCCA module (3×3
    conv, criss-cross attention ``R`` times, 3×3 conv) on the last stage's features ``X``, concatenation
    with ``X``, a 3×3 conv-BN-ReLU bottleneck, dropout 0.1 and a 1×1 classifier. The auxiliary FCN head on the stage
    before (``aux``) is trained with cross-entropy weighted 0.4 in the authors' recipe
    (``experiments/models/ccnet.yaml``).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>`` (the paper: ResNet-101).
        encoder_weights: ``None`` (offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        output_stride: 8 (the paper) or 16, by dilation; 32 without.
        head_channels: channels of the RCCA module (the paper: 512).
        recurrence: loops ``R`` of criss-cross attention (the paper: 2).
        reduction: query/key channel reduction (the paper: 8).
        aux_head: add the auxiliary FCN head (``aux``).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W, "aux": N×C×H/s×W/s}``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet101",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        output_stride: int = 8,
        head_channels: int = 512,
        recurrence: int = 2,
        reduction: int = 8,
        aux_head: bool = True,
    ) -> None:
        def context(channels: int) -> nn.Module:
            return RecurrentCrissCross(channels, recurrence, reduction)

        super().__init__(
            num_classes, encoder_name, encoder_weights, in_channels, output_stride, aux_head, head_channels, context
        )
