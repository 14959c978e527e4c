"""BiSeNet V2 (Yu et al. 2020, arXiv 2004.02147)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import RealtimeNet, upsample_to
from lightning_seg.models.realtime.two_branch import SegmentationHead

#: Booster heads: output name → (semantic-branch stage it reads, its channels).
BOOSTERS = {"aux_4": ("stem", 16), "aux_8": ("s3", 32), "aux_16": ("s4", 64), "aux_32": ("s5", 128)}


class StemBlock(nn.Module):
    """The semantic branch's stem (Fig. 4a), to 1/4 of the input and 16 channels.

    A 3×3 conv (stride 2), then a strided conv path and max pooling side by side, concatenated and
    fused by a 3×3 conv.

    Shape:
        ``N×in_channels×H×W`` → ``N×16×H/4×W/4``.
    """

    def __init__(self, in_channels: int, channels: int = 16) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, channels, 3, stride=2)
        self.down = nn.Sequential(
            ConvBNAct(channels, channels // 2, 1), ConvBNAct(channels // 2, channels, 3, stride=2)
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse = ConvBNAct(2 * channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.down(x), self.pool(x)], dim=1))


class GatherExpansion(nn.Module):
    """Gather-and-expansion layer (Fig. 5b, stride 1; Fig. 5c, stride 2), expansion ratio 6.

    3×3 conv-BN-ReLU; a 3×3 depthwise conv-BN expanding the channels ×6 (with stride 2: strided, then a
    second 3×3 depthwise conv-BN); a 1×1 conv-BN projection; added to the input (with stride 2: to a
    3×3 depthwise strided conv-BN and a 1×1 conv-BN of it), then ReLU.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H/stride×W/stride``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, in_channels, 3),
            ConvBNAct(in_channels, hidden, 3, stride=stride, groups=in_channels, activation=None),
        ]
        if stride != 1:
            layers.append(ConvBNAct(hidden, hidden, 3, groups=hidden, activation=None))
        layers.append(ConvBNAct(hidden, out_channels, 1, activation=None))
        self.layers = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                ConvBNAct(in_channels, in_channels, 3, stride=stride, groups=in_channels, activation=None),
                ConvBNAct(in_channels, out_channels, 1, activation=None),
            )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.layers(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Context embedding block (Fig. 4b).

    Global average pooling, BN and a 1×1 conv-BN-ReLU, added to the features (broadcast), then a 3×3
    conv-BN-ReLU.

    Shape:
        ``N×C×h×w`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.context = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(channels), ConvBNAct(channels, channels, 1)
        )
        self.conv = ConvBNAct(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x + self.context(x))


class BilateralGuidedAggregation(nn.Module):
    """Bilateral guided aggregation layer (Fig. 6): each branch gates the other at its own resolution.

    Detail (1/8): a 3×3 depthwise conv-BN + 1×1 conv (kept), and a 3×3 strided conv-BN + 3×3 average
    pooling (stride 2) to 1/32. Semantic (1/32): a 3×3 depthwise conv-BN + 1×1 conv, and a 3×3 conv-BN
    upsampled ×4. ``kept · σ(semantic upsampled) + upsample(down · σ(semantic))``, then a 3×3 conv-BN.

    Shape:
        detail ``N×C×h×w``, semantic ``N×C×h/4×w/4`` → ``N×C×h×w``.
    """

    def __init__(self, channels: int = 128) -> None:
        super().__init__()

        def depthwise_pointwise() -> nn.Sequential:
            return nn.Sequential(
                ConvBNAct(channels, channels, 3, groups=channels, activation=None),
                nn.Conv2d(channels, channels, 1, bias=False),
            )

        self.detail_keep = depthwise_pointwise()
        self.detail_down = ConvBNAct(channels, channels, 3, stride=2, activation=None)
        self.semantic_gate = depthwise_pointwise()
        self.semantic_up = ConvBNAct(channels, channels, 3, activation=None)
        self.fuse = ConvBNAct(channels, channels, 3, activation=None)

    def forward(self, detail: Tensor, semantic: Tensor) -> Tensor:
        down = F.avg_pool2d(self.detail_down(detail), 3, stride=2, padding=1)
        kept = self.detail_keep(detail) * torch.sigmoid(upsample_to(self.semantic_up(semantic), detail.shape[-2:]))
        gated = upsample_to(down * torch.sigmoid(self.semantic_gate(semantic)), detail.shape[-2:])
        return self.fuse(kept + gated)


class BiSeNetV2(RealtimeNet):
    """BiSeNet V2: a wide, shallow detail branch and a narrow, deep semantic branch, aggregated.

    Yu, Gao, Wang, Yu, Shen & Sang, "BiSeNet V2: Bilateral Network with Guided Aggregation for
    Real-time Semantic Segmentation", IJCV 2021, arXiv 2004.02147. Published: 72.6 % mIoU on
    Cityscapes test, 156 fps at 512×1024 on a GTX 1080 Ti; the paper gives no parameter count.

    - Detail branch (Table 1): 3×3 conv-BN-ReLU stages of 64, 64, 128 channels (2, 3, 3 layers, the
      first of each stride 2) → 1/8.
    - Semantic branch: stem (16, 1/4), gather-and-expansion layers (32 at 1/8; 64 at 1/16; 128 at
      1/32, stride 2 then three of stride 1) and context embedding.
    - Bilateral guided aggregation, then the segmentation head (3×3 to 1024, 1×1 to classes),
      upsampled ×8.
    - Booster heads (3×3 to 128, 1×1 to classes) on the stem and the ends of stages 3, 4 and 5
      (before context embedding), the paper's auxiliary losses: ``aux_4``, ``aux_8``, ``aux_16`` and
      ``aux_32``, upsampled to the input size.

    Batch norm follows the pooled context as in the paper, so training needs batches of at least 2
    images. At 19 classes: 3.36 M parameters without the booster heads (the same as CoinCheung's
    widely used reimplementation, github.com/CoinCheung/BiSeNet, 3.36 M without its auxiliary heads),
    3.64 M with them.

    Args:
        num_classes: output channels.
        in_channels: input image channels.

    Shape:
        input ``N×in_channels×H×W`` → ``{"logits", "aux_4", "aux_8", "aux_16", "aux_32"}``, each
        ``N×num_classes×H×W`` (any H, W: padded to 32, cropped back).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=32)
        self.detail = nn.Sequential(
            ConvBNAct(in_channels, 64, 3, stride=2),
            ConvBNAct(64, 64, 3),
            ConvBNAct(64, 64, 3, stride=2),
            ConvBNAct(64, 64, 3),
            ConvBNAct(64, 64, 3),
            ConvBNAct(64, 128, 3, stride=2),
            ConvBNAct(128, 128, 3),
            ConvBNAct(128, 128, 3),
        )
        self.semantic = nn.ModuleDict(
            {
                "stem": StemBlock(in_channels, 16),
                "s3": nn.Sequential(GatherExpansion(16, 32, stride=2), GatherExpansion(32, 32)),
                "s4": nn.Sequential(GatherExpansion(32, 64, stride=2), GatherExpansion(64, 64)),
                "s5": nn.Sequential(GatherExpansion(64, 128, stride=2), *(GatherExpansion(128, 128) for _ in range(3))),
            }
        )
        self.context = ContextEmbedding(128)
        self.aggregation = BilateralGuidedAggregation(128)
        self.head = SegmentationHead(128, 1024, num_classes)
        self.boosters = nn.ModuleDict(
            {name: SegmentationHead(channels, 128, num_classes) for name, (_, channels) in BOOSTERS.items()}
        )

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        stages: dict[str, Tensor] = {}
        x = image
        for name, stage in self.semantic.items():
            x = stages[name] = stage(x)
        fused = self.aggregation(self.detail(image), self.context(x))
        size = image.shape[-2:]
        out = {"logits": upsample_to(self.head(fused), size)}
        for name, (stage_name, _) in BOOSTERS.items():
            out[name] = upsample_to(self.boosters[name](stages[stage_name]), size)
        return out
