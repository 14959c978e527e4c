"""How imbalanced the training set is, and the class weights each common scheme derives from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning import LightningModule, Trainer

from lightning_seg.callbacks.reporting import (
    DiagnosticCallback,
    check_positive,
    class_names,
    log_figure,
    log_scalars,
    log_table,
    save_json,
)
from lightning_seg.data.stats import ClassStats
from lightning_seg.figures.class_distribution import distribution_figure
from lightning_seg.losses.class_weights import WEIGHTING_SCHEMES, compute_class_weights


def imbalance_ratio(stats: ClassStats) -> float:
    """Pixel count of the most frequent class over that of the least frequent class that occurs.

    Classes without any training pixel are left out (their ratio would be infinite); they are listed
    separately by :func:`distribution_table`'s ``pixel_count`` of 0.
    """
    counts = np.asarray(stats.pixel_counts, dtype=np.float64)
    present = counts[counts > 0]
    if present.size == 0:
        raise ValueError(f"class statistics hold no labelled pixel (pixel_counts={stats.pixel_counts})")
    return float(present.max() / present.min())


def distribution_table(stats: ClassStats, names: Sequence[str], beta: float) -> pd.DataFrame:
    """One row per class: pixel and image counts and frequencies, and the weight of every scheme.

    The weights come from :func:`lightning_seg.losses.class_weights.compute_class_weights`, the same
    function a loss's ``weight="auto"`` uses, so the table shows exactly what a loss would apply.
    """
    if len(names) != stats.num_classes:
        raise ValueError(f"got {len(names)} class names {list(names)} for {stats.num_classes} classes")
    frame = pd.DataFrame(
        {
            "class": list(names),
            "pixel_count": np.asarray(stats.pixel_counts, dtype=np.int64),
            "pixel_frequency": stats.pixel_frequency,
            "image_count": np.asarray(stats.image_counts, dtype=np.int64),
            "image_frequency": stats.image_frequency,
        }
    )
    for scheme in WEIGHTING_SCHEMES:
        weights = compute_class_weights(stats, scheme=scheme, beta=beta)
        frame[f"weight_{scheme}"] = np.asarray(weights, dtype=np.float64)
    return frame


class ClassDistribution(DiagnosticCallback):
    """Reports the training set's class distribution once, when fitting starts.

    From ``trainer.datamodule.class_stats`` it writes, under ``<run dir>/diagnostics/class_distribution``:
    ``class_distribution.csv`` (one row per class: pixel/image counts and frequencies, weights of
    every scheme), ``class_distribution.json`` (the same plus the imbalance ratio) and
    ``class_distribution.png`` (log-scale bar charts sorted by frequency: all classes up to
    ``2 · num_shown + 1``, beyond that the ``num_shown`` most and least frequent and one bar of the
    others' means); the figure and table also go to W&B /
    TensorBoard, and ``data/imbalance_ratio`` to every logger.

    Weighting schemes (:mod:`lightning_seg.losses.class_weights`): inverse frequency; median-frequency
    balancing (Eigen & Fergus, ICCV 2015); ENet's ``1 / ln(1.02 + p)`` (Paszke et al. 2016); effective
    number of samples ``(1 − β) / (1 − β^n)`` (Cui et al., CVPR 2019).

    At the end of the first training epoch it also writes ``sampled_class_frequency.csv`` (table
    ``diagnostics/sampled_class_frequency``): each class's share of the labelled pixels of the batches the
    model trained on (after rare-class sampling, crops and copy-paste) next to its share in the dataset.

    Args:
        beta: β of the effective-number scheme.
        num_shown: how many most and least frequent classes the figure shows when there are many.
    """

    folder = "class_distribution"

    def __init__(self, beta: float = 0.999, num_shown: int = 12) -> None:
        super().__init__(every_n_epochs=1)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        check_positive(num_shown=num_shown)
        self.beta = beta
        self.num_shown = num_shown
        self._sampled: torch.Tensor | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        stats = getattr(trainer.datamodule, "class_stats", None)
        if not isinstance(stats, ClassStats):
            raise TypeError(
                f"ClassDistribution needs a DataModule with a `class_stats` ClassStats property, "
                f"got {type(trainer.datamodule).__name__}"
            )
        frame = distribution_table(stats, class_names(trainer, stats.num_classes), self.beta)
        ratio = imbalance_ratio(stats)
        key = "diagnostics/class_distribution"
        log_table(trainer, key, frame, self.out_dir / "class_distribution.csv")
        path = self.out_dir / "class_distribution.png"
        log_figure(trainer, key, path, distribution_figure, frame, ratio, self.num_shown)
        log_scalars(trainer, {"data/imbalance_ratio": ratio})
        save_json(
            self.out_dir / "class_distribution.json",
            {
                "num_images": stats.num_images,
                "imbalance_ratio": ratio,
                "absent_classes": frame.loc[frame["pixel_count"] == 0, "class"].tolist(),
                "beta": self.beta,
                "classes": frame.to_dict(orient="records"),
            },
        )

    # ----- what the model actually trains on (first epoch) -----
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: dict[str, Any], batch_idx: int
    ) -> None:
        if trainer.current_epoch > 0 or not trainer.is_global_zero or "mask" not in batch:
            return
        num_classes = pl_module.num_classes
        mask = batch["mask"]
        labels = mask[(mask >= 0) & (mask < num_classes)]
        counts = torch.bincount(labels.flatten(), minlength=num_classes)
        self._sampled = counts if self._sampled is None else self._sampled + counts

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch > 0 or not trainer.is_global_zero or self._sampled is None:
            return
        sampled = self._sampled.cpu().numpy().astype(np.float64)
        stats = trainer.datamodule.class_stats
        frame = pd.DataFrame(
            {
                "class": class_names(trainer, stats.num_classes),
                "dataset_pixel_frequency": stats.pixel_frequency,
                "sampled_pixel_frequency": sampled / max(sampled.sum(), 1.0),
                "sampled_pixel_count": sampled.astype(np.int64),
            }
        )
        log_table(trainer, "diagnostics/sampled_class_frequency", frame, self.out_dir / "sampled_class_frequency.csv")
        self._sampled = None
