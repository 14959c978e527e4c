"""Image / ground truth / prediction overlays of chosen validation samples, each validation epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from lightning_seg.callbacks.reporting import (
    BatchDiagnostic,
    class_colors,
    class_names,
    log_figure,
    save_json,
)
from lightning_seg.data.stats import ClassStats
from lightning_seg.figures.gallery import GallerySample, gallery_figure


def select_rare_samples(class_counts: np.ndarray, num_samples: int) -> list[int]:
    """Choose samples that show the rarest classes, rarest class first.

    Classes are ranked by their total pixel count over all samples (classes that never occur are
    skipped). Round by round, each class in that order takes the not-yet-chosen sample holding most of
    its pixels, until ``num_samples`` are chosen or no sample is left that contains a ranked class.

    Shape:
        class_counts ``N×C`` (pixels of each class in each sample) → at most ``num_samples`` indices.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    totals = counts.sum(axis=0)
    order = [c for c in np.argsort(totals, kind="stable") if totals[c] > 0]
    chosen: list[int] = []
    while len(chosen) < num_samples:
        picked_this_round = False
        for c in order:
            candidates = counts[:, c].copy()
            candidates[chosen] = 0
            if candidates.max() == 0:
                continue
            chosen.append(int(candidates.argmax()))
            picked_this_round = True
            if len(chosen) == num_samples:
                break
        if not picked_this_round:
            break
    return chosen


