"""ExtremeC3Net: extreme lightweight portrait segmentation with C3 modules (Park et al., arXiv 1908.03093)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.models.layers import StridedNet
from lightning_seg.models.portrait.sinet import BNPReLU


class C3Block(nn.Module):
    """One branch of the concentrated-comprehensive convolution (C3) module.

    With dilation ``d > 1`` a *concentration* stage first gathers the local context the dilated kernel
    would skip: depthwise ``(2d−1)×1`` conv, BN, PReLU, depthwise ``1×(2d−1)`` conv, BN. Then the
    *comprehensive* stage: a depthwise 3×3 conv dilated by ``d`` and a pointwise conv.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H×W``.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if dilation > 1:
            k = 2 * dilation - 1
            layers += [
                nn.Conv2d(in_channels, in_channels, (k, 1), padding=(k // 2, 0), groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.PReLU(in_channels),
                nn.Conv2d(in_channels, in_channels, (1, k), padding=(0, k // 2), groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
            ]
        layers += [
            nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class C3Module(nn.Module):
    """The C3 module: reduce, three C3 branches at three dilations, concatenation.

    The reduction is a 1×1 conv, or a 3×3 stride-2 conv when down-sampling; then the residual when asked,
    BN and PReLU.

    Shape:
        ``N×in_channels×H×W`` → ``N×out_channels×H/stride×W/stride``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dilations: tuple[int, int, int], residual: bool, down: bool = False
    ) -> None:
        super().__init__()
        width = out_channels // 3
        extra = out_channels - 3 * width
        self.reduce = (
            nn.Conv2d(in_channels, width, 3, 2, 1, bias=False) if down else nn.Conv2d(in_channels, width, 1, bias=False)
        )
        self.branches = nn.ModuleList(
            C3Block(width, width + (extra if i == 0 else 0), d) for i, d in enumerate(dilations)
        )
        self.residual = residual
        self.out = BNPReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.reduce(x)
        out = torch.cat([branch(reduced) for branch in self.branches], dim=1)
        return self.out(out + x if self.residual else out)


class ExtremeC3Net(StridedNet):
    """ExtremeC3Net: a coarse C3 encoder and a fine detail branch, summed (0.038 M parameters).

    Coarse branch (stride 4): conv (24 channels, stride 2) joined with the half-size image, a
    down-sampling C3 module (48) and ``p`` C3 modules, joined with their input and the quarter-size image,
    a C3 module (56) and ``q`` more, joined; a 1×1 conv-BN to 24 channels, upsampled ×2. Fine branch
    (stride 2): a 3×3 stride-2 conv (24) and a C3 module. Their sum, BN-PReLU, upsampled ×2 and a 1×1
    classifier give full-resolution logits.

    Args:
        num_classes: output channels (2 for portraits).
        in_channels: input image channels (the image pyramid joins are built from them too).
        p: C3 modules at 48 channels (the paper: 1).
        q: C3 modules at 56 channels (the paper: 5).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}``.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, p: int = 1, q: int = 5) -> None:
        super().__init__()
        if p < 1 or q < 1:
            raise ValueError(f"p and q must be at least 1, got p={p}, q={q}")
        self.stride, self.in_channels = 4, in_channels
        c0, c1, c2, c3 = 24, 48, 56, 24
        self.level1 = nn.Sequential(nn.Conv2d(in_channels, c0, 3, 2, 1, bias=False), BNPReLU(c0))
        self.join1 = BNPReLU(c0 + in_channels)
        self.down2 = C3Module(c0 + in_channels, c1, (1, 2, 3), residual=False, down=True)
        self.level2 = nn.Sequential(*[C3Module(c1, c1, (1, 3, 4), residual=True) for _ in range(p)])
        self.join2 = BNPReLU(2 * c1 + in_channels)
        self.first3 = C3Module(2 * c1 + in_channels, c2, (1, 3, 5), residual=False)
        self.level3 = nn.Sequential(*[C3Module(c2, c2, (2, 4, 8), residual=True) for _ in range(q)])
        self.join3 = BNPReLU(2 * c2)
        self.coarse = nn.Sequential(nn.Conv2d(2 * c2, c3, 1, bias=False), nn.BatchNorm2d(c3))
        self.fine = nn.Sequential(
            nn.Conv2d(in_channels, c3, 3, 2, 1, bias=False), C3Module(c3, c3, (2, 4, 8), residual=True)
        )
        self.join = BNPReLU(c3)
        self.classifier = nn.Conv2d(c3, num_classes, 1, bias=False)

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        half, quarter = F.avg_pool2d(image, 2), F.avg_pool2d(image, 4)
        x1 = self.join1(torch.cat([self.level1(image), half], dim=1))
        x2_0 = self.down2(x1)
        x2 = self.join2(torch.cat([self.level2(x2_0), x2_0, quarter], dim=1))
        x3_0 = self.first3(x2)
        x3 = self.join3(torch.cat([x3_0, self.level3(x3_0)], dim=1))
        coarse = F.interpolate(self.coarse(x3), scale_factor=2, mode="bilinear", align_corners=True)
        fused = self.join(coarse + self.fine(image))
        logits = self.classifier(F.interpolate(fused, scale_factor=2, mode="bilinear", align_corners=True))
        return {"logits": logits}
