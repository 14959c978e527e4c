"""EdgeLoss against its formula written out, with ignore, widening and balancing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_seg.geometry import semantic_edges
from lightning_seg.losses import EdgeLoss


@pytest.fixture
def batch():
    mask = torch.zeros(2, 10, 12, dtype=torch.long)
    mask[0, 2:6, 3:9] = 1
    mask[1, 5:, :] = 2
    mask[1, 0, :] = 255
    edge = torch.from_numpy(np.stack([semantic_edges(m.numpy()) for m in mask]))
    logits = torch.randn(2, 1, 10, 12, generator=torch.Generator().manual_seed(0))
    return logits, edge, mask


def reference(logits, edge, mask, width, pos_weight, gamma):
    """The loss pixel by pixel, widening by looking at every pixel's window."""
    valid = (mask != 255).numpy()
    base = (edge.numpy() == 1) & valid
    n, h, w = base.shape
    truth = np.zeros_like(base)
    r = width - 1
    for i in range(n):
        for y in range(h):
            for x in range(w):
                truth[i, y, x] = valid[i, y, x] and base[i, max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].any()
    p = torch.sigmoid(logits[:, 0].double()).numpy()
    p_true = np.where(truth, p, 1 - p)
    per_pixel = -((1 - p_true) ** gamma) * np.log(p_true)
    if pos_weight == "balanced":
        positives, count = truth[valid].sum(), valid.sum()
        weight = np.where(truth, (count - positives) / count, positives / count)
    else:
        weight = np.where(truth, pos_weight, 1.0)
    return (per_pixel * weight)[valid].mean()


@pytest.mark.parametrize(
    ("width", "pos_weight", "gamma"), [(1, "balanced", 0.0), (2, "balanced", 2.0), (3, 5.0, 0.0), (1, 1.0, 1.5)]
)
def test_matches_the_formula(batch, width, pos_weight, gamma) -> None:
    logits, edge, mask = batch
    value = EdgeLoss(width=width, pos_weight=pos_weight, gamma=gamma)(logits, edge, mask)
    assert value.item() == pytest.approx(reference(logits, edge, mask, width, pos_weight, gamma), rel=1e-5)


def test_ignored_pixels_get_neither_value_nor_gradient(batch) -> None:
    logits, edge, mask = batch
    logits = logits.clone()
    logits[1, 0, 0] = float("nan")  # row 0 of image 1 is ignored
    logits.requires_grad_(True)
    value = EdgeLoss()(logits, edge, mask)
    value.backward()
    assert torch.isfinite(value)
    assert (logits.grad[1, 0, 0] == 0).all() and logits.grad[0].abs().sum() > 0


def test_shapes_are_checked_in_one_line(batch) -> None:
    logits, edge, mask = batch
    with pytest.raises(ValueError, match=r"one boundary logit per pixel \(N×1×H×W\), got \(2, 3, 10, 12\)"):
        EdgeLoss()(logits.expand(2, 3, 10, 12), edge, mask)
    with pytest.raises(ValueError, match="pos_weight must be a number or 'balanced'"):
        EdgeLoss(pos_weight="auto")
