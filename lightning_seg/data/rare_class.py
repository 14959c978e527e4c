"""Rare-class sampling (Hoyer et al., DAFormer, CVPR 2022, arXiv 2111.14887): draw a class, then an image.

A class ``c`` is drawn with probability ``P(c) ∝ exp((1 − f_c) / T)``, where ``f_c`` is its share of the
labelled training pixels and ``T`` a temperature (small ``T``: rare classes dominate; large ``T``:
uniform over classes), then an image is drawn uniformly among those holding at least ``min_pixels`` of
``c``. :class:`RareClassPicker` holds these draws (also used by class-aware crops and copy-paste);
:class:`RareClassSampler` is the training sampler built on it.
"""

from __future__ import annotations

import numpy as np
import torch

from lightning_seg.data.resumable import ResumableSampler


def rare_class_probabilities(frequencies: np.ndarray, temperature: float) -> np.ndarray:
    """``P(c) ∝ exp((1 − f_c) / T)`` over the classes with ``f_c > 0``; classes never seen get 0.

    Args:
        frequencies: pixel share of each class, ``(C,)``, summing to 1 over the classes present.
        temperature: ``T > 0``.
    """
    if temperature <= 0:
        raise ValueError(f"the rare-class temperature must be positive, got {temperature}")
    frequencies = np.asarray(frequencies, dtype=np.float64)
    logits = np.where(frequencies > 0, (1.0 - frequencies) / temperature, -np.inf)
    if not np.isfinite(logits).any():
        raise ValueError("rare-class sampling needs at least one class with training pixels")
    weights = np.exp(logits - logits[np.isfinite(logits)].max())  # shifted: no overflow at small T
    return weights / weights.sum()


class RareClassPicker:
    """Class and image draws of rare-class sampling, from per-image class counts.

    Args:
        class_counts: ``N×(C+1)`` pixels of each class per image, then ignored pixels (the DataModule's
            :attr:`~lightning_seg.data.base.SegmentationDataModule.class_counts`).
        temperature: ``T`` of :func:`rare_class_probabilities` (DAFormer uses 0.01).
        min_pixels: an image counts as holding a class with at least this many of its pixels.
    """

    def __init__(self, class_counts: np.ndarray, temperature: float, min_pixels: int = 1) -> None:
        if min_pixels < 1:
            raise ValueError(f"min_pixels must be at least 1, got {min_pixels}")
        per_class = np.asarray(class_counts, dtype=np.int64)[:, :-1]
        totals = per_class.sum(axis=0).astype(np.float64)
        self.temperature, self.min_pixels = temperature, min_pixels
        self.images_of = [np.flatnonzero(per_class[:, c] >= min_pixels) for c in range(per_class.shape[1])]
        frequencies = totals / max(totals.sum(), 1.0)
        eligible = np.asarray([len(images) > 0 for images in self.images_of])
        self.class_probabilities = rare_class_probabilities(np.where(eligible, frequencies, 0.0), temperature)
        self.num_images = len(per_class)

    def image_probabilities(self) -> np.ndarray:
        """Probability of each image under one draw, ``(N,)``: ``Σ_c P(c) · [image holds c] / n_c``."""
        probabilities = np.zeros(self.num_images)
        for c, images in enumerate(self.images_of):
            if len(images):
                probabilities[images] += self.class_probabilities[c] / len(images)
        return probabilities

    def draw(self, count: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``count`` draws: ``(classes, images)``, each ``(count,)`` int64."""
        classes = torch.multinomial(
            torch.from_numpy(self.class_probabilities), count, replacement=True, generator=generator
        ).numpy()
        picks = torch.rand(count, generator=generator, dtype=torch.float64).numpy()
        sizes = np.asarray([len(images) for images in self.images_of])
        offsets = np.minimum((picks * sizes[classes]).astype(np.int64), sizes[classes] - 1)
        images = np.asarray([self.images_of[c][o] for c, o in zip(classes, offsets, strict=True)], dtype=np.int64)
        return classes.astype(np.int64), images


class RareClassSampler(ResumableSampler):
    """Training sampler of rare-class sampling; one epoch draws as many samples as the dataset holds.

    A :class:`~lightning_seg.data.resumable.ResumableSampler`: the draws depend only on ``(seed, epoch)``
    and come with per-sample augmentation seeds, every process draws the same sequence and keeps its share,
    and a resumed run (at an epoch end or mid-epoch) draws what the uninterrupted run would have.

    Args:
        picker: the class and image draws.
        seed: seed shared by every process.
        num_replicas: number of processes; default: the process group's size (1 without one).
        rank: this process's rank; default: from the process group (0 without one).
    """

    def __init__(
        self, picker: RareClassPicker, seed: int = 0, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        super().__init__(picker.num_images, seed=seed, num_replicas=num_replicas, rank=rank)
        self.picker = picker

    def draw(self, generator: torch.Generator) -> np.ndarray:
        return self.picker.draw(self.total_size, generator)[1]
