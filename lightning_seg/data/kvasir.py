"""Kvasir-SEG polyp segmentation, with JPEG masks."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from lightning_seg.data.files import (
    FileDataModule,
    FileSample,
    FileSource,
    binary_mask,
    pair_files,
    read_list,
    seeded_split,
)
from lightning_seg.data.transforms import TransformSpec

#: Seed of the fixed split used when the folder has no ``train.txt`` / ``val.txt``.
SPLIT_SEED = 0
#: Shares of validation and test images in that split (of 1,000 images: 800 / 100 / 100).
VAL_FRACTION = TEST_FRACTION = 0.1


class KvasirSource(FileSource):
    """Kvasir masks are JPEGs with values such as 3 or 250: read by the ``binary`` rule (≥ 128 is polyp)."""

    def decode_mask(self, sample: FileSample) -> np.ndarray:
        return binary_mask(sample.labels[0])


def fixed_split(names: list[str], split: str) -> list[str]:
    """Pick the names of ``split`` in the fixed split: seed 0, the first 10 % test, the next 10 % val."""
    return seeded_split(names, split, {"test": TEST_FRACTION, "val": VAL_FRACTION}, SPLIT_SEED)


class KvasirSEGDataModule(FileDataModule):
    """Kvasir-SEG (2 classes: background, polyp), as ``kvasir-seg.zip`` unpacks: 1,000 images.

    Layout::

        images/*.jpg    masks/*.jpg (same names; JPEG, so thresholded at 128)
        train.txt val.txt (optional: split lists, one name per line, as distributed with the dataset)

    Kvasir-SEG has no official three-way split. Without list files the split is fixed: the sorted names
    permuted with seed 0, 10 % test, 10 % val, 80 % train (800 / 100 / 100). With ``train.txt`` and
    ``val.txt`` those lists are used and ``test`` is the val list.

    Args:
        root: the ``Kvasir-SEG`` folder.
        crop_size: Kvasir images vary in size, so every image is resized (not cropped) to this
            ``(height, width)``, 352×352 by default as is common for polyps; training adds flips,
            rotation, scaling and colour jitter.
        predict_dir: folder of images for ``predict``; default: the test images.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = ("background", "polyp")
    palette = ((0, 0, 0), (0, 255, 0))

    default_crop_size = (352, 352)

    def required_dirs(self) -> list[str]:
        return ["images", "masks"]

    def default_transform(self, split: str) -> TransformSpec:
        resize = A.Resize(*self.crop_size)
        if split != "train":
            return A.Compose([resize])
        return A.Compose(
            [
                resize,
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Affine(scale=(0.75, 1.25), rotate=(-90, 90), border_mode=cv2.BORDER_CONSTANT, p=0.5),
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.5),
            ]
        )

    def make_source(self, samples: list[FileSample]) -> FileSource:
        return KvasirSource(samples, self.root, self.num_classes, self.ignore_index)

    def list_split(self, split: str) -> list[FileSample] | None:
        images, masks = self.root / "images", self.root / "masks"
        lists = {name: self.root / f"{name}.txt" for name in ("train", "val")}
        if all(path.is_file() for path in lists.values()):
            return pair_files(images, masks, names=read_list(lists["val" if split == "test" else split]))
        samples = pair_files(images, masks)
        chosen = set(fixed_split([s.name for s in samples], split))
        return [s for s in samples if s.name in chosen]
