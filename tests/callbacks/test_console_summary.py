"""The console summary after validation: mIoU, the worst classes, dead classes; short at 150 classes."""

from __future__ import annotations

import math

import numpy as np

from lightning_seg.cli import format_scores
from lightning_seg.metrics import SCORES

C = 150
NAMES = [f"class_{k}" for k in range(C)]


def logged(iou: np.ndarray, stage: str = "val") -> dict[str, float]:
    metrics = {f"{stage}/miou": float(np.nanmean(iou))}
    for score in SCORES:
        metrics |= {f"{stage}/{score}/{name}": float(v) for name, v in zip(NAMES, iou, strict=True)}
    return metrics


def test_summary_names_the_worst_and_the_dead_classes_only() -> None:
    iou = np.linspace(0.5, 0.99, C)
    iou[[30, 77, 120]] = 0.0  # IoU 0: 30 and 120 have training pixels, 77 has none
    iou[[5, 6]] = [0.1, 0.2]
    iou[[140, 141]] = math.nan  # neither present nor predicted
    train_pixels = np.full(C, 1000)
    train_pixels[77] = 0
    train_pixels[120] = 12
    text = format_scores(logged(iou), "val", NAMES, train_pixels, num_worst=5, table="runs/x/epoch_003.csv")
    lines = text.splitlines()
    assert lines[0] == f"val mIoU: {np.nanmean(iou):.3f} over 148 classes (2 neither in the val masks nor predicted)"
    assert lines[1] == "5 lowest IoU of 150 classes; every class: runs/x/epoch_003.csv"
    rows = [line.split()[0] for line in lines[3:8]]
    # Ties at 0 keep class order; then 0.1, 0.2.
    assert rows == ["class_30", "class_77", "class_120", "class_5", "class_6"]
    assert lines[3].split()[1:] == ["0.000"] * len(SCORES)
    dead = "'class_30' (1,000 training pixels), 'class_120' (12 training pixels)"
    assert lines[8] == f"IoU 0 with training pixels: {dead}"
    assert len(lines) == 9


def test_few_classes_are_all_listed_worst_first_and_without_statistics() -> None:
    names = NAMES[:3]
    iou = [0.7, 0.0, 0.5]
    metrics = {"test/miou": 0.4} | {f"test/{s}/{n}": v for s in SCORES for n, v in zip(names, iou, strict=True)}
    lines = format_scores(metrics, "test", names).splitlines()
    assert lines[0] == "test mIoU: 0.400 over 3 classes"
    assert lines[1] == "by IoU; every class: the loggers' test/<score>/<class>"
    assert [line.split()[0] for line in lines[3:6]] == ["class_1", "class_2", "class_0"]
    assert lines[6] == "IoU 0 (training pixels not known): 'class_1'"


def test_many_dead_classes_are_named_most_trained_first_then_counted() -> None:
    """At 150 classes early in training most classes can have IoU 0: the line must stay one readable line."""
    iou = np.zeros(C)
    iou[:10] = 0.5
    train_pixels = np.arange(C) * 10  # class 149 has the most training pixels
    train_pixels[50] = 0  # IoU 0 but never trained on: not named
    text = format_scores(logged(iou), "val", NAMES, train_pixels, num_worst=5)
    (line,) = [line for line in text.splitlines() if line.startswith("IoU 0")]
    named = [f"'class_{k}' ({10 * k:,} training pixels)" for k in range(149, 137, -1)]
    assert line == f"IoU 0 with training pixels: {', '.join(named)} and 127 more"
