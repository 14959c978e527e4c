"""Any segmentation-models-pytorch architecture with any of its encoders, behind one interface."""

from __future__ import annotations

import difflib
from typing import Any

import segmentation_models_pytorch as smp
import timm
from segmentation_models_pytorch.encoders import encoders as SMP_ENCODERS
from torch import Tensor

from lightning_seg.models.layers import StridedNet

#: lower-case name → class name of every smp architecture (``smp.create_model`` accepts either).
ARCHITECTURES: dict[str, str] = {key.lower(): cls.__name__ for key, cls in smp.MODEL_ARCHITECTURES_MAPPING.items()}


def _unknown(kind: str, value: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(value, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(valid) if len(valid) <= 20 else ", ".join(valid[:20]) + f", ... ({len(valid)} in all)"
    return ValueError(f"unknown {kind} '{value}'.{hint} Valid choices: {shown}")


def check_encoder(encoder_name: str) -> None:
    """Raise a one-line error naming close matches when ``encoder_name`` is neither an smp nor a timm encoder."""
    if encoder_name.startswith("tu-"):
        timm_name = encoder_name[3:]
        if not timm.is_model(timm_name):
            raise _unknown("timm encoder", timm_name, timm.list_models())
    elif encoder_name not in SMP_ENCODERS:
        raise _unknown("encoder", encoder_name, [*SMP_ENCODERS, "tu-<any timm model>"])


class SMPNet(StridedNet):
    """A segmentation-models-pytorch model (``smp.create_model``) with logits at input resolution.

    Inputs whose height or width is not a multiple of the encoder's output stride are padded
    (reflection) before the network and the logits cropped back, so any image size works.

    Args:
        num_classes: output channels (linked from the DataModule).
        arch: any smp architecture, case-insensitive: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, ...
        encoder_name: any smp encoder (``resnet18``, ``efficientnet-b0``, ...) or ``tu-<timm model>``.
        encoder_weights: ``None`` (random init, works offline) or ``"imagenet"`` etc. (downloads).
        in_channels: input image channels.
        presence_head: add smp's classification head predicting which classes occur in the image
            (the auxiliary output ``presence``, ``N×C``, for EncNet's semantic-encoding loss).
        arch_kwargs: further arguments of the smp architecture (``encoder_depth``, ``decoder_channels``,
            ...), e.g. ``{"encoder_depth": 3, "decoder_channels": [64, 32, 16]}``.

    Shape:
        input ``N×in_channels×H×W`` → ``{"logits": N×C×H×W}`` (+ ``"presence": N×C``).
    """

    def __init__(
        self,
        num_classes: int,
        arch: str = "Unet",
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        presence_head: bool = False,
        arch_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if arch.lower() not in ARCHITECTURES:
            raise _unknown("architecture", arch, sorted(ARCHITECTURES.values()))
        check_encoder(encoder_name)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if isinstance(encoder_weights, str) and encoder_weights.lower() in ("none", "null", ""):
            # jsonargparse hands `--...encoder_weights=null` of a callable's argument over as a string.
            encoder_weights = None
        aux_params = {"classes": num_classes} if presence_head else None
        self.model = smp.create_model(
            arch.lower(),
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            aux_params=aux_params,
            **(arch_kwargs or {}),
        )
        self.stride = int(getattr(self.model.encoder, "output_stride", 32))
        self.in_channels = in_channels

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        out = self.model(image)
        logits, presence = out if isinstance(out, tuple) else (out, None)
        return {"logits": logits} if presence is None else {"logits": logits, "presence": presence}
