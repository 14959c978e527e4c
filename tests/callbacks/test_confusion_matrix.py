"""ConfusionMatrix: row normalisation worked by hand, files written with class names."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from lightning_seg.callbacks import ConfusionMatrix
from lightning_seg.figures.confusion_matrix import confusion_figure, row_normalise

CONFUSION = np.array([[6, 2, 0], [1, 3, 0], [0, 0, 0]])


def test_rows_sum_to_one_and_empty_rows_stay_zero() -> None:
    expected = np.array([[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(row_normalise(CONFUSION), expected)


def test_figure_names_every_class_on_both_axes() -> None:
    figure = confusion_figure(CONFUSION, ["a", "b", "c"], "t")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in axes.texts)[-2:] == ["0.75", "0.75"]


def test_callback_writes_counts_and_figure_per_epoch_and_for_test(make_trainer, datamodule, tmp_path) -> None:
    confusion = np.arange(16).reshape(4, 4)
    module = SimpleNamespace(
        last_confusion={"val": torch.as_tensor(confusion), "test": torch.as_tensor(confusion.T)}
    )
    callback = ConfusionMatrix()
    trainer = make_trainer(datamodule, epoch=2)
    callback.setup(trainer, module, "fit")
    callback.on_validation_end(trainer, module)
    callback.on_test_end(trainer, module)
    callback.teardown(trainer, module, "fit")  # figures are drawn in the background: on disk by teardown
    folder = tmp_path / "diagnostics" / "confusion_matrix"
    written = pd.read_csv(folder / "val_epoch_002.csv", index_col="true")
    assert written.index.tolist() == list(datamodule.class_names) == written.columns.tolist()
    np.testing.assert_array_equal(written.to_numpy(), confusion)
    np.testing.assert_array_equal(
        pd.read_csv(folder / "test_epoch_002.csv", index_col="true").to_numpy(), confusion.T
    )
    assert (folder / "val_epoch_002.png").is_file() and (folder / "test_epoch_002.png").is_file()
