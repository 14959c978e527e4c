"""The non-finite guard through the real CLI: a NaN batch stops training with one line, batch and checkpoint kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_seg.callbacks import NonFiniteGuard
from lightning_seg.cli import main
from lightning_seg.data import SyntheticDataModule
from lightning_seg.module import SegmentationModule
from tests.conftest import QUICKSTART, TINY_DATA


class PoisonedSynthetic(SyntheticDataModule):
    """The synthetic dataset with a NaN pixel in the first image of one training batch (as a corrupt file would)."""

    def __init__(self, poison_batch: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poison_batch = poison_batch
        self.seen = 0

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.trainer is not None and self.trainer.training:
            if self.seen == self.poison_batch:
                batch["image"][0, :, 3, 5] = float("nan")
            self.seen += 1
        return batch


def test_a_nan_batch_stops_training_with_one_line_and_keeps_batch_and_checkpoint(in_tmp: Path, capsys) -> None:
    args = [
        "fit",
        "--config",
        str(QUICKSTART),
        "--data=tests.losses.test_nan_guard.PoisonedSynthetic",
        *TINY_DATA,
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",
        "--trainer.callbacks=[]",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={in_tmp / 'run'}",
    ]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lightning-seg: error")]
    assert len(errors) == 1, errors
    line = errors[0]
    folder = (in_tmp / "run" / "latest").resolve() / "nonfinite"  # inside this run's own <root>/<date-time>/
    assert "non-finite training loss at step 1 (epoch 0): cross_entropy = nan" in line
    batch = torch.load(folder / "batch-step1.pt", weights_only=False)
    assert str(batch["meta"]["name"]) in line and len(batch["meta"]["name"]) == 4
    assert torch.isnan(batch["image"][0, :, 3, 5]).all() and torch.isfinite(batch["image"][1:]).all()
    assert str(folder / "batch-step1.pt") in line and str(folder / "step1.ckpt") in line
    # The checkpoint holds the weights before the step: finite, and they load into a module.
    checkpoint = torch.load(folder / "step1.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    SegmentationModule.load_from_checkpoint(folder / "step1.ckpt")


def test_the_module_adds_the_guard_once_and_can_leave_it_out() -> None:
    assert [type(c) for c in SegmentationModule().configure_callbacks()] == [NonFiniteGuard]
    assert SegmentationModule(nan_guard=False).configure_callbacks() == []
