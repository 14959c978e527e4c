"""Lovász-Softmax, evaluated by counting errors in bins instead of sorting them.

Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss", CVPR 2018, arXiv 1705.08790. For each class
``c`` the loss is the Lovász extension of the Jaccard loss evaluated at the pixel errors
``e_i = |[y_i = c] − p_ic|``. The paper evaluates it by sorting the errors (``O(P log P)`` per class),
which on a CPU costs 20–30 cross-entropies (``benchmarks/losses.py``). Written as an integral over thresholds,

    loss_c = ∫₀¹ J(t) dt,   J(t) = 1 − (G − A(t)) / (G + B(t)),

with ``G`` the class's pixels, ``A(t)`` and ``B(t)`` the class and non-class pixels whose error exceeds
``t``, the extension needs only how many errors fall above each threshold. :func:`lovasz_softmax` rounds
every error to a grid of ``1/bins`` and counts them with one ``bincount``: that is the exact extension at
the rounded errors, within ``1/(2·bins)`` of the sorted value (the extension is 1-Lipschitz in the max
norm because the Jaccard loss is monotone with ``Δ(all) ≤ 1``); the default ``bins = 2¹⁶`` gives 7.6e-6.
Each pixel's gradient is the extension's subgradient at the rounded errors, with tied errors of a class
ordered class pixels first and the non-class pixels of a tie given their average (also a subgradient).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from lightning_seg.losses.base import SegmentationLoss

DEFAULT_BINS = 2**16


class _BinnedLovasz(torch.autograd.Function):
    """Lovász-Softmax over all pixels of ``probs`` (``N×C×P``), classes with no labelled pixel skipped.

    The bins are kept in order of *decreasing* error (bin ``r`` holds errors ``≈ 1 − r/bins``), so the
    counts above a threshold are plain cumulative sums. Non-class pixels (error ``p``) land in the first
    ``C·(bins+1)`` bins, class pixels (error ``1 − p``) in the next ``C·(bins+1)``, ignored pixels in one
    last bin; the backward pass reads each pixel's gradient from a table laid out the same way.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, probs: Tensor, labels: Tensor, valid: Tensor, bins: int) -> Tensor:
        num_classes, width = probs.shape[1], bins + 1
        size = 2 * num_classes * width
        index_dtype = torch.int32 if size < 2**31 else torch.int64
        # Non-class bin of every pixel and class: r = round((1 − p)·bins), i.e. error p, decreasing.
        index = probs.mul(-bins).add_(bins + 0.5).to(index_dtype)
        index += torch.arange(0, num_classes * width, width, dtype=index_dtype, device=probs.device).view(1, -1, 1)
        # Each pixel's own class y moves to the second half: error 1 − p, bin bins − r, so the index
        # y·width + r becomes C·width + y·width + (bins − r).
        labels = labels.unsqueeze(1)
        own = (num_classes * width + bins) + 2 * width * labels.to(index_dtype) - index.gather(1, labels)
        index.scatter_(1, labels, own)
        image, pixel = (~valid).nonzero(as_tuple=True)
        index[image, :, pixel] = size

        # One buffer becomes, in place: the counts, the counts above each threshold, then the gradients.
        table = torch.bincount(index.flatten(), minlength=size + 1).to(probs.dtype)
        table[size] = 0  # the ignored pixels' bin
        union, missed = table[:size].view(2, num_classes, width).cumsum_(-1)  # B(t) and A(t) at each grid t
        total = missed[:, -1:].clone()  # G
        union.add_(total).clamp_min_(1)  # G + B(t)
        missed.neg_().add_(total).div_(union)  # (G − A) / (G + B) = 1 − J(t)
        per_class = 1 - missed[:, :bins].mean(-1)  # ∫ J(t) dt, J constant between grid points
        union_above = torch.cat([total, union[:, :-1]], -1).clamp_min_(1)  # G + B just above each bin

        present = (total.squeeze(-1) > 0).to(probs.dtype)
        weight = (present / present.sum().clamp_min(1)).unsqueeze(-1)
        torch.mul(missed, weight, out=union).div_(union_above)  # non-class pixel: w·(G − A)/((G + B⁻)(G + B))
        torch.div(-weight, union_above, out=missed)  # class pixel: w / (G + B⁻), negated as its error is 1 − p
        ctx.save_for_backward(index, table)
        return (weight.squeeze(-1) * per_class).sum()

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        index, table = ctx.saved_tensors
        grad = (table * grad_output).index_select(0, index.flatten()).view(index.shape)
        return grad, None, None, None


def lovasz_softmax(probs: Tensor, labels: Tensor, valid: Tensor, bins: int = DEFAULT_BINS) -> Tensor:
    """Lovász-Softmax of class probabilities, averaged over the classes present in ``labels``.

    Args:
        probs: softmax probabilities ``N×C×H×W`` (float32).
        labels: ``N×H×W`` int64 class indices (any valid class where ignored).
        valid: ``N×H×W`` bool, False where the pixel is ignored.
        bins: errors are rounded to multiples of ``1/bins`` (see the module docstring).

    Returns:
        A scalar; 0 with a zero gradient when no pixel is labelled.
    """
    num_images, num_classes = probs.shape[:2]
    return _BinnedLovasz.apply(
        probs.reshape(num_images, num_classes, -1), labels.reshape(num_images, -1), valid.reshape(num_images, -1), bins
    )


class LovaszSoftmaxLoss(SegmentationLoss):
    """Lovász-Softmax loss, a convex surrogate of the Jaccard index over the classes present in the batch.

    Berman et al., CVPR 2018, arXiv 1705.08790. By default evaluated without sorting
    (:func:`lovasz_softmax`: within ``1/(2·bins)`` of the sorted value, 2–3 cross-entropies on a CPU);
    ``bins=None`` sorts, through ``smp.losses.LovaszLoss``.

    Args:
        per_image: compute the loss per image and average over the images with a labelled pixel, instead
            of over the whole batch.
        bins: number of error bins (``2**16``: error ≤ 7.6e-6); ``None`` = exact sort (slow).
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    def __init__(
        self, per_image: bool = False, bins: int | None = DEFAULT_BINS, ignore_index: int | None = None
    ) -> None:
        super().__init__(ignore_index)
        if bins is not None and bins < 1:
            raise ValueError(f"bins must be a positive integer or None (exact sort), got {bins}")
        self.per_image = per_image
        self.bins = bins

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if not self.per_image:
            return self.batch_loss(logits, target)
        losses = [
            self.batch_loss(logits[i : i + 1], target[i : i + 1])
            for i in range(len(logits))
            if (target[i] != self.ignore_index).any()
        ]
        return torch.stack(losses).mean() if losses else logits.sum() * 0

    def batch_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss over all pixels of the batch."""
        if self.bins is None:
            exact = smp.losses.LovaszLoss("multiclass", ignore_index=self.ignore_index)
            # smp fails on float64; ``sum`` turns its empty result for an all-ignored batch into 0.
            return exact(logits.float(), target.long()).sum()
        labels, valid = self.split_target(target)
        return lovasz_softmax(logits.float().softmax(1), labels, valid, self.bins)
