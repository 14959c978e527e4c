"""What the context networks share: a dilated smp/timm encoder, the FCN auxiliary head, and the base class.

Every network of this family is an encoder (any smp encoder or ``tu-<timm model>``, optionally dilated to
an output stride of 8 or 16, as the papers do with ResNets) followed by a head on the last stage and an
auxiliary FCN head on the stage before it (``aux``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor, nn

from lightning_seg.models.layers import ConvBNAct, StridedNet
from lightning_seg.models.smp_net import check_encoder

OUTPUT_STRIDES = (8, 16, 32)


def build_encoder(encoder_name: str, encoder_weights: str | None, in_channels: int, output_stride: int) -> nn.Module:
    """An smp encoder (five stages) at ``output_stride``, with one-line errors for bad names and strides."""
    check_encoder(encoder_name)
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride}")
    if isinstance(encoder_weights, str) and encoder_weights.lower() in ("none", "null", ""):
        encoder_weights = None  # jsonargparse passes `null` of a callable's argument as a string
    try:
        return get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights, output_stride=output_stride
        )
    except ValueError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(
            f"encoder '{encoder_name}' cannot run at output_stride={output_stride} ({first_line}); "
            "use output_stride: 32 or an encoder that supports dilation (ResNet, EfficientNet, timm models)"
        ) from None


class FCNHead(nn.Sequential):
    """The auxiliary FCN head of PSPNet/EncNet/CCNet: 3×3 conv-BN-ReLU to ``in/4`` channels, dropout, 1×1 conv.

    Shape:
        ``N×in_channels×h×w`` → ``N×num_classes×h×w``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        mid = max(in_channels // 4, 1)
        super().__init__(ConvBNAct(in_channels, mid, 3), nn.Dropout2d(dropout), nn.Conv2d(mid, num_classes, 1))


class ContextHead(nn.Module):
    """The head shared by CCNet and GALDNet: reduce, a context module, and a bottleneck over both.

    ``X`` (the last stage) → 3×3 conv-BN-ReLU to ``channels`` → ``context`` → 3×3 conv-BN-ReLU →
    concatenated with ``X`` → 3×3 conv-BN-ReLU → dropout 0.1 → 1×1 classifier (CCNet's Fig. 2; GALD uses
    the same layout around its GALD block).

    Shape:
        ``N×in_channels×h×w`` → ``N×num_classes×h×w``.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, context: nn.Module) -> None:
        super().__init__()
        self.reduce = ConvBNAct(in_channels, channels, 3)
        self.context = context
        self.out = ConvBNAct(channels, channels, 3)
        self.bottleneck = ConvBNAct(in_channels + channels, channels, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: Tensor) -> Tensor:
        context = self.out(self.context(self.reduce(x)))
        return self.classifier(self.bottleneck(torch.cat([x, context], dim=1)))


class EncoderHeadNet(StridedNet):
    """Base class: an encoder, a head on its last stage and an FCN auxiliary head on the stage before.

    A subclass builds its head from :attr:`channels` (the encoder's channels per stage) in ``__init__``
    after calling ``super().__init__`` and implements :meth:`head`, which returns the main logits at the
    last stage's resolution plus any auxiliary outputs; the logits are upsampled (bilinear) to the input,
    auxiliary maps stay at their own resolution (a loss term upsamples them to the mask).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>``.
        encoder_weights: ``None`` (random init, offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        output_stride: 8 or 16 (dilated last stages, as in the papers) or 32.
        aux_head: add the FCN head on the second-last stage (output ``aux``, logits at that stage's size).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W, "aux": N×C×H/s×W/s, ...}``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        output_stride: int = 8,
        aux_head: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.encoder = build_encoder(encoder_name, encoder_weights, in_channels, output_stride)
        self.channels: list[int] = list(self.encoder.out_channels)
        self.stride = output_stride
        self.in_channels = in_channels
        self.aux = FCNHead(self.channels[-2], num_classes) if aux_head else None

    @abstractmethod
    def head(self, features: list[Tensor]) -> dict[str, Tensor]:
        """From the encoder's features (finest first) to ``{"logits": ..., <aux outputs>}``."""

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        features = self.encoder(image)
        out = self.head(features)
        out["logits"] = F.interpolate(out["logits"], size=image.shape[-2:], mode="bilinear", align_corners=False)
        if self.aux is not None:
            out["aux"] = self.aux(features[-2])
        return out


class ContextHeadNet(EncoderHeadNet):
    """An :class:`EncoderHeadNet` whose head is a :class:`ContextHead` around a context module.

    Args:
        num_classes, encoder_name, encoder_weights, in_channels, output_stride, aux_head: as for
            :class:`EncoderHeadNet`.
        head_channels: channels of the context module.
        context: builds the context module from ``head_channels``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str,
        encoder_weights: str | None,
        in_channels: int,
        output_stride: int,
        aux_head: bool,
        head_channels: int,
        context: Callable[[int], nn.Module],
    ) -> None:
        super().__init__(num_classes, encoder_name, encoder_weights, in_channels, output_stride, aux_head)
        self.context_head = ContextHead(self.channels[-1], head_channels, num_classes, context(head_channels))

    def head(self, features: list[Tensor]) -> dict[str, Tensor]:
        return {"logits": self.context_head(features[-1])}
