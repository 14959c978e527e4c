"""A binary loss on semantic edges: a network's boundary logits against the mask's ``edge`` target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_seg.losses.base import SegmentationLoss


class EdgeLoss(SegmentationLoss):
    """Class-balanced binary cross-entropy, or binary focal loss, on semantic edges.

    Reads a network's boundary output (one logit per pixel, e.g. DFN's ``border``) and the ``edge``
    target (:func:`lightning_seg.geometry.semantic_edges`, computed by the data workers when this loss is
    used), plus the mask for which pixels are labelled. Edges are first widened to ``width``: a max-pool
    over a ``(2·width − 1)²`` window. With ``p_t`` the predicted probability of the true label,
    the per-pixel loss is ``−w_t (1 − p_t)^γ log p_t`` (``γ = 0``: weighted BCE; ``γ > 0``: the focal loss
    of Lin et al., 2017, used by DFN's border network) and the result is its mean over labelled pixels.

    Args:
        width: edge width in pixels on each side of a class border (1 = as computed).
        pos_weight: weight of edge pixels, non-edge ones weigh 1; ``"balanced"`` = HED's class balancing
            (Xie & Tu, ICCV 2015): edges weigh ``|Y−|/|Y|`` and non-edges ``|Y+|/|Y|``, counted per batch.
        gamma: focusing parameter ``γ``.
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×1×H×W`` (or ``N×H×W``), edge ``N×H×W`` (uint8), mask ``N×H×W`` (int64) → scalar.
    """

    required_targets = frozenset({"edge"})
    reads = ("edge", "mask")

    def __init__(
        self,
        width: int = 1,
        pos_weight: float | str = "balanced",
        gamma: float = 0.0,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(ignore_index)
        if width < 1:
            raise ValueError(f"EdgeLoss: width must be at least 1 pixel, got {width}")
        if isinstance(pos_weight, str) and pos_weight != "balanced":
            raise ValueError(f"EdgeLoss: pos_weight must be a number or 'balanced', got '{pos_weight}'")
        if gamma < 0:
            raise ValueError(f"EdgeLoss: gamma must be 0 or more, got {gamma}")
        self.width, self.pos_weight, self.gamma = width, pos_weight, gamma

    def forward(self, logits: Tensor, edge: Tensor, target: Tensor) -> Tensor:
        if logits.ndim == 4:
            if logits.shape[1] != 1:
                raise ValueError(f"EdgeLoss expects one boundary logit per pixel (N×1×H×W), got {tuple(logits.shape)}")
            logits = logits[:, 0]
        if logits.shape != target.shape or edge.shape != target.shape:
            raise ValueError(
                f"EdgeLoss: boundary logits {tuple(logits.shape)}, edge {tuple(edge.shape)} and mask "
                f"{tuple(target.shape)} must have the same N×H×W"
            )
        valid = (target != self.ignore_index) & (edge != self.ignore_index)
        edges = (edge == 1) & valid
        if self.width > 1:
            size = 2 * self.width - 1
            edges = F.max_pool2d(edges[:, None].float(), size, stride=1, padding=self.width - 1)[:, 0].bool() & valid
        truth = edges.float()
        logits = torch.where(valid, logits.float(), 0.0)  # ignored pixels: neither value nor NaN gradient
        loss = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
        if self.gamma > 0:
            loss = (1 - torch.exp(-loss)).pow(self.gamma) * loss
        count = valid.sum()
        if self.pos_weight == "balanced":
            positives = edges.sum()
            weight = torch.where(edges, (count - positives).float(), positives.float()) / count.clamp_min(1)
        else:
            weight = torch.where(edges, float(self.pos_weight), 1.0)
        return (loss * weight * valid).sum() / count.clamp_min(1)
