"""The U-Net skeleton (Ronneberger et al., MICCAI 2015) that Attention U-Net and R2U-Net vary.

An encoder of ``depth`` blocks separated by 2×2 max-pooling (channels doubling from ``base_channels``), a
decoder that upsamples (bilinear ×2 then 3×3 conv-BN-ReLU, the "up-conv"), joins the skip connection and
applies a block, and a 1×1 classifier. A variant overrides :meth:`UNetSkeleton.block` (what each level
computes) and/or :meth:`UNetSkeleton.skip` (what the decoder takes from the encoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct, StridedNet


class UpConv(nn.Sequential):
    """Bilinear ×2 upsampling then 3×3 conv-BN-ReLU.

    Shape:
        ``N×in_channels×h×w`` → ``N×out_channels×2h×2w``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), ConvBNAct(in_channels, out_channels, 3)
        )


class UNetSkeleton(StridedNet):
    """U-Net with overridable level blocks and skip connections; optional deep supervision.

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        base_channels: channels of the first level (doubling at each of the ``depth`` poolings).
        depth: number of 2×2 poolings (the papers: 4, so the input is padded to a multiple of 16).
        deep_supervision: also classify every decoder level but the last: outputs ``aux_2``, ``aux_4``,
            ... named by their stride (each upsampled to the mask inside its loss term).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}`` (+ ``"aux_<s>": N×C×H/s×W/s``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 64,
        depth: int = 4,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if depth < 1 or base_channels < 1:
            raise ValueError(f"depth and base_channels must be at least 1, got {depth} and {base_channels}")
        self.stride, self.in_channels = 2**depth, in_channels
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            self.block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        # Decoder level i (coarse to fine) joins encoder level depth-1-i.
        fine = widths[-2::-1]
        coarse = widths[:0:-1]
        self.up = nn.ModuleList(UpConv(c, f) for c, f in zip(coarse, fine, strict=True))
        self.skips = nn.ModuleList(self.skip(f, c) for c, f in zip(coarse, fine, strict=True))
        self.decoder = nn.ModuleList(self.block(2 * f, f) for f in fine)
        self.classifier = nn.Conv2d(base_channels, num_classes, 1)
        self.aux = nn.ModuleList(nn.Conv2d(f, num_classes, 1) for f in fine[:-1]) if deep_supervision else None

    def block(self, in_channels: int, out_channels: int) -> nn.Module:
        """What each level computes: two 3×3 conv-BN-ReLU (U-Net)."""
        return nn.Sequential(ConvBNAct(in_channels, out_channels, 3), ConvBNAct(out_channels, out_channels, 3))

    def skip(self, channels: int, gating_channels: int) -> nn.Module:
        """What the decoder takes from an encoder level ``x`` given the coarser decoder features ``g``.

        Called as ``skip(x, g)``; U-Net passes ``x`` through.
        """
        return PassSkip()

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        skips = []
        x = image
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        out: dict[str, Tensor] = {}
        for i, (up, skip, block) in enumerate(zip(self.up, self.skips, self.decoder, strict=True)):
            encoder_features = skips[-2 - i]
            x = block(torch.cat([skip(encoder_features, x), up(x)], dim=1))
            if self.aux is not None and i < len(self.aux):
                out[f"aux_{image.shape[-1] // x.shape[-1]}"] = self.aux[i](x)
        return {"logits": self.classifier(x), **out}


class PassSkip(nn.Module):
    """The plain U-Net skip connection: the encoder features as they are."""

    def forward(self, x: Tensor, gating: Tensor) -> Tensor:
        return x
