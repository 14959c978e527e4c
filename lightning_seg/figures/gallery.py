"""The prediction gallery: image | ground truth | prediction rows of chosen samples, with a class legend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lightning_seg.figures.layout import bounded_size, fitting_columns
from lightning_seg.figures.masks import colorize

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class GallerySample:
    """One validation sample: its image, masks ``H×W`` int64 and mIoU.

    The image is the normalised ``3×H×W`` tensor while the epoch runs (de-normalising only the samples
    finally shown is cheaper) and the ``H×W×3`` uint8 picture once drawn.
    """

    name: str
    image: np.ndarray | Tensor
    target: np.ndarray
    pred: np.ndarray
    miou: float


def overlay(image: np.ndarray, mask: np.ndarray, colors: np.ndarray, ignore_index: int, alpha: float) -> np.ndarray:
    """Blend the class colours of ``mask`` into ``image``; ignored pixels keep the image.

    Shape:
        image ``H×W×3`` uint8, mask ``H×W``, colors ``C×3`` uint8 → ``H×W×3`` uint8.
    """
    painted = colorize(mask, colors, ignore_index, len(colors)).astype(np.float64)
    blended = (1 - alpha) * image + alpha * painted
    return np.where((mask != ignore_index)[..., None], blended, image).round().astype(np.uint8)


def gallery_figure(
    samples: Sequence[GallerySample],
    names: Sequence[str],
    colors: np.ndarray,
    ignore_index: int,
    alpha: float,
    title: str,
) -> Figure:
    """Rows of image | ground truth | prediction, with a colour legend of the classes.

    The tiles are assembled into one picture first (one image to draw, whatever the number of samples).
    """
    height, width = samples[0].image.shape[:2]
    gap, caption = max(2, width // 32), max(6, height // 8)  # in image pixels: between tiles, above each row
    mosaic = np.full((len(samples) * (height + caption), 3 * (width + gap) - gap, 3), 255, np.uint8)
    # About 1.5 screen pixels per image pixel: enough to see thin structures, cheap to encode every epoch.
    size = bounded_size(6, 2.0 * len(samples) * (height + caption) / width + 0.9)
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots()
    for row, sample in enumerate(samples):
        tiles = (
            (sample.image, sample.name),
            (overlay(sample.image, sample.target, colors, ignore_index, alpha), "ground truth"),
            (
                overlay(sample.image, sample.pred, colors, ignore_index, alpha),
                f"prediction, mIoU {sample.miou:.2f}",
            ),
        )
        top = row * (height + caption) + caption
        for col, (pixels, label) in enumerate(tiles):
            left = col * (width + gap)
            mosaic[top : top + height, left : left + width] = pixels
            axes.text(left + width / 2, top - 1, label, ha="center", va="bottom", fontsize=8)
    axes.imshow(mosaic, interpolation="nearest")
    axes.axis("off")
    shown, present = legend_classes(samples, len(names), ignore_index)
    handles = [Patch(color=colors[k] / 255, label=names[k]) for k in shown]
    if len(shown) < present:
        handles.append(Patch(color="none", label=f"(and {present - len(shown)} smaller classes)"))
    legend = {"handles": handles, "loc": "outside lower center", "fontsize": "small" if len(shown) <= 12 else "x-small"}
    figure.legend(ncols=fitting_columns(figure, legend, max_columns=min(len(handles), 8)), **legend)
    figure.suptitle(title)
    return figure


def legend_classes(
    samples: Sequence[GallerySample], num_classes: int, ignore_index: int, limit: int = 24
) -> tuple[list[int], int]:
    """The classes in the samples' ground truth or prediction (at most ``limit``: those with most pixels).

    Returns them in class order, and how many classes the samples hold in all, so that the legend of a
    dataset with many classes lists only what is shown.
    """
    pixels = np.zeros(num_classes + 1, np.int64)
    for sample in samples:
        for mask in (sample.target, sample.pred):
            pixels += np.bincount(np.where(mask == ignore_index, num_classes, mask).ravel(), minlength=num_classes + 1)
    present = np.flatnonzero(pixels[:num_classes])
    kept = present[np.argsort(-pixels[present], kind="stable")][:limit]
    return sorted(kept.tolist()), len(present)
