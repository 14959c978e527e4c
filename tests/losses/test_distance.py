"""Signed distance maps: a hand-worked mask, scipy as the exact oracle, and the conventions."""

import math

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from lightning_seg.losses import signed_distance_map

R = math.sqrt(2.0)


def _block_mask() -> np.ndarray:
    mask = np.zeros((5, 5), dtype=np.uint8)
    mask[1:4, 1:4] = 1
    return mask


def test_hand_worked_map():
    maps = signed_distance_map(_block_mask(), num_classes=3)
    assert maps.dtype == np.float32
    assert maps.shape == (3, 5, 5)
    block = [
        [R, 1, 1, 1, R],
        [1, 0, 0, 0, 1],
        [1, 0, -1, 0, 1],
        [1, 0, 0, 0, 1],
        [R, 1, 1, 1, R],
    ]
    ring = [
        [1 - R, 0, 0, 0, 1 - R],
        [0, 1, 1, 1, 0],
        [0, 1, 2, 1, 0],
        [0, 1, 1, 1, 0],
        [1 - R, 0, 0, 0, 1 - R],
    ]
    np.testing.assert_allclose(maps[1], block, atol=1e-6)
    np.testing.assert_allclose(maps[0], ring, atol=1e-6)
    np.testing.assert_array_equal(maps[2], 0.0)  # absent class


def _scipy_reference(mask: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((num_classes, *mask.shape))
    for k in range(num_classes):
        inside = mask == k
        if inside.any() and not inside.all():
            out[k] = distance_transform_edt(~inside) * ~inside - (distance_transform_edt(inside) - 1) * inside
    return out


@pytest.mark.parametrize("seed", range(5))
def test_equals_scipy_exact_transform(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((40, 57)) * 4).astype(np.uint8)
    mask = np.kron(mask[:10, :19], np.ones((4, 3), dtype=np.uint8))  # blobs, not noise
    np.testing.assert_allclose(signed_distance_map(mask, 5), _scipy_reference(mask, 5), atol=1e-4)


def test_ignored_pixels_are_outside_every_class_and_zero():
    mask = _block_mask()
    mask[0, :] = 255
    mask[2, 2] = 255
    maps = signed_distance_map(mask, num_classes=2)
    relabelled = np.where(mask == 255, 2, mask)
    expected = _scipy_reference(relabelled, 3)[:2]
    expected[:, mask == 255] = 0.0
    np.testing.assert_allclose(maps, expected, atol=1e-4)
    assert maps[1, 1, 2] == pytest.approx(-0.0)  # block pixel next to the ignored centre: boundary


def test_class_covering_every_pixel_gets_zero_map():
    maps = signed_distance_map(np.zeros((4, 4), dtype=np.uint8), num_classes=2)
    np.testing.assert_array_equal(maps, 0.0)


def test_bad_values_and_shapes_raise():
    with pytest.raises(ValueError, match=r"mask values \[7\] are neither classes in \[0, 3\)"):
        signed_distance_map(np.full((3, 3), 7, dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="expects an H×W mask"):
        signed_distance_map(np.zeros((1, 3, 3), dtype=np.uint8), 3)
