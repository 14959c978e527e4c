"""Reading runs back: per-class scores of several runs' metrics.csv, side by side."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from lightning_seg.results import compare, final_scores, find_runs, plot_comparison


def write_run(folder: Path, rows: list[dict[str, float]]) -> Path:
    """A run directory as the CLI writes it: run.json and csv/metrics.csv (one row per logging call)."""
    (folder / "csv").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"experiment": folder.parent.name}))
    path = folder / "csv" / "metrics.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_final_scores_take_each_class_last_logged_value(tmp_path: Path) -> None:
    path = write_run(
        tmp_path / "a",
        [
            {"epoch": 0, "step": 4, "train/loss": 1.0},
            {"epoch": 0, "step": 4, "val/iou/sky": 0.5, "val/iou/car": 0.1, "val/miou": 0.3},
            {"epoch": 1, "step": 9, "train/loss": 0.8},
            {"epoch": 1, "step": 9, "val/iou/sky": 0.7, "val/iou/car": float("nan"), "val/miou": 0.7},
        ],
    )
    scores = final_scores(path)
    assert scores["sky"] == 0.7
    assert scores["car"] == 0.1  # NaN in the last epoch: the last value actually logged
    with pytest.raises(ValueError, match=r"no 'val/dice/<class>' columns; per-class scores logged: \['val/iou'\]"):
        final_scores(path, "val", "dice")


def test_compare_tabulates_classes_against_runs_with_the_class_mean(tmp_path: Path) -> None:
    first = write_run(tmp_path / "exp" / "run1", [{"val/iou/sky": 0.9, "val/iou/car": 0.2}])
    write_run(tmp_path / "exp" / "run2", [{"val/iou/sky": 0.8, "val/iou/car": 0.6, "val/iou/bus": 0.1}])
    os.utime(first, (1, 1))  # oldest first, whatever the file system's clock resolution
    runs = find_runs(tmp_path)
    assert list(runs) == ["exp/run1", "exp/run2"]
    table = compare(runs)
    assert list(table.columns) == ["exp/run1", "exp/run2"]
    assert table.loc["car", "exp/run2"] == 0.6 and math.isnan(table.loc["bus", "exp/run1"])
    assert table.loc["mean", "exp/run1"] == pytest.approx((0.9 + 0.2) / 2)  # over the classes it scored
    assert table.loc["mean", "exp/run2"] == pytest.approx((0.8 + 0.6 + 0.1) / 3)
    figure = plot_comparison(table)
    assert isinstance(figure, Figure) and len(figure.axes[0].patches) == 2 * len(table)


def test_a_latest_link_adds_no_second_copy(tmp_path: Path) -> None:
    write_run(tmp_path / "exp" / "run1", [{"val/iou/sky": 0.9}])
    (tmp_path / "exp" / "latest").symlink_to("run1")
    assert list(find_runs(tmp_path)) == ["exp/run1"]
