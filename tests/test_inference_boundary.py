"""Boundary F1 / IoU worked by hand, and HD95 against MONAI's compute_hausdorff_distance(percentile=95)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance

from lightning_seg.boundary_metrics import BoundaryMetrics, boundary_counts
from lightning_seg.cli import format_scores


def _square(top: int, left: int, size: int = 4, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_boundary_f1_and_iou_of_a_shifted_square_by_hand():
    true, pred = _square(2, 2), _square(2, 3)  # 4×4 squares, one pixel apart; each boundary has 12 pixels
    exact = boundary_counts(pred, true, tolerance=0)
    # Only the top and bottom rows overlap on 3 pixels each: 6 of 12 boundary pixels match either way.
    assert (exact["pred_edges"], exact["pred_matched"], exact["true_matched"]) == (12, 6, 6)
    assert boundary_counts(pred, true, tolerance=1)["pred_matched"] == 12  # every pixel is within 1
    # Bands of width 1 are the two 12-pixel rings, which share 6 pixels: 6 / 18.
    ring = boundary_counts(pred, true, tolerance=1)
    assert ring["band_inter"] / ring["band_union"] == pytest.approx(1 / 3)
    # A band wider than the squares is the squares themselves: IoU 12 / 20.
    wide = boundary_counts(pred, true, tolerance=10)
    assert wide["band_inter"] / wide["band_union"] == pytest.approx(0.6)

    metric = BoundaryMetrics(2, class_names=["bg", "square"], tolerance=0)
    metric.update(torch.from_numpy(pred).long()[None], torch.from_numpy(true).long()[None])
    scores = metric.compute_scores()
    assert scores["bf1/square"].item() == pytest.approx(0.5)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    """A label map of random rectangles and a thin line, so classes have varied boundaries."""
    labels = np.zeros(shape, dtype=np.int64)
    for _ in range(6):
        cls = int(rng.integers(1, num_classes))
        top, left = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
        labels[top : top + rng.integers(2, 12), left : left + rng.integers(2, 12)] = cls
    labels[int(rng.integers(0, shape[0])), :] = num_classes - 1  # a one-pixel-thin structure
    return labels


def test_hd95_matches_monai_per_image_and_class():
    rng = np.random.default_rng(0)
    num_classes, shape = 4, (32, 40)
    true = np.stack([_blobs(rng, shape, num_classes) for _ in range(4)])
    pred = np.stack([_blobs(rng, shape, num_classes) for _ in range(3)] + [np.zeros(shape, dtype=np.int64)])
    true[2][true[2] == 2] = 0  # class 2 absent from one ground truth
    one_hot = [torch.from_numpy(np.eye(num_classes)[a].transpose(0, 3, 1, 2)) for a in (pred, true)]
    with pytest.warns(UserWarning):  # MONAI warns about the empty masks
        monai = compute_hausdorff_distance(*one_hot, include_background=True, percentile=95).numpy()
    ours = np.full_like(monai, np.nan)
    for image in range(len(true)):
        for cls in range(num_classes):
            counts = boundary_counts(pred[image] == cls, true[image] == cls, tolerance=2)
            if counts["hd_images"]:
                ours[image, cls] = counts["hd_sum"]
    assert np.isnan(monai).any()  # the empty cases are exercised: MONAI gives NaN, we give no distance
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(monai))
    np.testing.assert_allclose(ours[~np.isnan(ours)], monai[~np.isnan(monai)], rtol=1e-5)

    metric = BoundaryMetrics(num_classes)
    metric.update(torch.from_numpy(pred[:2]), torch.from_numpy(true[:2]))
    metric.update(torch.from_numpy(pred[2:]), torch.from_numpy(true[2:]))
    np.testing.assert_allclose(metric.compute()["hd95"].numpy(), np.nanmean(monai, axis=0), rtol=1e-5)


def test_ignored_pixels_and_absent_classes():
    true = torch.zeros(1, 10, 10, dtype=torch.long)
    true[0, 2:6, 2:6] = 1
    pred = true.clone()
    pred[0, 8:, 8:] = 1  # a false object, but under ignored pixels
    true[0, 7:, 7:] = 255
    metric = BoundaryMetrics(3, class_names=["bg", "obj", "absent"])
    metric.update(pred, true)
    scores = metric.compute_scores()
    assert scores["bf1/obj"] == 1 and scores["biou/obj"] == 1 and scores["hd95/obj"] == 0
    assert all(math.isnan(scores[f"{s}/absent"]) for s in ("bf1", "biou", "hd95"))
    missed = BoundaryMetrics(2)
    missed.update(torch.zeros(1, 10, 10, dtype=torch.long), true.clamp_max(1))
    assert missed.compute()["bf1"][1] == 0 and math.isnan(missed.compute()["hd95"][1])


def test_the_per_class_table_shows_boundary_columns_when_logged():
    metrics = {"test/miou": 0.5, "test/iou/a": 0.4, "test/iou/b": 0.6, "test/bf1/a": 0.25, "test/hd95/b": 3.5}
    table = format_scores(metrics, "test", ["a", "b"])
    header = next(line for line in table.splitlines() if line.startswith("class"))
    assert header.split() == ["class", "iou", "dice", "precision", "recall", "bf1", "biou", "hd95"]
    assert "0.250" in table and "3.500" in table
    assert "bf1" not in format_scores({"val/miou": 0.5, "val/iou/a": 0.5}, "val", ["a"])
