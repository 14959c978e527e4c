"""Class-weighting schemes against numbers worked by hand, and the loss-side ``weight`` argument."""

import warnings

import numpy as np
import pytest
import torch

from lightning_seg.data.stats import ClassStats
from lightning_seg.losses import WEIGHTING_SCHEMES, CrossEntropyLoss, DiceLoss, FocalLoss, compute_class_weights

# 100 labelled pixels in 3 images of 40, 20 and 40 pixels: the first holds classes 0/1/2 (10/20/10 px),
# the second 0/1 (10/10), the third only 0 (40); class 3 never. Pixel frequencies 0.6, 0.3, 0.1, 0; the
# images containing each class hold 100, 60, 40 and 0 labelled pixels.
STATS = ClassStats(
    pixel_counts=(60, 30, 10, 0), image_counts=(3, 2, 1, 0), num_images=3, image_pixel_counts=(100, 60, 40, 0)
)


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        # 1/p; the absent class takes the largest present weight.
        ("inverse", [1 / 0.6, 1 / 0.3, 10.0, 10.0]),
        # f = 60/100, 30/60, 10/40 = 0.6, 0.5, 0.25; median 0.5.
        ("median", [5 / 6, 1.0, 2.0, 2.0]),
        # 1/ln(1.02 + p)
        ("enet", [2.0728561, 3.6018937, 8.8238913, 8.8238913]),
    ],
)
def test_schemes_match_hand_worked_numbers(scheme, expected):
    np.testing.assert_allclose(compute_class_weights(STATS, scheme), expected, rtol=1e-6)


def test_effective_number_hand_worked_and_sums_to_num_classes():
    # (1 − 0.9) / (1 − 0.9^n) for n = 60, 30, 10 = 0.100180, 0.104427, 0.153533 (+ the max for class 3),
    # rescaled to sum to 4.
    weights = compute_class_weights(STATS, "effective", beta=0.9)
    np.testing.assert_allclose(weights, [0.7831539, 0.8163527, 1.2002467, 1.2002467], rtol=1e-6)
    assert weights.sum() == pytest.approx(4.0)


def test_median_frequency_is_exact_for_masks_of_different_sizes_with_ignored_pixels():
    ignore = 255
    masks = [
        np.zeros((2, 2), dtype=np.uint8),  # 4 labelled pixels, all class 0
        np.array([0] * 8 + [1] * 6 + [2] * 2, dtype=np.uint8).reshape(4, 4),  # 16 labelled pixels
        np.array([[1, 1, 1], [ignore, ignore, ignore]], dtype=np.uint8),  # 3 labelled pixels, class 1
    ]
    stats = ClassStats.from_masks(masks, num_classes=4, ignore_index=ignore)
    assert stats.pixel_counts == (12, 9, 2, 0)
    assert stats.image_counts == (2, 2, 1, 0)
    # Class 0 is in the 4- and 16-pixel masks, class 1 in the 16-pixel one and the third (3 labelled).
    assert stats.image_pixel_counts == (20, 19, 16, 0)
    # f = 12/20, 9/19, 2/16; median 9/19; weights 15/19, 1, 72/19 and the largest for absent class 3.
    exact = [15 / 19, 1.0, 72 / 19, 72 / 19]
    np.testing.assert_allclose(compute_class_weights(stats, "median"), exact, rtol=1e-12)
    # (Taking every image as the mean 23/3 labelled pixels would give 0.75, 1, 2.25 instead.)


def test_class_stats_reject_inconsistent_counts():
    with pytest.raises(ValueError, match="one count per class in every field"):
        ClassStats((1, 2), (1, 1), 1, (3,))
    with pytest.raises(ValueError, match=r"image_pixel_counts=\(3, 1\) must be at least pixel_counts=\(1, 2\)"):
        ClassStats((1, 2), (1, 1), 1, (3, 1))


@pytest.mark.parametrize("scheme", sorted(WEIGHTING_SCHEMES))
def test_no_pixels_at_all_gives_ones(scheme):
    weights = compute_class_weights(ClassStats((0, 0, 0), (0, 0, 0), 2, (0, 0, 0)), scheme)
    np.testing.assert_array_equal(weights, np.ones(3))


def test_unknown_scheme_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: \\['effective', 'enet', 'inverse', 'median'\\]"):
        compute_class_weights(STATS, "sqrt")


@pytest.mark.parametrize("loss_class", [CrossEntropyLoss, FocalLoss, DiceLoss])
def test_auto_weights_fill_the_buffer_at_bind_class_stats(loss_class):
    loss = loss_class(weight="auto")
    loss.bind_dataset(4, 255)
    loss.bind_class_stats(STATS)
    torch.testing.assert_close(loss.weight, torch.tensor([5 / 6, 1.0, 2.0, 2.0]))
    assert "weight" in loss.state_dict()
    restored = loss_class(weight="auto")
    restored.bind_dataset(4, 255)
    restored.load_state_dict(loss.state_dict())
    logits, target = torch.randn(1, 4, 3, 3), torch.randint(0, 4, (1, 3, 3))
    torch.testing.assert_close(restored(logits, target), loss(logits, target))


def test_named_scheme_is_used():
    loss = CrossEntropyLoss(weight="enet")
    loss.bind_dataset(4, 255)
    loss.bind_class_stats(STATS)
    np.testing.assert_allclose(loss.weight.numpy(), compute_class_weights(STATS, "enet"), rtol=1e-6)


def test_unknown_weight_name_raises_listing_valid_names():
    with pytest.raises(ValueError, match="unknown class weight 'medain'.*'auto', 'effective'"):
        CrossEntropyLoss(weight="medain")


def test_wrong_length_raises_at_bind_dataset_naming_both_lengths():
    loss = CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="2 class weights given but the dataset has 4 classes"):
        loss.bind_dataset(4, 255)


def test_scheme_without_stats_raises_on_first_forward():
    loss = FocalLoss(weight="auto")
    loss.bind_dataset(4, 255)
    with pytest.raises(RuntimeError, match="needs the training set's class statistics"):
        loss(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_stats_for_another_number_of_classes_raise():
    loss = CrossEntropyLoss(weight="auto")
    loss.bind_dataset(5, 255)
    with pytest.raises(ValueError, match="cover 4 classes, the dataset has 5"):
        loss.bind_class_stats(STATS)


def test_effective_weights_warn_when_pixel_counts_make_them_uniform():
    """Pixel counts far above 1/(1 − β) (CamVid-like: 10⁵–10⁷ pixels per class) give weights ≈ 1."""
    counts = (9_000_000, 2_000_000, 400_000, 100_000)
    stats = ClassStats(
        pixel_counts=counts, image_counts=(9, 9, 9, 9), num_images=9, image_pixel_counts=(11_500_000,) * 4
    )
    with pytest.warns(UserWarning, match=r"within 5 % of 1 .* use beta = 1 − 1/N .*\(here beta=0\.9999991667"):
        weights = compute_class_weights(stats, "effective", beta=0.999)
    np.testing.assert_allclose(weights, 1.0, atol=1e-6)
    # The suggested β = 1 − 1/median(n): rarer classes weighted ~ inversely to their count.
    median = np.median(counts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suggested = compute_class_weights(stats, "effective", beta=1 - 1 / median)
    raw = (1 / median) / (1 - (1 - 1 / median) ** np.asarray(counts, dtype=float))
    np.testing.assert_allclose(suggested, raw * 4 / raw.sum(), rtol=1e-6)
    assert suggested[3] > 5 * suggested[0]
