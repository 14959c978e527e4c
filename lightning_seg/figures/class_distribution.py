"""Bar charts of the training set's class frequencies and of every weighting scheme's class weights."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lightning_seg.figures.layout import bar_chart_width, grouped_log_bars, subset_note, top_bottom


def distribution_figure(frame: pd.DataFrame, ratio: float, num_shown: int = 12) -> Figure:
    """Bar charts (log scale) of the class frequencies and of every scheme's weights.

    Classes are sorted by pixel frequency; beyond ``2 · num_shown + 1`` classes only the ``num_shown``
    most and least frequent are drawn, the others as one bar of their means (:func:`top_bottom`).
    """
    shown = top_bottom(frame, "pixel_frequency", num_shown)
    frequency_columns = [c for c in frame.columns if c.endswith("_frequency")]
    weight_columns = [c for c in frame.columns if c.startswith("weight_")]
    figure = Figure(figsize=(bar_chart_width(len(shown)), 7.0), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    grouped_log_bars(top, shown, frequency_columns, [c.replace("_", " ") for c in frequency_columns])
    top.set_ylabel("frequency (log)")
    note = subset_note(frame, shown, "pixel_count", "training pixels")
    title = f"Class frequency in the training set, imbalance ratio {ratio:,.0f} : 1"
    top.set_title(title + (f"\n({note})" if note else ""))
    grouped_log_bars(bottom, shown, weight_columns, [c.removeprefix("weight_") for c in weight_columns])
    bottom.set_ylabel("class weight (log)")
    bottom.set_title("Class weights by scheme")
    return figure
