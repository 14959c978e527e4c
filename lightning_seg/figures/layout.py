"""Figure layout shared by the diagnostics: bounded sizes, top/bottom-N rows, log bars, outside legends.

Every diagnostic figure must stay readable and cheap whatever the number of classes ``C``: its size is
capped (:func:`bounded_size`), bar charts show the ``N`` largest and ``N`` smallest classes with the rest
summarised in one bar (:func:`top_bottom`), and legends sit beside the data, never on it
(:func:`legend_outside`, :func:`fitting_columns`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend

#: Largest side of a diagnostic figure, in inches: under 2,000 px at matplotlib's default 100 dpi.
MAX_INCHES = 19.5


def bounded_size(width: float, height: float, limit: float = MAX_INCHES) -> tuple[float, float]:
    """``(width, height)`` in inches, scaled down together (aspect kept) so that neither exceeds ``limit``."""
    scale = min(1.0, limit / max(width, height))
    return width * scale, height * scale


def top_bottom(frame: pd.DataFrame, column: str, n: int, label: str = "class") -> pd.DataFrame:
    """Rows with a positive ``column``, largest first; beyond ``2n + 1`` rows the middle ones become one mean row.

    The summary row sits between the ``n`` largest and the ``n`` smallest rows; its ``label`` column
    reads ``"<k> others (mean)"`` and its numeric columns hold the mean over those ``k`` rows (NaN-skipping).
    Rows whose ``column`` is 0 (a class without pixels) are left out: see :func:`absent_note`.
    """
    present = frame[frame[column] > 0]
    ordered = present.sort_values(column, ascending=False, kind="stable").reset_index(drop=True)
    if len(ordered) <= 2 * n + 1:
        return ordered
    middle = ordered.iloc[n : len(ordered) - n]
    summary = middle.mean(numeric_only=True).to_frame().T
    summary[label] = f"{len(middle)} others (mean)"
    return pd.concat([ordered.iloc[:n], summary, ordered.iloc[len(ordered) - n :]], ignore_index=True)


def subset_note(frame: pd.DataFrame, shown: pd.DataFrame, column: str, what: str, listed: int = 6) -> str:
    """What a chart of ``shown`` (from :func:`top_bottom`) leaves out of ``frame``; empty if nothing.

    E.g. ``"24 of 150 classes shown; 3 without training pixels: a, b, c"``.
    """
    parts = []
    present = int((frame[column] > 0).sum())
    if len(shown) < present:
        parts.append(f"{len(shown) - 1} of {len(frame)} classes shown")
    absent = frame.loc[frame[column] <= 0, "class"].tolist()
    if absent:
        more = f" and {len(absent) - listed} more" if len(absent) > listed else ""
        parts.append(f"{len(absent)} without {what}: {', '.join(map(str, absent[:listed]))}{more}")
    return "; ".join(parts)


def bar_chart_width(groups: int) -> float:
    """Width in inches of a chart of ``groups`` bar groups with rotated names (at most :data:`MAX_INCHES`)."""
    return min(MAX_INCHES, max(6.0, 0.45 * groups + 3.5))


def grouped_log_bars(axes: Axes, frame: pd.DataFrame, columns: Sequence[str], labels: Sequence[str]) -> None:
    """Bars of ``columns`` side by side for each row of ``frame`` (log scale), its ``class`` as tick labels.

    A value of 0 cannot be drawn on a log axis: that bar is left out. The legend goes beside the axes.
    """
    positions = np.arange(len(frame))
    width = 0.8 / len(columns)
    for k, (column, label) in enumerate(zip(columns, labels, strict=True)):
        values = frame[column].to_numpy(dtype=np.float64)
        axes.bar(
            positions + (k - (len(columns) - 1) / 2) * width,
            np.where(values > 0, values, np.nan),
            width,
            label=label,
        )
    axes.set_yscale("log")
    axes.set_xticks(positions, frame["class"], rotation=40, ha="right", rotation_mode="anchor")
    axes.set_xlim(-0.6, len(frame) - 0.4)
    legend_outside(axes)


def legend_outside(axes: Axes, **kwargs: object) -> Legend:
    """A legend to the right of ``axes`` (constrained layout makes room for it), so it never covers data."""
    return axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", **kwargs)


def fitting_columns(figure: Figure, legend_kwargs: dict, max_columns: int) -> int:
    """The largest number of legend columns (≤ ``max_columns``) whose legend fits the figure's width.

    Measured with the figure's renderer on a throw-away legend, so long names are never cut at the edges.
    """
    renderer = FigureCanvasAgg(figure).get_renderer()
    available = figure.get_figwidth() * figure.dpi * 0.98
    for columns in range(max(1, max_columns), 1, -1):
        trial = figure.legend(ncols=columns, **legend_kwargs)
        width = trial.get_window_extent(renderer).width
        trial.remove()
        if width <= available:
            return columns
    return 1
