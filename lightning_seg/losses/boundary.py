"""Boundary-based losses that read the ground truth's signed distance map (``dist_map`` in the batch).

Both read ``(logits, dist_map, mask)``: the map from the data workers
(:func:`~lightning_seg.losses.distance.signed_distance_map`, which is 0 at ignored pixels; a map from
elsewhere must keep that convention) and the mask to leave ignored pixels out of the mean, so they
contribute neither value nor gradient.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from torch import Tensor

from lightning_seg.losses.base import SegmentationLoss
from lightning_seg.losses.distance import signed_distance_map
from lightning_seg.metrics import class_map


class DistanceMapLoss(SegmentationLoss):
    """Base class: a per-pixel, per-class term averaged over labelled pixels and the chosen classes.

    Args:
        classes: the classes the loss covers; ``None`` = every class but 0 (the background, which would
            otherwise dominate).
        ignore_index: ``None`` = the dataset's.

    Shape:
        logits ``N×C×H×W``, dist_map ``N×C×H×W`` float, mask ``N×H×W`` (int64) → scalar.
    """

    required_targets = frozenset({"dist_map"})
    reads = ("dist_map", "mask")

    def __init__(self, classes: list[int] | None = None, ignore_index: int | None = None) -> None:
        super().__init__(ignore_index)
        self.classes = None if classes is None else list(classes)

    def chosen(self, num_classes: int) -> list[int]:
        """Return the classes the loss covers for a ``num_classes``-channel prediction."""
        classes = list(range(1, num_classes)) if self.classes is None else self.classes
        bad = [k for k in classes if not 0 <= k < num_classes]
        if bad or not classes:
            raise ValueError(f"{type(self).__name__}: classes {classes} must be non-empty, in [0, {num_classes})")
        return classes

    @abstractmethod
    def summed_terms(self, probs: Tensor, dist_map: Tensor, target: Tensor, classes: slice | list[int]) -> Tensor:
        """Sum of the per-pixel, per-class values over labelled pixels and the ``classes`` channels."""

    def forward(self, logits: Tensor, dist_map: Tensor, target: Tensor) -> Tensor:
        if dist_map.shape != logits.shape:
            raise ValueError(
                f"{type(self).__name__}: dist_map shape {tuple(dist_map.shape)} differs from the logits' "
                f"{tuple(logits.shape)}"
            )
        classes = self.chosen(logits.shape[1])
        # A run of consecutive classes (the default 1..C−1) is a slice: a view, not a copy.
        index = slice(classes[0], classes[-1] + 1) if classes == list(range(classes[0], classes[-1] + 1)) else classes
        probs = logits.softmax(1)
        count = (target != self.ignore_index).sum() * len(classes)
        return self.summed_terms(probs, dist_map.to(probs.dtype), target, index) / count.clamp_min(1)


class BoundaryLoss(DistanceMapLoss):
    """Boundary loss ``mean(p_k · φ_k)`` over pixels and chosen classes.

    Kervadec et al., MIDL 2019, arXiv 1812.07032; ``φ_k`` is the ground truth's signed distance map.
    It is negative for good predictions and smallest for a perfect one; the paper pairs it with GDL
    under :class:`~lightning_seg.losses.schedules.Rebalance`.
    """

    def summed_terms(self, probs: Tensor, dist_map: Tensor, target: Tensor, classes: slice | list[int]) -> Tensor:
        # The map is 0 at ignored pixels (signed_distance_map's convention), so they add no value and no
        # gradient without a mask.
        return (probs[:, classes] * dist_map[:, classes]).sum()


class HausdorffDTLoss(DistanceMapLoss):
    """Hausdorff distance loss, distance-transform form: ``mean((p_k − g_k)² · (d_G,k^α + d_P,k^α))``.

    Karimi & Salcudean, IEEE TMI 2019, arXiv 1904.10030.

    ``d_G,k = |φ_k|`` is the ground truth's unsigned distance to its boundary (from ``dist_map``) and
    ``d_P,k`` the same for the current arg-max prediction (ignored pixels count as outside every class),
    computed without gradient on the CPU each step, as in the paper.

    Convention: distances are ``edt`` outside a class and ``edt − 1`` inside it (0 on the inner boundary
    ring, the signed map's convention), and the prediction's regions come from the arg-max. MONAI's
    ``HausdorffDTLoss`` (adapted from github.com/PatRyg99/HausdorffLoss, after the paper) uses ``edt``
    inside and thresholds each class's probability at 0.5 instead; both are pinned in the tests
    (``tests/losses/test_boundary.py``). Karimi's own code was not available to compare.

    Args:
        alpha: the exponent of the distances.
        classes, ignore_index: as in :class:`DistanceMapLoss`.
    """

    def __init__(self, alpha: float = 2.0, classes: list[int] | None = None, ignore_index: int | None = None):
        super().__init__(classes, ignore_index)
        self.alpha = alpha

    def prediction_distances(self, probs: Tensor, target: Tensor) -> Tensor:
        """Return ``|φ|`` of the arg-max prediction, ``N×C×H×W``.

        Pixels ignored in ``target`` are ignored there too, so their predictions never move the
        distances of labelled pixels.
        """
        labels = torch.where(target == self.ignore_index, -1, class_map(probs)).cpu().numpy()
        maps = np.stack([signed_distance_map(m, probs.shape[1], ignore_index=-1) for m in labels])
        return torch.from_numpy(maps).to(probs.device, probs.dtype).abs()

    def summed_terms(self, probs: Tensor, dist_map: Tensor, target: Tensor, classes: slice | list[int]) -> Tensor:
        truth, valid = self.one_hot(target, probs.shape[1], probs.dtype)
        predicted = self.prediction_distances(probs, target)[:, classes]
        distances = dist_map[:, classes].abs() ** self.alpha + predicted**self.alpha
        terms = (probs[:, classes] - truth[:, classes]) ** 2 * distances
        return torch.where(valid.unsqueeze(1), terms, 0.0).sum()
