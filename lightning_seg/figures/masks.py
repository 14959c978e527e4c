"""Drawing masks and samples with a dataset's palette."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

#: Colour of ignored pixels in drawings.
IGNORE_COLOR = (0, 0, 0)


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct colours for ``num_classes`` (up to 256): the bit-interleaved colour map of Pascal VOC.

    Class ``i`` spreads the bits of ``i`` over the high bits of R, G and B, so 0 is black, 1 dark red,
    2 dark green, 3 olive, ...
    """
    colors = []
    for index in range(num_classes):
        rgb = [0, 0, 0]
        value = index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
        colors.append((rgb[0], rgb[1], rgb[2]))
    return colors


def colorize(
    mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int, num_classes: int | None = None
) -> np.ndarray:
    """Colour a mask of class indices with ``palette``; ignored and unknown values are black.

    Shape:
        ``H×W`` integer mask → ``H×W×3`` uint8 image.
    """
    num_classes = len(palette) if num_classes is None else num_classes
    colors = list(palette)[:num_classes]
    colors += default_palette(num_classes)[len(colors) :]
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    table[ignore_index] = IGNORE_COLOR
    return table[np.clip(mask, 0, 255).astype(np.uint8)]


def draw_sample(
    image: np.ndarray,
    mask: np.ndarray | None,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    ignore_index: int,
    title: str = "",
    alpha: float = 0.5,
) -> Figure:
    """Draw the image, its coloured mask and the overlay, with a legend of the classes present.

    The figure is not registered with pyplot, so it needs no closing; save it with ``fig.savefig``.

    Shape:
        ``image`` ``H×W×3`` uint8, ``mask`` ``H×W`` integer (or ``None``: only the image is drawn).
    """
    panels = 1 if mask is None else 3
    fig = Figure(figsize=(4 * panels, 4))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].imshow(image)
    axes[0].set_title(title or "image")
    if mask is not None:
        colored = colorize(mask, palette, ignore_index, len(class_names))
        axes[1].imshow(colored)
        axes[1].set_title("mask")
        overlay = (image.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)
        overlay[mask == ignore_index] = image[mask == ignore_index]
        axes[2].imshow(overlay)
        axes[2].set_title("overlay")
        present = [int(v) for v in np.unique(mask) if v < len(class_names)]
        table = colorize(np.arange(len(class_names)), palette, ignore_index, len(class_names))
        handles = [Patch(color=table[k] / 255.0, label=class_names[k]) for k in present]
        if (mask == ignore_index).any():
            handles.append(Patch(color=np.asarray(IGNORE_COLOR) / 255.0, label=f"ignore ({ignore_index})"))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize="small")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.08 if mask is not None else 0, 1, 1))
    return fig
