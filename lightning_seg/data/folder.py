"""Your own data: a folder of images and a folder of masks with matching names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightning_seg.data.files import FileDataModule, FileSample, FileSource, pair_files, read_label, read_list


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


class FolderDataModule(FileDataModule):
    """Images and masks in two folders, matched by file name (any common extension each).

    Layout (either form of splits)::

        root/images/{train,val,test}/*.jpg   root/masks/{train,val,test}/*.png     (split subfolders)
        root/images/*.jpg   root/masks/*.png   root/splits/{train,val,test}.txt     (split list files,
                                                                                     one name per line;
                                                                                     root/{split}.txt
                                                                                     also works)

    ``train`` is required; ``val`` and ``test`` are used when present. Masks are class-index images
    (greyscale or palette PNG, values ``0..C-1`` and ``ignore_index``) or, with ``mask_format: rgb``,
    colour images with one ``palette`` colour per class.

    Args:
        root: the dataset folder.
        class_names: one name per class, in index order.
        palette: RGB colour per class (for drawing, and to decode ``rgb`` masks); default: VOC's colours.
        mask_format: ``index`` (class ids) or ``rgb`` (colour-coded with ``palette``).
        ignore_color: with ``rgb`` masks, the colour of ignored pixels.
        image_dir: images folder under ``root``.
        mask_dir: masks folder under ``root``.
        mask_suffix: text after the shared name in mask file names (``0001_mask.png`` → ``_mask``).
        **kwargs: ``crop_size`` (default 512×512), ``predict_dir``: see
            :class:`~lightning_seg.data.files.FileDataModule`; loaders and pipelines: see
            :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]] | None = None,
        mask_format: Literal["index", "rgb"] = "index",
        ignore_color: Sequence[int] | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffix: str = "",
        **kwargs: Any,
    ) -> None:
        if len(class_names) < 1:
            raise ValueError("class_names must name at least one class")
        if mask_format not in ("index", "rgb"):
            raise ValueError(f"mask_format must be 'index' or 'rgb', got '{mask_format}'")
        if palette is not None and len(palette) != len(class_names):
            raise ValueError(f"palette has {len(palette)} colours but there are {len(class_names)} class_names")
        if mask_format == "rgb" and palette is None:
            raise ValueError("mask_format 'rgb' needs a palette: one [r, g, b] colour per class")
        self.class_names = tuple(class_names)
        if palette is not None:
            self.palette = tuple(tuple(int(c) for c in color) for color in palette)
        self.mask_format = mask_format
        self.ignore_color = ignore_color
        self.image_dir, self.mask_dir, self.mask_suffix = image_dir, mask_dir, mask_suffix
        super().__init__(root, **kwargs)

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
        if split == "train":
            raise FileNotFoundError(
                f"FolderDataModule: no training split under {self.root}: expected {images / 'train'}/ "
                f"or a list file {self.root / 'splits' / 'train.txt'}"
            )
        return None

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
        return super().make_source(samples)
