"""What each true class is mistaken for, each validation (and test) epoch, at any number of classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    check_positive,
    class_names,
    last_confusion,
    log_figure,
    save_csv,
)
from lightning_seg.figures.confusion_matrix import confusion_figure, focus_figure
from lightning_seg.metrics import scores_from_confusion


def focus_classes(confusion: np.ndarray, rarity: np.ndarray, n: int) -> dict[str, list[int]]:
    """The ``n`` classes of lowest IoU and the ``n`` rarest classes, among those with pixels in the matrix.

    Only classes whose row holds pixels are candidates (an empty row has nothing to show). Worst: IoU
    ascending; rarest: ``rarity`` ascending (e.g. training pixel counts). Ties go to the lower class index.

    Shape:
        confusion ``C×C`` (rows true), rarity ``C`` → two lists of at most ``n`` class indices.
    """
    present = np.flatnonzero(confusion.sum(axis=1) > 0)
    iou = scores_from_confusion(torch.as_tensor(confusion))["iou"].numpy()
    worst = present[np.argsort(iou[present], kind="stable")][:n]
    rarest = present[np.argsort(np.asarray(rarity, dtype=np.float64)[present], kind="stable")][:n]
    return {"worst": worst.tolist(), "rarest": rarest.tolist()}


class ConfusionMatrix(DiagnosticCallback):
    """What each true class is predicted as, each validation epoch (and after a test run).

    Read from ``pl_module.last_confusion`` (no second pass). Up to ``max_full_classes`` classes the
    figure is the row-normalised matrix; beyond, it shows the rows of the ``num_focus`` lowest-IoU and
    ``num_focus`` rarest classes (training pixels when the DataModule has ``class_stats``, else
    validation pixels), each split into correct, its ``top_k`` confusions and the rest, so that the
    figure stays readable (and under 2,000 px a side) at 150 classes.

    Files under ``<run dir>/diagnostics/confusion_matrix``: ``val_epoch_NNN.png`` (also sent to W&B /
    TensorBoard as ``diagnostics/confusion_matrix/val``) and ``val_epoch_NNN.csv`` (the full matrix of
    pixel counts, rows true); ``test_…`` after ``trainer.test``. W&B also gets the full matrix as an
    interactive confusion-matrix table (``diagnostics/confusion_matrix/val_table``, non-zero cells).

    Args:
        every_n_epochs: draw on every n-th validation epoch.
        max_full_classes: the most classes drawn as a full matrix.
        num_focus: how many lowest-IoU and how many rarest classes the focus figure shows.
        top_k: confusions named per class in the focus figure.
    """

    folder = "confusion_matrix"

    def __init__(
        self, every_n_epochs: int = 1, max_full_classes: int = 30, num_focus: int = 10, top_k: int = 3
    ) -> None:
        super().__init__(every_n_epochs)
        check_positive(max_full_classes=max_full_classes, num_focus=num_focus, top_k=top_k)
        self.max_full_classes = max_full_classes
        self.num_focus = num_focus
        self.top_k = top_k

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_validation_end: the module stores the epoch's matrix in its own epoch-end hook, which runs
        # after the callbacks' epoch-end hooks.
        if trainer.is_global_zero and self.is_due(trainer):
            self._report(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._report(trainer, pl_module, "test")

    def figure(self, trainer: Trainer, confusion: np.ndarray, names: list[str], title: str) -> tuple[Any, ...]:
        """The builder and its arguments: the full matrix up to ``max_full_classes`` classes, else the focus figure."""
        if len(names) <= self.max_full_classes:
            return confusion_figure, confusion, names, title
        stats = getattr(trainer.datamodule, "class_stats", None)
        counts = getattr(stats, "pixel_counts", None)
        if counts is not None and len(counts) == len(names):
            rarity, label = np.asarray(counts), "training pixels"
        else:
            rarity, label = confusion.sum(axis=1), "validation pixels"
        focus = focus_classes(confusion, rarity, self.num_focus)
        iou = scores_from_confusion(torch.as_tensor(confusion))["iou"].numpy()
        return focus_figure, confusion, names, focus, self.top_k, title, label, iou

    def _report(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        confusion = last_confusion(pl_module, stage)
        names = class_names(trainer, len(confusion))
        stem = f"{stage}_{self.epoch_tag(trainer)}"
        save_csv(
            self.out_dir / f"{stem}.csv",
            pd.DataFrame(confusion, index=pd.Index(names, name="true"), columns=names).reset_index(),
        )
        title = f"{stage} confusion matrix, epoch {trainer.current_epoch}"
        key = f"diagnostics/confusion_matrix/{stage}"
        log_figure(trainer, key, self.out_dir / f"{stem}.png", *self.figure(trainer, confusion, names, title))
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
            log_wandb_confusion(trainer, f"{key}_table", confusion, names, title)


def log_wandb_confusion(trainer: Trainer, key: str, confusion: np.ndarray, names: list[str], title: str) -> None:
    """Send the full matrix to every W&B logger as W&B's interactive confusion-matrix panel.

    The table holds one row per non-zero cell (``Actual``, ``Predicted``, ``nPredictions``), the layout of
    W&B's ``wandb/confusion_matrix/v1`` preset (what ``wandb.plot.confusion_matrix`` builds).
    """
    import wandb

    rows, cols = np.nonzero(confusion)
    table = wandb.Table(
        columns=["Actual", "Predicted", "nPredictions"],
        data=[[names[r], names[c], int(confusion[r, c])] for r, c in zip(rows, cols, strict=True)],
    )
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    panel = wandb.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": title})
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_metrics({key: panel}, step=trainer.global_step)
