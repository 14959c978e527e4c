"""Per-class IoU, Dice, precision and recall of each validation epoch: a table, curves and a warning."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from lightning import LightningModule, Trainer
from matplotlib.figure import Figure

from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    class_colors,
    class_names,
    last_confusion,
    log_figure,
    log_table,
    save_csv,
)
from lightning_seg.metrics import SCORES, scores_from_confusion

log = logging.getLogger(__name__)


def per_class_table(confusion: np.ndarray, names: list[str]) -> pd.DataFrame:
    """One row per class: its validation pixels (``support``) and its four scores (NaN where undefined).

    Shape:
        confusion ``C×C`` (rows true, columns predicted).
    """
    import torch

    scores = scores_from_confusion(torch.as_tensor(confusion))
    frame = pd.DataFrame({"class": names, "support": confusion.sum(1).astype(np.int64)})
    for score in SCORES:
        frame[score] = scores[score].numpy()
    return frame


def curves_figure(history: pd.DataFrame, colors: np.ndarray) -> Figure:
    """One panel per score, one line per class, over validation epochs."""
    figure = Figure(figsize=(11, 7), layout="constrained")
    for axes, score in zip(figure.subplots(2, 2).ravel(), SCORES, strict=True):
        for k, (name, rows) in enumerate(history.groupby("class", sort=False)):
            axes.plot(rows["epoch"], rows[score], marker="o", markersize=3, color=colors[k] / 255, label=name)
        axes.set_title(score)
        axes.set_xlabel("epoch")
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    return figure


class PerClassMetrics(DiagnosticCallback):
    """Per-class validation scores each validation epoch, read from the module's confusion matrix.

    No second pass over the data: the scores come from ``pl_module.last_confusion["val"]`` through
    :func:`lightning_seg.metrics.scores_from_confusion`, the same numbers the module logs as
    ``val/iou/<class>`` etc. Files under ``<run dir>/diagnostics/per_class_metrics``:
    ``epoch_NNN.csv`` (this epoch's table, also a W&B table / TensorBoard text), ``history.csv``
    (every epoch) and ``curves.png`` (scores over epochs, also sent to W&B / TensorBoard).

    A console warning names every class that has training pixels but a validation IoU of exactly 0
    once ``warn_after_epochs`` epochs have run.

    Args:
        every_n_epochs: report on every n-th validation epoch.
        warn_after_epochs: first epoch count (1-based) from which an IoU of 0 is warned about.
    """

    folder = "per_class_metrics"

    def __init__(self, every_n_epochs: int = 1, warn_after_epochs: int = 3) -> None:
        super().__init__(every_n_epochs)
        if warn_after_epochs < 1:
            raise ValueError(f"warn_after_epochs must be at least 1, got {warn_after_epochs}")
        self.warn_after_epochs = warn_after_epochs

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: callbacks' epoch-end hooks run before the
        # module's, which is where the epoch's confusion matrix is stored.
        if not (trainer.is_global_zero and self.is_due(trainer)):
            return
        confusion = last_confusion(pl_module, "val")
        frame = per_class_table(confusion, class_names(trainer, len(confusion)))
        epoch = trainer.current_epoch
        history = self.record(epoch, frame)
        save_csv(self.out_dir / "history.csv", history)
        log_table(
            trainer, "diagnostics/per_class_metrics", frame, self.out_dir / f"{self.epoch_tag(trainer)}.csv"
        )
        log_figure(
            trainer,
            "diagnostics/per_class_curves",
            curves_figure(history, class_colors(trainer, len(frame))),
            self.out_dir / "curves.png",
        )
        if epoch + 1 >= self.warn_after_epochs:
            self._warn_dead_classes(trainer, frame)

    def _warn_dead_classes(self, trainer: Trainer, frame: pd.DataFrame) -> None:
        stats = getattr(trainer.datamodule, "class_stats", None)
        train_pixels = (
            np.asarray(stats.pixel_counts) if stats is not None else np.ones(len(frame), dtype=np.int64)
        )
        for k, row in frame.iterrows():
            if train_pixels[k] > 0 and row["iou"] == 0:
                log.warning(
                    "class %r has %d training pixels but a validation IoU of 0 after %d epochs",
                    row["class"],
                    train_pixels[k],
                    trainer.current_epoch + 1,
                )