def per_sample_miou(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """Mean IoU of each sample over the classes present in its target or prediction (NaN if none).

    Shape:
        preds, target ``N×H×W`` int64 → ``N`` float.
    """
    n = preds.shape[0]
    cells = n * num_classes * num_classes
    sample = torch.arange(n, device=preds.device).view(n, 1, 1)
    index = (sample * num_classes + target) * num_classes + preds
    # Ignored pixels go to an extra bin (index ``cells``) that is dropped.
    index = torch.where(target != ignore_index, index, cells).flatten()
    confusion = torch.bincount(index, minlength=cells + 1)[:cells].view(n, num_classes, num_classes)
    tp = confusion.diagonal(dim1=1, dim2=2).double()
    union = confusion.sum(2) + confusion.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    return torch.nanmean(iou, dim=1)


def denormalise(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the DataModule's normalisation (mean/std on the 0–1 scale).

    Shape:
        image ``3×H×W`` float → ``H×W×3`` uint8.
    """
    pixels = image.detach().cpu().numpy().transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return (pixels.clip(0, 1) * 255).round().astype(np.uint8)


class PredictionGallery(BatchDiagnostic):
    """Overlays of a fixed set of rare-class validation samples and of the epoch's worst samples.

    The fixed set is chosen once, from the masks of ``trainer.datamodule.datasets["val"]``, with
    :func:`select_rare_samples`; those samples are recognised in the validation batches by name
    (``batch["meta"]["name"]``), so no extra forward pass runs. The worst samples are the
    ``num_worst`` lowest per-sample mIoU of the epoch (from ``outputs["preds"]``/``["target"]`` of
    ``on_validation_batch_end``). Colours and labels come from the DataModule's ``palette`` and
    ``class_names``; images are de-normalised with its ``mean``/``std``.

    Files under ``<run dir>/diagnostics/gallery``: ``rare_epoch_NNN.jpg``, ``worst_epoch_NNN.jpg`` (JPEG,
    as photographs are: a few times smaller than PNG) and ``epoch_NNN.json`` (names and mIoU of the
    samples shown), plus ``selection.json`` (the fixed set).
    W&B receives each sample as an image with interactive ``predictions`` / ``ground_truth`` masks;
    TensorBoard the figures. In a multi-process run, rank zero shows the samples it validated.

    Args:
        num_rare: size of the fixed set of rare-class samples.
        num_worst: how many worst samples to show each epoch (0 to disable).
        every_n_epochs: draw on every n-th validation epoch.
        alpha: opacity of the class colours over the image.
    """

    folder = "gallery"

    def __init__(self, num_rare: int = 4, num_worst: int = 4, every_n_epochs: int = 1, alpha: float = 0.5) -> None:
        super().__init__(every_n_epochs)
        if num_rare < 0 or num_worst < 0 or num_rare + num_worst == 0:
            raise ValueError(f"num_rare and num_worst must be 0 or more, not both 0; got {num_rare}, {num_worst}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.num_rare = num_rare
        self.num_worst = num_worst
        self.alpha = alpha
        self.selection: list[str] | None = None
        self._rare: dict[str, GallerySample] = {}
        self._worst: list[GallerySample] = []

    def collects(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and self.is_due(trainer)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.collects(trainer):
            return
        if self.selection is None:
            self.selection = self._select(trainer)
        self._rare, self._worst = {}, []

    def _select(self, trainer: Trainer) -> list[str]:
        dataset = getattr(trainer.datamodule, "datasets", {}).get("val")
        source = getattr(dataset, "source", None)
        if source is None:
            raise TypeError(
                "PredictionGallery needs a SegmentationDataModule whose datasets['val'] has a sample source; "
                f"got {type(trainer.datamodule).__name__}"
            )
        num_classes = len(trainer.datamodule.class_names)
        ignore_index = trainer.datamodule.ignore_index
        counts = np.stack(
            [ClassStats.from_masks([mask], num_classes, ignore_index).pixel_counts for mask in source.masks()]
        )
        chosen = select_rare_samples(counts, self.num_rare)
        names = [source.load(index)[2] for index in chosen]
        totals = counts.sum(axis=0)
        save_json(
            self.out_dir / "selection.json",
            {
                "samples": [
                    {"index": i, "name": n, "pixels": counts[i].tolist()} for i, n in zip(chosen, names, strict=True)
                ],
                "val_pixels": dict(zip(class_names(trainer, num_classes), totals.tolist(), strict=True)),
            },
        )
        return names

    def collect(self, trainer: Trainer, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        dm = trainer.datamodule
        preds, target = outputs["preds"], outputs["target"]
        scores = per_sample_miou(preds, target, len(dm.class_names), dm.ignore_index).tolist()
        names = list(batch["meta"]["name"])
        threshold = self._worst[-1].miou if len(self._worst) >= self.num_worst > 0 else float("inf")
        for i, (name, score) in enumerate(zip(names, scores, strict=True)):
            wanted_rare = name in self.selection
            wanted_worst = self.num_worst > 0 and not np.isnan(score) and score < threshold
            if not (wanted_rare or wanted_worst):
                continue
            sample = GallerySample(
                name,
                batch["image"][i].detach().cpu(),
                target[i].cpu().numpy(),
                preds[i].cpu().numpy(),
                score,
            )
            if wanted_rare:
                self._rare[name] = sample
            if wanted_worst:
                self._worst = sorted([*self._worst, sample], key=lambda s: s.miou)[: self.num_worst]

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.collects(trainer):
            return
        dm = trainer.datamodule
        shown = {
            "rare": [self._rare[name] for name in self.selection if name in self._rare],
            "worst": self._worst,
        }
        for kind, samples in shown.items():
            if samples:
                pictures = [replace(s, image=denormalise(s.image, dm.mean, dm.std)) for s in samples]
                self._draw(trainer, kind, pictures)
        save_json(
            self.out_dir / f"{self.epoch_tag(trainer)}.json",
            {kind: [{"name": s.name, "miou": s.miou} for s in samples] for kind, samples in shown.items()},
        )
        self._rare, self._worst = {}, []

    def _draw(self, trainer: Trainer, kind: str, samples: list[GallerySample]) -> None:
        dm = trainer.datamodule
        names = class_names(trainer, len(dm.class_names))
        colors = class_colors(trainer, len(names))
        key = f"diagnostics/gallery/{kind}"
        title = f"{kind} validation samples, epoch {trainer.current_epoch}"
        path = self.out_dir / f"{kind}_{self.epoch_tag(trainer)}.jpg"
        log_figure(trainer, key, path, gallery_figure, samples, names, colors, dm.ignore_index, self.alpha, title)
        labels = {**dict(enumerate(names)), dm.ignore_index: "ignore"}
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    f"{key}_masks",
                    [s.image for s in samples],
                    step=trainer.global_step,
                    caption=[f"{s.name} (mIoU {s.miou:.2f})" for s in samples],
                    masks=[
                        {
                            "predictions": {"mask_data": s.pred, "class_labels": labels},
                            "ground_truth": {"mask_data": s.target, "class_labels": labels},
                        }
                        for s in samples
                    ],
                )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "selection": self.selection}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.selection = state_dict.get("selection")
