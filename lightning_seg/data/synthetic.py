"""An embedded, procedurally generated dataset with strongly skewed class frequencies.

Nothing is downloaded or read from disk: every sample is drawn from a seeded random generator, so the
same ``seed`` always gives the same images. Five classes, from very common to very rare:

- ``background``: a smooth, low-frequency coloured texture;
- ``blob``: a few large ellipses filled with oriented stripes;
- ``small_object``: many small discs with a dotted texture;
- ``vessel``: thin curvilinear structures (1–2 px wide), like retinal vessels;
- ``rare``: a tiny cross-shaped object in only some images (well under 1 % of pixels).

Each class's colour is jittered per image and overlaps the others, and Gaussian noise is added, so the
task needs texture and shape, not a colour threshold.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from lightning_seg.data.base import SampleSource, SegmentationDataModule
from lightning_seg.data.transforms import TransformSpec

CLASS_NAMES = ("background", "blob", "small_object", "vessel", "rare")
PALETTE = ((0, 0, 0), (230, 159, 0), (86, 180, 233), (213, 94, 0), (240, 228, 66))
# Mean colour of each class (0–1 RGB); per-image jitter makes neighbouring classes overlap.
BASE_COLOURS = np.array(
    [[0.45, 0.40, 0.35], [0.55, 0.45, 0.35], [0.40, 0.55, 0.45], [0.35, 0.30, 0.30], [0.50, 0.45, 0.40]]
)
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2, "predict": 2}


class SyntheticSource(SampleSource):
    """Samples of one split, generated on demand from ``(seed, split, index)``.

    Args:
        split: ``train``, ``val``, ``test`` or ``predict`` (``predict`` = the test images without masks).
        num_samples: number of images.
        image_size: height and width in pixels.
        seed: base seed.
        num_blobs: maximum number of large blobs per image (at least 1).
        num_small_objects: maximum number of small discs per image.
        num_vessels: maximum number of vessels per image.
        rare_probability: probability that an image contains the rare object.
        noise: standard deviation of the additive Gaussian noise (0–1 scale).
    """

    def __init__(
        self,
        split: str,
        num_samples: int,
        image_size: int,
        seed: int,
        num_blobs: int = 2,
        num_small_objects: int = 6,
        num_vessels: int = 3,
        rare_probability: float = 0.5,
        noise: float = 0.06,
    ) -> None:
        self.split = split
        self.num_samples = num_samples
        self.image_size = image_size
        self.seed = seed
        self.num_blobs = num_blobs
        self.num_small_objects = num_small_objects
        self.num_vessels = num_vessels
        self.rare_probability = rare_probability
        self.noise = noise

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        image, mask = self.generate(index)
        name = f"synthetic_{self.split}_{index:05d}"
        return image, (None if self.split == "predict" else mask), name

    def masks(self):
        for index in range(len(self)):
            yield self.generate(index)[1]

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw image ``index``: ``(H×W×3 uint8, H×W uint8)``."""
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index])
        size = self.image_size
        mask = np.zeros((size, size), np.uint8)
        self._draw_blobs(rng, mask)
        self._draw_small_objects(rng, mask)
        self._draw_vessels(rng, mask)
        if rng.random() < self.rare_probability:
            self._draw_rare(rng, mask)
        return self._render(rng, mask), mask

    # ----- shapes -----
    def _draw_blobs(self, rng: np.random.Generator, mask: np.ndarray) -> None:
        size = self.image_size
        for _ in range(rng.integers(1, self.num_blobs + 1)):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(size // 8, size // 4, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)

    def _draw_small_objects(self, rng: np.random.Generator, mask: np.ndarray) -> None:
        size = self.image_size
        radius_max = max(2, size // 32)
        for _ in range(rng.integers(0, self.num_small_objects + 1)):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(mask, centre, int(rng.integers(2, radius_max + 1)), 2, -1)

    def _draw_vessels(self, rng: np.random.Generator, mask: np.ndarray) -> None:
        size = self.image_size
        for _ in range(rng.integers(1, self.num_vessels + 1)):
            # A smooth random curve: a random walk whose heading drifts slowly.
            point = rng.uniform(0, size, 2)
            heading = rng.uniform(0, 2 * np.pi)
            points = []
            for _ in range(size // 2):
                heading += rng.normal(0, 0.25)
                point = point + 2.0 * np.array([np.cos(heading), np.sin(heading)])
                points.append(point.copy())
            curve = np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(mask, [curve], False, 3, int(rng.integers(1, 3)))

    def _draw_rare(self, rng: np.random.Generator, mask: np.ndarray) -> None:
        size = self.image_size
        y, x = (int(v) for v in rng.integers(3, size - 3, 2))
        arm = max(1, size // 64)
        mask[y - arm : y + arm + 1, x - 2 * arm : x + 2 * arm + 1] = 4
        mask[y - 2 * arm : y + 2 * arm + 1, x - arm : x + arm + 1] = 4

    # ----- appearance -----
    def _render(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        size = self.image_size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        colours = BASE_COLOURS + rng.normal(0, 0.05, BASE_COLOURS.shape)
        low_freq = cv2.resize(rng.normal(0, 0.08, (4, 4, 3)).astype(np.float32), (size, size))
        angle = rng.uniform(0, np.pi)
        stripes = 0.12 * np.sin(2 * np.pi * 6 * (xx * np.cos(angle) + yy * np.sin(angle)))
        dots = 0.15 * np.sin(2 * np.pi * 16 * xx) * np.sin(2 * np.pi * 16 * yy)
        texture = {0: 0.0, 1: stripes, 2: dots, 3: -0.08, 4: 0.15 * np.sign(dots)}
        image = colours[mask] + low_freq
        for label, pattern in texture.items():
            region = mask == label
            image[region] += np.broadcast_to(np.asarray(pattern, np.float32), (size, size))[region, None]
        image += rng.normal(0, self.noise, image.shape)
        return (np.clip(image, 0, 1) * 255).astype(np.uint8)


class SyntheticDataModule(SegmentationDataModule):
    """The embedded default dataset: five classes with strongly skewed frequencies, no files needed.

    With the defaults (128×128), about 78 % of pixels are background, 17 % blob, 2 % small objects,
    3 % vessels and under 0.1 % rare (see the README's table, made with :attr:`class_stats`).

    Args:
        num_train: training images.
        num_val: validation images.
        num_test: test images (also the prediction images).
        image_size: height and width.
        seed: base seed; the same seed gives the same data.
        num_blobs: maximum large blobs per image.
        num_small_objects: maximum small discs per image.
        num_vessels: maximum vessels per image.
        rare_probability: probability that an image contains the rare object.
        noise: Gaussian noise standard deviation (0–1 scale).
        **kwargs: loader, augmentation and normalisation options of
            :class:`~lightning_seg.data.base.SegmentationDataModule` (``batch_size``, ``num_workers``, ...).
    """

    class_names = CLASS_NAMES
    palette = PALETTE

    def __init__(
        self,
        num_train: int = 512,
        num_val: int = 64,
        num_test: int = 64,
        image_size: int = 128,
        seed: int = 0,
        num_blobs: int = 2,
        num_small_objects: int = 6,
        num_vessels: int = 3,
        rare_probability: float = 0.5,
        noise: float = 0.06,
        **kwargs: Any,
    ) -> None:
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        if min(num_train, num_val, num_test) < 1:
            sizes = f"{num_train}, {num_val}, {num_test}"
            raise ValueError(f"num_train, num_val and num_test must be at least 1, got {sizes}")
        if not 0.0 <= rare_probability <= 1.0:
            raise ValueError(f"rare_probability must be in [0, 1], got {rare_probability}")
        super().__init__(**kwargs)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test, "predict": num_test}
        self.generator_args = {
            "image_size": image_size,
            "seed": seed,
            "num_blobs": num_blobs,
            "num_small_objects": num_small_objects,
            "num_vessels": num_vessels,
            "rare_probability": rare_probability,
            "noise": noise,
        }

    def default_transform(self, split: str) -> TransformSpec:
        if split != "train":
            return None
        return {
            "__class_fullname__": "Compose",
            "transforms": [
                {"__class_fullname__": "HorizontalFlip", "p": 0.5},
                {"__class_fullname__": "VerticalFlip", "p": 0.5},
                {"__class_fullname__": "RandomRotate90", "p": 0.5},
            ],
        }

    def build_source(self, split: str) -> SyntheticSource:
        return SyntheticSource(split, self.sizes[split], **self.generator_args)
