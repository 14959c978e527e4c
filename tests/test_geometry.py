"""Semantic edges of a mask worked by hand, and the ``edge`` target the data workers compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_seg.data import SyntheticDataModule
from lightning_seg.geometry import semantic_edges

X = 255  # ignored


def test_edges_of_a_mask_worked_by_hand() -> None:
    mask = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 1, 1, 0, X],
            [0, 0, 0, X, 2],
            [0, 0, 0, 0, 2],
        ],
        dtype=np.uint8,
    )
    # Every labelled pixel with a labelled 8-neighbour of another class; ignored pixels stay ignored and
    # make no edge (the 2 at (3, 4) touches the ignored (2, 4) and (3, 3) but also the 0s at (4, 3) / (2, 3)).
    expected = np.array(
        [
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, X],
            [1, 1, 1, X, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(semantic_edges(mask), expected)


def test_an_ignored_band_between_two_classes_makes_no_edge_and_uniform_masks_have_none() -> None:
    mask = np.array([[0, 0, X, 1, 1]] * 3, dtype=np.uint8)
    np.testing.assert_array_equal(semantic_edges(mask), np.array([[0, 0, X, 0, 0]] * 3))
    assert not semantic_edges(np.full((4, 6), 3, dtype=np.uint8)).any()
    with pytest.raises(ValueError, match=r"H×W mask, got shape \(1, 4, 4\)"):
        semantic_edges(np.zeros((1, 4, 4), dtype=np.uint8))


def test_the_edge_target_is_computed_in_the_workers_only_when_asked() -> None:
    data = SyntheticDataModule(num_train=2, num_val=2, num_test=2, image_size=32, batch_size=2)
    data.setup("fit")
    assert "edge" not in next(iter(data.train_dataloader()))
    data.request_targets({"edge"})
    batch = next(iter(data.val_dataloader()))
    expected = np.stack([semantic_edges(m.numpy().astype(np.uint8)) for m in batch["mask"]])
    assert batch["edge"].dtype == torch.uint8
    np.testing.assert_array_equal(batch["edge"].numpy(), expected)
    assert batch["edge"].any()
