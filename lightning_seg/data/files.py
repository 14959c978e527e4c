"""Datasets stored as image and label files on disk: reading, pairing, label mapping and checks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from lightning_seg.data.base import SampleSource, SegmentationDataModule
from lightning_seg.data.transforms import TransformSpec, scale_crop_flip

#: File extensions read as images or masks (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as ``H×W×3`` RGB uint8 (OpenCV, with Pillow for formats OpenCV lacks)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    try:
        with Image.open(path) as pil:
            return np.asarray(pil.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def read_label(path: Path) -> np.ndarray:
    """Decode a label file as stored: ``H×W`` (indexed, greyscale) or ``H×W×3`` (colour) array.

    Palette PNGs give their palette indices, which is how VOC and many tools store class ids.
    """
    try:
        with Image.open(path) as pil:
            if pil.mode in {"P", "L", "I", "I;16", "I;16B", "I;16L"}:
                return np.asarray(pil)
            if pil.mode == "1":
                return np.asarray(pil.convert("L"))
            return np.asarray(pil.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None


def read_grey(path: Path) -> np.ndarray:
    """Decode a binary or greyscale annotation as ``H×W`` uint8 brightness (palettes resolved to grey)."""
    try:
        with Image.open(path) as pil:
            return np.asarray(pil.convert("L"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only."""
    try:
        with Image.open(path) as pil:
            return pil.height, pil.width
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def list_images(folder: Path, suffix: str = "") -> dict[str, Path]:
    """Images directly inside ``folder`` by name without ``suffix`` and extension, e.g. ``{"0001": .../0001.png}``."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem.endswith(suffix):
            found[path.stem[: len(path.stem) - len(suffix)]] = path
    return found


def make_lut(mapping: dict[int, int], ignored: Iterable[int], ignore_index: int) -> np.ndarray:
    """Build a 256-entry table from stored label value to train id; unlisted values get ``-1``.

    Args:
        mapping: stored value → train id.
        ignored: stored values that become ``ignore_index`` (void, borders, unlabelled).
        ignore_index: the train id of ignored pixels.
    """
    lut = np.full(256, -1, dtype=np.int16)
    for value in ignored:
        lut[value] = ignore_index
    for value, train_id in mapping.items():
        lut[value] = train_id
    return lut


@dataclass(frozen=True)
class FileSample:
    """One stored sample: the image, its label files (none for prediction) and a display name.

    ``valid_region`` is an optional binary file whose bright pixels are the part of the image the dataset
    annotates (DRIVE's field of view); the rest is ignored by definition, and predictions of the sample
    write ``ignore_index`` there.
    """

    image: Path
    labels: tuple[Path, ...]
    name: str
    valid_region: Path | None = None


def pair_files(
    image_dir: Path,
    mask_dir: Path | None,
    image_suffix: str = "",
    mask_suffix: str = "",
    names: Sequence[str] | None = None,
) -> list[FileSample]:
    """Match images and masks by name (any extension each) and check every image has its mask.

    Args:
        image_dir: folder of images.
        mask_dir: folder of masks; ``None`` for images without masks.
        image_suffix: part of an image's stem after the shared name (e.g. ``_leftImg8bit``).
        mask_suffix: part of a mask's stem after the shared name (e.g. ``_gtFine_labelIds``).
        names: only these names, in this order (from a split list); default: every image, sorted.
    """
    images = list_images(image_dir, image_suffix)
    masks = list_images(mask_dir, mask_suffix) if mask_dir is not None else {}
    wanted = list(images) if names is None else list(names)
    samples = []
    for name in wanted:
        if name not in images:
            raise FileNotFoundError(f"image '{name}' listed for this split is not in {image_dir}")
        if mask_dir is None:
            samples.append(FileSample(images[name], (), name))
            continue
        if name not in masks:
            raise FileNotFoundError(
                f"image {images[name]} has no mask: expected {mask_dir / (name + mask_suffix)}.<png|jpg|...>"
            )
        samples.append(FileSample(images[name], (masks[name],), name))
    return samples


def read_list(path: Path) -> list[str]:
    """Names in a split list file: one per line, the first word's stem (``a/b/0001.jpg x.png`` → ``0001``)."""
    return [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]


class FileSource(SampleSource):
    """Samples stored as files, with each dataset's label encoding turned into class indices.

    The label files of a sample are decoded by :meth:`decode_mask` into raw values, which a lookup table
    maps to train ids (``-1`` in the table marks a value that must not occur). A subclass overrides
    :meth:`decode_mask` for encodings other than one single-channel class-index file.

    Args:
        samples: the stored samples.
        root: the dataset folder (class statistics are cached next to it).
        num_classes: number of classes.
        ignore_index: the ignore value of the train ids.
        lut: table from stored value to train id (see :func:`make_lut`); default: ``0..C-1`` and
            ``ignore_index`` stay, everything else is an error.
    """

    def __init__(
        self,
        samples: Sequence[FileSample],
        root: Path,
        num_classes: int,
        ignore_index: int,
        lut: np.ndarray | None = None,
    ) -> None:
        self.samples = list(samples)
        self.root = root
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.lut = make_lut({k: k for k in range(num_classes)}, [ignore_index], ignore_index) if lut is None else lut

    def __len__(self) -> int:
        return len(self.samples)

    def decode_mask(self, sample: FileSample) -> np.ndarray:
        """Raw label values ``H×W`` of ``sample`` (before the lookup table)."""
        raw = read_label(sample.labels[0])
        if raw.ndim == 3:
            if not (np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2])):
                raise ValueError(f"mask {sample.labels[0]} is colour-coded; expected one channel of class indices")
            raw = raw[..., 0]
        return raw

    def lut_for(self, sample: FileSample) -> np.ndarray:
        """Return the lookup table for ``sample``'s stored values (the same for all, unless overridden)."""
        return self.lut

    def read_mask(self, sample: FileSample) -> np.ndarray:
        """Train ids ``H×W`` uint8 of ``sample``; raises on values the dataset does not define."""
        raw = self.decode_mask(sample)
        if raw.size and int(raw.max()) > 255:
            bad = np.unique(raw[raw > 255])[:10].tolist()
            raise ValueError(f"mask {sample.labels[0]} has label values {bad} outside 0..255")
        mask = self.lut_for(sample)[raw.astype(np.uint8)]
        if (mask < 0).any():
            bad = np.unique(raw[mask < 0])[:10].tolist()
            valid = f"0..{self.num_classes - 1}" if self.num_classes > 1 else "0"
            raise ValueError(
                f"mask {sample.labels[0]} has label values {bad} outside the classes ({valid}) "
                f"and not the ignore value {self.ignore_index}"
            )
        return mask.astype(np.uint8)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        sample = self.samples[index]
        image = read_image(sample.image)
        if not sample.labels:
            return image, None, sample.name
        mask = self.read_mask(sample)
        _check_size(sample, image.shape[:2], mask.shape)
        return image, mask, sample.name

    def ignored_region(self, index: int) -> np.ndarray | None:
        """The pixels outside the sample's ``valid_region`` (``H×W`` bool), or ``None`` without one."""
        sample = self.samples[index]
        if sample.valid_region is None:
            return None
        region = read_grey(sample.valid_region) <= 127
        region_sample = FileSample(sample.image, (sample.valid_region,), sample.name)
        _check_size(region_sample, image_size(sample.image), region.shape)
        return region

    def masks(self) -> Iterator[np.ndarray]:
        """Every mask, each checked against its image's size (read from the header only)."""
        for sample in self.samples:
            if sample.labels:
                mask = self.read_mask(sample)
                _check_size(sample, image_size(sample.image), mask.shape)
                yield mask

    def fingerprint(self) -> list[str]:
        """Each label file's path under the root, size and modification time."""
        entries = []
        for sample in self.samples:
            for path in sample.labels:
                stat = path.stat()
                entries.append(f"{_relative(path, self.root)}:{stat.st_size}:{stat.st_mtime_ns}")
        return entries


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_size(sample: FileSample, image_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> None:
    if tuple(image_shape) != tuple(mask_shape):
        raise ValueError(
            f"image {sample.image} is {image_shape[0]}×{image_shape[1]} but its mask {sample.labels[0]} "
            f"is {mask_shape[0]}×{mask_shape[1]}"
        )


class FileDataModule(SegmentationDataModule):
    """A dataset stored as files under ``root``: checks the layout at construction, lists each split lazily.

    A subclass names the folders it needs in :meth:`required_dirs`, lists each split's samples in
    :meth:`list_split`, may choose a :class:`FileSource` subclass and lookup table in :meth:`make_source`,
    and sets :attr:`default_crop_size`. The default training pipeline is :func:`scale_crop_flip` (random
    rescale 0.5–2, pad, crop, flip, brightness/contrast); evaluation uses whole images.

    Args:
        root: the dataset folder, as the official download unpacks.
        crop_size: ``(height, width)`` of the default training pipeline's crops; default: the dataset's
            usual size (:attr:`default_crop_size`).
        predict_dir: folder of images (no masks) for ``predict``; default: the test images.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    #: Training crop used when the config gives none.
    default_crop_size: tuple[int, int] = (512, 512)

    def __init__(
        self,
        root: str | Path,
        crop_size: tuple[int, int] | None = None,
        predict_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        self.crop_size = tuple(crop_size) if crop_size is not None else self.default_crop_size
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be two positive numbers (height, width), got {list(self.crop_size)}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: dataset root {self.root} does not exist")
        for folder in self.required_dirs():
            if not (self.root / folder).is_dir():
                raise FileNotFoundError(
                    f"{type(self).__name__}: {self.root} is not in the expected layout: "
                    f"missing folder {self.root / folder}"
                )
        self.predict_dir = Path(predict_dir).expanduser() if predict_dir is not None else None
        if self.predict_dir is not None and not self.predict_dir.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: predict_dir {self.predict_dir} does not exist")
        super().__init__(**kwargs)

    def required_dirs(self) -> list[str]:
        """Folders (relative to ``root``) that must exist."""
        return []

    def default_transform(self, split: str) -> TransformSpec:
        return scale_crop_flip(*self.crop_size) if split == "train" else None

    def list_split(self, split: str) -> list[FileSample] | None:
        """List the stored samples of ``split`` (``train``, ``val``, ``test``); ``None`` if it has none."""
        return None

    def predict_samples(self) -> list[FileSample] | None:
        """Images predicted when no ``predict_dir`` is given: the test split's, without masks."""
        test = self.list_split("test")
        return [FileSample(s.image, (), s.name) for s in test] if test else None

    def label_lut(self) -> np.ndarray | None:
        """How stored label values map to train ids (see :func:`make_lut`); ``None``: stored as train ids."""
        return None

    def make_source(self, samples: list[FileSample]) -> FileSource:
        """Wrap listed samples in the dataset's :class:`FileSource`."""
        return FileSource(samples, self.root, self.num_classes, self.ignore_index, lut=self.label_lut())

    def build_source(self, split: str) -> FileSource | None:
        if split == "predict" and self.predict_dir is not None:
            samples = pair_files(self.predict_dir, None)
        else:
            samples = self.predict_samples() if split == "predict" else self.list_split(split)
        if samples is None:
            return None
        if not samples:
            raise FileNotFoundError(f"{type(self).__name__}: the '{split}' split under {self.root} has no images")
        return self.make_source(samples)
