"""LossBreakdown: per-class cross-entropy and gradient sums against autograd."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from lightning_seg.callbacks import LossBreakdown, loss_breakdown
from lightning_seg.callbacks.loss_breakdown import breakdown_table, class_loss_sums


def crafted_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 5, 4, generator=generator)
    target = torch.randint(0, 3, (2, 5, 4), generator=generator)
    target[0, 0, :2] = 255
    target[target == 2] = 1  # class 2 never occurs
    target[1, 4, 3] = 2  # except in one pixel
    return logits, target


@pytest.mark.parametrize("chunk", [None, 3 * 5 * 4, 3 * 4 * 2], ids=["whole batch", "one image", "two rows"])
def test_sums_match_cross_entropy_and_its_autograd_gradient(chunk: int | None, monkeypatch) -> None:
    if chunk is not None:  # pieces of one image, and bands of two rows (5 = 2 + 2 + 1)
        monkeypatch.setattr(loss_breakdown, "CHUNK_ELEMENTS", chunk)
    logits, target = crafted_batch()
    leaf = logits.clone().requires_grad_(True)
    pixel_ce = F.cross_entropy(leaf, target, ignore_index=255, reduction="none")
    (grad,) = torch.autograd.grad(pixel_ce.sum(), leaf)
    grad_norm = grad.norm(dim=1)
    sums = class_loss_sums(logits, target, ignore_index=255)
    for c in range(3):
        where = target == c
        assert sums[0, c] == where.sum()
        assert sums[1, c].item() == pytest.approx(pixel_ce[where].sum().item(), rel=1e-5)
        assert sums[2, c].item() == pytest.approx(grad_norm[where].sum().item(), rel=1e-5)


def test_sums_of_a_hand_worked_batch_skip_ignored_pixels() -> None:
    """Two classes, three pixels: logits (0, 0) of class 0, (ln 3, 0) of class 1, and an ignored one."""
    logits = torch.tensor([[0.0, math.log(3.0), 50.0], [0.0, 0.0, -50.0]]).view(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, 255]]])
    sums = class_loss_sums(logits, target, ignore_index=255)
    # p = (1/2, 1/2): CE ln 2, gradient (-1/2, 1/2); p = (3/4, 1/4) for class 1: CE ln 4, gradient (3/4, -3/4).
    expected = [[1, 1], [math.log(2.0), math.log(4.0)], [math.sqrt(0.5), 0.75 * math.sqrt(2.0)]]
    assert sums.dtype == torch.float64
    np.testing.assert_allclose(sums.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_are_summed_in_float32(dtype: torch.dtype) -> None:
    logits, target = crafted_batch()
    low = (logits * 4).to(dtype)
    sums = class_loss_sums(low, target, ignore_index=255)
    reference = class_loss_sums(low.float(), target, ignore_index=255)
    assert sums.dtype == torch.float64
    torch.testing.assert_close(sums, reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_extreme_logits_give_finite_sums(dtype: torch.dtype) -> None:
    """Logits ±6·10⁴ (near fp16's limit): a confident right pixel costs 0, a confident wrong one 1.2·10⁵ and √2."""
    logits = torch.tensor([[6e4, -6e4], [-6e4, 6e4]], dtype=dtype).T.reshape(1, 2, 1, 2)
    target = torch.tensor([[[0, 0]]])
    sums = class_loss_sums(logits, target, ignore_index=255)
    assert torch.isfinite(sums).all()
    np.testing.assert_allclose(sums[:, 0].numpy(), [2, 1.2e5, math.sqrt(2.0)], rtol=1e-3)


def test_table_shares_sum_to_one() -> None:
    frame = breakdown_table(np.array([[6.0, 3.0, 1.0], [1.0, 2.0, 1.0], [2.0, 1.0, 1.0]]), ["a", "b", "c"])
    np.testing.assert_allclose(frame["pixel_share"], [0.6, 0.3, 0.1])
    np.testing.assert_allclose(frame["ce_share"], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(frame["grad_share"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(frame["mean_ce"], [1 / 6, 2 / 3, 1.0])


def test_callback_accumulates_batches_and_logs_shares(make_trainer, tmp_path) -> None:
    batches = [crafted_batch(0), crafted_batch(1)]
    strategy = SimpleNamespace(reduce=lambda tensor, reduce_op: tensor)
    datamodule = SimpleNamespace(class_names=("sky", "road", "rare"), ignore_index=255)
    logged: list[dict[str, float]] = []
    connector = SimpleNamespace(log_metrics=logged.append)
    trainer = make_trainer(datamodule, epoch=0, strategy=strategy, _logger_connector=connector)
    module = SimpleNamespace()
    callback = LossBreakdown()
    callback.setup(trainer, module, "fit")
    callback.on_validation_epoch_start(trainer, module)
    for i, (logits, target) in enumerate(batches):
        callback.on_validation_batch_end(trainer, module, {"logits": logits, "target": target}, {}, i)
    callback.on_validation_epoch_end(trainer, module)
    callback.teardown(trainer, module, "fit")  # the figure is drawn in the background: on disk by teardown
    names = list(datamodule.class_names)
    expected = breakdown_table(sum(class_loss_sums(lg, tg, 255) for lg, tg in batches).numpy(), names)
    history = pd.read_csv(tmp_path / "diagnostics" / "loss_breakdown" / "history.csv")
    np.testing.assert_allclose(history["ce_share"], expected["ce_share"])
    assert history["pixels"].sum() == sum(int((t != 255).sum()) for _, t in batches)
    (metrics,) = logged  # every share in one call
    assert len(metrics) == 2 * len(names)
    for name, loss_share, grad_share in zip(names, expected["ce_share"], expected["grad_share"], strict=True):
        assert metrics[f"val/loss_share/{name}"] == pytest.approx(loss_share)
        assert metrics[f"val/grad_share/{name}"] == pytest.approx(grad_share)
    assert (tmp_path / "diagnostics" / "loss_breakdown" / "epoch_000.png").is_file()


class RecordingLogger(Logger):
    """Every ``log_metrics`` call, as a logger such as W&B's receives it."""

    name, version = "recording", 0

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def log_hyperparams(self, params: object, *args: object, **kwargs: object) -> None:
        pass


def test_shares_reach_every_logger_at_the_step_of_the_val_metrics(datamodule, module, tmp_path) -> None:
    """In a fit, CSV, TensorBoard and any logger get every share once per epoch, beside ``val/miou``'s step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recording = RecordingLogger()
    loggers = [CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb"), recording]
    quiet = {f"enable_{part}": False for part in ("checkpointing", "progress_bar", "model_summary")}
    callback = LossBreakdown()
    trainer = Trainer(
        max_epochs=2, accelerator="cpu", default_root_dir=tmp_path, logger=loggers, callbacks=[callback],
        limit_train_batches=2, log_every_n_steps=1, **quiet,
    )
    trainer.fit(module, datamodule)
    names = list(datamodule.class_names)
    keys = [f"val/{kind}/{name}" for kind in ("loss_share", "grad_share") for name in names]
    history = pd.DataFrame(callback.history).set_index(["epoch", "class"])

    val_steps = [step for step, metrics in recording.calls if "val/miou" in metrics]
    share_calls = [(step, metrics) for step, metrics in recording.calls if keys[0] in metrics]
    assert len(val_steps) == len(share_calls) == 2
    assert [step for step, _ in share_calls] == val_steps
    for epoch, (_, metrics) in enumerate(share_calls):
        assert metrics["epoch"] == epoch and set(keys) <= set(metrics)
        for name in names:
            assert metrics[f"val/loss_share/{name}"] == pytest.approx(history.loc[(epoch, name), "ce_share"])
            assert metrics[f"val/grad_share/{name}"] == pytest.approx(history.loc[(epoch, name), "grad_share"])
    assert set(keys) <= set(trainer.logged_metrics)

    csv = pd.read_csv(next((tmp_path / "csv").rglob("metrics.csv")))
    miou_steps = csv.dropna(subset=["val/miou"])["step"].tolist()
    for key in keys:
        rows = csv.dropna(subset=[key])
        assert rows["step"].tolist() == miou_steps == val_steps and rows["epoch"].tolist() == [0, 1], key
    events = EventAccumulator(str(next((tmp_path / "tb").rglob("events.out.tfevents*")))).Reload()
    for key in keys:
        assert [e.step for e in events.Scalars(key)] == val_steps, key
