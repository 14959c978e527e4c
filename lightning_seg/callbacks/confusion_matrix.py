"""A row-normalised confusion matrix figure with class names, each validation (and test) epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightning import LightningModule, Trainer
from matplotlib.figure import Figure

from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    class_names,
    last_confusion,
    log_figure,
    save_csv,
)


def row_normalise(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class predicted as each class); empty rows stay 0.

    Shape:
        confusion ``C×C`` → ``C×C`` float.
    """
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


def confusion_figure(confusion: np.ndarray, names: list[str], title: str) -> Figure:
    """Heat map of the row-normalised matrix, annotated with its values when there are at most 20 classes."""
    rates = row_normalise(confusion)
    size = max(4.5, 0.55 * len(names) + 2.5)
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(names) <= 20:
        for (row, col), value in np.ndenumerate(rates):
            axes.text(
                col,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > 0.5 else "black",
            )
    return figure


class ConfusionMatrix(DiagnosticCallback):
    """Row-normalised confusion matrix of each validation epoch (and of a test run).

    Read from ``pl_module.last_confusion`` (no second pass). Files under
    ``<run dir>/diagnostics/confusion_matrix``: ``val_epoch_NNN.png`` (also sent to W&B / TensorBoard as
    ``diagnostics/confusion_matrix/val``) and ``val_epoch_NNN.csv`` (raw pixel counts, rows true);
    ``test_…`` after ``trainer.test``.

    Args:
        every_n_epochs: draw on every n-th validation epoch.
    """

    folder = "confusion_matrix"

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_validation_end: the module stores the epoch's matrix in its own epoch-end hook, which runs
        # after the callbacks' epoch-end hooks.
        if trainer.is_global_zero and self.is_due(trainer):
            self._report(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._report(trainer, pl_module, "test")

    def _report(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        confusion = last_confusion(pl_module, stage)
        names = class_names(trainer, len(confusion))
        stem = f"{stage}_{self.epoch_tag(trainer)}"
        save_csv(
            self.out_dir / f"{stem}.csv",
            pd.DataFrame(confusion, index=pd.Index(names, name="true"), columns=names).reset_index(),
        )
        title = f"{stage} confusion matrix, epoch {trainer.current_epoch}"
        log_figure(
            trainer,
            f"diagnostics/confusion_matrix/{stage}",
            confusion_figure(confusion, names, title),
            self.out_dir / f"{stem}.png",
        )
