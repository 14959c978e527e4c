"""Random rescale and crop in one resampling, optionally class-aware: the training crop of every pipeline.

``RandomScale → PadIfNeeded → RandomCrop`` resizes the whole image (up to 4× its pixels at scale 2)
before keeping one crop. :class:`ScaleCrop` picks the scale and the crop window first and resamples only
the window (one ``cv2.warpAffine`` per target), so its cost depends on the crop size, not the image's.

Class-aware choices of the window:

- ``cat_max_ratio`` (MMSegmentation's ``RandomCrop``): retry the window up to ``max_tries`` times until
  no single class covers more than that share of the crop's labelled pixels (and it holds two classes
  or more); the last try is kept otherwise.
- ``rare_p``: with this probability the window is centred on a random pixel of a class drawn among
  those present, with the rare-class probabilities ``class_probabilities`` (DAFormer's
  ``P(c) ∝ exp((1 − f_c)/T)``, :mod:`lightning_seg.data.rare_class`).

The DataModule sets ``cat_max_ratio``, ``max_tries``, ``rare_p`` and ``class_probabilities`` of every
:class:`ScaleCrop` in its training pipeline from its own options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.type_definitions import Targets


class ScaleCrop(A.DualTransform):
    """Rescale by a random factor, pad to at least the crop size (centred) and crop ``height×width``.

    Equivalent in distribution to ``RandomScale(scale) → PadIfNeeded(height, width) → RandomCrop(height,
    width)``, with padding filled with ``fill`` (image) and ``fill_mask`` (mask; set to the ignore index by
    :func:`~lightning_seg.data.transforms.build_transform`). Pixels equal to ``fill_mask`` are not counted
    by the class-aware choices.

    Args:
        height: crop height.
        width: crop width.
        scale: range of the rescale factor, drawn uniformly (``(1, 1)``: no rescale).
        cat_max_ratio: largest share of one class in an accepted crop (1: any crop).
        max_tries: windows tried for ``cat_max_ratio``.
        rare_p: probability of a window centred on a rare-class pixel.
        class_probabilities: per class, the probability of centring on it (needed when ``rare_p > 0``).
        fill: image padding value.
        fill_mask: mask padding value.
        p: probability of applying the transform.
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    def __init__(
        self,
        height: int,
        width: int,
        scale: Sequence[float] = (0.5, 2.0),
        cat_max_ratio: float = 1.0,
        max_tries: int = 10,
        rare_p: float = 0.0,
        class_probabilities: Sequence[float] | None = None,
        fill: float = 0,
        fill_mask: float = 255,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if height < 1 or width < 1:
            raise ValueError(f"ScaleCrop needs a positive crop size, got {height}×{width}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"ScaleCrop scale must be (low, high) with 0 < low <= high, got {list(scale)}")
        self.height, self.width, self.scale = int(height), int(width), (float(scale[0]), float(scale[1]))
        self.cat_max_ratio, self.max_tries, self.rare_p = cat_max_ratio, max_tries, rare_p
        self.class_probabilities = None if class_probabilities is None else tuple(class_probabilities)
        self.fill, self.fill_mask = fill, fill_mask

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "scale", "cat_max_ratio", "max_tries", "rare_p", "class_probabilities",
                "fill", "fill_mask")  # fmt: skip

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rows, cols = params["shape"][:2]
        factor = self.py_random.uniform(*self.scale)
        scaled = (max(1, round(rows * factor)), max(1, round(cols * factor)))
        canvas = (max(self.height, scaled[0]), max(self.width, scaled[1]))
        offset = ((canvas[0] - scaled[0]) // 2, (canvas[1] - scaled[1]) // 2)
        mask = data.get("mask")
        window = self._window(canvas)
        if mask is not None and self.rare_p > 0 and self.py_random.random() < self.rare_p:
            window = self._rare_window(mask, factor, offset, canvas) or window
        elif mask is not None and self.cat_max_ratio < 1.0:
            for _ in range(self.max_tries):
                if self._balanced(mask, window, factor, offset):
                    break
                window = self._window(canvas)
        # Source → crop: x_crop = factor · (x + 0.5) − 0.5 + offset − window, pixel centres as cv2.resize.
        shift_y = 0.5 * factor - 0.5 + offset[0] - window[0]
        shift_x = 0.5 * factor - 0.5 + offset[1] - window[1]
        return {"matrix": np.array([[factor, 0.0, shift_x], [0.0, factor, shift_y]])}

    def _window(self, canvas: tuple[int, int]) -> tuple[int, int]:
        return (self.py_random.randint(0, canvas[0] - self.height), self.py_random.randint(0, canvas[1] - self.width))

    def _source_region(self, window: tuple[int, int], factor: float, offset: tuple[int, int]) -> tuple[slice, ...]:
        top, left = (window[0] - offset[0]) / factor, (window[1] - offset[1]) / factor
        step = max(1, int(1 / factor))  # about one sample per crop pixel
        rows = slice(max(0, int(top)), max(0, int(top + self.height / factor)), step)
        cols = slice(max(0, int(left)), max(0, int(left + self.width / factor)), step)
        return rows, cols

    def _balanced(self, mask: np.ndarray, window: tuple[int, int], factor: float, offset: tuple[int, int]) -> bool:
        labels = mask[self._source_region(window, factor, offset)]
        counts = np.bincount(labels[labels != self.fill_mask].ravel().astype(np.int64))
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def _rare_window(
        self, mask: np.ndarray, factor: float, offset: tuple[int, int], canvas: tuple[int, int]
    ) -> tuple[int, int] | None:
        if self.class_probabilities is None:
            raise ValueError("ScaleCrop rare_p > 0 needs class_probabilities (set by the DataModule's rare_crop_p)")
        weights = np.asarray(self.class_probabilities, dtype=np.float64)
        present = np.bincount(mask.ravel().astype(np.int64), minlength=len(weights))[: len(weights)] > 0
        weights = np.where(present, weights, 0.0)
        if weights.sum() <= 0:
            return None
        chosen = int(self.random_generator.choice(len(weights), p=weights / weights.sum()))
        pixels = np.flatnonzero(mask.ravel() == chosen)
        pixel = int(pixels[self.py_random.randrange(len(pixels))])
        centre_y = (pixel // mask.shape[1] + 0.5) * factor + offset[0]
        centre_x = (pixel % mask.shape[1] + 0.5) * factor + offset[1]
        top = min(max(0, round(centre_y - self.height / 2)), canvas[0] - self.height)
        left = min(max(0, round(centre_x - self.width / 2)), canvas[1] - self.width)
        return top, left

    def apply(self, img: np.ndarray, matrix: np.ndarray, **params: Any) -> np.ndarray:
        border = self.fill if img.ndim == 2 else (self.fill,) * img.shape[2]
        out = cv2.warpAffine(img, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=border)  # fmt: skip
        return out if out.ndim == img.ndim else out[..., None]

    def apply_to_mask(self, mask: np.ndarray, matrix: np.ndarray, **params: Any) -> np.ndarray:
        return cv2.warpAffine(mask, matrix, (self.width, self.height), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=self.fill_mask)  # fmt: skip
