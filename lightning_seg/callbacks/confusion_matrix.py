"""What each true class is mistaken for, each validation (and test) epoch, at any number of classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from matplotlib.figure import Figure

from lightning_seg.callbacks.plotting import bounded_size
from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    check_positive,
    class_names,
    last_confusion,
    log_figure,
    save_csv,
)
from lightning_seg.metrics import scores_from_confusion


def row_normalise(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class predicted as each class); empty rows stay 0.

    Shape:
        confusion ``C×C`` → ``C×C`` float.
    """
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


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


def top_confusions(confusion: np.ndarray, row: int, k: int) -> list[tuple[int, float]]:
    """The ``k`` classes (other than ``row``) that most of ``row``'s pixels go to, with their fractions.

    Classes that receive none of its pixels are left out.
    """
    rates = row_normalise(confusion[row : row + 1])[0]
    rates[row] = 0.0
    order = np.argsort(-rates, kind="stable")[:k]
    return [(int(c), float(rates[c])) for c in order if rates[c] > 0]


def confusion_figure(confusion: np.ndarray, names: list[str], title: str) -> Figure:
    """Heat map of the row-normalised matrix, annotated with its values when there are at most 20 classes.

    Meant for up to a few tens of classes (:class:`ConfusionMatrix` switches to :func:`focus_figure`
    beyond its ``max_full_classes``); the size is bounded whatever the count.
    """
    rates = row_normalise(confusion)
    size = max(4.5, 0.55 * len(names) + 2.5)
    figure = Figure(figsize=bounded_size(size + 1, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor")
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


#: Colours of a focus row: correct, then the 1st..k-th confusion, then everything else.
CORRECT_COLOR, OTHER_COLOR = "#2b8a3e", "#d9d9d9"
CONFUSION_COLORS = ("#e8590c", "#f59f00", "#ffd43b", "#74c0fc", "#b197fc")


def focus_figure(
    confusion: np.ndarray,
    names: list[str],
    focus: dict[str, list[int]],
    k: int,
    title: str,
    rarity_label: str,
) -> Figure:
    """One stacked bar per focus class: the fraction predicted right, its ``k`` top confusions, the rest.

    One panel per entry of ``focus`` (``worst``: lowest IoU, ``rarest``); each row is labelled with the
    class, its IoU and its pixels, and names its top confusions with their fractions to the right.

    Shape:
        confusion ``C×C`` (rows true, columns predicted).
    """
    rates = row_normalise(confusion)
    iou = scores_from_confusion(torch.as_tensor(confusion))["iou"].numpy()
    support = confusion.sum(axis=1)
    rows = sum(len(classes) for classes in focus.values())
    figure = Figure(figsize=bounded_size(12.0, 0.3 * rows + 1.4 * len(focus) + 0.8), layout="constrained")
    panels = figure.subplots(len(focus), 1, squeeze=False, height_ratios=[max(1, len(c)) for c in focus.values()])
    headings = {"worst": "lowest IoU", "rarest": f"rarest ({rarity_label})"}
    for axes, (kind, classes) in zip(panels[:, 0], focus.items(), strict=True):
        labels = []
        for y, c in enumerate(classes):
            left = 0.0
            axes.barh(y, rates[c, c], left=left, color=CORRECT_COLOR, height=0.7)
            left += rates[c, c]
            words = []
            for rank, (other, rate) in enumerate(top_confusions(confusion, c, k)):
                axes.barh(y, rate, left=left, color=CONFUSION_COLORS[rank % len(CONFUSION_COLORS)], height=0.7)
                left += rate
                words.append(f"{names[other]} {rate:.0%}")
            axes.barh(y, 1.0 - left, left=left, color=OTHER_COLOR, height=0.7)
            axes.text(1.01, y, " · ".join(words) or "no confusion", va="center", fontsize=8, clip_on=False)
            labels.append(f"{names[c]}  (IoU {iou[c]:.2f}, {int(support[c]):,} px here)")
        axes.set_yticks(np.arange(len(classes)), labels, fontsize=8)
        axes.set_ylim(len(classes) - 0.5, -0.5)
        axes.set_xlim(0, 1)
        axes.set_title(f"{len(classes)} {headings.get(kind, kind)}: correct, top {k} confusions, rest", fontsize=10)
        axes.set_xlabel("fraction of the true class's pixels")
    figure.suptitle(title)
    return figure


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

    def figure(self, trainer: Trainer, confusion: np.ndarray, names: list[str], title: str) -> Figure:
        """The full matrix up to ``max_full_classes`` classes, the focus figure beyond."""
        if len(names) <= self.max_full_classes:
            return confusion_figure(confusion, names, title)
        stats = getattr(trainer.datamodule, "class_stats", None)
        counts = getattr(stats, "pixel_counts", None)
        if counts is not None and len(counts) == len(names):
            rarity, label = np.asarray(counts), "training pixels"
        else:
            rarity, label = confusion.sum(axis=1), "validation pixels"
        focus = focus_classes(confusion, rarity, self.num_focus)
        return focus_figure(confusion, names, focus, self.top_k, title, label)

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
        log_figure(trainer, key, self.figure(trainer, confusion, names, title), self.out_dir / f"{stem}.png")
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
