"""Region-based losses: Dice, Tversky, focal Tversky and generalised Dice (Lovász-Softmax: :mod:`.lovasz`).

Dice, Tversky, focal Tversky and GDL share :class:`RegionLoss`, which gathers per-class soft counts over
the batch without building a one-hot tensor (about half the time of smp's one-hot path); each overrides
one hook. Their values equal segmentation-models-pytorch 0.6's multiclass losses, smoothing included
(checked in the tests), and so do the conventions: scores are computed over the whole batch; a class
with no labelled pixel in the batch contributes 0 to the mean over classes (it is not penalised, and
still counts in the denominator); ignored pixels are removed from both prediction and ground truth.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor

from lightning_seg.losses.base import ClassWeightedLoss


class RegionLoss(ClassWeightedLoss):
    """Base class: a loss computed from per-class soft counts over the batch's labelled pixels.

    ``tp_k = Σ_i p_ik g_ik``, ``predicted_k = Σ_i p_ik`` and ``truth_k = Σ_i g_ik`` (so
    ``FP = predicted − tp``, ``FN = truth − tp``), with ``p`` the softmax in float32.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    @abstractmethod
    def combine(self, tp: Tensor, predicted: Tensor, truth: Tensor, weight: Tensor | None) -> Tensor:
        """Turn the per-class counts (each of length ``C``) into the scalar loss."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        weight = self.class_weight(logits.shape[1])
        labels, valid = self.split_target(target)
        mask = valid.to(logits.dtype)
        probs = torch.where(valid.unsqueeze(1), logits.softmax(1), 0.0)
        num_classes = probs.shape[1]
        predicted = probs.sum((0, 2, 3))
        hits = probs.gather(1, labels.unsqueeze(1)).flatten()
        tp = hits.new_zeros(num_classes).scatter_add(0, labels.flatten(), hits)
        truth = mask.new_zeros(num_classes).scatter_add(0, labels.flatten(), mask.flatten())
        return self.combine(tp, predicted, truth, weight)


class DiceLoss(RegionLoss):
    """Soft Dice loss ``1 − (2|P∩G| + 2s) / (|P| + |G| + 2s)`` per class, averaged over classes.

    Milletari et al., V-Net, arXiv 1606.04797; equals ``smp.losses.DiceLoss("multiclass", smooth=s)``.

    Convention for ``smooth``: smp 0.6's, whose Dice is its Tversky score with ``α = β = 1/2``,
    ``(I + s) / (I + FP/2 + FN/2 + s)``, i.e. ``2s`` is added to the numerator and the denominator of
    ``2I / (|P| + |G|)`` (MONAI's ``smooth_nr = smooth_dr = s'`` is ``s = s'/2`` here).

    Args:
        weight: ``None``, a list of ``C`` class weights, ``"auto"`` or a scheme name (weighted class mean).
        smooth: ``s`` above.
        log_loss: use ``−log(score)`` instead of ``1 − score``.
        eps: lower bound of the denominator.
        beta, ignore_index: as in :class:`~lightning_seg.losses.base.ClassWeightedLoss`.
    """

    def __init__(
        self,
        weight: list[float] | str | None = None,
        smooth: float = 0.0,
        log_loss: bool = False,
        eps: float = 1e-7,
        beta: float = 0.999,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(weight, beta, ignore_index)
        self.smooth, self.log_loss, self.eps = smooth, log_loss, eps

    def score(self, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        """Per-class score in ``[0, 1]`` from soft true positives, false positives and false negatives."""
        return (tp + self.smooth) / (tp + 0.5 * fp + 0.5 * fn + self.smooth).clamp_min(self.eps)

    def class_losses(self, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        """Per-class losses from the scores."""
        score = self.score(tp, fp, fn)
        return -torch.log(score.clamp_min(self.eps)) if self.log_loss else 1.0 - score

    def combine(self, tp: Tensor, predicted: Tensor, truth: Tensor, weight: Tensor | None) -> Tensor:
        losses = self.class_losses(tp, predicted - tp, truth - tp) * (truth > 0)
        if weight is None:
            return losses.mean()
        weight = weight.to(losses.dtype)
        return (losses * weight).sum() / weight.sum()


class TverskyLoss(DiceLoss):
    """Tversky loss ``1 − TP / (TP + α·FP + β·FN)`` per class; ``α = β = 0.5`` is Dice.

    Salehi et al., MLMI 2017, arXiv 1706.05721; equals ``smp.losses.TverskyLoss("multiclass")``.

    Args:
        alpha: weight of false positives.
        beta_fn: weight of false negatives (named so as not to clash with the weighting scheme's ``beta``).
        **kwargs: ``weight``, ``smooth``, ``log_loss``, ``eps``, ``beta``, ``ignore_index`` as in :class:`DiceLoss`.
    """

    def __init__(self, alpha: float = 0.3, beta_fn: float = 0.7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha, self.beta_fn = alpha, beta_fn

    def score(self, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        return (tp + self.smooth) / (tp + self.alpha * fp + self.beta_fn * fn + self.smooth).clamp_min(self.eps)


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``mean_c (1 − TI_c)^(1/γ)`` (Abraham & Khan, ISBI 2019, arXiv 1810.07842).

    The exponent applies to each class's loss, as in the paper (smp's Tversky ``gamma`` raises the class
    mean instead). The paper's best setting is the default: ``γ = 4/3``, false negatives weighted 0.7.

    Args:
        gamma: the focal parameter ``γ > 0`` (the per-class loss is raised to ``1/γ``).
        **kwargs: ``alpha``, ``beta_fn``, ``weight``, ``smooth``, ... as in :class:`TverskyLoss`.
    """

    def __init__(self, gamma: float = 4.0 / 3.0, **kwargs: Any) -> None:
        if gamma <= 0:
            raise ValueError(f"focal Tversky gamma must be > 0, got {gamma}")
        super().__init__(**kwargs)
        self.gamma = gamma

    def class_losses(self, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        losses = super().class_losses(tp, fp, fn)
        # The clamp keeps the gradient of x**e (e < 1) finite where a class loss is exactly 0.
        powered = losses.clamp_min(torch.finfo(losses.dtype).tiny) ** (1.0 / self.gamma)
        # Exactly 0 where the class loss is 0; a NaN class loss stays NaN.
        return torch.where(losses == 0, 0.0, powered)


class GeneralizedDiceLoss(RegionLoss):
    """Generalised Dice loss (Sudre et al., DLMIA 2017, arXiv 1707.03237).

    ``GDL = 1 − 2 Σ_k w_k Σ_i p_ik g_ik / Σ_k w_k Σ_i (p_ik + g_ik)`` with ``w_k = 1 / (Σ_i g_ik)²``, sums
    over the batch's labelled pixels.

    Empty classes: a class with no labelled pixel in the batch would get ``w_k = ∞``; it gets the largest
    weight of the present classes instead (MONAI's convention), so predicting it is penalised like
    missing the rarest present class. Since GDL does not change when every weight is scaled, the weights
    are divided by their maximum (no underflow, no smoothing term needed). A batch with no labelled pixel
    gives 0.

    Args:
        ignore_index: ``None`` = the dataset's.
    """

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__(None, ignore_index=ignore_index)

    def combine(self, tp: Tensor, predicted: Tensor, truth: Tensor, weight: Tensor | None) -> Tensor:
        present = truth > 0
        volume_weight = torch.where(present, truth.clamp_min(1.0).pow(-2), 0.0)
        volume_weight = torch.where(present, volume_weight, volume_weight.max())
        volume_weight = volume_weight / volume_weight.max().clamp_min(torch.finfo(truth.dtype).tiny)
        overlap = 2.0 * (volume_weight * tp).sum()
        total = (volume_weight * (predicted + truth)).sum()
        return (total - overlap) / total.clamp_min(torch.finfo(total.dtype).tiny)
