"""What is computed from a mask's shape for the data workers and the losses alike: semantic edges.

(Signed distance maps, the other such target, live in :mod:`lightning_seg.losses.distance`.)
"""

from __future__ import annotations

import numpy as np

#: The eight neighbours of a pixel, as (row, column) offsets.
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def semantic_edges(mask: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Binary semantic boundaries of a label mask, one pixel on each side of every class border.

    A labelled pixel is an edge pixel when one of its eight neighbours is labelled with another class.
    Ignored pixels never make an edge (a class next to an ignored region has no edge there) and are
    ``ignore_index`` in the result; the image border is not an edge. Losses widen the edges they read
    (:class:`~lightning_seg.losses.EdgeLoss`'s ``width``).

    Args:
        mask: ``H×W`` integer array of class indices or ``ignore_index``.
        ignore_index: value of ignored pixels.

    Returns:
        uint8 array ``H×W``: 1 on edges, 0 elsewhere, ``ignore_index`` where the mask is ignored.
    """
    if mask.ndim != 2:
        raise ValueError(f"semantic_edges expects an H×W mask, got shape {mask.shape}")
    labels = mask.astype(np.int64, copy=False)
    height, width = labels.shape
    padded = np.pad(labels, 1, constant_values=ignore_index)  # outside the image counts as ignored
    valid = labels != ignore_index
    edges = np.zeros((height, width), dtype=bool)
    for dy, dx in NEIGHBOURS:
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        edges |= (neighbour != labels) & (neighbour != ignore_index)
    out = (edges & valid).astype(np.uint8)
    out[~valid] = ignore_index
    return out
