"""The diagnostics at 150 classes: bounded figures, files written, the focus classes chosen right."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from torch import nn

from lightning_seg.callbacks import (
    ClassDistribution,
    ConfusionMatrix,
    LossBreakdown,
    PerClassMetrics,
    PredictionGallery,
)
from lightning_seg.callbacks.confusion_matrix import focus_classes
from lightning_seg.figures.confusion_matrix import top_confusions
from lightning_seg.module import SegmentationModule
from tests.callbacks.conftest import ManyClassDataModule, quiet_trainer

C = 150
MAX_SIDE = 2000  # pixels, at the default dpi


def crafted_confusion() -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Every class right except a few whose pixels go to class 0 (a million pixels, IoU about 1).

    Class ``c`` in ``WRONG`` keeps the fraction ``WRONG[c]`` of its 1,000 pixels: its IoU is that fraction
    (no other class is predicted as it). Class 17 is spread over four others.
    """
    confusion = np.diag(np.full(C, 1000, np.int64))
    confusion[0, 0] = 1_000_000
    wrong = {40: 0.1, 7: 0.2, 133: 0.3, 90: 0.4, 12: 0.5}
    for c, kept in wrong.items():
        confusion[c, c] = int(1000 * kept)
        confusion[c, 0] = 1000 - confusion[c, c]
    confusion[17, 17], confusion[17, [3, 8, 9, 11]] = 400, [300, 150, 100, 50]  # IoU 0.4 as well
    confusion[64] = 0  # no validation pixel: never a focus row, however rare
    # Training pixels: the rarest are 64 (absent from validation), then 101, 5, 149, 33.
    rarity = np.full(C, 10_000)
    rarity[[64, 101, 5, 149, 33]] = [1, 2, 3, 4, 5]
    return confusion, rarity, wrong


def test_worst_and_rarest_selection_on_a_crafted_matrix() -> None:
    confusion, rarity, _ = crafted_confusion()
    focus = focus_classes(confusion, rarity, n=4)
    # IoU: 40 → 0.1, 7 → 0.2, 133 → 0.3, then 17 and 90 tie at 0.4 (lower index first).
    assert focus["worst"] == [40, 7, 133, 17]
    assert focus["rarest"] == [101, 5, 149, 33]
    assert top_confusions(confusion, 17, k=3) == [(3, 0.3), (8, 0.15), (9, 0.1)]
    assert top_confusions(confusion, 40, k=3) == [(0, 0.9)]
    assert top_confusions(confusion, 1, k=3) == []


def test_confusion_figure_at_150_classes_shows_the_focus_rows(tmp_path: Path) -> None:
    confusion, rarity, _ = crafted_confusion()
    names = [f"class_{c}" for c in range(C)]
    callback = ConfusionMatrix(num_focus=3, top_k=2)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(class_stats=SimpleNamespace(pixel_counts=rarity)))
    builder, *arguments = callback.figure(trainer, confusion, names, "t")
    figure = builder(*arguments)
    worst, rarest = (axes for axes in figure.axes)
    labels = [[t.get_text().split()[0] for t in axes.get_yticklabels()] for axes in (worst, rarest)]
    assert labels == [["class_40", "class_7", "class_133"], ["class_101", "class_5", "class_149"]]
    assert "training pixels" in rarest.get_title()
    assert any(t.get_text() == "class_0 90%" for t in worst.texts)
    width, height = figure.get_size_inches() * figure.dpi
    assert width <= MAX_SIDE and height <= MAX_SIDE
    # Up to max_full_classes, the full matrix with every class on both axes.
    builder, *arguments = ConfusionMatrix(max_full_classes=C).figure(trainer, confusion, names, "t")
    full = builder(*arguments)
    assert len(full.axes[0].get_xticklabels()) == C
    assert max(full.get_size_inches() * full.dpi) <= MAX_SIDE


@pytest.fixture(scope="module")
def fitted_150(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on 150 classes (1×1 convolution, 32×32 images) with every diagnostic on."""
    root = tmp_path_factory.mktemp("many_classes")
    datamodule = ManyClassDataModule(num_classes=C)
    module = SegmentationModule(
        net=partial(nn.Conv2d, 3, kernel_size=1), num_classes=C, class_names=datamodule.class_names
    )
    callbacks = [
        ClassDistribution(),
        PerClassMetrics(warn_after_epochs=1),
        ConfusionMatrix(),
        PredictionGallery(num_rare=3, num_worst=3),
        LossBreakdown(),
    ]
    trainer = quiet_trainer(root, callbacks)
    trainer.fit(module, datamodule)
    return root / "diagnostics"


def test_every_figure_is_bounded_and_written_at_150_classes(fitted_150: Path) -> None:
    pictures = [*fitted_150.rglob("*.png"), *fitted_150.rglob("*.jpg")]
    pngs = sorted(p.relative_to(fitted_150).as_posix() for p in pictures)
    # One epoch: the distribution, the confusion matrix, two galleries, the loss breakdown, the curves.
    folders = ["class_distribution", "confusion_matrix", "gallery", "gallery", "loss_breakdown", "per_class_metrics"]
    assert [p.split("/")[0] for p in pngs] == folders
    for name in pngs:
        with Image.open(fitted_150 / name) as image:
            image.load()
            assert max(image.size) <= MAX_SIDE, (name, image.size)
    # Figures of one epoch under 1 MB; the full tables on disk.
    assert sum((fitted_150 / p).stat().st_size for p in pngs) < 1_000_000
    header = (fitted_150 / "confusion_matrix" / "val_epoch_000.csv").read_text().splitlines()[0]
    assert len(header.split(",")) == C + 1
    assert len((fitted_150 / "per_class_metrics" / "epoch_000.csv").read_text().splitlines()) == C + 1
