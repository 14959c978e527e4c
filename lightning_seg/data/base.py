"""The base DataModule every dataset builds on, and the dataset that turns raw samples into batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, default_collate

from lightning_seg.data.stats import ClassStats, cached_class_stats, file_list_key
from lightning_seg.data.transforms import TransformSpec, build_transform

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test", "predict")


class SampleSource(ABC):
    """An indexable collection of raw samples: what a dataset stores, before augmentation.

    Attributes:
        root: folder the samples live in; the class-statistics cache is written next to it.
            ``None`` (the default) for generated data, which is never cached.
    """

    root: Path | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Return ``(image H×W×3 uint8, mask H×W uint8 or None, name)`` of sample ``index``.

        Masks hold train ids in ``[0, num_classes)`` or the ignore index.
        """

    def masks(self) -> Iterator[np.ndarray]:
        """Every mask, in order (used for class statistics); override when masks load faster alone."""
        for index in range(len(self)):
            mask = self.load(index)[1]
            if mask is not None:
                yield mask

    def fingerprint(self) -> list[str] | None:
        """Strings identifying the stored masks (file names, sizes, times), or ``None`` to never cache."""
        return None

    def ignored_region(self, index: int) -> np.ndarray | None:
        """Pixels of sample ``index`` the dataset ignores by definition (``H×W`` bool), or ``None``.

        E.g. outside DRIVE's field of view. Predictions write ``ignore_index`` there.
        """
        return None


def _target_builders() -> dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]]:
    """Extra per-sample targets a loss can ask for, each computed in the data workers after augmentation."""
    from lightning_seg.geometry import semantic_edges
    from lightning_seg.losses.distance import signed_distance_map

    return {
        "dist_map": lambda num_classes, ignore_index: partial(
            signed_distance_map, num_classes=num_classes, ignore_index=ignore_index
        ),
        "edge": lambda num_classes, ignore_index: partial(semantic_edges, ignore_index=ignore_index),
    }


