"""Pascal VOC 2012 semantic segmentation, optionally with the SBD-augmented training set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightning_seg.data.files import FileDataModule, FileSample, make_lut, pair_files, read_list
from lightning_seg.figures.masks import default_palette

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

#: The augmented list's usual names (``trainaug.txt`` from DeepLab's setup, ``train_aug.txt`` from SBD tools).
TRAINAUG_LISTS = ("trainaug.txt", "train_aug.txt")


def find_voc2012(root: Path) -> Path:
    """The ``VOC2012`` folder given itself, ``VOCdevkit`` or the folder holding ``VOCdevkit`` (as torchvision's)."""
    if not root.is_dir():
        return root  # reported by FileDataModule
    candidates = (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012")
    for candidate in candidates:
        if (candidate / "JPEGImages").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"VOCDataModule: {root} has no JPEGImages/ folder, and neither has {tried.split(', ', 1)[1]}: "
        "give the VOC2012 folder, VOCdevkit, or the folder that holds VOCdevkit"
    )


class VOCDataModule(FileDataModule):
    """Pascal VOC 2012 (21 classes), as ``VOCtrainval_11-May-2012.tar`` unpacks it.

    Layout (``root`` is the ``VOCdevkit/VOC2012`` folder; ``VOCdevkit`` or the folder holding it, as
    torchvision's ``VOCSegmentation`` takes, work too)::

        JPEGImages/*.jpg
        SegmentationClass/*.png                  palette PNGs: class ids, 255 on object borders (ignored)
        ImageSets/Segmentation/{train,val}.txt
        SegmentationClassAug/*.png               only for train_split "trainaug": the SBD-augmented
        ImageSets/Segmentation/trainaug.txt      masks and their 10,582-name list (train_aug.txt also
                                                 accepted; its lines may be "JPEGImages/x.jpg ...")

    The test labels are not public, so ``test`` is the val split; ``predict`` uses the val images.

    Args:
        root: the ``VOC2012`` folder, ``VOCdevkit`` or its parent.
        train_split: ``train`` (1,464 images) or ``trainaug`` (10,582, masks from ``SegmentationClassAug``).
        **kwargs: ``crop_size`` (default 512×512), ``predict_dir``: see
            :class:`~lightning_seg.data.files.FileDataModule`; loaders and pipelines: see
            :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = VOC_CLASSES
    palette = tuple(default_palette(len(VOC_CLASSES)))

    def __init__(
        self,
        root: str | Path,
        train_split: Literal["train", "trainaug"] = "train",
        **kwargs: Any,
    ) -> None:
        if train_split not in ("train", "trainaug"):
            raise ValueError(f"train_split must be 'train' or 'trainaug', got '{train_split}'")
        self.train_split = train_split
        super().__init__(find_voc2012(Path(root).expanduser()), **kwargs)

    def required_dirs(self) -> list[str]:
        dirs = ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]
        return dirs + (["SegmentationClassAug"] if self.train_split == "trainaug" else [])

    def label_lut(self) -> np.ndarray:
        return make_lut({k: k for k in range(len(VOC_CLASSES))}, [255], self.ignore_index)

    def list_split(self, split: str) -> list[FileSample] | None:
        lists = self.root / "ImageSets" / "Segmentation"
        if split == "train" and self.train_split == "trainaug":
            found = [lists / name for name in TRAINAUG_LISTS if (lists / name).is_file()]
            if not found:
                raise FileNotFoundError(f"VOCDataModule: trainaug needs the list {lists / TRAINAUG_LISTS[0]}")
            return pair_files(self.root / "JPEGImages", self.root / "SegmentationClassAug", names=read_list(found[0]))
        list_file = lists / ("val.txt" if split == "test" else f"{split}.txt")
        if not list_file.is_file():
            raise FileNotFoundError(f"VOCDataModule: missing split list {list_file}")
        return pair_files(self.root / "JPEGImages", self.root / "SegmentationClass", names=read_list(list_file))
