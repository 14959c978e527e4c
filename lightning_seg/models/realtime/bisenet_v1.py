"""BiSeNet V1 (Yu et al. 2018, arXiv 1808.00897)."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct
from lightning_seg.models.realtime.blocks import RealtimeNet, upsample_to
from lightning_seg.models.realtime.two_branch import SegmentationHead
from lightning_seg.models.smp_net import check_encoder


class AttentionRefinement(nn.Module):
    """Attention refinement module (the paper's Fig. 2b) after a 3×3 conv-BN-ReLU to ``out_channels``.

    Global average pooling, 1×1 convolution, batch norm and a sigmoid give a per-channel attention
    vector that multiplies the features.

    Shape:
        ``N×in_channels×h×w`` → ``N×out_channels×h×w``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 3)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvBNAct(out_channels, out_channels, 1, activation=nn.Sigmoid)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class FeatureFusionModule(nn.Module):
    """Feature fusion module (the paper's Fig. 2c).

    The concatenated spatial and context features pass a 1×1 conv-BN-ReLU; global average pooling,
    1×1 conv, ReLU, 1×1 conv and a sigmoid weight the channels, and the weighted features are added
    back to the fused ones.

    Shape:
        spatial ``N×C1×h×w``, context ``N×C2×h×w`` → ``N×out_channels×h×w``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fuse = ConvBNAct(in_channels, out_channels, 1)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(out_channels, out_channels, 1),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        fused = self.fuse(torch.cat([spatial, context], dim=1))
        return fused + fused * self.attention(fused)


class BiSeNetV1(RealtimeNet):
    """BiSeNet: a spatial path at 1/8 and a context path on any smp / timm encoder.

    Yu, Wang, Peng, Gao, Yu & Sang, "BiSeNet: Bilateral Segmentation Network for Real-time Semantic
    Segmentation", ECCV 2018, arXiv 1808.00897. Published (ResNet-18): 74.7 % mIoU on Cityscapes test,
    65.5 fps at 768×1536 on a Titan Xp; about 13 M parameters.

    - Spatial path: three conv-BN-ReLU layers of stride 2 (7×7 to 64, 3×3 to 64, 3×3 to 128) → 1/8.
    - Context path: the encoder's 1/16 and 1/32 features, each through an attention refinement module
      (to 128 channels); the 1/32 one plus the encoder's globally pooled features (1×1 conv-BN-ReLU),
      upsampled ×2 and refined (3×3 conv-BN-ReLU), added to the 1/16 one, upsampled ×2 and refined → 1/8.
    - Feature fusion module (256 channels) and a segmentation head (3×3 to 64, 1×1 to classes),
      upsampled ×8.
    - Two auxiliary heads (3×3 to 64, 1×1 to classes) on the context path's two refined outputs, the
      paper's auxiliary losses (weight 1 each): ``aux_16`` (from the 1/16 stage) and ``aux_32``,
      upsampled to the input size.

    Batch norm follows the pooled attention vectors as in the paper, so training needs batches of at
    least 2 images. With ResNet-18: 13.0 M parameters at 19 classes (11.18 M in the encoder; 12.9 M
    without the auxiliary heads).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>`` with five stages (output stride 32).
        encoder_weights: ``None`` (random init, offline) or e.g. ``"imagenet"`` (downloads).
        in_channels: input image channels.

    Shape:
        input ``N×in_channels×H×W`` → ``{"logits", "aux_16", "aux_32"}``, each ``N×num_classes×H×W``
        (any H, W: padded to 32, cropped back).
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, in_channels, stride=32)
        check_encoder(encoder_name)
        if isinstance(encoder_weights, str) and encoder_weights.lower() in ("none", "null", ""):
            encoder_weights = None  # jsonargparse hands a callable's `null` over as a string
        self.spatial = nn.Sequential(
            ConvBNAct(in_channels, 64, 7, stride=2), ConvBNAct(64, 64, 3, stride=2), ConvBNAct(64, 128, 3, stride=2)
        )
        self.encoder = get_encoder(encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights)
        channels_16, channels_32 = self.encoder.out_channels[-2:]
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(channels_32, 128, 1))
        self.refine_16, self.refine_32 = AttentionRefinement(channels_16, 128), AttentionRefinement(channels_32, 128)
        self.smooth_16, self.smooth_32 = ConvBNAct(128, 128, 3), ConvBNAct(128, 128, 3)
        self.fusion = FeatureFusionModule(256, 256)
        self.head = SegmentationHead(256, 64, num_classes)
        self.aux_heads = nn.ModuleDict({name: SegmentationHead(128, 64, num_classes) for name in ("aux_16", "aux_32")})

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        features = self.encoder(image)
        c16, c32 = features[-2], features[-1]
        context_32 = self.refine_32(c32) + self.global_context(c32)
        context_32 = self.smooth_32(upsample_to(context_32, c16.shape[-2:]))
        spatial = self.spatial(image)
        context_16 = self.smooth_16(upsample_to(self.refine_16(c16) + context_32, spatial.shape[-2:]))
        size = image.shape[-2:]
        out = {"logits": upsample_to(self.head(self.fusion(spatial, context_16)), size)}
        for name, features_ in (("aux_16", context_16), ("aux_32", context_32)):
            out[name] = upsample_to(self.aux_heads[name](features_), size)
        return out