class SegmentationDataset(Dataset):
    """Applies augmentation, normalisation and extra targets to a :class:`SampleSource`.

    Each item is a dict: ``image`` float ``3×H×W``, ``mask`` int64 ``H×W`` (absent when the source has no
    masks), ``meta`` ``{"name": str, "size": (H, W), "original_size": (H0, W0)}`` (sizes as int64
    tensors: after the transform, and as stored, so that a prediction can be brought back to the
    input's size), every requested extra target (e.g. ``dist_map`` ``C×H×W``, ``edge`` ``H×W``) and, for
    samples without a mask whose source defines an ignored region, ``ignored`` bool ``H×W``.
    """

    def __init__(
        self,
        source: SampleSource,
        transform: A.BaseCompose | None,
        mean: Sequence[float],
        std: Sequence[float],
        extra_targets: dict[str, Callable[[np.ndarray], np.ndarray]],
    ) -> None:
        self.source = source
        self.transform = transform
        self.normalize = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)
        # Shared with the DataModule: a loss may request targets after the datasets were built.
        self.extra_targets = extra_targets

    def __len__(self) -> int:
        return len(self.source)

    def augmented(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Sample ``index`` after augmentation, before normalisation: ``(image uint8, mask or None, name)``."""
        image, mask, name = self.source.load(index)
        return (*self._transform(image, mask), name)

    def _transform(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        if self.transform is not None:
            out = self.transform(image=image, mask=mask) if mask is not None else self.transform(image=image)
            image, mask = out["image"], out.get("mask", mask)
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw, mask, name = self.source.load(index)
        ignored = self.source.ignored_region(index) if mask is None else None
        # Without a mask, a region ignored by definition rides through the transform in the mask's place.
        image, label = self._transform(raw, mask if ignored is None else ignored.astype(np.uint8))
        image = self.normalize(image=image)["image"]
        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float(),
            "meta": {"name": name, "size": torch.tensor(image.shape[:2]), "original_size": torch.tensor(raw.shape[:2])},
        }
        if ignored is not None:
            sample["ignored"] = torch.from_numpy(np.ascontiguousarray(label) != 0)  # padding fills 255: ignored
        elif label is not None:
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
            for key, build in self.extra_targets.items():
                sample[key] = torch.from_numpy(build(np.ascontiguousarray(label)))
        return sample


def pad_collate(samples: list[dict[str, Any]], ignore_index: int) -> dict[str, Any]:
    """Stack samples into a batch, padding smaller ones at the bottom and right to the largest size.

    Images and extra targets are padded with 0, masks with ``ignore_index`` so padding never counts as a
    class; evaluation on full images of different sizes (VOC, ADE20K, DRIVE) thus works at any batch size.

    Shape:
        each ``image`` ``3×h×w``, ``mask`` ``h×w`` → ``image`` ``N×3×H×W``, ``mask`` ``N×H×W`` with
        ``H, W`` the largest ``h, w``.
    """
    height = max(sample["image"].shape[-2] for sample in samples)
    width = max(sample["image"].shape[-1] for sample in samples)
    padded = []
    for sample in samples:
        size = sample["image"].shape[-2:]
        pad = (0, width - size[1], 0, height - size[0])
        if pad[1] or pad[3]:
            sample = {
                key: F.pad(value, pad, value=ignore_index if key == "mask" else 0)
                if isinstance(value, torch.Tensor) and value.shape[-2:] == size
                else value
                for key, value in sample.items()
            }
        padded.append(sample)
    return default_collate(padded)


class SegmentationDataModule(LightningDataModule):
    """Splits, loaders, augmentation and class facts shared by every dataset.

    A subclass sets :attr:`class_names` (and :attr:`palette`) and implements :meth:`build_source`; it may
    override :meth:`default_transform` (attributes it reads there must be set before calling
    ``super().__init__``, which builds the pipelines so that a bad pipeline fails at construction).

    Every geometric transform of every pipeline fills the masks it invents (padding, rotation) with
    ``ignore_index`` (see :func:`lightning_seg.data.transforms.build_transform`).

    Args:
        batch_size: samples per training batch (evaluation uses the same).
        num_workers: data-loading worker processes.
        pin_memory: pin host memory; default: when CUDA is available.
        persistent_workers: keep workers between epochs; default: when ``num_workers > 0``.
        train_transform: albumentations pipeline for training: the dict ``A.to_dict`` produces (with or
            without its top-level ``transform`` key), a path to a file saved with ``A.save`` (``.json``,
            ``.yaml``), or a pipeline; ``None`` = the dataset's default.
        val_transform: pipeline for validation; ``None`` = the dataset's default.
        test_transform: pipeline for testing; ``None`` = the validation pipeline.
        predict_transform: pipeline for prediction; ``None`` = the dataset's default (usually none, so
            predictions keep the input size).
        mean: normalisation mean (on the 0–1 scale), applied after augmentation.
        std: normalisation std.
        ignore_index: mask value that is ignored by losses and metrics.
    """

    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        train_transform: TransformSpec = None,
        val_transform: TransformSpec = None,
        test_transform: TransformSpec = None,
        predict_transform: TransformSpec = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
        if not 0 <= ignore_index <= 255:
            raise ValueError(f"ignore_index must be in 0..255 (masks are uint8), got {ignore_index}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={list(mean)} std={list(std)}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = num_workers > 0 if persistent_workers is None else persistent_workers
        self.ignore_index = ignore_index
        self.mean, self.std = tuple(mean), tuple(std)
        specs = {"train": train_transform, "val": val_transform, "test": test_transform, "predict": predict_transform}
        self.transforms = {
            split: build_transform(spec if spec is not None else self.default_transform(split), ignore_index)
            for split, spec in specs.items()
        }
        if test_transform is None:
            self.transforms["test"] = self.transforms["val"]
        self.datasets: dict[str, SegmentationDataset] = {}
        self.extra_targets: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self._class_stats: ClassStats | None = None

    # ----- what a dataset defines -----
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def build_source(self, split: str) -> SampleSource | None:
        """Return the raw samples of ``split`` (``train``, ``val``, ``test`` or ``predict``); ``None`` if absent."""

    def default_transform(self, split: str) -> TransformSpec:
        """Return the pipeline used when the config gives none; override per dataset."""
        return None

    # ----- class statistics -----
    @property
    def class_stats(self) -> ClassStats:
        """Pixel and image counts per class over the training masks (scanned once, cached on disk)."""
        if self._class_stats is None:
            self._class_stats = self.compute_class_stats()
        return self._class_stats

    def compute_class_stats(self) -> ClassStats:
        """Scan the training masks, or read the scan cached next to the data when the files are unchanged.

        The scan also checks every training sample (labels, sizes), so a bad file fails here, once.
        """
        source = self.datasets["train"].source if "train" in self.datasets else self.build_source("train")
        if source is None:
            raise ValueError(f"{type(self).__name__} has no training split to compute class statistics from")

        def scan() -> ClassStats:
            return ClassStats.from_masks(source.masks(), self.num_classes, self.ignore_index)

        fingerprint = source.fingerprint()
        if fingerprint is None:
            return scan()
        key = file_list_key(fingerprint, type(self).__name__, self.num_classes, self.ignore_index)
        return cached_class_stats(key, source.root, scan)

    # ----- extra targets requested by losses -----
    def request_targets(self, names: set[str] | frozenset[str]) -> None:
        """Compute these extra targets (e.g. ``dist_map``) for every sample, in the loader workers."""
        builders = _target_builders() if names else {}
        unknown = sorted(set(names) - set(builders))
        if unknown:
            raise ValueError(f"unknown extra targets {unknown}; this DataModule can compute {sorted(builders)}")
        for name in names:
            self.extra_targets[name] = builders[name](self.num_classes, self.ignore_index)

    # ----- drawing -----
    def plot_sample(self, index: int = 0, split: str = "train", augment: bool = False) -> Figure:
        """Draw sample ``index`` of ``split`` for humans: image, coloured mask and overlay with a legend.

        Args:
            index: sample number within the split.
            split: ``train``, ``val``, ``test`` or ``predict``.
            augment: apply the split's augmentation pipeline first (to see what the network sees).
        """
        from lightning_seg.data.visualize import draw_sample

        if not self._build_split(split):
            raise ValueError(f"{type(self).__name__} has no '{split}' split to draw from")
        dataset = self.datasets[split]
        if not 0 <= index < len(dataset):
            raise ValueError(f"index {index} is out of range for the '{split}' split of {len(dataset)} samples")
        image, mask, name = dataset.augmented(index) if augment else dataset.source.load(index)
        return draw_sample(image, mask, self.class_names, self.palette, self.ignore_index, title=name)

    # ----- Lightning hooks -----
    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in wanted.get(stage or "", SPLITS):
            self._build_split(split)

    def _build_split(self, split: str) -> bool:
        """Create the dataset of ``split`` unless it exists; return whether the split exists."""
        if split not in self.datasets:
            source = self.build_source(split)
            if source is None:
                return False
            self.datasets[split] = SegmentationDataset(
                source, self.transforms[split], self.mean, self.std, self.extra_targets
            )
        return True

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"{type(self).__name__} has no '{split}' split; check the dataset root and split settings")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[split]) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=partial(pad_collate, ignore_index=self.ignore_index),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
