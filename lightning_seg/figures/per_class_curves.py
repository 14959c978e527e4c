"""Per-class score curves over validation epochs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def curves_figure(history: pd.DataFrame, colors: np.ndarray, scores: Sequence[str], max_lines: int = 10) -> Figure:
    """One panel per column of ``scores``, one line per class, over validation epochs; the legend beside them.

    Beyond ``max_lines`` classes only the ``max_lines`` of lowest IoU at the latest epoch get a line,
    plus a dashed line of the mean over all classes, so that the curves stay readable.

    Shape:
        colors ``C×3`` uint8, in the order the classes first appear in ``history``.
    """
    names = list(dict.fromkeys(history["class"]))
    latest = history[history["epoch"] == history["epoch"].max()].set_index("class")["iou"]
    shown = names if len(names) <= max_lines else latest.sort_values(kind="stable").index[:max_lines].tolist()
    by_class = dict(tuple(history.groupby("class", sort=False)))
    figure = Figure(figsize=(12, 7), layout="constrained")
    panels = figure.subplots((len(scores) + 1) // 2, 2, squeeze=False).ravel()
    for axes, score in zip(panels, scores, strict=False):
        for name in shown:
            rows = by_class[name]
            color = colors[names.index(name)] / 255
            axes.plot(rows["epoch"], rows[score], marker="o", markersize=3, color=color, label=name)
        if len(shown) < len(names):
            mean = history.groupby("epoch")[score].mean()
            axes.plot(mean.index, mean.to_numpy(), "k--", marker="x", markersize=4, label=f"mean of all {len(names)}")
        axes.set_title(score)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        # At least one epoch either side: a single epoch would otherwise get a ±0.05 axis of fractional ticks.
        axes.set_xlim(history["epoch"].min() - 0.5, max(history["epoch"].max() + 0.5, history["epoch"].min() + 1.5))
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize="small")
    if len(shown) < len(names):
        figure.suptitle(f"{len(shown)} classes of lowest IoU at epoch {history['epoch'].max()} (of {len(names)})")
    return figure
