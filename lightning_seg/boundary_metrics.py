"""Metrics for thin and rare structures: boundary F1, boundary IoU and the 95th-percentile Hausdorff distance.

Per class, over a whole stage:

- **Boundary F1** (the BF score of Csurka et al. 2013): a predicted boundary pixel is correct when a
  true boundary pixel lies within ``tolerance`` pixels, and conversely; precision and recall are summed
  over the stage's images, F1 is their harmonic mean.
- **Boundary IoU** (Cheng et al. 2021): the IoU of the inner bands of the true and predicted masks, a
  band being the pixels of a mask within ``tolerance`` pixels (Euclidean) of its background; the
  intersections and unions are summed over the stage.
- **HD95**: the symmetric 95th-percentile Hausdorff distance between the boundaries of the true and
  predicted masks of one image, as MONAI's ``compute_hausdorff_distance(percentile=95)`` computes it
  (boundary = a mask minus its erosion, image borders count as background), averaged over the images in
  which the class is both present and predicted. An image where either is empty has no distance (NaN in
  MONAI) and is left out of the mean; read HD95 next to recall and IoU, which count those images.

Pixels labelled ``ignore_index`` are removed from both masks first. A class that is neither present
nor predicted in the whole stage scores NaN (skipped by the means), as in :mod:`lightning_seg.metrics`.
Distances are computed with SciPy on the CPU, on each class's bounding box only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric

BOUNDARY_SCORES = ("bf1", "biou", "hd95")
_COUNTS = (
    "pred_edges",
    "pred_matched",
    "true_edges",
    "true_matched",
    "band_inter",
    "band_union",
    "hd_sum",
    "hd_images",
)


def _edges(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: the mask minus its 3×3-cross erosion (outside the array is background)."""
    return mask ^ ndimage.binary_erosion(mask)


def _inner_band(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels of ``mask`` within ``tolerance`` of its background (the array's border counts as background)."""
    padded = np.pad(mask, 1)
    return mask & (ndimage.distance_transform_edt(padded)[1:-1, 1:-1] <= tolerance)


def boundary_counts(pred: np.ndarray, true: np.ndarray, tolerance: float) -> dict[str, float]:
    """The sums behind boundary F1 / IoU and one image's HD95 for one class.

    Args:
        pred: predicted mask of the class, ``H×W`` bool.
        true: true mask of the class, ``H×W`` bool.
        tolerance: distance in pixels within which boundaries match.

    Returns:
        the counts of :data:`_COUNTS`; ``hd_sum`` is this image's HD95 and ``hd_images`` 1 when both masks
        are non-empty, else both 0.
    """
    counts = dict.fromkeys(_COUNTS, 0.0)
    union = pred | true
    if not union.any():
        return counts
    rows, cols = np.nonzero(union)
    # The bounding box, one pixel wider where the image allows: distances between boundaries inside it are
    # the same as in the whole image, and the erosion sees the same neighbours.
    top, left = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    box = np.s_[top : rows.max() + 2, left : cols.max() + 2]
    pred, true = pred[box], true[box]
    pred_edges, true_edges = _edges(pred), _edges(true)
    band_pred, band_true = _inner_band(pred, tolerance), _inner_band(true, tolerance)
    counts["band_inter"] = float((band_pred & band_true).sum())
    counts["band_union"] = float((band_pred | band_true).sum())
    counts["pred_edges"], counts["true_edges"] = float(pred_edges.sum()), float(true_edges.sum())
    if not (pred_edges.any() and true_edges.any()):
        return counts
    to_true = ndimage.distance_transform_edt(~true_edges)[pred_edges]
    to_pred = ndimage.distance_transform_edt(~pred_edges)[true_edges]
    counts["pred_matched"] = float((to_true <= tolerance).sum())
    counts["true_matched"] = float((to_pred <= tolerance).sum())
    counts["hd_sum"] = float(max(np.percentile(to_true, 95), np.percentile(to_pred, 95)))
    counts["hd_images"] = 1.0
    return counts


class BoundaryMetrics(Metric):
    """Per-class boundary F1, boundary IoU and HD95 accumulated over a stage (see the module docstring).

    Args:
        num_classes: number of classes.
        ignore_index: target value removed from both masks.
        class_names: names used in the keys (``bf1/<name>``); default ``class_0``, ``class_1``, ...
        tolerance: boundary match distance in pixels (boundary F1 and boundary IoU).

    Shape:
        update(preds ``N×H×W`` int64, target ``N×H×W`` int64).
    """

    full_state_update = False

    def __init__(
        self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None, tolerance: float = 2
    ) -> None:
        super().__init__()
        if tolerance < 0:
            raise ValueError(f"boundary tolerance must be 0 or more pixels, got {tolerance}")
        names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"got {len(names)} class names {names} for num_classes={num_classes}")
        self.num_classes, self.ignore_index, self.class_names, self.tolerance = (
            num_classes,
            ignore_index,
            names,
            tolerance,
        )
        for name in _COUNTS:
            self.add_state(name, torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        preds_np, target_np = preds.detach().cpu().numpy(), target.detach().cpu().numpy()
        sums = np.zeros((len(_COUNTS), self.num_classes))
        for pred, true in zip(preds_np, target_np, strict=True):
            valid = true != self.ignore_index
            for cls in range(self.num_classes):
                counts = boundary_counts((pred == cls) & valid, true == cls, self.tolerance)
                sums[:, cls] += [counts[name] for name in _COUNTS]
        for name, row in zip(_COUNTS, sums, strict=True):
            getattr(self, name).add_(torch.from_numpy(row).to(self.device))

    def compute(self) -> dict[str, Tensor]:
        """Per-class ``bf1``, ``biou`` and ``hd95`` (each ``C``, NaN where undefined)."""

        def ratio(num: Tensor, den: Tensor) -> Tensor:
            return torch.where(den > 0, num / den.clamp_min(1e-12), torch.full_like(num, float("nan")))

        precision = ratio(self.pred_matched, self.pred_edges)
        recall = ratio(self.true_matched, self.true_edges)
        # A class with boundaries on one side only has precision or recall 0, hence F1 0.
        f1 = ratio(2 * precision.nan_to_num(0) * recall.nan_to_num(0), precision.nan_to_num(0) + recall.nan_to_num(0))
        f1 = torch.where((self.pred_edges + self.true_edges) > 0, f1.nan_to_num(0), f1)
        return {"bf1": f1, "biou": ratio(self.band_inter, self.band_union), "hd95": ratio(self.hd_sum, self.hd_images)}

    def compute_scores(self) -> dict[str, Tensor]:
        """A flat dict: ``bf1/<name>``, ``biou/<name>``, ``hd95/<name>``; means ``mbf1``, ``mbiou``, ``mhd95``."""
        flat: dict[str, Tensor] = {}
        for score, values in self.compute().items():
            flat[f"m{score}"] = torch.nanmean(values).float()
            for name, value in zip(self.class_names, values, strict=True):
                flat[f"{score}/{name}"] = value.float()
        return flat
