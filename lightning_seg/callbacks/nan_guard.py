"""Stop training at the first non-finite loss, keeping the batch and the weights that produced it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from lightning_seg.runs import run_directory


class NonFiniteLossError(FloatingPointError, ValueError):
    """The training loss, or one of its terms, became NaN or infinite (the message says where and why)."""


class NonFiniteGuard(Callback):
    """Stop at the first training step whose total loss or any term is NaN or infinite.

    Checked before the backward pass, so the optimizer never steps on a non-finite gradient. It then
    saves, under ``<run directory>/<dirname>/``, the batch as ``batch-step<N>.pt`` (on the CPU, as
    :func:`torch.save` writes it; ``torch.load(path, weights_only=False)`` reads it back) and a
    checkpoint ``step<N>.ckpt`` of the state *before* the step (the weights, and the buffers such as
    BatchNorm statistics as they were before this batch's forward pass: a copy of the buffers is kept
    each step), and raises :class:`NonFiniteLossError` with one line naming the step, the
    non-finite term(s) and the batch's files (``batch["meta"]["name"]``); the CLI prints that line.

    The terms are the ``train/loss/<name>`` values the module logged for the step. The check reads the
    loss back from the device once per step (a synchronisation; negligible next to a training step).
    :class:`~lightning_seg.module.SegmentationModule` adds this callback unless ``nan_guard: false``.

    Args:
        dirname: the folder, inside the run directory, for the batch and the checkpoint.
    """

    def __init__(self, dirname: str = "nonfinite") -> None:
        self.dirname = dirname
        self._batch: Any = None
        self._buffers: dict[str, Tensor] = {}

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch = batch
        # The forward pass updates buffers (BatchNorm running statistics) before the loss is known: keep
        # their values from before the step, so the checkpoint is the state that met this batch.
        self._buffers = {name: buffer.detach().clone() for name, buffer in pl_module.named_buffers()}

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batch, self._buffers = None, {}

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        terms = {
            key.removeprefix("train/loss/"): float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("train/loss/")
        }
        bad = {name: value for name, value in terms.items() if not math.isfinite(value)}
        if not bad:
            bad = {"total": float(loss.detach().float().sum())}
        step = trainer.global_step
        folder = run_directory(trainer) / self.dirname
        folder.mkdir(parents=True, exist_ok=True)
        batch_path, checkpoint_path = folder / f"batch-step{step}.pt", folder / f"step{step}.ckpt"
        batch = self._batch if self._batch is not None else {}
        torch.save(move_data_to_device(batch, "cpu"), batch_path)
        with torch.no_grad():
            for name, buffer in pl_module.named_buffers():
                if name in self._buffers:
                    buffer.copy_(self._buffers[name])
        checkpoint_path = self._save_checkpoint(trainer, pl_module, checkpoint_path)
        names = list(batch.get("meta", {}).get("name", [])) if isinstance(batch, dict) else []
        described = ", ".join(f"{name} = {value}" for name, value in bad.items())
        raise NonFiniteLossError(
            f"non-finite training loss at step {step} (epoch {trainer.current_epoch}): {described}; batch files "
            f"{names or 'unknown (no meta.name in the batch)'}; saved the batch to {batch_path} and the weights "
            f"before this step to {checkpoint_path}"
        )

    @staticmethod
    def _save_checkpoint(trainer: Trainer, pl_module: LightningModule, path: Path) -> Path:
        """Save a full checkpoint on one process, the module's weights alone per rank on several.

        ``trainer.save_checkpoint`` waits for every rank, and the others may not have stopped.
        """
        if trainer.world_size == 1:
            trainer.save_checkpoint(path)
            return path
        path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        torch.save({"state_dict": pl_module.state_dict(), "global_step": trainer.global_step}, path)
        return path
