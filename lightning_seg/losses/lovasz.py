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
norm because the Jaccard loss is monotone with ``Δ(all) ≤ 1``). Each pixel's gradient is the extension's
subgradient at the rounded errors, with tied errors of a class ordered class pixels first and the
non-class pixels of a tie given their average (also a subgradient).

The default ``bins = 2¹²`` bounds the value's error by 1.2e-4; measured on 4×C×256×256 batches
(``benchmarks/losses.py``) it is below 1e-6 against a float64 sort, and the gradient is closer to that
sort's (L1 error 1–4e-4) than smp's float32 sort is (2–4e-3). More bins cost more: the counts stop
fitting in the cache (2¹⁶ bins: 2.2–3.3 cross-entropies instead of 1.5–1.7).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from lightning_seg.losses.base import SegmentationLoss

DEFAULT_BINS = 2**12
#: Below this many labelled pixels in a batch, the exact sort is used (measured: see the module docstring).
EXACT_BELOW = 8192
MAX_BINS = 2**22  # round((1 − p)·bins) must stay below 2²² for the float32 rounding in the forward pass
_ROUND = 1.5 * 2**23
_ROUND_BITS = 0x4B400000  # the int32 bits of the float32 1.5·2²³


class _BinnedLovasz(torch.autograd.Function):
    """Lovász-Softmax of ``probs`` (``N×C×P``) over the batch or per image, absent classes skipped.

    The bins are kept in order of *decreasing* error (bin ``r`` holds errors ``≈ 1 − r/bins``), so the
    counts above a threshold are plain cumulative sums. Each group of pixels (the batch, or one image)
    has ``2·C·(bins+1)`` bins: non-class pixels (error ``p``) in the first ``C·(bins+1)``, class pixels
    (error ``1 − p``) in the next ``C·(bins+1)``; ignored pixels go to one last bin. The backward pass
    reads each pixel's gradient from a table laid out the same way.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, probs: Tensor, labels: Tensor, valid: Tensor, bins: int, per_image: bool) -> Tensor:
        num_images, num_classes, width = probs.shape[0], probs.shape[1], bins + 1
        groups = num_images if per_image else 1
        size = 2 * num_classes * width
        int32 = {"dtype": torch.int32, "device": probs.device}
        group_start = torch.arange(0, groups * size, size, **int32).view(-1, 1, 1)  # the batch's, or each image's
        class_start = torch.arange(0, num_classes * width, width, **int32).view(-1, 1)
        # Non-class bin of every pixel and class: r = round((1 − p)·bins), i.e. error p, decreasing. Adding
        # 1.5·2²³ leaves r in the low mantissa bits of the float32 sum (floats in [2²³, 2²⁴) are the
        # integers), so reading those bits as int32 converts without a new C×P tensor. The clamp keeps NaN
        # probabilities (from non-finite logits) inside the table; the returned value is then NaN, as CE's.
        index = torch.rsub(probs, _ROUND + bins, alpha=bins).view(torch.int32).sub_(_ROUND_BITS).clamp_(0, bins)
        index += group_start + class_start
        # Each pixel's own class y moves to the second half: error 1 − p, bin bins − r, so the index
        # start + y·width + r becomes start + C·width + y·width + (bins − r).
        labels = labels.unsqueeze(1)
        nan_if_any = torch.where(valid, probs.gather(1, labels).squeeze(1), 0).sum() * 0
        own = (num_classes * width + bins) + 2 * (width * labels.int() + group_start) - index.gather(1, labels)
        index.scatter_(1, labels, own)
        image, pixel = (~valid).nonzero(as_tuple=True)
        index[image, :, pixel] = groups * size

        # One buffer becomes, in place: the counts, the counts above each threshold, then the gradients.
        table = torch.bincount(index.flatten(), minlength=groups * size + 1).to(probs.dtype)
        table[-1] = 0  # the ignored pixels' bin
        counts = table[:-1].view(groups, 2, num_classes, width).cumsum_(-1)
        union, missed = counts.unbind(1)  # B(t) and A(t) at each grid t, per group and class
        total = missed[..., -1:].clone()  # G
        union.add_(total).clamp_min_(1)  # G + B(t)
        missed.neg_().add_(total).div_(union)  # (G − A) / (G + B) = 1 − J(t)
        per_class = 1 - missed[..., :bins].mean(-1)  # ∫ J(t) dt, J constant between grid points
        union_above = torch.cat([total, union[..., :-1]], -1).clamp_min_(1)  # G + B just above each bin

        # Mean over the present classes of each group, then over the groups with a present class.
        present = (total.squeeze(-1) > 0).to(probs.dtype)
        classes = present.sum(-1, keepdim=True)
        weight = (present / classes.clamp_min(1) / (classes > 0).sum().clamp_min(1)).unsqueeze(-1)
        torch.mul(missed, weight, out=union).div_(union_above)  # non-class pixel: w·(G − A)/((G + B⁻)(G + B))
        torch.div(-weight, union_above, out=missed)  # class pixel: w / (G + B⁻), negated as its error is 1 − p
        ctx.save_for_backward(index, table)
        return (weight.squeeze(-1) * per_class).sum() + nan_if_any

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        index, table = ctx.saved_tensors
        grad = (table * grad_output).index_select(0, index.flatten()).view(index.shape)
        return grad, None, None, None, None


def _check_bins(bins: int, num_classes: int = 1, groups: int = 1) -> None:
    """Raise ``ValueError`` unless ``bins`` fits the binned evaluation (one int32 index per error)."""
    if not 1 <= bins <= MAX_BINS or 2 * groups * num_classes * (bins + 1) >= 2**31:
        raise ValueError(
            f"bins must be an integer from 1 to {MAX_BINS} with 2·classes·(bins + 1) < 2^31 (× images when "
            f"per image), or None (exact sort); got bins={bins} with {num_classes} classes"
            + (f" × {groups} images" if groups > 1 else "")
        )


def lovasz_softmax(
    probs: Tensor, labels: Tensor, valid: Tensor, bins: int = DEFAULT_BINS, per_image: bool = False
) -> Tensor:
    """Lovász-Softmax of class probabilities, averaged over the classes present in ``labels``.

    Args:
        probs: softmax probabilities ``N×C×H×W`` (computed in float32).
        labels: ``N×H×W`` int64 class indices (any valid class where ignored).
        valid: ``N×H×W`` bool, False where the pixel is ignored.
        bins: errors are rounded to multiples of ``1/bins`` (see the module docstring), at most
            ``MAX_BINS`` with ``2·C·(bins + 1) < 2³¹`` (``2·N·C·(bins + 1)`` per image).
        per_image: one loss per image (over the classes present in it), averaged over the images that have
            a labelled pixel, all counted in one ``bincount``.

    Returns:
        A scalar; 0 with a zero gradient when no pixel is labelled.
    """
    num_images, num_classes = probs.shape[:2]
    _check_bins(bins, num_classes, num_images if per_image else 1)
    probs = probs.float().reshape(num_images, num_classes, -1)
    labels, valid = labels.reshape(num_images, -1), valid.reshape(num_images, -1)
    return _BinnedLovasz.apply(probs, labels, valid, bins, per_image)


class LovaszSoftmaxLoss(SegmentationLoss):
    """Lovász-Softmax loss, a convex surrogate of the Jaccard index over the classes present in the batch.

    Berman et al., CVPR 2018, arXiv 1705.08790. By default evaluated without sorting
    (:func:`lovasz_softmax`: within ``1/(2·bins)`` of the sorted value, 1.5–1.7 cross-entropies on a CPU);
    ``bins=None`` sorts, through ``smp.losses.LovaszLoss``.

    Args:
        per_image: compute the loss per image and average over the images with a labelled pixel, instead
            of over the whole batch.
        bins: number of error bins (``2**12``: value error ≤ 1/(2·bins) = 1.2e-4); ``None`` = always sort.
        exact_below: a batch with fewer labelled pixels than this is evaluated by the exact sort instead of
            bins (see the module docstring for the measurement behind the default); 0 = never.
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` (int64) → scalar.
    """

    def __init__(
        self,
        per_image: bool = False,
        bins: int | None = DEFAULT_BINS,
        ignore_index: int | None = None,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        super().__init__(ignore_index)
        if bins is not None:
            _check_bins(bins)
        if exact_below < 0:
            raise ValueError(f"exact_below is a number of labelled pixels >= 0, got {exact_below}")
        self.per_image = per_image
        self.bins = bins
        self.exact_below = exact_below

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        labels, valid = self.split_target(target)
        if self.bins is not None and not (self.exact_below and int(valid.sum()) < self.exact_below):
            return lovasz_softmax(logits.float().softmax(1), labels, valid, self.bins, self.per_image)
        if not self.per_image:
            return self.sorted_loss(logits, target)
        # smp's own per-image mode fails on an image without labelled pixels: leave those out here.
        losses = [
            self.sorted_loss(logits[i : i + 1], target[i : i + 1])
            for i in range(len(logits))
            if (target[i] != self.ignore_index).any()
        ]
        return torch.stack(losses).mean() if losses else logits.sum() * 0

    def sorted_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The exact loss over all pixels of the batch, by smp's sort."""
        exact = smp.losses.LovaszLoss("multiclass", ignore_index=self.ignore_index)
        # smp fails on float64; ``sum`` turns its empty result for an all-ignored batch into 0.
        return exact(logits.float(), target.long()).sum()
