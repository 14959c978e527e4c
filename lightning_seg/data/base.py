"""The base DataModule every dataset builds on, and the dataset that turns raw samples into batches."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, default_collate

from lightning_seg.data.copy_paste import RareClassCopyPaste
from lightning_seg.data.crops import ScaleCrop
from lightning_seg.data.rare_class import RareClassPicker, RareClassSampler
from lightning_seg.data.resumable import SEED_BOUND, ResumableSampler, training_seed
from lightning_seg.data.stats import ClassStats, cached_class_counts, class_counts, computed_on_rank_zero, file_list_key
from lightning_seg.data.transforms import TransformSpec, build_transform

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test", "predict")


class SampleError(ValueError):
    """A sample that cannot be loaded or augmented: one line naming its files and the reason.

    Raised inside a DataLoader worker, torch re-raises it in the main process as ``SampleError(text)``
    where the text is "Caught SampleError in DataLoader worker process N." and the whole traceback; the
    constructor turns that text back into the original line, followed by which worker it came from.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and "\nOriginal Traceback" in message and marker in message:
            where = message.splitlines()[0].removeprefix(f"Caught {type(self).__name__} ").rstrip(".")
            message = f"{message.rsplit(marker, 1)[1].strip()} ({where})"
        super().__init__(message)


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

    def describe(self, index: int) -> str:
        """Name sample ``index`` for an error message (its files, where it has some)."""
        return f"sample {index}"

    def masks(self) -> Iterator[np.ndarray]:
        """Every mask, in order (used for class statistics); override when masks load faster alone."""
        for index in range(len(self)):
            mask = self.load(index)[1]
            if mask is not None:
                yield mask

    def fingerprint(self, with_images: bool = False) -> list[str] | None:
        """Strings identifying the stored masks (and images) by names, sizes, times, or ``None`` to never cache."""
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
        #: Set by the DataModule on the training set when ``copy_paste_p > 0``.
        self.copy_paste: RareClassCopyPaste | None = None
        #: Items hold uint8 ``image`` and ``mask`` (normalised on the device by the DataModule).
        self.uint8 = False

    def __len__(self) -> int:
        return len(self.source)

    def augmented(self, index: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Sample ``index`` after augmentation (and copy-paste), before normalisation: ``(image uint8, mask, name)``.

        The mask is ``None`` when the source has none. ``seed`` fixes the augmentation (default: drawn from
        NumPy's global generator).
        """
        image, mask, name = self.source.load(index)
        image, mask = self._augment(image, mask, seed, copy_paste=mask is not None)
        return image, mask, name

    def _augment(
        self, image: np.ndarray, mask: np.ndarray | None, seed: int | None, copy_paste: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The training pipeline (and copy-paste) on one sample, every random choice drawn from ``seed``."""
        copy_paste = copy_paste and self.copy_paste is not None
        if self.transform is None and not copy_paste:
            return image, mask
        if seed is None:
            # Seeded from NumPy's global generator, which seed_everything (per data worker too) and a resumed
            # checkpoint make reproducible. The training samplers give every sample its own seed instead.
            seed = int(np.random.randint(SEED_BOUND))
        if self.transform is not None:
            # albumentations draws from generators of its own, seeded from OS entropy: without this no two
            # runs augment alike.
            self.transform.set_random_seed(seed)
            out = self.transform(image=image, mask=mask) if mask is not None else self.transform(image=image)
            image, mask = out["image"], out.get("mask", mask)
        if copy_paste:
            image, mask = self.copy_paste(image, mask, self._donor, torch.Generator().manual_seed(seed))
        return image, mask

    def _donor(self, index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Training sample ``index`` augmented from ``seed``, for copy-paste: ``(image, mask)``."""
        image, mask, _ = self.source.load(index)
        return self._augment(image, mask, seed, copy_paste=False)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``key``: an index, or ``(index, augmentation seed)`` as the training samplers yield."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        try:
            return self._item(index, seed)
        except SampleError:
            raise
        except Exception as error:  # any failure on one sample is reported with its files, in one line
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if not isinstance(error, (ValueError, OSError)):
                reason = f"{type(error).__name__}: {reason}"
            raise SampleError(f"{self.source.describe(index)}: {reason}") from error

    def _item(self, index: int, seed: int | None) -> dict[str, Any]:
        raw, mask, name = self.source.load(index)
        ignored = self.source.ignored_region(index) if mask is None else None
        # Without a mask, a region ignored by definition rides through the transform in the mask's place.
        label = mask if ignored is None else ignored.astype(np.uint8)
        image, label = self._augment(raw, label, seed, copy_paste=mask is not None)
        size = torch.tensor(image.shape[:2])
        if self.uint8:
            pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.uint8))
        else:
            image = self.normalize(image=image)["image"]
            pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
        sample: dict[str, Any] = {
            "image": pixels,
            "meta": {"name": name, "size": size, "original_size": torch.tensor(raw.shape[:2])},
        }
        if ignored is not None:
            sample["ignored"] = torch.from_numpy(np.ascontiguousarray(label) != 0)  # padding fills 255: ignored
        elif label is not None:
            dtype = np.uint8 if self.uint8 else np.int64
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(label, dtype=dtype))
            for key, build in self.extra_targets.items():
                sample[key] = torch.from_numpy(build(np.ascontiguousarray(label)))
        return sample


def _scale_crops(pipeline: A.BaseCompose | None) -> list[ScaleCrop]:
    """Every :class:`ScaleCrop` in a pipeline, nested ones included."""
    if pipeline is None:
        return []
    found: list[ScaleCrop] = []
    for transform in pipeline.transforms:
        if isinstance(transform, A.BaseCompose):
            found += _scale_crops(transform)
        elif isinstance(transform, ScaleCrop):
            found.append(transform)
    return found


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which respects cgroups and ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Most workers ``num_workers: auto`` starts.
MAX_AUTO_WORKERS = 8


def resolve_workers(requested: int | str) -> int:
    """The worker count to use for ``num_workers`` (see :class:`SegmentationDataModule`)."""
    cpus = available_cpus()
    if requested == "auto":
        return max(0, min(MAX_AUTO_WORKERS, cpus - 1))
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ValueError(f"num_workers must be 0 or more, or 'auto', got {requested!r}")
    if requested > cpus:
        log.info(f"lightning-seg: num_workers {requested} lowered to {cpus}: this process may use {cpus} CPU cores")
        return cpus
    return requested


def pad_collate(
    samples: list[dict[str, Any]], ignore_index: int, uint8_fill: Sequence[int] = (0, 0, 0)
) -> dict[str, Any]:
    """Stack samples into a batch, padding smaller ones at the bottom and right to the largest size.

    Images and extra targets are padded with 0, masks with ``ignore_index`` so padding never counts as a
    class; evaluation on full images of different sizes (VOC, ADE20K, DRIVE) thus works at any batch size.
    uint8 images (normalised later, on the device) are padded with ``uint8_fill``, the mean colour, which
    normalises to about 0 (within ``0.5 / (255 · std)``).

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
            if sample["image"].dtype == torch.uint8:
                sample["image"][:, size[0] :] = torch.tensor(uint8_fill, dtype=torch.uint8).view(3, 1, 1)
                sample["image"][:, :, size[1] :] = torch.tensor(uint8_fill, dtype=torch.uint8).view(3, 1, 1)
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
        num_workers: data-loading worker processes, or ``auto``: one per CPU core this process may use,
            less one for the main process, at most 8. A number above the core count is lowered to it
            (logged), since more workers than cores only compete for them.
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
        rare_class_sampling: draw training samples by rare-class sampling (DAFormer, Hoyer et al., CVPR
            2022): a class with ``P(c) ∝ exp((1 − f_c)/T)``, then an image holding it
            (:mod:`lightning_seg.data.rare_class`); works under DDP and on resume.
        rare_class_temperature: ``T`` of the rare-class probabilities, shared by rare-class sampling,
            rare-class crops and copy-paste (DAFormer: 0.01; larger is closer to uniform over classes).
        rare_class_min_pixels: an image counts as holding a class with at least this many of its pixels.
        cat_max_ratio: class-aware crops (MMSegmentation): retry a training crop until no class covers more
            than this share of it; ``None``: off. Needs a :class:`~lightning_seg.data.crops.ScaleCrop` in
            the training pipeline (the default pipelines have one).
        crop_retries: crops tried for ``cat_max_ratio``.
        rare_crop_p: probability of a training crop centred on a pixel of a rare class (drawn with the
            rare-class probabilities among the classes of the image).
        copy_paste_p: probability of pasting a rare class's pixels from another augmented training image
            (Ghiasi et al., CVPR 2021; :mod:`lightning_seg.data.copy_paste`).
        normalize_on_device: batches carry uint8 images and masks (5× fewer bytes to copy to the device
            than float images and int64 masks), normalised and converted on the device in
            :meth:`on_after_batch_transfer`; what the module receives is the same.
        cache: ``raw``: decode every train/val/test sample once into memory-mapped uint8 arrays in the
            user cache (:mod:`lightning_seg.data.decoded_cache`), so workers skip decoding; ``None``: off.
    """

    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int | Literal["auto"] = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        train_transform: TransformSpec = None,
        val_transform: TransformSpec = None,
        test_transform: TransformSpec = None,
        predict_transform: TransformSpec = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
        rare_class_sampling: bool = False,
        rare_class_temperature: float = 0.01,
        rare_class_min_pixels: int = 1,
        cat_max_ratio: float | None = None,
        crop_retries: int = 10,
        rare_crop_p: float = 0.0,
        copy_paste_p: float = 0.0,
        cache: Literal["raw"] | None = None,
        normalize_on_device: bool = False,
    ) -> None:
        super().__init__()
        self.normalize_on_device = normalize_on_device
        if cache not in (None, "raw"):
            raise ValueError(f"cache must be 'raw' or null, got {cache!r}")
        self.cache = cache
        if rare_class_temperature <= 0:
            raise ValueError(f"rare_class_temperature must be positive, got {rare_class_temperature}")
        if cat_max_ratio is not None and not 0 < cat_max_ratio <= 1:
            raise ValueError(f"cat_max_ratio must lie in (0, 1], got {cat_max_ratio}")
        for key, value in {"rare_crop_p": rare_crop_p, "copy_paste_p": copy_paste_p}.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must lie in [0, 1], got {value}")
        if crop_retries < 1:
            raise ValueError(f"crop_retries must be at least 1, got {crop_retries}")
        self.rare_class_sampling, self.rare_class_temperature = rare_class_sampling, rare_class_temperature
        self.rare_class_min_pixels = rare_class_min_pixels
        self.cat_max_ratio, self.crop_retries, self.rare_crop_p = cat_max_ratio, crop_retries, rare_crop_p
        self.copy_paste_p = copy_paste_p
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")

        if not 0 <= ignore_index <= 255:
            raise ValueError(f"ignore_index must be in 0..255 (masks are uint8), got {ignore_index}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={list(mean)} std={list(std)}")
        self.batch_size = batch_size
        self.num_workers = resolve_workers(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = self.num_workers > 0 if persistent_workers is None else persistent_workers
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
        self._class_counts: np.ndarray | None = None
        self._picker: RareClassPicker | None = None

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

    @property
    def class_counts(self) -> np.ndarray:
        """Per training image: pixels of each class, then ignored pixels, ``N×(C+1)`` int64 (scanned once)."""
        if self._class_counts is None:
            self._class_counts = computed_on_rank_zero(self.compute_class_counts, self.trainer)
        return self._class_counts

    def compute_class_stats(self) -> ClassStats:
        """Class statistics of the training masks (from :attr:`class_counts`).

        Raises:
            ValueError: if the masks hold only class 0 and the ignore value (a binary mask's foreground
                stored as the ignore value, most likely).
        """
        counts = self.class_counts
        if self.num_classes > 1 and counts[:, -1].any() and not counts[:, 1:-1].any():
            ignore = self.ignore_index
            raise ValueError(
                f"the training masks of {type(self).__name__} hold only class 0 and the ignore value {ignore}: "
                f"if {ignore} marks a foreground class, set mask_values (e.g. {{0: 0, {ignore}: 1}}) or "
                "mask_format: binary"
            )
        return ClassStats.from_counts(counts)

    def compute_class_counts(self) -> np.ndarray:
        """Scan the training masks, or read the scan cached in the user's cache when the files are unchanged.

        The scan also checks every training sample (labels, sizes), so a bad file fails here, once.
        """
        source = self.datasets["train"].source if "train" in self.datasets else self.build_source("train")
        if source is None:
            raise ValueError(f"{type(self).__name__} has no training split to compute class statistics from")

        def scan() -> np.ndarray:
            rows = [class_counts(mask, self.num_classes, self.ignore_index) for mask in source.masks()]
            return np.stack(rows) if rows else np.zeros((0, self.num_classes + 1), dtype=np.int64)

        fingerprint = source.fingerprint()
        if fingerprint is None:
            return scan()
        key = file_list_key(fingerprint, type(self).__name__, self.num_classes, self.ignore_index)
        return cached_class_counts(key, scan)

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
        from lightning_seg.figures.masks import draw_sample

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
            if self.cache == "raw" and split != "predict":
                from lightning_seg.data.decoded_cache import DecodedCache

                source = DecodedCache(source)
            self.datasets[split] = SegmentationDataset(
                source, self.transforms[split], self.mean, self.std, self.extra_targets
            )
            self.datasets[split].uint8 = self.normalize_on_device
            if split == "train":
                self._configure_imbalance_tools(self.datasets[split])
        return True

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``normalize_on_device``: turn the uint8 batch into the usual one, on the device.

        Shape:
            ``image`` uint8 ``N×3×H×W`` → float32 normalised; ``mask`` uint8 ``N×H×W`` → int64.
        """
        if not self.normalize_on_device or not isinstance(batch, dict) or batch.get("image") is None:
            return batch
        image = batch["image"]
        if image.dtype == torch.uint8:
            mean = torch.tensor(self.mean, device=image.device, dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=image.device, dtype=torch.float32).view(1, 3, 1, 1)
            batch = {**batch, "image": (image.float() / 255.0 - mean) / std}
        if batch.get("mask") is not None and batch["mask"].dtype == torch.uint8:
            batch = {**batch, "mask": batch["mask"].long()}
        return batch

    @property
    def rare_class_picker(self) -> RareClassPicker:
        """The rare-class draws of the training set (from :attr:`class_counts`)."""
        if self._picker is None:
            self._picker = RareClassPicker(self.class_counts, self.rare_class_temperature, self.rare_class_min_pixels)
        return self._picker

    def _configure_imbalance_tools(self, train: SegmentationDataset) -> None:
        """Give the training crops and copy-paste the rare-class probabilities they need."""
        crops = _scale_crops(self.transforms["train"])
        if (self.cat_max_ratio is not None or self.rare_crop_p > 0) and not crops:
            raise ValueError(
                "cat_max_ratio and rare_crop_p need a lightning_seg.data.crops.ScaleCrop in the training "
                "pipeline (the default pipelines have one); the given train_transform has none"
            )
        for crop in crops:
            crop.cat_max_ratio = 1.0 if self.cat_max_ratio is None else self.cat_max_ratio
            crop.max_tries, crop.rare_p = self.crop_retries, self.rare_crop_p
            if self.rare_crop_p > 0:
                crop.class_probabilities = tuple(self.rare_class_picker.class_probabilities.tolist())
        if self.copy_paste_p > 0:
            train.copy_paste = RareClassCopyPaste(self.copy_paste_p, self.rare_class_picker)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"{type(self).__name__} has no '{split}' split; check the dataset root and split settings")
        sampler = None
        if shuffle:  # resumable mid-epoch, augmentations independent of the data workers
            seed = training_seed()
            if self.rare_class_sampling:
                sampler = RareClassSampler(self.rare_class_picker, seed=seed)
            else:
                sampler = ResumableSampler(len(self.datasets[split]), seed=seed)
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=shuffle and len(self.datasets[split]) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=partial(
                pad_collate, ignore_index=self.ignore_index, uint8_fill=tuple(round(255 * m) for m in self.mean)
            ),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
