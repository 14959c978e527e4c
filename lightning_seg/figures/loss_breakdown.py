"""Bar charts of each class's share of the pixels, the validation loss and its gradient."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lightning_seg.figures.layout import bar_chart_width, grouped_log_bars, subset_note, top_bottom

SHARES = ("pixel_share", "ce_share", "grad_share")


def breakdown_figure(frame: pd.DataFrame, title: str, num_shown: int = 12) -> Figure:
    """Grouped bars (log scale) of each class's share of pixels, cross-entropy and gradient norm.

    Classes are sorted by pixel share; beyond ``2 · num_shown + 1`` classes only the ``num_shown``
    most and least frequent are drawn, the others as one bar of their mean shares (:func:`top_bottom`).
    """
    shown = top_bottom(frame, "pixel_share", num_shown)
    figure = Figure(figsize=(bar_chart_width(len(shown)), 4.5), layout="constrained")
    axes = figure.subplots()
    grouped_log_bars(axes, shown, SHARES, [s.replace("_", " ") for s in SHARES])
    axes.set_ylabel("share (log)")
    note = subset_note(frame, shown, "pixels", "validation pixels")
    axes.set_title(title + (f"\n({note})" if note else ""))
    return figure
