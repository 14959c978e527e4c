"""Read finished runs back from disk (or W&B) and put their per-class scores side by side.

Every run's CSV logger writes ``metrics.csv`` with one column per logged key, per-class scores among
them (``val/iou/<class>``, ``test/dice/<class>``, ...). These helpers find those files under a folder of
runs, take each run's last value of every per-class score, and tabulate runs against classes, which is
how recipes are compared on the rare classes rather than on the mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

METRICS_FILE = "metrics.csv"
#: The file that marks a run directory (see :mod:`lightning_seg.runs`).
RUN_FILE = "run.json"


def run_label(metrics: Path, root: Path) -> str:
    """The run a ``metrics.csv`` belongs to: its nearest folder holding ``run.json``, relative to ``root``."""
    for folder in metrics.parents:
        if (folder / RUN_FILE).is_file() or folder == root:
            break
    else:
        folder = metrics.parent
    return str(folder.relative_to(root)) if folder != root else str(metrics.parent.relative_to(root))


def find_runs(root: str | Path) -> dict[str, Path]:
    """Every ``metrics.csv`` under ``root``, keyed by its run's folder relative to ``root`` (oldest first)."""
    root = Path(root)
    unique = {path.resolve(): path for path in root.rglob(METRICS_FILE)}  # `latest` links add no second copy
    files = sorted(unique.values(), key=lambda path: path.stat().st_mtime)
    return {run_label(path, root): path for path in files}


def final_scores(metrics: str | Path | pd.DataFrame, stage: str = "val", score: str = "iou") -> pd.Series:
    """The last logged value of ``<stage>/<score>/<class>`` for every class, indexed by class name.

    Raises:
        ValueError: when the file logged no such per-class score.
    """
    table = pd.read_csv(metrics) if not isinstance(metrics, pd.DataFrame) else metrics
    prefix = f"{stage}/{score}/"
    columns = [column for column in table.columns if column.startswith(prefix)]
    if not columns:
        logged = sorted({column.rsplit("/", 1)[0] for column in table.columns if column.count("/") == 2})
        raise ValueError(f"{metrics}: no '{prefix}<class>' columns; per-class scores logged: {logged or 'none'}")
    last = table[columns].ffill().iloc[-1]
    return last.rename(index=lambda column: column[len(prefix) :]).rename(score)


def compare(runs: Mapping[str, str | Path | pd.DataFrame], stage: str = "val", score: str = "iou") -> pd.DataFrame:
    """Classes × runs table of the final per-class ``score``; a class a run never logged is NaN.

    The row ``mean`` is the class mean (mIoU for ``score="iou"``), over the classes each run scored.
    """
    table = pd.DataFrame({label: final_scores(path, stage, score) for label, path in runs.items()})
    table.loc["mean"] = table.mean(skipna=True)
    return table


def plot_comparison(table: pd.DataFrame, score: str = "iou", classes: Iterable[str] | None = None) -> Figure:
    """Grouped horizontal bars, one group per class (the mean last), one bar per run."""
    shown = table.loc[list(classes) + ["mean"]] if classes is not None else table
    runs = list(shown.columns)
    height = 0.8 / max(len(runs), 1)
    figure = Figure(figsize=(7.5, 1.0 + 0.22 * len(shown) * max(len(runs), 1)), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(shown))[::-1]
    for index, run in enumerate(runs):
        ax.barh(positions + (len(runs) - 1 - 2 * index) * height / 2, shown[run].to_numpy(), height, label=run)
    ax.set_yticks(positions, list(shown.index))
    ax.set_xlim(0, 1)
    ax.set_xlabel(score)
    ax.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside lower center", ncols=min(len(runs), 2), frameon=False)
    return figure


def wandb_runs(path: str, stage: str = "val", score: str = "iou") -> dict[str, pd.DataFrame]:
    """Per-class score histories of the runs of a W&B project (``entity/project``), for :func:`compare`.

    Needs W&B online (an API key and network); offline runs are read from disk with :func:`find_runs`.
    """
    import wandb

    histories = {}
    for run in wandb.Api().runs(path):
        keys = [key for key in run.summary.keys() if key.startswith(f"{stage}/{score}/")]
        if keys:
            histories[run.name] = pd.DataFrame(run.scan_history(keys=keys))
    return histories
