"""Datasets stored as image and label files on disk: reading, pairing, label mapping and checks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_seg.data.base import SampleSource, SegmentationDataModule
from lightning_seg.data.imageio import (
    IMAGE_EXTENSIONS,
    exif_orientation,
    orient,
    oriented_size,
    read_image_stored,
    read_label,
    stored_size,
)
from lightning_seg.data.transforms import TransformSpec, scale_crop_flip


def list_images(folder: Path, suffix: str = "") -> dict[str, Path]:
    """Images directly inside ``folder`` by name without ``suffix`` and extension, e.g. ``{"0001": .../0001.png}``.

    Raises:
        ValueError: if two files share a name (``a.jpg`` and ``a.png``), naming both.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem.endswith(suffix):
            name = path.stem[: len(path.stem) - len(suffix)]
            if name in found:
                raise ValueError(
                    f"two files share the name '{name}' in {folder}: {found[name].name} and {path.name}; "
                    "rename or remove one (which one is meant cannot be told)"
                )
            found[name] = path
    return found


def seeded_split(names: Sequence[str], split: str, fractions: dict[str, float], seed: int) -> list[str]:
    """Pick the names of ``split`` in a fixed random split of ``names``.

    The sorted names are permuted with ``seed``; the parts in ``fractions`` (e.g. ``{"test": 0.1,
    "val": 0.1}``) take ``round(fraction × n)`` names each, in that order, and ``train`` the rest. Each part
    is returned sorted. The split depends only on the set of names and the seed.
    """
    ordered = sorted(names)
    order = np.random.default_rng(seed).permutation(len(ordered))
    parts, start = {}, 0
    for part, fraction in fractions.items():
        count = round(fraction * len(ordered))
        parts[part], start = order[start : start + count], start + count
    parts["train"] = order[start:]
    return sorted(ordered[i] for i in parts.get(split, []))


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


