"""Your own data: a folder of images and a folder of masks with matching names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightning_seg.data.files import (
    FileDataModule,
    FileSample,
    FileSource,
    binary_mask,
    list_images,
    make_lut,
    pair_files,
    read_list,
    seeded_split,
)
from lightning_seg.data.imageio import read_label


class ColorMaskSource(FileSource):
    """Masks stored as RGB images in which each class has one colour of a palette.

    Args:
        palette: colour of each class, in class order.
        ignore_color: colour of pixels to ignore (e.g. white object borders); other unknown colours are
            an error.
        *args: see :class:`~lightning_seg.data.files.FileSource`.
    """

    def __init__(
        self,
        *args: Any,
        palette: Sequence[Sequence[int]],
        ignore_color: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        codes = [_color_code(color) for color in palette]
        values = list(range(len(codes)))
        if ignore_color is not None:
            codes.append(_color_code(ignore_color))
            values.append(self.ignore_index)
        order = np.argsort(codes)
        self.codes = np.asarray(codes, dtype=np.int64)[order]
        self.values = np.asarray(values, dtype=np.uint8)[order]

    def decoding(self) -> tuple:
        return (*super().decoding(), self.codes.tobytes(), self.values.tobytes())

    def decode_mask(self, sample: FileSample) -> np.ndarray:
        raw = read_label(sample.labels[0])
        if raw.ndim != 3:
            raise ValueError(f"mask {sample.labels[0]} has one channel; mask_format 'rgb' expects colour masks")
        codes = (raw[..., 0].astype(np.int64) << 16) | (raw[..., 1].astype(np.int64) << 8) | raw[..., 2]
        position = np.clip(np.searchsorted(self.codes, codes), 0, len(self.codes) - 1)
        known = self.codes[position] == codes
        if not known.all():
            bad = [tuple(int(c) for c in color) for color in np.unique(raw[~known], axis=0)[:5]]
            raise ValueError(
                f"mask {sample.labels[0]} has colours {bad} that are not in the palette (nor the ignore_color)"
            )
        return self.values[position]


def _color_code(color: Sequence[int]) -> int:
    if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
        raise ValueError(f"a palette colour must be three values in 0..255, got {list(color)}")
    return (int(color[0]) << 16) | (int(color[1]) << 8) | int(color[2])


class BinaryMaskSource(FileSource):
    """Two-class masks stored as 0/1 or 0/255 (also JPEG), read by :func:`~lightning_seg.data.files.binary_mask`."""

    def decode_mask(self, sample: FileSample) -> np.ndarray:
        return binary_mask(sample.labels[0])


class FolderDataModule(FileDataModule):
    """Images and masks in two folders, matched by file name (any common extension each).

    Layout (any one form of splits)::

        root/images/{train,val,test}/*.jpg   root/masks/{train,val,test}/*.png     (split subfolders)
        root/images/*.jpg   root/masks/*.png   root/splits/{train,val,test}.txt     (split list files,
                                                                                     one name per line;
                                                                                     root/{split}.txt
                                                                                     also works)
        root/images/*.jpg   root/masks/*.png                                        (flat: a seeded
                                                                                     val_fraction is
                                                                                     held out)

    ``train`` is required; ``val`` and ``test`` are used when present. Two files with the same name and
    different extensions (``a.jpg``, ``a.png``) are an error. How mask values become classes
    (``mask_format``):

    - ``index`` (default): class-index images (greyscale or palette PNG) holding ``0..C-1`` and
      ``ignore_index``; anything else is an error. With two classes, a mask holding only 0 and
      ``ignore_index`` (255) is an error too: it is most likely a 0/255 binary mask, whose foreground
      would silently be ignored.
    - ``binary``: two classes stored as 0/1 or 0/255: a file whose largest value is 1 is read as 0/1,
      otherwise a pixel ≥ 128 is class 1 (so JPEG masks work); largest values 2..127 are an error.
    - ``rgb``: colour images with one ``palette`` colour per class (``ignore_color`` for ignored pixels).
    - ``mask_values`` (with ``index``): an explicit table from stored value to class (or
      ``ignore_index``), e.g. ``{0: 0, 255: 1}``; values it does not list are an error.

    Args:
        root: the dataset folder.
        class_names: one name per class, in index order.
        palette: RGB colour per class (for drawing, and to decode ``rgb`` masks); default: VOC's colours.
        mask_format: ``index``, ``binary`` or ``rgb`` (see above).
        mask_values: stored value → class id or ``ignore_index``, for ``index`` masks.
        ignore_color: with ``rgb`` masks, the colour of ignored pixels.
        image_dir: images folder under ``root``.
        mask_dir: masks folder under ``root``.
        mask_suffix: text after the shared name in mask file names (``0001_mask.png`` → ``_mask``).
        val_fraction: share of a flat folder's images held out for validation (0: none).
        split_seed: seed of that hold-out: the sorted names are permuted with it, so the split is the
            same on every run and machine.
        **kwargs: ``crop_size`` (default 512×512), ``predict_dir``: see
            :class:`~lightning_seg.data.files.FileDataModule`; loaders and pipelines: see
            :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]] | None = None,
        mask_format: Literal["index", "binary", "rgb"] = "index",
        mask_values: dict[int, int] | None = None,
        ignore_color: Sequence[int] | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffix: str = "",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if len(class_names) < 1:
            raise ValueError("class_names must name at least one class")
        if mask_format not in ("index", "binary", "rgb"):
            raise ValueError(f"mask_format must be 'index', 'binary' or 'rgb', got '{mask_format}'")
        if mask_format == "binary" and len(class_names) != 2:
            raise ValueError(f"mask_format 'binary' needs exactly 2 class_names, got {len(class_names)}")
        if mask_values is not None and mask_format != "index":
            raise ValueError(f"mask_values applies to mask_format 'index', not '{mask_format}'")
        if palette is not None and len(palette) != len(class_names):
            raise ValueError(f"palette has {len(palette)} colours but there are {len(class_names)} class_names")
        if mask_format == "rgb" and palette is None:
            raise ValueError("mask_format 'rgb' needs a palette: one [r, g, b] colour per class")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        self.class_names = tuple(class_names)
        if palette is not None:
            self.palette = tuple(tuple(int(c) for c in color) for color in palette)
        self.mask_format = mask_format
        self.mask_values = None if mask_values is None else {int(k): int(v) for k, v in mask_values.items()}
        self.ignore_color = ignore_color
        self.image_dir, self.mask_dir, self.mask_suffix = image_dir, mask_dir, mask_suffix
        self.val_fraction, self.split_seed = val_fraction, split_seed
        super().__init__(root, **kwargs)
        if self.mask_values is not None:
            for stored, target in self.mask_values.items():
                if not 0 <= stored <= 255:
                    raise ValueError(f"mask_values has the stored value {stored}; masks hold 0..255")
                if not (0 <= target < self.num_classes or target == self.ignore_index):
                    raise ValueError(
                        f"mask_values maps {stored} to {target}, which is neither a class (0..{self.num_classes - 1}) "
                        f"nor the ignore_index {self.ignore_index}"
                    )

    def required_dirs(self) -> list[str]:
        return [self.image_dir, self.mask_dir]

    def list_split(self, split: str) -> list[FileSample] | None:
        images, masks = self.root / self.image_dir, self.root / self.mask_dir
        if (images / split).is_dir():
            if not (masks / split).is_dir():
                raise FileNotFoundError(f"{images / split} has no matching mask folder {masks / split}")
            return pair_files(images / split, masks / split, mask_suffix=self.mask_suffix)
        for list_file in (self.root / "splits" / f"{split}.txt", self.root / f"{split}.txt"):
            if list_file.is_file():
                return pair_files(images, masks, mask_suffix=self.mask_suffix, names=read_list(list_file))
        if (
            not (images / "train").is_dir()
            and not (self.root / "splits" / "train.txt").is_file()
            and not (self.root / "train.txt").is_file()
            and list_images(images)
        ):
            return self._held_out(split, images, masks)
        if split == "train":
            raise FileNotFoundError(
                f"FolderDataModule: no training split under {self.root}: expected {images / 'train'}/, "
                f"a list file {self.root / 'splits' / 'train.txt'}, or images directly in {images}"
            )
        return None

    def _held_out(self, split: str, images: Path, masks: Path) -> list[FileSample] | None:
        """A flat folder's ``split``: ``val_fraction`` of the names (seeded) for val, the rest for train."""
        if split == "test" or (split == "val" and self.val_fraction == 0):
            return None
        samples = pair_files(images, masks, mask_suffix=self.mask_suffix)
        chosen = set(seeded_split([s.name for s in samples], split, {"val": self.val_fraction}, self.split_seed))
        return [s for s in samples if s.name in chosen] or None  # too few images for one val image: no val

    def make_source(self, samples: list[FileSample]) -> FileSource:
        if self.mask_format == "rgb":
            return ColorMaskSource(
                samples,
                self.root,
                self.num_classes,
                self.ignore_index,
                palette=self.palette,
                ignore_color=self.ignore_color,
            )
        if self.mask_format == "binary":
            return BinaryMaskSource(samples, self.root, self.num_classes, self.ignore_index)
        if self.mask_values is not None:
            listed = ", ".join(str(v) for v in sorted(self.mask_values))
            return FileSource(
                samples,
                self.root,
                self.num_classes,
                self.ignore_index,
                lut=make_lut(self.mask_values, [], self.ignore_index),
                unlisted=f"that mask_values does not list (it lists {listed})",
            )
        return super().make_source(samples)
