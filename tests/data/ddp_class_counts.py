"""A 2-process CPU (gloo) fit that records, per rank, whether it computed the class counts and what it got.

``python tests/data/ddp_class_counts.py OUT MODE``, MODE one of ``module`` (the module's setup reads the
counts first), ``datamodule`` (rare-class sampling reads them first, in the DataModule's setup) or ``fail``
(rank zero's scan raises). Lightning's DDP launcher starts rank 1 with the same command. Each rank appends
a line to ``OUT/computed-rank<R>.txt`` when it computes, and saves what it got as ``OUT/counts-rank<R>.npy``.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
from lightning import Callback, LightningModule, Trainer
from torch import nn

from lightning_seg.data.synthetic import SyntheticDataModule
from lightning_seg.module import SegmentationModule

#: The data of every mode (and of the single-process oracle in the test).
DATA = {"num_train": 6, "num_val": 2, "num_test": 2, "image_size": 32, "batch_size": 1, "num_workers": 0}
FAILURE = "mask value 9 in train_00003.png is neither a class nor ignore_index"


class CountingSynthetic(SyntheticDataModule):
    """The synthetic data, noting each computation of the class counts (and failing it on request)."""

    def __init__(self, out: Path, fail: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.out, self.fail = out, fail

    def compute_class_counts(self) -> np.ndarray:
        with open(self.out / f"computed-rank{self.trainer.global_rank}.txt", "a") as record:
            record.write("computed\n")
        if self.fail:
            raise ValueError(FAILURE)
        return super().compute_class_counts()


class SaveCounts(Callback):
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out = trainer.datamodule.out
        np.save(out / f"counts-rank{trainer.global_rank}.npy", trainer.datamodule.class_counts)


def main(out: Path, mode: str) -> None:
    data = CountingSynthetic(out, mode == "fail", rare_class_sampling=mode == "datamodule", **DATA)
    model = SegmentationModule(net=partial(nn.Conv2d, 3, kernel_size=1), num_classes=data.num_classes)
    trainer = Trainer(
        accelerator="cpu", strategy="ddp", devices=2, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=out, callbacks=[SaveCounts()],
    )
    trainer.fit(model, data)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
