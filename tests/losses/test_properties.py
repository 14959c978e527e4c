"""Properties every loss must have: ignored pixels are inert, edge cases stay finite, a perfect
prediction reaches the minimum."""

from collections.abc import Callable

import numpy as np
import pytest
import torch

import lightning_seg.losses as L

C = 4


def _dist_map(target: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.stack([L.signed_distance_map(m.numpy(), C) for m in target]))


# name → (factory, how to call it, known minimum or None = "no lower than any other prediction")
Call = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
by_mask: Call = lambda loss, x, t: loss(x, t)  # noqa: E731
by_map: Call = lambda loss, x, t: loss(x, _dist_map(t), t)  # noqa: E731
CASES: dict[str, tuple[Callable[[], torch.nn.Module], Call, float | None]] = {
    "ce": (lambda: L.CrossEntropyLoss(weight=[1.0, 2.0, 3.0, 4.0]), by_mask, 0.0),
    "ce_smoothing": (lambda: L.CrossEntropyLoss(label_smoothing=0.1), by_mask, None),
    "focal": (lambda: L.FocalLoss(gamma=2.0), by_mask, 0.0),
    "focal_half": (lambda: L.FocalLoss(gamma=0.5, weight=[1.0, 2.0, 3.0, 4.0]), by_mask, 0.0),
    "ohem": (lambda: L.OhemCrossEntropyLoss(min_kept=20), by_mask, 0.0),
    "topk": (lambda: L.TopKLoss(k=20), by_mask, 0.0),
    "dice": (lambda: L.DiceLoss(weight=[1.0, 2.0, 3.0, 4.0]), by_mask, 0.0),
    "gdl": (L.GeneralizedDiceLoss, by_mask, 0.0),
    "tversky": (L.TverskyLoss, by_mask, 0.0),
    "focal_tversky": (L.FocalTverskyLoss, by_mask, 0.0),
    "lovasz": (L.LovaszSoftmaxLoss, by_mask, 0.0),
    "lovasz_per_image": (lambda: L.LovaszSoftmaxLoss(per_image=True), by_mask, 0.0),
    "lovasz_exact": (lambda: L.LovaszSoftmaxLoss(bins=None), by_mask, 0.0),
    "boundary": (L.BoundaryLoss, by_map, None),
    "hausdorff": (L.HausdorffDTLoss, by_map, 0.0),
    "discriminative": (L.DiscriminativeLoss, by_mask, None),
}


def _build(name: str) -> tuple[torch.nn.Module, Call, float | None]:
    factory, call, minimum = CASES[name]
    loss = factory()
    loss.bind_dataset(C, 255)
    return loss, call, minimum


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (2, 3, 4), generator=generator).repeat_interleave(2, 1).repeat_interleave(2, 2)
    return torch.randn(2, C, 6, 8, generator=generator, dtype=torch.float64), target


def _value_and_grad(name: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss, call, _ = _build(name)
    logits = logits.clone().requires_grad_(True)
    value = call(loss, logits, target)
    value.backward()
    return value.detach(), logits.grad


@pytest.mark.parametrize("name", sorted(CASES))
def test_ignored_pixels_change_neither_value_nor_gradient(name):
    logits, target = _inputs()
    target[0, :2] = 255
    target[1, :, 5:] = 255
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    other = torch.where(ignored, torch.randn_like(logits) * 10, logits)
    value, grad = _value_and_grad(name, logits, target)
    other_value, other_grad = _value_and_grad(name, other, target)
    torch.testing.assert_close(other_value, value)
    torch.testing.assert_close(other_grad, grad)
    assert torch.equal(grad[ignored], torch.zeros_like(grad[ignored]))


def _edge_targets() -> dict[str, torch.Tensor]:
    _, target = _inputs(1)
    absent = torch.where(target == 2, 1, target)
    return {
        "absent_class": absent,
        "all_background": torch.zeros_like(target),
        "all_ignored": torch.full_like(target, 255),
    }


@pytest.mark.parametrize("case", ["absent_class", "all_background", "all_ignored"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_cases_are_finite(name, case):
    logits, _ = _inputs(2)
    value, grad = _value_and_grad(name, logits, _edge_targets()[case])
    assert torch.isfinite(value)
    assert torch.isfinite(grad).all()
    if case == "all_ignored":
        assert value.item() == 0.0
        assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", sorted(CASES))
def test_perfect_prediction_gives_the_minimum(name):
    _, target = _inputs(3)
    target[0, 0] = 255
    one_hot = torch.nn.functional.one_hot(target.clamp_max(C - 1), C).permute(0, 3, 1, 2).double()
    perfect = one_hot * 40.0 - 20.0
    value, grad = _value_and_grad(name, perfect, target)
    assert torch.isfinite(grad).all()
    _, _, minimum = CASES[name]
    if minimum is not None:
        assert value.item() == pytest.approx(minimum, abs=1e-6)
    for seed in range(4):
        logits, _ = _inputs(10 + seed)
        assert value <= _value_and_grad(name, logits * 5, target)[0]
