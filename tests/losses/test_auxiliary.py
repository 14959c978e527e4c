"""Semantic-encoding and discriminative losses against small examples worked by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_seg.losses import DiscriminativeLoss, SemanticEncodingLoss


def test_semantic_encoding_loss_uses_presence_without_ignored_pixels():
    target = torch.full((3, 2, 3), 255, dtype=torch.long)
    target[0, 0, :2] = 0
    target[0, 1, 0] = 2  # image 0: classes 0 and 2 (and ignored pixels)
    target[1] = 1  # image 1: class 1 only
    # image 2: all ignored, left out
    logits = torch.tensor([[0.5, -1.0, 2.0], [-0.3, 0.2, 0.1], [9.0, 9.0, 9.0]])
    presence = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    expected = F.binary_cross_entropy_with_logits(logits[:2], presence)
    torch.testing.assert_close(SemanticEncodingLoss()(logits, target), expected)


def test_semantic_encoding_loss_all_ignored_is_zero_and_bad_shape_raises():
    logits = torch.randn(2, 3, requires_grad=True)
    value = SemanticEncodingLoss()(logits, torch.full((2, 4, 4), 255))
    value.backward()
    assert value.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expects N×C class logits, got shape \(2, 3, 4, 4\)"):
        SemanticEncodingLoss()(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


def test_discriminative_loss_one_dimensional_hand_example():
    # ids 1 1 2 2 with embeddings 0 2 3 3: μ1 = 1, μ2 = 3.
    # L_var = ((|0−1|−0.5)² + (|2−1|−0.5)²)/2 / 2 instances = 0.125 (instance 2 has no spread)
    # L_dist = [2·1.5 − 2]² for both ordered pairs / 2 = 1
    # L_reg = (1 + 3)/2 = 2  →  L = 0.125 + 1 + 0.001·2 = 1.127
    embeddings = torch.tensor([0.0, 2.0, 3.0, 3.0, 50.0]).reshape(1, 1, 1, 5)
    ids = torch.tensor([1, 1, 2, 2, 255]).reshape(1, 1, 5)
    assert DiscriminativeLoss()(embeddings, ids).item() == pytest.approx(1.127)


def test_discriminative_loss_two_dimensional_hand_example_and_background():
    # instance 1: (0,0), (0,2) → μ1 = (0,1), both 1 away → L_var part 0.25; instance 2: (3,1) alone.
    # ‖μ1 − μ2‖ = 3 ≥ 2δ_d → L_dist = 0. L_reg = (1 + √10)/2.
    embeddings = torch.tensor([[0.0, 0.0, 3.0, -7.0], [0.0, 2.0, 1.0, 4.0]]).reshape(1, 2, 1, 4)
    ids = torch.tensor([1, 1, 2, 0]).reshape(1, 1, 4)
    expected = 0.125 + 0.0 + 0.001 * (1 + math.sqrt(10)) / 2
    assert DiscriminativeLoss(background=0)(embeddings, ids).item() == pytest.approx(expected)
    # Without excluding background, id 0 is a third instance and the value changes.
    assert DiscriminativeLoss()(embeddings, ids).item() != pytest.approx(expected)


def test_discriminative_loss_averages_over_images_with_instances():
    embeddings = torch.tensor([0.0, 2.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]).reshape(2, 1, 1, 4)
    ids = torch.tensor([1, 1, 2, 2, 255, 255, 255, 255]).reshape(2, 1, 4)
    assert DiscriminativeLoss()(embeddings, ids).item() == pytest.approx(1.127)
    assert DiscriminativeLoss().reads == ("instances",)


def test_discriminative_loss_bad_shapes_raise():
    with pytest.raises(ValueError, match="expects N×D×H×W embeddings"):
        DiscriminativeLoss()(torch.randn(2, 3, 4), torch.zeros(2, 4, 4, dtype=torch.long))
