"""DRIVE retinal vessel segmentation: thin structures inside a circular field of view."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from lightning_seg.data.crops import ScaleCrop
from lightning_seg.data.files import FileDataModule, FileSample, FileSource, list_images
from lightning_seg.data.imageio import read_label
from lightning_seg.data.transforms import TransformSpec

#: Training images held out for validation (DRIVE has none): the last four of the 20, ids 37–40.
VAL_IDS = ("37", "38", "39", "40")


def _foreground(path: Path) -> np.ndarray:
    """Read a binary annotation (GIF, 0 / 255) as a boolean array, robust to stray grey values."""
    return read_label(path, grey=True) > 127


class DRIVESource(FileSource):
    """DRIVE masks: vessels from ``1st_manual`` → 1, background → 0, outside the field of view → ignore.

    A sample's label files are ``(manual annotation, field-of-view mask)``.
    """

    def decode_mask(self, sample: FileSample) -> np.ndarray:
        vessels, fov = _foreground(sample.labels[0]), _foreground(sample.labels[1])
        if vessels.shape != fov.shape:
            raise ValueError(
                f"vessel mask {sample.labels[0]} is {vessels.shape[0]}×{vessels.shape[1]} but field-of-view "
                f"mask {sample.labels[1]} is {fov.shape[0]}×{fov.shape[1]}"
            )
        return np.where(fov, vessels.astype(np.uint8), np.uint8(self.ignore_index))


class DRIVEDataModule(FileDataModule):
    """DRIVE (2 classes: background, vessel), as the official ``DRIVE.zip`` unpacks it.

    Layout::

        training/images/{21..40}_training.tif   training/1st_manual/{id}_manual1.gif
        training/mask/{id}_training_mask.gif    (field of view; pixels outside it are ignored)
        test/images/{01..20}_test.tif           test/mask/{id}_test_mask.gif
        test/1st_manual/{id}_manual1.gif        (when present; without it the test images serve
                                                 ``predict`` only)

    DRIVE has no validation set: training images 37–40 are held out as one (fixed), leaving 16 for
    training.

    Args:
        root: the ``DRIVE`` folder.
        crop_size: training crop of the default pipeline (flips, free rotation, brightness/contrast, pad,
            random crop); evaluation uses whole 584×565 images.
        predict_dir: folder of images for ``predict``; default: the test images.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = ("background", "vessel")
    palette = ((0, 0, 0), (255, 0, 0))

    default_crop_size = (512, 512)

    def required_dirs(self) -> list[str]:
        return ["training/images", "training/1st_manual", "training/mask", "test/images", "test/mask"]

    def default_transform(self, split: str) -> TransformSpec:
        if split != "train":
            return None
        height, width = self.crop_size
        return A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Rotate(limit=180, border_mode=cv2.BORDER_CONSTANT, p=0.5),
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
                ScaleCrop(height, width, scale=(1.0, 1.0)),  # pad (with ignore) and crop
            ]
        )

    def make_source(self, samples: list[FileSample]) -> FileSource:
        return DRIVESource(samples, self.root, self.num_classes, self.ignore_index)

    def _samples(self, folder: str, with_manual: bool) -> list[FileSample]:
        base = self.root / folder
        images = list_images(base / "images", f"_{folder}")
        samples = []
        for name, image in images.items():
            manual, fov = base / "1st_manual" / f"{name}_manual1.gif", base / "mask" / f"{name}_{folder}_mask.gif"
            for path in (manual, fov) if with_manual else (fov,):
                if not path.is_file():
                    raise FileNotFoundError(f"image {image} has no mask: expected {path}")
            samples.append(FileSample(image, (manual, fov) if with_manual else (), name, valid_region=fov))
        return samples

    def list_split(self, split: str) -> list[FileSample] | None:
        if split == "test":
            has_manual = (self.root / "test" / "1st_manual").is_dir()
            return self._samples("test", with_manual=True) if has_manual else None
        samples = self._samples("training", with_manual=True)
        return [s for s in samples if (s.name in VAL_IDS) == (split == "val")]

    def predict_samples(self) -> list[FileSample] | None:
        return self._samples("test", with_manual=False)
