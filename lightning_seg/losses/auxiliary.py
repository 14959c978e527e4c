"""Auxiliary and embedding losses: EncNet's semantic-encoding loss and the discriminative loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_seg.losses.base import SegmentationLoss


class SemanticEncodingLoss(SegmentationLoss):
    """Semantic-encoding loss of EncNet (Zhang et al., CVPR 2018, arXiv 1803.08904).

    Binary cross-entropy between an auxiliary head's per-image class logits and the classes present in
    the image's mask. Ignored pixels never make a class present; an image with no labelled pixel says
    nothing about presence and is left out of the mean (an all-ignored batch gives 0). The paper weights
    this term by about 0.2 in a :class:`~lightning_seg.losses.CompositeLoss` (``input`` = the aux output).

    Shape:
        logits ``N×C`` (the auxiliary output), target ``N×H×W`` (int64) → scalar.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.ndim != 2:
            raise ValueError(f"SemanticEncodingLoss expects N×C class logits, got shape {tuple(logits.shape)}")
        truth, valid = self.one_hot(target, logits.shape[1], logits.dtype)
        presence = truth.amax(dim=(2, 3))
        labelled = valid.flatten(1).any(1)
        # An image without labelled pixels is left out: its logits (even NaN) get neither value nor gradient.
        logits = torch.where(labelled.unsqueeze(1), logits, 0.0)
        per_image = F.binary_cross_entropy_with_logits(logits, presence, reduction="none").mean(1)
        return torch.where(labelled, per_image, 0.0).sum() / labelled.sum().clamp_min(1)


class DiscriminativeLoss(SegmentationLoss):
    """Discriminative loss for instance embeddings (De Brabandere et al., 2017, arXiv 1708.02551).

    Per image with instances ``c = 1..K`` (mean embedding ``μ_c``, ``N_c`` pixels ``x_i``)::

        L_var  = 1/K Σ_c 1/N_c Σ_i [‖μ_c − x_i‖ − δ_v]₊²
        L_dist = 1/(K(K−1)) Σ_{c≠c'} [2δ_d − ‖μ_c − μ_c'‖]₊²     (0 when K = 1)
        L_reg  = 1/K Σ_c ‖μ_c‖
        L      = α·L_var + β·L_dist + γ·L_reg

    averaged over the images that hold at least one instance (0 when none does). Every id in the target
    is an instance except ``ignore_index`` and ``background`` (when given).

    Args:
        delta_v: pull margin ``δ_v``.
        delta_d: push margin ``δ_d``.
        alpha, beta, gamma: weights of the variance, distance and regularisation terms (paper: 1, 1, 0.001).
        background: an id that is not an instance (e.g. 0), or ``None``.
        ignore_index: ``None`` = the dataset's.

    Shape:
        embeddings ``N×D×H×W``, instances ``N×H×W`` (int64 instance ids) → scalar.
    """

    reads = ("instances",)

    def __init__(
        self,
        delta_v: float = 0.5,
        delta_d: float = 1.5,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
        background: int | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(ignore_index)
        self.delta_v, self.delta_d = delta_v, delta_d
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.background = background

    def terms(self, embedding: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(L_var, L_dist, L_reg)`` of one image; ``embedding`` ``M×D`` and ``ids`` ``M`` (instances only)."""
        _, index, counts = torch.unique(ids, return_inverse=True, return_counts=True)
        k = len(counts)
        means = embedding.new_zeros(k, embedding.shape[1]).index_add(0, index, embedding) / counts.unsqueeze(1)
        pull = (torch.linalg.vector_norm(embedding - means[index], dim=1) - self.delta_v).clamp_min(0) ** 2
        variance = (embedding.new_zeros(k).index_add(0, index, pull) / counts).mean()
        gaps = torch.linalg.vector_norm(means.unsqueeze(0) - means.unsqueeze(1), dim=2)
        push = (2 * self.delta_d - gaps).clamp_min(0) ** 2
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=means.device)
        distance = push[off_diagonal].sum() / max(k * (k - 1), 1)
        regularisation = torch.linalg.vector_norm(means, dim=1).mean()
        return variance, distance, regularisation

    def forward(self, embeddings: Tensor, instances: Tensor) -> Tensor:
        if embeddings.ndim != 4 or embeddings.shape[0] != instances.shape[0]:
            raise ValueError(
                f"DiscriminativeLoss expects N×D×H×W embeddings and N×H×W instance ids, got "
                f"{tuple(embeddings.shape)} and {tuple(instances.shape)}"
            )
        keep = instances != self.ignore_index
        if self.background is not None:
            keep &= instances != self.background
        # Pixels left out (ignored or background) are zeroed first, so even NaN there adds nothing.
        embeddings = torch.where(keep.unsqueeze(1), embeddings, 0.0)
        total = embeddings.sum() * 0.0
        images = 0
        for embedding, ids, mask in zip(embeddings, instances, keep, strict=True):
            if not mask.any():
                continue
            variance, distance, regularisation = self.terms(embedding.flatten(1).T[mask.flatten()], ids[mask])
            total = total + self.alpha * variance + self.beta * distance + self.gamma * regularisation
            images += 1
        return total / max(images, 1)
