"""Confusion figures: the row-normalised matrix (few classes) and the focus rows (many classes)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lightning_seg.figures.layout import bounded_size


def row_normalise(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class predicted as each class); empty rows stay 0.

    Shape:
        confusion ``C×C`` → ``C×C`` float.
    """
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


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
    iou: np.ndarray,
) -> Figure:
    """One stacked bar per focus class: the fraction predicted right, its ``k`` top confusions, the rest.

    One panel per entry of ``focus`` (``worst``: lowest IoU, ``rarest``); each row is labelled with the
    class, its IoU (``iou``, from :func:`lightning_seg.metrics.scores_from_confusion`) and its pixels, and
    names its top confusions with their fractions to the right.

    Shape:
        confusion ``C×C`` (rows true, columns predicted), iou ``C``.
    """
    rates = row_normalise(confusion)
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
