"""DFN: discriminative feature network (Yu et al., CVPR 2018, arXiv 1804.09337)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.context.blocks import build_encoder
from lightning_seg.models.layers import ConvBNAct, StridedNet


def _upsample(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RefinementResidualBlock(nn.Module):
    """RRB (Fig. 2c): a 1×1 conv unifying the channels, then ``ReLU(h + conv3×3(ReLU(BN(conv3×3(h)))))``.

    Shape:
        ``N×in_channels×h×w`` → ``N×channels×h×w``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.unify = nn.Conv2d(in_channels, channels, 1)
        self.residual = nn.Sequential(ConvBNAct(channels, channels, 3), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.unify(x)
        return (x + self.residual(x)).relu()


class ChannelAttentionBlock(nn.Module):
    """CAB (Fig. 2b): the higher stage chooses the lower stage's channels.

    ``w = σ(conv1×1(ReLU(conv1×1(GAP([low, high])))))`` and the output is ``low ⊙ w + high``.

    Shape:
        low and high ``N×C×h×w`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2 * channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        return low * self.attention(torch.cat([low, high], dim=1)) + high


class DFN(StridedNet):
    """DFN: a smooth network (RRB, CAB, global pooling) and a border network on any encoder.

    **Smooth network**: from the last stage down to stride 4, each stage goes through an RRB, a CAB that
    weighs its channels by the stage above (the top stage by the globally pooled features), and another
    RRB; every stage has a classifier. The stride-4 one gives ``logits``; the others are deep
    supervision outputs ``aux_32``, ``aux_16``, ``aux_8`` (named by their stride), each trained with
    cross-entropy as the paper does.

    **Border network**: from stride 4 up, each stage's RRB output is added to the upsampled sum so
    far and refined by an RRB; a 1×1 conv gives ``border``, one boundary logit per pixel at stride 4,
    trained with a focal loss on semantic edges (:class:`~lightning_seg.losses.EdgeLoss`), weight
    ``λ = 0.1`` (``experiments/models/dfn.yaml``).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>`` (the paper: ResNet-101).
        encoder_weights: ``None`` (offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        channels: channels of the smooth network (the authors' code: 256).
        border_channels: channels of the border network.

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W, "aux_32": N×C×H/32×W/32, "aux_16": ..., "aux_8": ...,
        "border": N×1×H/4×W/4}``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet101",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        channels: int = 256,
        border_channels: int = 64,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.encoder = build_encoder(encoder_name, encoder_weights, in_channels, 32)
        self.stride, self.in_channels = 32, in_channels
        stages = list(self.encoder.out_channels)[2:]  # strides 4, 8, 16, 32
        # No batch norm after global pooling: it would fail on a batch of one image.
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(stages[-1], channels, 1), nn.ReLU())
        self.smooth_in = nn.ModuleList(RefinementResidualBlock(c, channels) for c in stages)
        self.attention = nn.ModuleList(ChannelAttentionBlock(channels) for _ in stages)
        self.smooth_out = nn.ModuleList(RefinementResidualBlock(channels, channels) for _ in stages)
        self.classifiers = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in stages)
        self.border_in = nn.ModuleList(RefinementResidualBlock(c, border_channels) for c in stages)
        self.border_out = nn.ModuleList(RefinementResidualBlock(border_channels, border_channels) for _ in stages[1:])
        self.border = nn.Conv2d(border_channels, 1, 1)

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        stages = self.encoder(image)[2:]
        out: dict[str, Tensor] = {}
        high = self.global_context(stages[-1]).expand(-1, -1, *stages[-1].shape[-2:])
        for i in reversed(range(len(stages))):
            low = self.smooth_in[i](stages[i])
            high = self.smooth_out[i](self.attention[i](low, _upsample(high, low)))
            out[f"aux_{4 * 2**i}"] = self.classifiers[i](high)
        logits = out.pop("aux_4")
        border = self.border_in[0](stages[0])
        for i in range(1, len(stages)):
            border = self.border_out[i - 1](border + _upsample(self.border_in[i](stages[i]), border))
        return {"logits": _upsample(logits, image), **out, "border": self.border(border)}
