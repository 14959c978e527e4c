"""The per-class curves: readable from the first epoch on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lightning_seg.figures.per_class_curves import curves_figure
from lightning_seg.metrics import SCORES


@pytest.mark.parametrize("epochs", [1, 4])
def test_epoch_ticks_are_whole_epochs_and_the_mean_is_visible(epochs: int) -> None:
    history = pd.DataFrame(
        [{"epoch": e, "class": f"c{c}", **dict.fromkeys(SCORES, c / 30)} for e in range(epochs) for c in range(20)]
    )
    colors = np.zeros((20, 3), np.uint8)
    figure = curves_figure(history, colors, SCORES, max_lines=5)
    for axes in figure.axes:
        low, high = axes.get_xlim()
        ticks = [t for t in axes.get_xticks() if low <= t <= high]
        assert ticks == [round(t) for t in ticks] and set(range(epochs)) <= set(ticks)
        mean = [line for line in axes.lines if line.get_label() == "mean of all 20"]
        assert len(mean) == 1 and mean[0].get_marker() == "x"  # a single epoch's mean is a point, not nothing
