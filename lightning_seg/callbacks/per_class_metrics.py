"""Per-class IoU, Dice, precision and recall of each validation epoch: a table, curves and a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from lightning import LightningModule, Trainer

from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    check_positive,
    class_colors,
    class_names,
    last_confusion,
    log_figure,
    log_table,
)
from lightning_seg.figures.per_class_curves import curves_figure
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


class PerClassMetrics(DiagnosticCallback):
    """Per-class validation scores each validation epoch, read from the module's confusion matrix.

    No second pass over the data: the scores come from ``pl_module.last_confusion["val"]`` through
    :func:`lightning_seg.metrics.scores_from_confusion`, the same numbers the module logs as
    ``val/iou/<class>`` etc. Files under ``<run dir>/diagnostics/per_class_metrics``:
    ``epoch_NNN.csv`` (this epoch's table, also a W&B table / TensorBoard text), ``history.csv``
    (every epoch) and ``curves.png`` (scores over epochs, also sent to W&B / TensorBoard); after
    ``trainer.test``, ``test_epoch_NNN.csv`` from ``last_confusion["test"]``.

    Beyond ``max_lines`` classes the curves show the ``max_lines`` classes of lowest IoU at the latest
    epoch and the mean over all classes. A console warning (one line) names every class that has
    training pixels but a validation IoU of exactly 0 once ``warn_after_epochs`` epochs have run.

    Args:
        every_n_epochs: report on every n-th validation epoch.
        warn_after_epochs: first epoch count (1-based) from which an IoU of 0 is warned about.
        max_lines: the most classes drawn as curves.
    """

    folder = "per_class_metrics"

    def __init__(self, every_n_epochs: int = 1, warn_after_epochs: int = 3, max_lines: int = 10) -> None:
        super().__init__(every_n_epochs)
        check_positive(warn_after_epochs=warn_after_epochs, max_lines=max_lines)
        self.warn_after_epochs = warn_after_epochs
        self.max_lines = max_lines
        #: The per-class table written last (the CLI's console summary points to it).
        self.last_table: Path | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: callbacks' epoch-end hooks run before the
        # module's, which is where the epoch's confusion matrix is stored.
        if not (trainer.is_global_zero and self.is_due(trainer)):
            return
        frame = self._table(trainer, pl_module, "val", "diagnostics/per_class_metrics", self.epoch_tag(trainer))
        epoch = trainer.current_epoch
        history = self.save_history(epoch, frame)
        log_figure(
            trainer,
            "diagnostics/per_class_curves",
            self.out_dir / "curves.png",
            curves_figure,
            history,
            class_colors(trainer, len(frame)),
            SCORES,
            self.max_lines,
        )
        if epoch + 1 >= self.warn_after_epochs:
            self._warn_dead_classes(trainer, frame)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            stem = f"test_{self.epoch_tag(trainer)}"
            self._table(trainer, pl_module, "test", "diagnostics/per_class_metrics/test", stem)

    def _table(self, trainer: Trainer, pl_module: LightningModule, stage: str, key: str, stem: str) -> pd.DataFrame:
        """Write (and log) the per-class table of ``stage``'s last confusion matrix; remember where."""
        confusion = last_confusion(pl_module, stage)
        frame = per_class_table(confusion, class_names(trainer, len(confusion)))
        self.last_table = log_table(trainer, key, frame, self.out_dir / f"{stem}.csv")
        return frame

    def _warn_dead_classes(self, trainer: Trainer, frame: pd.DataFrame) -> None:
        stats = getattr(trainer.datamodule, "class_stats", None)
        train_pixels = np.asarray(stats.pixel_counts) if stats is not None else None
        dead = zero_iou_classes(frame["iou"].to_numpy(), train_pixels)
        if dead:
            log.warning(
                "validation IoU of 0 after %d epochs for %d class(es) with training pixels: %s",
                trainer.current_epoch + 1,
                len(dead),
                describe_classes(frame["class"].tolist(), dead, train_pixels),
            )


def zero_iou_classes(iou: np.ndarray, train_pixels: np.ndarray | None) -> list[int]:
    """Indices of the classes whose IoU is exactly 0 although they have training pixels.

    Without training statistics (``None``) every class counts as having training pixels. An undefined
    (NaN) IoU — a class neither present nor predicted — is not 0.
    """
    has_pixels = np.ones(len(iou), bool) if train_pixels is None else np.asarray(train_pixels) > 0
    return np.flatnonzero((np.asarray(iou) == 0) & has_pixels).tolist()


#: The most classes a console line names (the per-class table on disk has every class).
MAX_NAMED = 12


def describe_classes(
    names: list[str], indices: list[int], train_pixels: np.ndarray | None, limit: int = MAX_NAMED
) -> str:
    """``'car' (4 training pixels), 'rare' (12 training pixels)`` — or only the names without statistics.

    Beyond ``limit`` classes, the ``limit`` with the most training pixels (without statistics: the first)
    are named, most first, and the rest counted (``... and 95 more``), so the line stays readable.
    """
    if train_pixels is None:
        shown = indices[:limit]
        words = [repr(names[k]) for k in shown]
    else:
        shown = sorted(indices, key=lambda k: -int(train_pixels[k]))[:limit] if len(indices) > limit else indices
        words = [f"{names[k]!r} ({int(train_pixels[k]):,} training pixels)" for k in shown]
    more = f" and {len(indices) - len(shown)} more" if len(shown) < len(indices) else ""
    return ", ".join(words) + more
