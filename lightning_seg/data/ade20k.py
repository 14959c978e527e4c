"""ADE20K scene parsing (the SceneParsing challenge release), 150 classes."""

from __future__ import annotations

import albumentations as A
import numpy as np

from lightning_seg.data.files import FileDataModule, FileSample, make_lut, pair_files
from lightning_seg.data.transforms import TransformSpec, scale_crop_flip
from lightning_seg.figures.masks import default_palette

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

SPLIT_FOLDERS = {"train": "training", "val": "validation", "test": "validation"}


class ADE20KDataModule(FileDataModule):
    """ADE20K (150 classes), as ``ADEChallengeData2016.zip`` unpacks it: 20,210 train and 2,000 val images.

    Layout (``root`` is the ``ADEChallengeData2016`` folder)::

        images/{training,validation}/*.jpg
        annotations/{training,validation}/*.png     0 = other (ignored), k = class k−1

    The challenge's test labels are not public, so ``test`` is the validation split.

    Args:
        root: the ``ADEChallengeData2016`` folder.
        crop_size: training crop of the default pipeline: shorter side resized to 512, random rescale
            0.5–2, pad, crop, flip, brightness/contrast. Evaluation resizes the shorter side to 512
            (masks with nearest neighbour), so scores are measured at that scale.
        predict_dir: folder of images for ``predict``.
        **kwargs: see :class:`~lightning_seg.data.base.SegmentationDataModule`.
    """

    class_names = ADE20K_CLASSES
    palette = tuple(default_palette(len(ADE20K_CLASSES) + 1)[1:])

    default_crop_size = (512, 512)

    def required_dirs(self) -> list[str]:
        return [f"{kind}/{folder}" for kind in ("images", "annotations") for folder in ("training", "validation")]

    def default_transform(self, split: str) -> TransformSpec:
        short_side = A.SmallestMaxSize(max_size=min(self.crop_size), p=1.0)
        if split == "train":
            return A.Compose([short_side, *scale_crop_flip(*self.crop_size).transforms])
        return A.Compose([short_side]) if split in ("val", "test") else None

    def label_lut(self) -> np.ndarray:
        return make_lut({k + 1: k for k in range(len(ADE20K_CLASSES))}, [0], self.ignore_index)

    def list_split(self, split: str) -> list[FileSample] | None:
        folder = SPLIT_FOLDERS[split]
        return pair_files(self.root / "images" / folder, self.root / "annotations" / folder)
