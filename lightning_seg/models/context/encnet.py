"""EncNet: context encoding for semantic segmentation (Zhang et al., CVPR 2018, arXiv 1803.08904)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_seg.models.context.blocks import EncoderHeadNet
from lightning_seg.models.layers import ConvBNAct


class Encoding(nn.Module):
    """The encoding layer (Section 2.1): soft-assignment residuals to ``K`` learned codewords.

    For features ``x_i`` (``i`` over the ``h·w`` positions), codewords ``d_k`` and smoothing factors ``s_k``:
    ``a_ik = softmax_k(−s_k ‖x_i − d_k‖²)`` and ``e_k = Σ_i a_ik (x_i − d_k)``, computed without forming the
    ``h·w × K × D`` residuals: ``‖x − d‖² = ‖x‖² − 2 x·d + ‖d‖²`` and
    ``Σ_i a_ik (x_i − d_k) = (aᵀx)_k − (Σ_i a_ik) d_k``.

    Args:
        channels: feature channels ``D``.
        codewords: ``K`` (the paper: 32).

    Shape:
        ``N×D×h×w`` → ``N×K×D``.
    """

    def __init__(self, channels: int, codewords: int = 32) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(codewords * channels)
        self.codewords = nn.Parameter(torch.empty(codewords, channels).uniform_(-bound, bound))
        self.smoothing = nn.Parameter(torch.empty(codewords).uniform_(0.0, 1.0))

    def forward(self, x: Tensor) -> Tensor:
        features = x.flatten(2).transpose(1, 2)  # N×hw×D
        squared = (
            features.pow(2).sum(-1, keepdim=True) - 2 * features @ self.codewords.T + self.codewords.pow(2).sum(-1)
        )  # N×hw×K
        assignment = (-self.smoothing * squared).softmax(-1)
        return assignment.transpose(1, 2) @ features - assignment.sum(1).unsqueeze(-1) * self.codewords


class ContextEncoding(nn.Module):
    """The context encoding module (Fig. 2): encoding, channel-wise scaling, and the SE head's input.

    ``e = mean_k ReLU(BN(e_k))`` (``N×D``); the features are scaled channel-wise by ``γ = σ(W e)``
    (output ``ReLU(x + x ⊗ γ)``) and the semantic-encoding head predicts from ``e`` which classes the image
    holds (``N×C`` logits, read by :class:`~lightning_seg.losses.SemanticEncodingLoss`).

    Shape:
        ``N×D×h×w`` → (``N×D×h×w`` scaled features, ``N×num_classes`` presence logits).
    """

    def __init__(self, channels: int, num_classes: int, codewords: int = 32) -> None:
        super().__init__()
        self.project = ConvBNAct(channels, channels, 1)
        self.encoding = Encoding(channels, codewords)
        self.norm = nn.Sequential(nn.BatchNorm1d(codewords), nn.ReLU())
        self.scale = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())
        self.presence = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        encoded = self.norm(self.encoding(self.project(x))).mean(1)
        gamma = self.scale(encoded)[:, :, None, None]
        return (x + x * gamma).relu(), self.presence(encoded)


class EncNet(EncoderHeadNet):
    """EncNet: a context encoding module with semantic-encoding head on a dilated encoder.

    The head: 3×3 conv-BN-ReLU to ``head_channels``, the context encoding module, dropout 0.1 and a
    1×1 classifier. Outputs ``presence`` (the SE head, ``N×C`` logits) and ``aux`` (the FCN head on the
    second-last stage); the paper's recipe weights the SE loss 0.2 and the authors' code also the
    auxiliary cross-entropy 0.2 (``experiments/models/encnet.yaml``).

    Args:
        num_classes: output channels.
        encoder_name: any smp encoder or ``tu-<timm model>`` (the paper: ResNet-50/101).
        encoder_weights: ``None`` (offline) or e.g. ``"imagenet"``.
        in_channels: input image channels.
        output_stride: 8 (the paper) or 16, by dilation; 32 without.
        head_channels: channels ``D`` of the encoding module (the paper: 512).
        codewords: ``K`` (the paper: 32).
        aux_head: add the auxiliary FCN head (``aux``).

    Shape:
        ``N×in_channels×H×W`` → ``{"logits": N×C×H×W, "presence": N×C, "aux": N×C×H/s×W/s}``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet101",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        output_stride: int = 8,
        head_channels: int = 512,
        codewords: int = 32,
        aux_head: bool = True,
    ) -> None:
        super().__init__(num_classes, encoder_name, encoder_weights, in_channels, output_stride, aux_head)
        self.reduce = ConvBNAct(self.channels[-1], head_channels, 3)
        self.context = ContextEncoding(head_channels, num_classes, codewords)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(head_channels, num_classes, 1))

    def head(self, features: list[Tensor]) -> dict[str, Tensor]:
        scaled, presence = self.context(self.reduce(features[-1]))
        return {"logits": self.classifier(scaled), "presence": presence}
