"""SINet: extreme lightweight portrait segmentation (Park et al., WACV 2020, arXiv 1911.09099)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import StridedNet

#: (kernel, average-pooling size) of the two branches of each S2 module: two in stage 2, eight in stage 3.
S2_CONFIG: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((5, 1), (3, 2)),
    ((5, 2), (3, 4)),
    ((3, 1), (3, 1)),
    ((5, 1), (5, 1)),
    ((3, 2), (3, 4)),
    ((3, 1), (5, 2)),
)


class BNPReLU(nn.Sequential):
    """Batch norm then PReLU (one slope per channel)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels, eps=1e-3), nn.PReLU(channels))


class SESeparableConv(nn.Module):
    """Depthwise conv, squeeze-and-excitation, pointwise conv, BN, PReLU (SINet's down-sampling layers).

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×⌈H/stride⌉×⌈W/stride⌉``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, reduction: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        hidden = in_channels // reduction
        layers: list[nn.Module] = [nn.Linear(in_channels, hidden)]
        if reduction > 1:
            layers += [nn.PReLU(hidden), nn.Linear(hidden, in_channels)]
        self.excite = nn.Sequential(*layers, nn.Sigmoid())
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.out = BNPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.depthwise(x)
        x = x * self.excite(x.mean(dim=(2, 3)))[:, :, None, None]
        return self.out(self.pointwise(x))


class S2Block(nn.Module):
    """One branch of the spatial squeeze module (Fig. 3).

    Average-pool, depthwise conv, BN, PReLU, pointwise conv, bilinear upsampling back, BN.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H×W`` (H, W multiples of ``pool``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.depthwise = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel, padding=kernel // 2, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels, eps=1e-3),
            nn.PReLU(in_channels),
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        x = self.pointwise(self.depthwise(x))
        if self.pool > 1:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.norm(x)


class S2Module(nn.Module):
    """Spatial squeeze module (Fig. 3).

    Grouped pointwise reduction, channel shuffle, two S2 blocks concatenated, the residual when the
    shapes allow, BN and PReLU.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H×W``.
    """

    def __init__(self, in_channels: int, out_channels: int, config: tuple[tuple[int, int], ...], residual: bool):
        super().__init__()
        groups = len(config)
        width = out_channels // groups
        self.reduce = nn.Conv2d(in_channels, width, 1, groups=groups, bias=False)
        self.groups = groups
        extra = out_channels - groups * width  # the first branch takes what does not divide evenly
        self.branches = nn.ModuleList(
            S2Block(width, width + (extra if i == 0 else 0), kernel, pool) for i, (kernel, pool) in enumerate(config)
        )
        self.residual = residual
        self.out = BNPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.reduce(x)
        n, c, h, w = reduced.shape
        shuffled = reduced.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        out = torch.cat([branch(shuffled) for branch in self.branches], dim=1)
        return self.out(out + x if self.residual else out)


class SINet(StridedNet):
    """SINet: spatial-squeeze encoder and information-blocking decoder (0.087 M parameters at 2 classes).

    Encoder: conv (12 channels, stride 2), SE separable conv (16, stride 4), ``p`` S2 modules (48),
    concatenation, SE separable conv (48, stride 8), ``q`` S2 modules (96), concatenation and a 1×1
    classifier at stride 8. Decoder: the coarse prediction upsampled to stride 4; *information blocking*
    lets the stride-4 features through only where that prediction is unsure (gate ``1 − max_c p_c``),
    added to it, upsampled, and a bilinear ×2 + 3×3 conv gives full-resolution logits.

    Args:
        num_classes: output channels (2 for portraits).
        in_channels: input image channels.
        p: S2 modules in stage 2 (the paper: 2).
        q: S2 modules in stage 3 (the paper: 8).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}``.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, p: int = 2, q: int = 8) -> None:
        super().__init__()
        if not (1 <= p and 1 <= q and p + q <= len(S2_CONFIG)):
            raise ValueError(f"p and q must be at least 1 with p + q <= {len(S2_CONFIG)}, got p={p}, q={q}")
        # Pooling inside S2 blocks (up to 4) at stride 8 needs inputs that are multiples of 32.
        self.stride, self.in_channels = 32, in_channels
        c1, c2, c3 = 16, 48, 96
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 12, 3, 2, 1, bias=False), BNPReLU(12), SESeparableConv(12, c1, 2, reduction=1)
        )
        self.stage2 = nn.Sequential(*[S2Module(c1 if i == 0 else c2, c2, S2_CONFIG[i], i > 0) for i in range(p)])
        self.join2 = BNPReLU(c1 + c2)
        self.down3 = SESeparableConv(c1 + c2, c2, 2, reduction=2)
        self.stage3 = nn.Sequential(*[S2Module(c2 if i == 0 else c3, c3, S2_CONFIG[p + i], i > 0) for i in range(q)])
        self.join3 = BNPReLU(c2 + c3)
        self.coarse = nn.Conv2d(c2 + c3, num_classes, 1, bias=False)
        self.coarse_norm = nn.BatchNorm2d(num_classes, eps=1e-3)
        self.fine = nn.Sequential(nn.Conv2d(c2, num_classes, 1, bias=False), BNPReLU(num_classes))
        self.fine_norm = nn.BatchNorm2d(num_classes, eps=1e-3)
        self.classifier = nn.Conv2d(num_classes, num_classes, 3, padding=1, bias=False)

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        x1 = self.stem(image)  # stride 4
        x2 = self.stage2(x1)
        x3_0 = self.down3(self.join2(torch.cat([x1, x2], dim=1)))  # stride 8
        x3 = self.join3(torch.cat([x3_0, self.stage3(x3_0)], dim=1))
        coarse = self.coarse_norm(F.interpolate(self.coarse(x3), scale_factor=2, mode="bilinear", align_corners=True))
        gate = 1 - coarse.softmax(1).amax(1, keepdim=True)  # information blocking: pass where unsure
        fused = self.fine_norm(
            F.interpolate(self.fine(x2) * gate + coarse, scale_factor=2, mode="bilinear", align_corners=True)
        )
        logits = self.classifier(F.interpolate(fused, scale_factor=2, mode="bilinear", align_corners=True))
        return {"logits": logits}