def binary_mask(path: Path) -> np.ndarray:
    """Read a two-class mask by the ``binary`` rule: 0/1 or 0/255 files → 0/1 uint8 ``H×W``.

    A file whose largest value is 1 is a 0/1 mask; otherwise a pixel ≥ 128 is foreground, which also reads
    JPEG masks whose flat regions hold values such as 3 and 250. Colour files use their brightest
    channel. A file whose largest value lies in 2..127 fits neither form and is an error.
    """
    raw = read_label(path)
    if raw.ndim == 3:
        raw = raw.max(axis=2)
    top = int(raw.max()) if raw.size else 0
    if top <= 1:
        return raw.astype(np.uint8)
    if top < 128:
        raise ValueError(
            f"mask {path} has values up to {top}: mask_format 'binary' expects 0/1 or 0/255 masks "
            "(a pixel ≥ 128 is foreground); give other codes with mask_values"
        )
    return (raw >= 128).astype(np.uint8)


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
    repeated = sorted({name for name in wanted if wanted.count(name) > 1}) if len(set(wanted)) < len(wanted) else []
    if repeated:
        raise ValueError(f"the split list names {repeated[:5]} more than once (each sample would be used twice)")
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

    Images are read by :mod:`lightning_seg.data.imageio`'s rules (truncated files rejected, EXIF
    orientation applied). A mask follows its image's orientation: a mask of the stored image's size is
    turned with it (it was drawn on the stored pixels); a mask that already has the upright size of a
    sideways-stored image is taken as drawn on the upright image. A square image cannot tell the two
    apart and is taken as the first.

    Args:
        samples: the stored samples.
        root: the dataset folder.
        num_classes: number of classes.
        ignore_index: the ignore value of the train ids.
        lut: table from stored value to train id (see :func:`make_lut`); default: ``0..C-1`` and
            ``ignore_index`` stay, everything else is an error; with this default, a 2-class mask that
            holds only 0 and ``ignore_index`` is an error (a 0/255 binary mask would lose its foreground).
        unlisted: how an error names the stored values the table lacks; default: the classes and the
            ignore value.
    """

    def __init__(
        self,
        samples: Sequence[FileSample],
        root: Path,
        num_classes: int,
        ignore_index: int,
        lut: np.ndarray | None = None,
        unlisted: str | None = None,
    ) -> None:
        self.samples = list(samples)
        self.root = root
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # Only where stored values are read as they are (subclasses decoding other encodings opt out).
        self.guard_binary = lut is None and num_classes == 2 and type(self).decode_mask is FileSource.decode_mask
        self.lut = make_lut({k: k for k in range(num_classes)}, [ignore_index], ignore_index) if lut is None else lut
        valid = f"0..{num_classes - 1}" if num_classes > 1 else "0"
        hint = "; for 0/255 or JPEG binary masks set mask_format: binary" if self.guard_binary else ""
        self.unlisted = unlisted or f"outside the classes ({valid}) and not the ignore value {ignore_index}{hint}"

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        sample = self.samples[index]
        return f"sample '{sample.name}' ({', '.join(str(p) for p in (sample.image, *sample.labels))})"

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
        """Train ids ``H×W`` uint8 of ``sample`` as stored (not yet oriented); raises on undefined values."""
        raw = self.decode_mask(sample)
        if raw.size and int(raw.max()) > 255:
            bad = np.unique(raw[raw > 255])[:10].tolist()
            raise ValueError(f"mask {sample.labels[0]} has label values {bad} outside 0..255")
        mask = self.lut_for(sample)[raw.astype(np.uint8)]
        if (mask < 0).any():
            bad = np.unique(raw[mask < 0])[:10].tolist()
            raise ValueError(f"mask {sample.labels[0]} has label values {bad} {self.unlisted}")
        if self.guard_binary:
            self._refuse_ignored_foreground(sample, raw)
        return mask.astype(np.uint8)

    def _refuse_ignored_foreground(self, sample: FileSample, raw: np.ndarray) -> None:
        ignore = self.ignore_index
        if (raw == ignore).any() and not ((raw != 0) & (raw != ignore)).any():
            raise ValueError(
                f"mask {sample.labels[0]} holds only 0 and {ignore}, and {ignore} is ignore_index: "
                f"as a 0/{ignore} binary mask its foreground would be ignored. Set mask_format: binary "
                f"(or mask_values: {{0: 0, {ignore}: 1}}); if {ignore} really marks ignored pixels, "
                f"set mask_values: {{0: 0, 1: 1, {ignore}: {ignore}}}"
            )

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        sample = self.samples[index]
        image, orientation = read_image_stored(sample.image), exif_orientation(sample.image)
        if not sample.labels:
            return orient(image, orientation), None, sample.name
        mask = _upright_mask(sample, image.shape[:2], orientation, self.read_mask(sample))
        return orient(image, orientation), mask, sample.name

    def ignored_region(self, index: int) -> np.ndarray | None:
        """The pixels outside the sample's ``valid_region`` (``H×W`` bool), or ``None`` without one."""
        sample = self.samples[index]
        if sample.valid_region is None:
            return None
        region = read_label(sample.valid_region, grey=True) <= 127
        region_sample = FileSample(sample.image, (sample.valid_region,), sample.name)
        return _upright_mask(region_sample, stored_size(sample.image), exif_orientation(sample.image), region)

    def masks(self) -> Iterator[np.ndarray]:
        """Every mask (upright), each checked against its image's size (read from the header only)."""
        for sample in self.samples:
            if sample.labels:
                orientation = exif_orientation(sample.image)
                yield _upright_mask(sample, stored_size(sample.image), orientation, self.read_mask(sample))

    def decoding(self) -> tuple:
        """The settings that turn stored values into train ids (part of the class-statistics cache key)."""
        return type(self).__qualname__, self.lut.tobytes()

    def fingerprint(self, with_images: bool = False) -> list[str]:
        """Each label file's (and image's) path under the root, size and modification time, and :meth:`decoding`."""
        entries = [repr(self.decoding())]
        for sample in self.samples:
            for path in (sample.image, *sample.labels) if with_images else sample.labels:
                stat = path.stat()
                entries.append(f"{_relative(path, self.root)}:{stat.st_size}:{stat.st_mtime_ns}")
        return entries


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _upright_mask(sample: FileSample, stored: tuple[int, ...], orientation: int, mask: np.ndarray) -> np.ndarray:
    """Turn ``mask`` like its image (EXIF ``orientation``), or keep it if it already has the upright size."""
    upright = oriented_size((stored[0], stored[1]), orientation)
    if mask.shape == tuple(stored[:2]):
        return orient(mask, orientation)
    if mask.shape == upright:
        return mask
    raise ValueError(
        f"image {sample.image} is {upright[0]}×{upright[1]} but its mask {sample.labels[0]} "
        f"is {mask.shape[0]}×{mask.shape[1]}"
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
