"""Cityscapes fine annotations, evaluated on the 19 training classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lightning_seg.data.files import FileDataModule, FileSample, FileSource, list_images, make_lut

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

#: The official labelId of each train id (cityscapesScripts' ``labels.py``); every other labelId is ignored.
LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

IMAGE_SUFFIX = "_leftImg8bit"
LABEL_IDS_SUFFIX = "_gtFine_labelIds"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds"


class CityscapesSource(FileSource):
    """Cityscapes masks: ``*_labelTrainIds.png`` read as they are, ``*_labelIds.png`` mapped to train ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_id_lut = make_lut({k: k for k in range(len(LABEL_IDS))}, [255], self.ignore_index)

    def lut_for(self, sample: FileSample) -> np.ndarray:
        return self.train_id_lut if sample.labels[0].stem.endswith(TRAIN_IDS_SUFFIX) else self.lut


class CityscapesDataModule(FileDataModule):
    """Cityscapes (19 classes), as ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` unpack.

    Layout::

        leftImg8bit/{train,val,test}/{city}/{name}_leftImg8bit.png
        gtFine/{train,val}/{city}/{name}_gtFine_labelIds.png        labelIds: mapped to the 19 train ids,
                                                                    every other id → ignore
        gtFine/{train,val}/{city}/{name}_gtFine_labelTrainIds.png   used directly when present (written by
                                                                    cityscapesScripts' createTrainIdLabelImgs)

    The test labels are withheld (the official files are placeholders), so ``test`` is the val split and
    ``predict`` uses the test images (``leftImg8bit/test``) when present.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        crop_size: training crop of the default pipeline (random rescale 0.5–2, pad, crop, flip,
            brightness/contrast), 512×1024 as is common; evaluation uses whole 1024×2048 images.
        predict_dir: folder of images for ``predict``.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE

    default_crop_size = (512, 1024)

    def required_dirs(self) -> list[str]:
        return ["leftImg8bit/train", "leftImg8bit/val", "gtFine/train", "gtFine/val"]

    def label_lut(self) -> np.ndarray:
        ignored = [v for v in range(256) if v not in LABEL_IDS]
        return make_lut({label_id: k for k, label_id in enumerate(LABEL_IDS)}, ignored, self.ignore_index)

    def make_source(self, samples: list[FileSample]) -> FileSource:
        return CityscapesSource(samples, self.root, self.num_classes, self.ignore_index, lut=self.label_lut())

    def _images(self, split: str) -> list[tuple[str, Path, str]]:
        """``(city, image path, name)`` of every image of ``split``, sorted by city and name."""
        folder = self.root / "leftImg8bit" / split
        return [
            (city.name, path, name)
            for city in sorted(p for p in folder.iterdir() if p.is_dir())
            for name, path in list_images(city, IMAGE_SUFFIX).items()
        ]

    def list_split(self, split: str) -> list[FileSample] | None:
        split = "val" if split == "test" else split
        samples = []
        for city, image, name in self._images(split):
            labels = self.root / "gtFine" / split / city
            train_ids, label_ids = labels / f"{name}{TRAIN_IDS_SUFFIX}.png", labels / f"{name}{LABEL_IDS_SUFFIX}.png"
            if not (train_ids.is_file() or label_ids.is_file()):
                raise FileNotFoundError(f"image {image} has no mask: expected {label_ids}")
            samples.append(FileSample(image, (train_ids if train_ids.is_file() else label_ids,), name))
        return samples

    def predict_samples(self) -> list[FileSample] | None:
        if not (self.root / "leftImg8bit" / "test").is_dir():
            return super().predict_samples()
        return [FileSample(image, (), name) for _, image, name in self._images("test")]
