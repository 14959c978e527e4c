"""Per-class loss weights computed from a training set's class statistics.

Every scheme returns a float64 array of length ``C``. A class with zero training pixels gets the largest
weight of the classes that do have pixels (it is treated as the rarest class; never ``inf`` or ``NaN``);
when no class has any pixel every weight is 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lightning_seg.data.stats import ClassStats


def _fill_absent(weights: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Give classes without pixels the largest weight among classes with pixels."""
    if not present.any():
        return np.ones_like(weights)
    return np.where(present, weights, weights[present].max())


def inverse_frequency(stats: ClassStats, beta: float = 0.999) -> np.ndarray:
    """``1 / p_c`` with ``p_c`` the fraction of labelled pixels of class ``c``."""
    freq = stats.pixel_frequency
    present = freq > 0
    return _fill_absent(1.0 / np.where(present, freq, 1.0), present)


def median_frequency(stats: ClassStats, beta: float = 0.999) -> np.ndarray:
    """Median-frequency balancing, ``median(f) / f_c`` (Eigen & Fergus, ICCV 2015, arXiv 1411.4734).

    ``f_c`` is the number of pixels of class ``c`` divided by the total number of labelled pixels of the
    images that contain ``c`` (:attr:`ClassStats.image_pixel_counts`), so images of different sizes or
    with ignored pixels count exactly. The median is over classes with pixels.
    """
    pixels = np.asarray(stats.pixel_counts, dtype=np.float64)
    image_pixels = np.asarray(stats.image_pixel_counts, dtype=np.float64)
    present = pixels > 0
    if not present.any():
        return np.ones_like(pixels)
    freq = np.where(present, pixels / np.where(present, image_pixels, 1.0), 1.0)
    return _fill_absent(np.median(freq[present]) / freq, present)


def enet_weighting(stats: ClassStats, beta: float = 0.999) -> np.ndarray:
    """``1 / ln(1.02 + p_c)`` (Paszke et al., ENet, arXiv 1606.02147)."""
    freq = stats.pixel_frequency
    return _fill_absent(1.0 / np.log(1.02 + freq), freq > 0)


def effective_number(stats: ClassStats, beta: float = 0.999) -> np.ndarray:
    """``(1 − β) / (1 − β^n_c)``, normalised to sum to ``C`` (Cui et al., CVPR 2019, arXiv 1901.05555).

    ``n_c`` is the number of pixels of class ``c``; absent classes get the largest weight before the
    normalisation.

    Choosing β for pixel counts: the effective number ``(1 − β^n)/(1 − β)`` grows like ``n`` up to about
    ``N = 1/(1 − β)`` and saturates at ``N`` above it, so classes with far more than ``N`` pixels all get
    the same weight. Cui et al.'s β ∈ [0.9, 0.9999] suit *image* counts; with pixel counts (10⁵–10⁹
    per class) every class saturates, every weight is ≈ 1 and the loss is plain cross-entropy. Take
    ``β = 1 − 1/N`` with ``N`` the count below which a class should be up-weighted, e.g. the median
    class count: classes rarer than ``N`` are then weighted about inversely to their pixel count. A
    warning says so when the weights come out within 5 % of uniform.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"effective-number weighting needs 0 <= beta < 1, got beta={beta}")
    counts = np.asarray(stats.pixel_counts, dtype=np.float64)
    present = counts > 0
    raw = _fill_absent((1.0 - beta) / np.where(present, 1.0 - np.power(beta, counts), 1.0), present)
    weights = raw * len(raw) / raw.sum()
    if present.sum() > 1 and np.abs(weights - 1.0).max() < 0.05:
        median = float(np.median(counts[present]))
        warnings.warn(
            f"class weight 'effective' with beta={beta}: every weight is within 5 % of 1 "
            f"({weights.min():.3f}–{weights.max():.3f}) because the pixel counts (smallest "
            f"{int(counts[present].min())}) are far above 1/(1 − beta) = {1 / (1 - beta):.0f}, so the loss is "
            f"unweighted; for pixel counts use beta = 1 − 1/N with N the median class count "
            f"(here beta={1 - 1 / median:.10g})",
            stacklevel=2,
        )
    return weights


#: Name → function ``(stats, beta) -> weights``.
WEIGHTING_SCHEMES: dict[str, Callable[[ClassStats, float], np.ndarray]] = {
    "inverse": inverse_frequency,
    "median": median_frequency,
    "enet": enet_weighting,
    "effective": effective_number,
}


def compute_class_weights(stats: ClassStats, scheme: str = "median", beta: float = 0.999) -> np.ndarray:
    """Per-class weights of ``stats`` by the named scheme (see :data:`WEIGHTING_SCHEMES`).

    Args:
        stats: the training set's class statistics.
        scheme: ``inverse``, ``median``, ``enet`` or ``effective``.
        beta: the effective-number hyper-parameter (ignored by the other schemes).

    Returns:
        float64 array of length ``stats.num_classes``, finite and positive.
    """
    if scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"unknown class weighting scheme '{scheme}'; valid: {sorted(WEIGHTING_SCHEMES)}")
    return WEIGHTING_SCHEMES[scheme](stats, beta)
