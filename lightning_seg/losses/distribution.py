"""Distribution-based losses: cross-entropy and the variants that reweight or select pixels.

All of them compute one loss per pixel (:meth:`PixelwiseLoss.pixel_losses`) and reduce those to a
weighted mean (:meth:`PixelwiseLoss.reduce`); a variant overrides one of the two. Ignored pixels have
zero loss and zero weight, so they contribute neither value nor gradient, and a batch with no labelled
pixel gives 0 (never NaN).
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_seg.losses.base import ClassWeightedLoss


class PixelwiseLoss(ClassWeightedLoss):
    """Base class: a per-pixel loss, averaged with per-class weights over the labelled pixels.

    The mean is ``Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}`` over labelled pixels ``i`` (as in
    :func:`torch.nn.functional.cross_entropy` with ``weight``); with no labelled pixel it is 0.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    @abstractmethod
    def pixel_losses(self, logits: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        """Per-pixel losses ``N×H×W`` multiplied by ``weight[target]``, exactly 0 (no gradient) where ignored."""

    def reduce(self, losses: Tensor, weights: Tensor, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        """Weighted mean of ``losses`` (zero at ignored pixels, where ``weights`` is zero too)."""
        return losses.sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        weight = self.class_weight(logits.shape[1])
        valid = target != self.ignore_index
        weights = valid.to(logits.dtype)
        if weight is not None:
            weight = weight.to(logits.dtype)
            weights = weights * weight[self.split_target(target)[0]]
        return self.reduce(self.pixel_losses(logits, target, weight), weights, logits, target, valid)


class CrossEntropyLoss(PixelwiseLoss):
    """Pixel-wise cross-entropy with class weights and label smoothing.

    Unlike ``torch.nn.functional.cross_entropy`` (NaN when every pixel is ignored) an all-ignored batch
    gives 0 with a zero gradient.

    Args:
        weight: ``None``, a list of ``C`` class weights, ``"auto"`` or a weighting scheme name.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
        beta: the ``effective`` weighting scheme's hyper-parameter.
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    def __init__(
        self,
        weight: list[float] | str | None = None,
        label_smoothing: float = 0.0,
        beta: float = 0.999,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(weight, beta, ignore_index)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def pixel_losses(self, logits: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        return F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )


class FocalLoss(PixelwiseLoss):
    """Softmax focal loss ``−α_t w_y (1 − p_y)^γ log p_y`` (Lin et al., ICCV 2017, arXiv 1708.02002).

    This is the multiclass softmax form: ``p_y`` is the softmax probability of the true class. (smp's
    ``FocalLoss(mode="multiclass")`` is a one-vs-rest sigmoid focal loss instead.) ``γ = 0`` gives
    cross-entropy exactly, weights included.

    Convention for α: a scalar ``alpha`` is Lin et al.'s α-balanced form, ``α_t = α`` at pixels of a
    foreground class (every class but ``background``) and ``1 − α`` at background pixels; the mean divides
    by the number of labelled pixels (``Σ w_y`` with class weights), not by ``Σ α_t``, so α changes the
    value as in the paper: on two classes it equals ``torchvision.ops.sigmoid_focal_loss`` of the
    logit difference. ``weight`` is a per-class weight instead, normalised away in the mean
    ``Σ w_y ℓ / Σ w_y`` (a weight equal for every class changes nothing, so a scalar weight is refused).

    Args:
        gamma: focusing parameter ``γ ≥ 0``.
        alpha: Lin et al.'s balance ``α ∈ [0, 1]`` of foreground against background, or ``None`` (no α).
        weight: per-class weights: ``None``, a list of ``C`` values, ``"auto"`` or a scheme name.
        background: the class weighted ``1 − α`` (only read when ``alpha`` is given).
        beta: the ``effective`` weighting scheme's hyper-parameter.
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        weight: list[float] | str | None = None,
        beta: float = 0.999,
        ignore_index: int | None = None,
        alpha: float | None = None,
        background: int = 0,
    ) -> None:
        super().__init__(weight, beta, ignore_index)
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal alpha must be in [0, 1] (Lin et al.'s α-balanced form) or None, got {alpha}")
        self.gamma, self.alpha, self.background = gamma, alpha, background

    def pixel_losses(self, logits: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        labels, valid = self.split_target(target)
        log_p = logits.log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
        losses = -log_p
        if self.gamma:
            # 1 − p computed as −expm1(log p) stays accurate when p is close to 1.
            losses = losses * (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny) ** self.gamma
        if self.alpha is not None:
            losses = losses * torch.where(labels == self.background, 1.0 - self.alpha, self.alpha)
        return torch.where(valid, losses if weight is None else losses * weight[labels], 0.0)


class OhemCrossEntropyLoss(CrossEntropyLoss):
    """Cross-entropy over the hard pixels only: online hard example mining.

    Shrivastava et al., CVPR 2016, arXiv 1604.03540, in the pixel form of Wu et al., arXiv 1605.06885 (as
    used by PSPNet/OCNet code).

    A labelled pixel is kept when the softmax probability of its true class is below ``threshold``; when
    that keeps fewer than ``min_kept`` pixels, the ``min_kept`` pixels with the lowest probability are
    kept instead (all labelled pixels when there are fewer). The loss is the weighted mean over kept
    pixels.

    Args:
        threshold: probability under which a pixel counts as hard.
        min_kept: least number of pixels kept per batch.
        weight, label_smoothing, beta, ignore_index: as in :class:`CrossEntropyLoss`.
    """

    def __init__(
        self,
        threshold: float = 0.7,
        min_kept: int = 100_000,
        weight: list[float] | str | None = None,
        label_smoothing: float = 0.0,
        beta: float = 0.999,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(weight, label_smoothing, beta, ignore_index)
        if not 0.0 < threshold <= 1.0 or min_kept < 0:
            raise ValueError(f"OHEM needs 0 < threshold <= 1 and min_kept >= 0, got {threshold}, {min_kept}")
        self.threshold, self.min_kept = threshold, min_kept

    def reduce(self, losses: Tensor, weights: Tensor, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        with torch.no_grad():
            labels = self.split_target(target)[0]
            prob = logits.softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
            prob = torch.where(valid, prob, torch.inf).flatten()
            # A NaN probability (from a non-finite logit) is kept, so the loss is NaN too, never hidden.
            kept = (prob < self.threshold) | prob.isnan()
            hardest = prob.topk(min(self.min_kept, prob.numel()), largest=False).indices
            kept[hardest] = True
            kept &= valid.flatten()
        return super().reduce(
            torch.where(kept, losses.flatten(), 0.0), torch.where(kept, weights.flatten(), 0.0), logits, target, valid
        )


class TopKLoss(CrossEntropyLoss):
    """Cross-entropy over the ``k`` % labelled pixels with the highest loss.

    Convention: pixels are ranked by their *weighted* loss ``w_y ℓ_i`` (with class weights, a rare
    class's pixels are kept sooner), and the kept pixels' weighted mean is returned.

    Wu et al., "Bridging category-level and instance-level semantic image segmentation", arXiv
    1605.06885; the TopK loss of Ma et al.'s loss survey, arXiv 2005.13449.

    Args:
        k: percentage of labelled pixels kept, in ``(0, 100]`` (at least one pixel).
        weight, label_smoothing, beta, ignore_index: as in :class:`CrossEntropyLoss`.
    """

    def __init__(
        self,
        k: float = 10.0,
        weight: list[float] | str | None = None,
        label_smoothing: float = 0.0,
        beta: float = 0.999,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(weight, label_smoothing, beta, ignore_index)
        if not 0.0 < k <= 100.0:
            raise ValueError(f"TopK k is a percentage in (0, 100], got {k}")
        self.k = k

    def reduce(self, losses: Tensor, weights: Tensor, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        count = math.ceil(int(valid.sum()) * self.k / 100.0)
        ranked = torch.where(valid, losses, -1.0).flatten()
        top = ranked.topk(count).indices
        return super().reduce(losses.flatten()[top], weights.flatten()[top], logits, target, valid)
