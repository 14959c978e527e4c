"""PerClassMetrics against a confusion matrix worked by hand."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_seg.callbacks import PerClassMetrics
from lightning_seg.callbacks.per_class_metrics import per_class_table

NAMES = ["background", "road", "car", "rare"]
# Rows true, columns predicted. 'car' is predicted once but never present; 'rare' is absent from both.
CONFUSION = np.array([[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
NAN = float("nan")
BY_HAND = {
    # background: tp 5, fp 2, fn 1; road: tp 3, fp 1, fn 3; car: tp 0, fp 1, fn 0.
    "iou": [5 / 8, 3 / 7, 0.0, NAN],
    "dice": [10 / 13, 6 / 10, 0.0, NAN],
    "precision": [5 / 7, 3 / 4, 0.0, NAN],
    "recall": [5 / 6, 3 / 6, NAN, NAN],
}


def test_table_matches_hand_worked_scores() -> None:
    frame = per_class_table(CONFUSION, NAMES)
    assert frame["class"].tolist() == NAMES
    assert frame["support"].tolist() == [6, 6, 0, 0]
    for score, expected in BY_HAND.items():
        np.testing.assert_allclose(frame[score], expected, err_msg=score)


def module_with(confusion: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(last_confusion={"val": torch.as_tensor(confusion)})


def test_callback_writes_epoch_tables_history_and_curves(make_trainer, datamodule, tmp_path) -> None:
    callback = PerClassMetrics(warn_after_epochs=10)
    second = CONFUSION + np.diag([1, 1, 0, 0])
    for epoch, confusion in enumerate([CONFUSION, second]):
        trainer = make_trainer(datamodule, epoch=epoch)
        callback.setup(trainer, None, "fit")
        callback.on_validation_end(trainer, module_with(confusion))
    callback.teardown(trainer, None, "fit")  # the curves are drawn in the background: on disk by teardown
    folder = tmp_path / "diagnostics" / "per_class_metrics"
    first = pd.read_csv(folder / "epoch_000.csv")
    for score, expected in BY_HAND.items():
        np.testing.assert_allclose(first[score], expected, err_msg=score)
    history = pd.read_csv(folder / "history.csv")
    assert history["epoch"].tolist() == [0] * 4 + [1] * 4
    assert history.loc[history["epoch"] == 1, "iou"].iloc[0] == pytest.approx(6 / 9)
    assert (folder / "curves.png").stat().st_size > 0
    assert callback.state_dict()["history"][4]["epoch"] == 1


def test_skips_the_sanity_check_and_off_schedule_epochs(make_trainer, datamodule, tmp_path) -> None:
    callback = PerClassMetrics(every_n_epochs=2)
    for trainer in (make_trainer(datamodule, sanity_checking=True), make_trainer(datamodule, epoch=0)):
        callback.setup(trainer, None, "fit")
        callback.on_validation_end(trainer, module_with(CONFUSION))
    assert not (tmp_path / "diagnostics").exists()
    trainer = make_trainer(datamodule, epoch=1)
    callback.on_validation_end(trainer, module_with(CONFUSION))
    assert (tmp_path / "diagnostics" / "per_class_metrics" / "epoch_001.csv").is_file()


def test_warns_about_a_class_with_training_pixels_and_iou_zero(make_trainer, datamodule, caplog) -> None:
    callback = PerClassMetrics(warn_after_epochs=3)
    caplog.set_level(logging.WARNING, logger="lightning_seg.callbacks.per_class_metrics")
    for epoch in range(3):
        trainer = make_trainer(datamodule, epoch=epoch)
        callback.setup(trainer, None, "fit")
        callback.on_validation_end(trainer, module_with(CONFUSION))
        # 'car' (4 training pixels, IoU 0) is reported from the third epoch on; 'rare' has IoU NaN.
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == (1 if epoch == 2 else 0)
    assert "'car'" in lines[0] and "4 training pixels" in lines[0] and "after 3 epochs" in lines[0]


def test_rejects_bad_arguments_and_modules_without_a_confusion_matrix(make_trainer, datamodule) -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        PerClassMetrics(every_n_epochs=0)
    with pytest.raises(ValueError, match="warn_after_epochs"):
        PerClassMetrics(warn_after_epochs=0)
    callback = PerClassMetrics()
    trainer = make_trainer(datamodule)
    callback.setup(trainer, None, "fit")
    with pytest.raises(TypeError, match="last_confusion"):
        callback.on_validation_end(trainer, SimpleNamespace())


def test_test_run_writes_its_table_from_the_test_matrix(make_trainer, datamodule, tmp_path) -> None:
    callback = PerClassMetrics()
    trainer = make_trainer(datamodule, epoch=4)
    callback.setup(trainer, None, "test")
    callback.on_test_end(trainer, SimpleNamespace(last_confusion={"test": torch.as_tensor(CONFUSION)}))
    path = tmp_path / "diagnostics" / "per_class_metrics" / "test_epoch_004.csv"
    assert callback.last_table == path
    written = pd.read_csv(path)
    for score, expected in BY_HAND.items():
        np.testing.assert_allclose(written[score], expected, err_msg=score)


def test_history_file_holds_the_whole_history_after_new_repeated_and_resumed_epochs(make_trainer, tmp_path) -> None:
    """history.csv always equals the history written in one go, whether rows were appended or replaced."""
    path = tmp_path / "diagnostics" / "per_class_metrics" / "history.csv"

    def frame(epoch: int) -> pd.DataFrame:
        return per_class_table(CONFUSION + epoch, NAMES).assign(note=[f"e{epoch}"] * len(NAMES))

    def in_one_go(callback: PerClassMetrics) -> str:
        return pd.DataFrame(callback.history).to_csv(index=False)

    callback = PerClassMetrics()
    callback.setup(make_trainer(None), None, "fit")
    for epoch in (0, 1, 2, 1, 3):  # epoch 1 validated twice: its rows are replaced
        callback.save_history(epoch, frame(epoch))
        assert path.read_text() == in_one_go(callback), epoch
    assert pd.read_csv(path)["epoch"].tolist() == [e for e in (0, 2, 1, 3) for _ in NAMES]

    resumed = PerClassMetrics()  # a resumed run: the history comes back from the checkpoint
    resumed.load_state_dict(callback.state_dict())
    resumed.setup(make_trainer(None), None, "fit")
    path.write_text("stale")
    resumed.save_history(4, frame(4))
    assert path.read_text() == in_one_go(resumed)
    resumed.save_history(5, frame(5).drop(columns="note"))  # other columns: rewritten
    assert path.read_text() == in_one_go(resumed)

    again = PerClassMetrics()  # the same instance restored from a checkpoint of as many rows as it wrote
    again.setup(make_trainer(None), None, "fit")
    for epoch in (0, 1):
        again.save_history(epoch, frame(epoch))
    other = PerClassMetrics()
    for epoch in (0, 1):
        other.record(epoch, frame(epoch + 7))
    again.load_state_dict(other.state_dict())
    again.save_history(2, frame(2))
    assert path.read_text() == in_one_go(again)
