"""CamVid road scenes in the SegNet layout, 11 classes."""

from __future__ import annotations

import numpy as np

from lightning_seg.data.files import FileDataModule, FileSample, make_lut, pair_files

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car", "pedestrian",
    "bicyclist",
)  # fmt: skip

CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip

#: The stored value of unlabelled / void pixels.
VOID = 11


class CamVidDataModule(FileDataModule):
    """CamVid (11 classes, 360×480) in SegNet's layout: 367 train, 101 val, 233 test images.

    Layout::

        {train,val,test}/*.png          images
        {train,val,test}annot/*.png     class ids 0..10 with the same file names; 11 (void) → ignore

    Args:
        root: the ``CamVid`` folder.
        crop_size: training crop of the default pipeline (random rescale 0.5–2, pad, crop, flip,
            brightness/contrast); 352×480 keeps the height a multiple of 32. Evaluation uses whole images.
        predict_dir: folder of images for ``predict``.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = CAMVID_CLASSES
    palette = CAMVID_PALETTE

    default_crop_size = (352, 480)

    def required_dirs(self) -> list[str]:
        return [f"{split}{annot}" for split in ("train", "val", "test") for annot in ("", "annot")]

    def label_lut(self) -> np.ndarray:
        return make_lut({k: k for k in range(len(CAMVID_CLASSES))}, [VOID], self.ignore_index)

    def list_split(self, split: str) -> list[FileSample] | None:
        return pair_files(self.root / split, self.root / f"{split}annot")
