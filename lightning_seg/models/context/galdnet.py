"""GALDNet: global aggregation then local distribution (Li et al., BMVC 2019, arXiv 1909.07229)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.context.blocks import ContextHeadNet
from lightning_seg.models.layers import ConvBNAct

#: Stride-2 layers of the local distribution's gates (the paper's default).
LOCAL_DISTRIBUTION_DEPTH = 3


class CompactNonLocal(nn.Module):
    """Compact generalised non-local block with the dot-product kernel (Yue et al., NeurIPS 2018).

    The global aggregation (GA) module of GALD. With ``θ, φ, g`` 1×1 convolutions to ``inner`` channels
    split into ``groups``, each group's output is ``y = θ(x) · Σ_{c,i} φ(x)_{c,i} g(x)_{c,i}`` (every
    position and channel of the group attends to all others at once), scaled by ``1/√(c·h·w)``; then a
    grouped 1×1 convolution back to ``channels``, group norm, and the residual.

    Shape:
        ``N×C×h×w`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int, inner: int, groups: int = 8) -> None:
        super().__init__()
        if inner % groups or channels % groups:
            raise ValueError(f"channels ({channels}) and inner ({inner}) must be multiples of groups ({groups})")
        self.theta = nn.Conv2d(channels, inner, 1, bias=False)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)
        self.g = nn.Conv2d(channels, inner, 1, bias=False)
        self.z = nn.Conv2d(inner, channels, 1, groups=groups, bias=False)
        self.norm = nn.GroupNorm(groups, channels)
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        theta, phi, g = (branch(x).unflatten(1, (self.groups, -1)) for branch in (self.theta, self.phi, self.g))
        per_group = theta.shape[2] * h * w
        kernel = (phi * g).sum(dim=(2, 3, 4), keepdim=True) / per_group**0.5  # N×groups×1×1×1
        return self.norm(self.z((theta * kernel).flatten(1, 2))) + x


class LocalDistribution(nn.Module):
    """Local distribution (LD, Section 3.2): learned spatial gates that redistribute the global context.

    Three depthwise 3×3 stride-2 conv-BN-ReLU layers summarise each neighbourhood; upsampled back
    (bilinear) and squashed by a sigmoid they give a per-position, per-channel gate ``W``, and the output
    is ``X ⊙ W + X``: each position takes the aggregated context in the measure its neighbourhood needs.

    Shape:
        ``N×C×h×w`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int, depth: int = LOCAL_DISTRIBUTION_DEPTH) -> None:
        super().__init__()
        self.gates = nn.Sequential(*[ConvBNAct(channels, channels, 3, stride=2, groups=channels) for _ in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        gate = F.interpolate(self.gates(x), size=x.shape[-2:], mode="bilinear", align_corners=False).sigmoid()
        return x * gate + x


class GALDBlock(nn.Sequential):
    """Global aggregation (a compact non-local block) then local distribution.

    Shape:
        ``N×C×h×w`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int, inner: int, groups: int = 8) -> None:
        super().__init__(CompactNonLocal(channels, inner, groups), LocalDistribution(channels))


class GALDNet(ContextHeadNet):
    """GALDNet: a GALD block in the context head of a dilated encoder, plus the auxiliary FCN head.

    The head (:class:`~lightning_seg.models.context.blocks.ContextHead`): 3×3 conv to ``head_channels``,
    the GALD block, 3×3 conv, concatenation with the last stage, bottleneck and classifier; ``aux`` is
    the FCN head on the stage before, weighted 0.4 in the authors' recipe (``experiments/models/galdnet.yaml``).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>`` (the paper: ResNet-101).
        encoder_weights: ``None`` (offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        output_stride: 8 (the paper) or 16, by dilation; 32 without.
        head_channels: channels of the GALD block (the authors: 512).
        inner_channels: channels of the non-local block's ``θ, φ, g`` (the authors: 256).
        groups: groups of the compact non-local block.
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
        inner_channels: int = 256,
        groups: int = 8,
        aux_head: bool = True,
    ) -> None:
        def context(channels: int) -> nn.Module:
            return GALDBlock(channels, inner_channels, groups)

        super().__init__(
            num_classes, encoder_name, encoder_weights, in_channels, output_stride, aux_head, head_channels, context
        )
        #: Exported graphs start where the local distribution's gates (3 halvings of the 1/stride map)
        #: keep at least 2 pixels a side (:func:`lightning_seg.export.min_size`).
        self.export_min_size = output_stride * 2**LOCAL_DISTRIBUTION_DEPTH + 1
