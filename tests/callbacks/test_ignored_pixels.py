"""Ignored pixels end to end: SegmentationModule + Trainer against a confusion matrix worked by hand.

The network returns its input as logits, so the prediction of every pixel is chosen by the test; the
masks hold ``ignore_index`` pixels predicted as several classes, so counting them anywhere (as class 0,
or as any class) changes the matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning import Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_seg.callbacks import ConfusionMatrix, PerClassMetrics
from lightning_seg.module import SegmentationModule
from tests.callbacks.conftest import quiet_trainer

NAMES = ("a", "b", "c")
X = 255  # ignore_index
VAL_TARGET = [[[0, 0, 1, X], [2, X, 1, 1]], [[X, X, 2, 2], [0, 1, X, 0]]]
VAL_PRED = [[[0, 1, 1, 0], [2, 2, 1, 0]], [[0, 0, 2, 1], [0, 1, 2, 0]]]
# Counted by hand from the pairs (true, predicted) above, ignored pixels left out. Rows true.
VAL_CONFUSION = np.array([[3, 1, 0], [1, 3, 0], [0, 1, 2]])
# IoU = tp / (row + column - tp): a 3 / (4 + 4 - 3), b 3 / (4 + 5 - 3), c 2 / (3 + 2 - 2).
VAL_IOU = {"a": 3 / 5, "b": 3 / 6, "c": 2 / 3}
# Training batches: every pixel predicted as class 0 (a different matrix from validation's).
TRAIN_TARGET = [[[0, 1, 2, X], [1, 1, 2, 0]]]
TRAIN_PRED = [[[0, 0, 0, 0], [0, 0, 0, 0]]]


class GivenLogits(nn.Module):
    """Logits = the image (one channel per class); one parameter with no effect, for the optimiser."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image + 0 * self.unused


class Batches(Dataset):
    """Samples whose image is the one-hot of the wanted prediction (×5) and whose mask is the target."""

    def __init__(self, targets: list, preds: list) -> None:
        self.targets, self.preds = torch.tensor(targets), torch.tensor(preds)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict:
        image = 5.0 * nn.functional.one_hot(self.preds[index], len(NAMES)).permute(2, 0, 1).float()
        return {"image": image, "mask": self.targets[index], "meta": {"name": f"sample_{index}"}}


def loader(targets: list, preds: list) -> DataLoader:
    return DataLoader(Batches(targets, preds), batch_size=2)


def make(tmp_path: Path, callbacks: list, max_epochs: int = 1) -> tuple[SegmentationModule, Trainer]:
    module = SegmentationModule(net=GivenLogits, num_classes=3, ignore_index=X, class_names=NAMES)
    trainer = quiet_trainer(tmp_path, callbacks, max_epochs)
    return module, trainer


def test_validate_and_test_leave_ignored_pixels_out_of_scores_and_matrix(tmp_path: Path) -> None:
    confusion_callback = ConfusionMatrix()
    module, trainer = make(tmp_path, [confusion_callback])
    for stage, run in (("val", trainer.validate), ("test", trainer.test)):
        run(module, loader(VAL_TARGET, VAL_PRED), verbose=False)
        np.testing.assert_array_equal(module.last_confusion[stage].numpy(), VAL_CONFUSION)
        for name, iou in VAL_IOU.items():
            assert trainer.callback_metrics[f"{stage}/iou/{name}"].item() == pytest.approx(iou), (stage, name)
        assert trainer.callback_metrics[f"{stage}/miou"].item() == pytest.approx(np.mean(list(VAL_IOU.values())))
        # What the ConfusionMatrix callback read and wrote.
        (written,) = confusion_callback.out_dir.glob(f"{stage}_epoch_*.csv")
        np.testing.assert_array_equal(pd.read_csv(written, index_col="true").to_numpy(), VAL_CONFUSION)


def test_per_class_metrics_reports_validation_when_a_train_matrix_exists_too(tmp_path: Path) -> None:
    callback = PerClassMetrics()
    module, trainer = make(tmp_path, [callback], max_epochs=2)
    trainer.fit(module, loader(TRAIN_TARGET, TRAIN_PRED), loader(VAL_TARGET, VAL_PRED))
    assert set(module.last_confusion) == {"train", "val"}
    # The train matrix (every pixel predicted as a) differs from validation's.
    np.testing.assert_array_equal(module.last_confusion["train"].numpy(), [[2, 0, 0], [3, 0, 0], [2, 0, 0]])
    for epoch in (0, 1):
        table = pd.read_csv(callback.out_dir / f"epoch_{epoch:03d}.csv").set_index("class")
        assert table["support"].tolist() == VAL_CONFUSION.sum(1).tolist()
        for name, iou in VAL_IOU.items():
            assert table.loc[name, "iou"] == pytest.approx(iou)
            assert table.loc[name, "iou"] == pytest.approx(trainer.callback_metrics[f"val/iou/{name}"].item())
