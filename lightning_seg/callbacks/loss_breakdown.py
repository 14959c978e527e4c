"""Which classes the loss and its gradient come from, over the validation set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule, Trainer
from torch import Tensor

from lightning_seg.callbacks.reporting import (
    BatchDiagnostic,
    check_positive,
    class_names,
    log_epoch_metrics,
    log_figure,
)
from lightning_seg.figures.loss_breakdown import breakdown_figure

#: Logit elements per piece :func:`class_loss_sums` works on (16 MB in float32). A temporary this size
#: is reused by the allocator and stays near the CPU caches: at 8×150×128² on one CPU thread, pieces
#: take about half the time of one whole-batch temporary.
CHUNK_ELEMENTS = 1 << 22


def class_loss_sums(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Per true class: labelled pixels, summed pixel cross-entropy, summed gradient norm on the logits.

    For a pixel of true class ``y`` with softmax ``p``, the cross-entropy is ``−log p_y`` and its
    gradient with respect to the pixel's logits is ``p − e_y``; its Euclidean norm measures how hard
    that pixel pulls on the network. Summing both per true class shows where the loss and the gradient
    go (a rare class with a large share of the gradient is being learned; one with a tiny share is not).
    The batch is summed in pieces of at most :data:`CHUNK_ELEMENTS` logits (whole images, or bands
    of rows of one image), in float32 whatever the logits' dtype.

    Shape:
        logits ``N×C×H×W``, target ``N×H×W`` int64 → ``3×C`` float64 (pixels, CE sum, gradient-norm sum).
    """
    num_classes, height, width = logits.shape[1:]
    per_image = num_classes * height * width
    if per_image <= CHUNK_ELEMENTS:
        images = max(1, CHUNK_ELEMENTS // per_image)
        pieces = zip(logits.split(images), target.split(images), strict=True)
    else:
        rows = max(1, CHUNK_ELEMENTS // (num_classes * width))
        pieces = (
            (band, band_target)
            for image, image_target in zip(logits.split(1), target.split(1), strict=True)
            for band, band_target in zip(image.split(rows, dim=2), image_target.split(rows, dim=1), strict=True)
        )
    return torch.stack([_piece_sums(piece, piece_target, ignore_index) for piece, piece_target in pieces]).sum(0)


def _piece_sums(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """:func:`class_loss_sums` of one piece of a batch, computed whole."""
    num_classes = logits.shape[1]
    valid = target != ignore_index
    # Ignored pixels are counted in an extra bin (index C) that is dropped, so no boolean indexing copies.
    bins = torch.where(valid, target, num_classes).flatten()
    # The softmax from one exponential pass, in float32 (or the logits' dtype if wider): with m the
    # largest logit of a pixel and e = exp(x − m) (each ≤ 1, the largest 1), s = Σ e ≥ 1,
    # −log p_y = log s − (x_y − m) and Σ_c p_c² = ‖e‖² / s². One N×C×H×W temporary, updated in place,
    # instead of log_softmax's three; no exponential overflows whatever the logits' size.
    x = logits.detach()
    top = x.amax(1, keepdim=True).to(torch.promote_types(x.dtype, torch.float32))
    shifted = x - top  # promoted: fp16 / bf16 logits are shifted in float32
    shifted_true = shifted.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    e = shifted.exp_()
    total = e.sum(1)
    sum_p2 = e.mul_(e).sum(1).div_(total.square())
    ce = total.log_().sub_(shifted_true)
    # ‖p − e_y‖² = Σ_c p_c² − 2 p_y + 1
    grad_norm = (sum_p2 - 2 * torch.exp(-ce) + 1).clamp_min_(0).sqrt_()
    dtype = torch.float32 if logits.device.type == "mps" else torch.float64
    sums = [
        torch.bincount(bins, minlength=num_classes + 1).to(dtype),
        torch.bincount(bins, weights=ce.flatten(), minlength=num_classes + 1).to(dtype),
        torch.bincount(bins, weights=grad_norm.flatten(), minlength=num_classes + 1).to(dtype),
    ]
    return torch.stack(sums)[:, :num_classes]


def breakdown_table(sums: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Shares of pixels, cross-entropy and gradient norm per class (each column sums to 1).

    Shape:
        sums ``3×C`` (from :func:`class_loss_sums`) → one row per class.
    """
    pixels, ce, grad = (np.asarray(row, dtype=np.float64) for row in sums)
    return pd.DataFrame(
        {
            "class": names,
            "pixels": pixels.astype(np.int64),
            "pixel_share": pixels / max(pixels.sum(), 1.0),
            "ce_share": ce / max(ce.sum(), np.finfo(float).tiny),
            "grad_share": grad / max(grad.sum(), np.finfo(float).tiny),
            "mean_ce": np.divide(ce, pixels, out=np.full_like(ce, np.nan), where=pixels > 0),
        }
    )


class LossBreakdown(BatchDiagnostic):
    """Per-class share of the pixel cross-entropy and of its gradient on the logits, per validation epoch.

    Reads ``outputs["logits"]`` and ``outputs["target"]`` of each validation batch (no extra forward
    pass) and accumulates :func:`class_loss_sums`. The cross-entropy is computed here whatever loss the
    module trains with: it is the common yardstick of how much each class's pixels are still wrong.
    The module already logs each loss term and weight; this callback is about classes.

    Sends ``val/loss_share/<class>`` and ``val/grad_share/<class>`` to every logger, CSV included, in one
    call per epoch at the step of the module's ``val/*`` metrics (:func:`log_epoch_metrics`; they are not
    in ``trainer.callback_metrics``, so not monitorable) and writes under ``<run dir>/diagnostics/loss_breakdown``:
    ``history.csv`` (every epoch) and ``epoch_NNN.png`` (bars of pixel, loss and gradient shares, sorted
    by pixel share; with many classes the ``num_shown`` most and least frequent and the others' mean).

    Args:
        every_n_epochs: accumulate and report on every n-th validation epoch.
        num_shown: how many most and least frequent classes the figure shows when there are many.
    """

    folder = "loss_breakdown"

    def __init__(self, every_n_epochs: int = 1, num_shown: int = 12) -> None:
        super().__init__(every_n_epochs)
        check_positive(num_shown=num_shown)
        self.num_shown = num_shown
        self._sums: Tensor | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._sums = None

    def collect(self, trainer: Trainer, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        sums = class_loss_sums(outputs["logits"], outputs["target"], trainer.datamodule.ignore_index)
        self._sums = sums if self._sums is None else self._sums + sums

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.is_due(trainer) or self._sums is None:
            return
        sums = trainer.strategy.reduce(self._sums, reduce_op="sum").cpu().numpy()
        frame = breakdown_table(sums, class_names(trainer, sums.shape[1]))
        if not trainer.is_global_zero:
            return
        shares = {"loss_share": frame["ce_share"], "grad_share": frame["grad_share"]}
        log_epoch_metrics(
            trainer,
            {
                f"val/{kind}/{name}": float(value)
                for kind, column in shares.items()
                for name, value in zip(frame["class"], column, strict=True)
            },
        )
        epoch = trainer.current_epoch
        self.save_history(epoch, frame)
        title = f"Where the validation loss comes from, epoch {epoch}"
        log_figure(
            trainer,
            "diagnostics/loss_breakdown",
            self.out_dir / f"{self.epoch_tag(trainer)}.png",
            breakdown_figure,
            frame,
            title,
            self.num_shown,
        )
