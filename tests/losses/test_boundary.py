"""Boundary and Hausdorff losses against their formulas (scipy for the prediction's distances)."""

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from lightning_seg.losses import BoundaryLoss, HausdorffDTLoss, signed_distance_map

C = 3


@pytest.fixture
def batch():
    target = torch.zeros(2, 12, 10, dtype=torch.long)
    target[0, 2:7, 3:8] = 1
    target[0, 8:11, 1:4] = 2
    target[1, 4:9, 2:9] = 2
    target[1, 0, :] = 255
    dist_map = torch.from_numpy(np.stack([signed_distance_map(m.numpy(), C) for m in target]))
    logits = torch.randn(2, C, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return logits, dist_map, target


def _mean_over_valid(values, target, classes):
    valid = (target != 255).unsqueeze(1).expand_as(values)[:, classes]
    return values[:, classes][valid].mean()


@pytest.mark.parametrize("classes", [None, [0, 2], [1]])
def test_boundary_loss_is_the_mean_of_probability_times_map(batch, classes):
    logits, dist_map, target = batch
    chosen = [1, 2] if classes is None else classes
    expected = _mean_over_valid(logits.softmax(1) * dist_map, target, chosen)
    assert BoundaryLoss(classes=classes)(logits, dist_map, target).item() == pytest.approx(expected.item())


def test_boundary_loss_is_most_negative_for_a_perfect_prediction(batch):
    logits, dist_map, target = batch
    perfect = torch.nn.functional.one_hot(target.clamp_max(C - 1), C).permute(0, 3, 1, 2) * 40.0 - 20.0
    loss = BoundaryLoss()
    best = loss(perfect, dist_map, target)
    inside = dist_map[:, 1:].clamp_max(0).sum() / ((target != 255).sum() * 2)
    assert best.item() == pytest.approx(inside.item(), abs=1e-6)
    assert best < 0
    for seed in range(5):
        other = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed)) * 5
        assert loss(other, dist_map, target) > best


def _scipy_unsigned(labels, k):
    inside = labels == k
    if not inside.any() or inside.all():
        return np.zeros(labels.shape)
    return distance_transform_edt(~inside) * ~inside + (distance_transform_edt(inside) - 1) * inside


def test_hausdorff_dt_loss_matches_the_formula(batch):
    logits, dist_map, target = batch
    probs = logits.softmax(1)
    predicted = torch.where(target == 255, -1, probs.argmax(1)).numpy()  # ignored: outside every class
    d_pred = torch.tensor(np.stack([[_scipy_unsigned(m, k) for k in range(C)] for m in predicted]))
    truth = torch.nn.functional.one_hot(target.clamp_max(C - 1), C).permute(0, 3, 1, 2).double()
    values = (probs - truth) ** 2 * (dist_map.double().abs() ** 2 + d_pred**2)
    expected = _mean_over_valid(values, target, [1, 2])
    assert HausdorffDTLoss()(logits, dist_map, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_both_declare_the_distance_map():
    for loss in (BoundaryLoss(), HausdorffDTLoss()):
        assert loss.required_targets == frozenset({"dist_map"})
        assert loss.reads == ("dist_map", "mask")


def test_shape_mismatch_and_bad_classes_raise(batch):
    logits, dist_map, target = batch
    with pytest.raises(ValueError, match=r"dist_map shape \(2, 2, 12, 10\) differs from the logits' \(2, 3, 12, 10\)"):
        BoundaryLoss()(logits, dist_map[:, :2], target)
    with pytest.raises(ValueError, match=r"classes \[5\] must be non-empty, in \[0, 3\)"):
        BoundaryLoss(classes=[5])(logits, dist_map, target)


def _hausdorff_by_convention(logits, target, inside_offset, prediction):
    """mean over pixels and classes 1..C−1 of (p − g)² (d_P² + d_G²), distances by scipy, where a
    class's distance is ``edt`` outside it and ``edt − inside_offset`` inside, and the predicted region
    of class k is ``prediction(probs)[:, k]``."""
    probs = logits.softmax(1)
    truth = torch.nn.functional.one_hot(target, C).permute(0, 3, 1, 2).double()

    def field(region):
        if not region.any() or region.all():
            return np.zeros(region.shape)
        return distance_transform_edt(~region) * ~region + (distance_transform_edt(region) - inside_offset) * region

    d_g = torch.tensor(np.stack([[field(m[k].numpy() > 0.5) for k in range(C)] for m in truth]))
    d_p = torch.tensor(np.stack([[field(m[k].numpy()) for k in range(C)] for m in prediction(probs)]))
    return ((probs - truth) ** 2 * (d_g**2 + d_p**2))[:, 1:].mean()


def test_hausdorff_convention_differs_from_monai_as_documented():
    """Ours: distances edt − 1 inside (0 on the inner boundary ring, as the signed map) and the arg-max
    prediction; MONAI's HausdorffDTLoss: edt inside and each class's probability thresholded at 0.5."""
    from monai.losses import HausdorffDTLoss as MonaiHausdorffDTLoss

    generator = torch.Generator().manual_seed(1)
    target = torch.zeros(2, 12, 10, dtype=torch.long)
    target[0, 2:7, 3:8], target[0, 8:11, 1:4], target[1, 4:9, 2:9] = 1, 2, 2
    logits = torch.randn(2, C, 12, 10, generator=generator, dtype=torch.float64) * 2
    argmax = lambda probs: torch.nn.functional.one_hot(probs.argmax(1), C).permute(0, 3, 1, 2).bool()  # noqa: E731
    threshold = lambda probs: probs > 0.5  # noqa: E731
    dist_map = torch.from_numpy(np.stack([signed_distance_map(m.numpy(), C) for m in target]))
    ours = HausdorffDTLoss()(logits, dist_map, target)
    assert ours.item() == pytest.approx(_hausdorff_by_convention(logits, target, 1, argmax).item(), rel=1e-5)
    monai = MonaiHausdorffDTLoss(include_background=False, softmax=True, to_onehot_y=True)(logits, target[:, None])
    assert monai.item() == pytest.approx(_hausdorff_by_convention(logits, target, 0, threshold).item(), rel=1e-5)
    assert abs(ours.item() - monai.item()) > 0.05 * monai.item()
