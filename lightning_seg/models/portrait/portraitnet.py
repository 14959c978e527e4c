"""PortraitNet (Zhang et al., Computers & Graphics 2019): real-time portrait segmentation."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_seg.models.context.blocks import build_encoder
from lightning_seg.models.layers import StridedNet
from lightning_seg.models.portrait.blocks import DBlock, texture_augment


class PortraitNet(StridedNet):
    """PortraitNet: MobileNetV2 encoder, light decoder, boundary head and a consistency constraint.

    The decoder is made of D-blocks and transposed convolutions; the consistency constraint ties the
    predictions of two textures of the same image.

    Decoder (Fig. 2): from stride 32 down, each step adds the encoder features of that stride, applies a
    D-block (to the next finer stage's channels; 8 at the last) and a 4×4 stride-2 transposed conv, up to
    the input resolution; two 1×1 heads give ``logits`` and ``border`` (one boundary logit per pixel,
    for :class:`~lightning_seg.losses.EdgeLoss`; the paper trains it with a focal loss, weight 0.1).

    When training with ``consistency: true`` the network also predicts a texture-augmented copy of the
    batch (:func:`~lightning_seg.models.portrait.blocks.texture_augment`: brightness, contrast, colour,
    blur, noise), returned as ``logits_texture``; :class:`~lightning_seg.losses.ConsistencyLoss` reads
    ``[logits_texture, logits]`` (the paper: α = 2, T = 1) and both get the mask loss. In evaluation the
    copy is the image itself, so ``logits_texture`` is ``logits`` and the consistency term is 0.

    Args:
        num_classes: output channels (2 for portraits).
        encoder_name: any smp encoder or ``tu-<timm model>``; the paper's MobileNetV2 (width 1) is
            ``tu-mobilenetv2_100`` (about 2.1 M parameters in all).
        encoder_weights: ``None`` (offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        consistency: add ``logits_texture`` while training.
        texture_strength: scales the texture augmentation.

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W, "border": N×1×H×W}`` (+ ``"logits_texture"``).
    """

    def __init__(
        self,
        num_classes: int = 2,
        encoder_name: str = "tu-mobilenetv2_100",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        consistency: bool = True,
        texture_strength: float = 1.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.encoder = build_encoder(encoder_name, encoder_weights, in_channels, 32)
        self.stride, self.in_channels = 32, in_channels
        stages = list(self.encoder.out_channels)[1:]  # strides 2, 4, 8, 16, 32
        # Step k turns stride 2^(5-k) into 2^(4-k); widths follow the finer stage, 8 at the last step.
        widths = [*stages[-2::-1][:4], 8]  # stride-16, 8, 4, 2 channels, then 8
        inputs = [stages[-1], *widths[:-1]]
        self.blocks = nn.ModuleList(DBlock(c_in, c_out) for c_in, c_out in zip(inputs, widths, strict=True))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(c, c, 4, stride=2, padding=1, bias=False) for c in widths)
        self.head = nn.Conv2d(widths[-1], num_classes, 1)
        self.border = nn.Conv2d(widths[-1], 1, 1)
        self.consistency = consistency
        self.texture_strength = texture_strength

    def predict(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, border)`` of a padded image."""
        features = self.encoder(image)[2:]  # strides 4, 8, 16, 32 are added along the way
        x = features[-1]
        for step, (block, up) in enumerate(zip(self.blocks, self.upsample, strict=True)):
            if 0 < step < len(features):
                x = x + features[-1 - step]
            x = up(block(x))
        return self.head(x), self.border(x)

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        logits, border = self.predict(image)
        out = {"logits": logits, "border": border}
        if self.consistency:
            textured = self.predict(texture_augment(image, self.texture_strength))[0] if self.training else logits
            out["logits_texture"] = textured
        return out
