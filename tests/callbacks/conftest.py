"""Crafted data with known class frequencies, a 1×1-convolution module and a fake Trainer."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from lightning import Trainer
from torch import nn

matplotlib.use("agg", force=True)
os.environ.setdefault("MPLBACKEND", "agg")

from lightning_seg.data.base import SampleSource, SegmentationDataModule  # noqa: E402
from lightning_seg.data.stats import ClassStats  # noqa: E402
from lightning_seg.module import SegmentationModule  # noqa: E402

IGNORE = 255
CLASS_NAMES = ("background", "road", "car", "rare")
PALETTE = ((0, 0, 0), (128, 64, 128), (0, 0, 142), (220, 20, 60))


def train_masks() -> list[np.ndarray]:
    """Four 4×4 masks; class 3 appears in one image only, class 2 in two, one pixel is ignored."""
    a = np.zeros((4, 4), np.uint8)
    a[:2] = 1
    b = np.zeros((4, 4), np.uint8)
    b[0, :3] = 2
    b[3, 3] = IGNORE
    c = np.ones((4, 4), np.uint8)
    c[1, 1] = 2
    c[2, 2] = 3
    d = np.zeros((4, 4), np.uint8)
    return [a, b, c, d]


def val_masks() -> list[np.ndarray]:
    """Six 8×8 masks: ``rare`` (3) only in samples 2 (2 px) and 4 (5 px), ``car`` (2) in samples 1, 2, 5."""
    masks = [np.zeros((8, 8), np.uint8) for _ in range(6)]
    for m in masks:
        m[4:] = 1
    masks[1][:2, :4] = 2
    masks[2][0, :3] = 2
    masks[2][1, :2] = 3
    masks[4][2, :5] = 3
    masks[5][:3, :3] = 2
    masks[3][0, 0] = IGNORE
    return masks


class ArraySource(SampleSource):
    """Fixed masks with seeded random images, named ``<prefix>_<index>``."""

    def __init__(self, masks: list[np.ndarray], prefix: str) -> None:
        self._masks = masks
        self.prefix = prefix

    def __len__(self) -> int:
        return len(self._masks)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        mask = self._masks[index]
        image = np.random.default_rng(index).integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
        return image, mask.copy(), f"{self.prefix}_{index}"


class CraftedDataModule(SegmentationDataModule):
    """Four classes, crafted train and val masks (the train masks are resized nowhere: val is 8×8)."""

    class_names = CLASS_NAMES
    palette = PALETTE

    def build_source(self, split: str) -> SampleSource | None:
        if split == "train":
            return ArraySource(train_masks(), "train")
        if split == "val":
            return ArraySource(val_masks(), "val")
        return None


@pytest.fixture
def datamodule() -> CraftedDataModule:
    dm = CraftedDataModule(batch_size=2)
    dm.setup("fit")
    return dm


@pytest.fixture
def module() -> SegmentationModule:
    return SegmentationModule(
        net=partial(nn.Conv2d, 3, kernel_size=1), num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES
    )


@pytest.fixture
def make_trainer(tmp_path: Path):
    """A factory of objects with the Trainer attributes the callbacks read (no loggers, rank zero)."""

    def make(datamodule: object, epoch: int = 0, **extra: object) -> SimpleNamespace:
        fields = dict(
            log_dir=str(tmp_path),
            default_root_dir=str(tmp_path),
            datamodule=datamodule,
            loggers=[],
            is_global_zero=True,
            sanity_checking=False,
            current_epoch=epoch,
            global_step=10 * epoch,
        )
        return SimpleNamespace(**{**fields, **extra})

    return make


@pytest.fixture
def crafted_train_masks() -> list[np.ndarray]:
    return train_masks()


@pytest.fixture
def crafted_val_masks() -> list[np.ndarray]:
    return val_masks()


@pytest.fixture
def train_stats() -> ClassStats:
    return ClassStats.from_masks(train_masks(), len(CLASS_NAMES), IGNORE)


def many_class_masks(count: int, num_classes: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` masks of random rectangles whose classes follow a Zipf-like law (class 0 most frequent)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_classes + 1) ** 1.1
    masks = []
    for _ in range(count):
        mask = np.zeros((size, size), np.uint8)
        for c in rng.choice(num_classes, size=12, p=weights / weights.sum()):
            top, left = rng.integers(0, size - 2, 2)
            height, width = rng.integers(2, size // 2, 2)
            mask[top : top + height, left : left + width] = c
        mask[0, :2] = IGNORE
        masks.append(mask)
    return masks


class ManyClassDataModule(SegmentationDataModule):
    """``num_classes`` classes (long names, as ADE20K's), random rectangle masks of ``size``², no palette."""

    def __init__(self, num_classes: int = 150, size: int = 32, num_train: int = 8, num_val: int = 8) -> None:
        super().__init__(batch_size=4)
        long = "class_{}_with_a_long_name"
        self.class_names = tuple((long if c % 10 == 3 else "class_{}").format(c) for c in range(num_classes))
        self.size, self.counts = size, {"train": num_train, "val": num_val}

    def build_source(self, split: str) -> SampleSource | None:
        if split not in self.counts:
            return None
        seed = 0 if split == "train" else 1
        return ArraySource(many_class_masks(self.counts[split], self.num_classes, self.size, seed), split)


def quiet_trainer(root: Path, callbacks: list, max_epochs: int = 1) -> Trainer:
    """A CPU Trainer without loggers, checkpoints, progress bar or sanity check, writing under ``root``."""
    quiet = {f"enable_{part}": False for part in ("checkpointing", "progress_bar", "model_summary")}
    return Trainer(
        max_epochs=max_epochs, accelerator="cpu", default_root_dir=root, logger=False, num_sanity_val_steps=0,
        callbacks=callbacks, **quiet,
    )
