"""NaN and Inf in the logits, for every exported loss: never hidden where labelled, inert where ignored."""

from __future__ import annotations

import pytest
import torch

from tests.losses.loss_cases import CASES, IMAGE_LEVEL_INPUT, C, build, call, dist_map, network_input

BAD = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, C, (3, 3, 4), generator=generator).repeat_interleave(2, 1).repeat_interleave(2, 2)
    target[0, :2] = 255
    target[1, :, 5:] = 255
    target[2] = 255  # an image without a labelled pixel (its per-image logits are ignored too)
    return torch.randn(3, C, 6, 8, generator=generator, dtype=torch.float64), target


def _image_level(case: str) -> bool:
    return CASES[case][0].__name__ in IMAGE_LEVEL_INPUT


def _value_and_grad(case: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.clone().requires_grad_(True)
    value = call(case, build(case), logits, target)
    value.backward()
    return value.detach(), logits.grad


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("case", sorted(CASES))
def test_non_finite_logit_at_a_labelled_pixel_gives_a_non_finite_loss(case, bad):
    logits, target = _batch()
    logits = network_input(case, logits)
    # One channel of one labelled pixel (of a class other than the pixel's: the hardest to notice).
    position = (0, 3, 1) if not _image_level(case) else (0,)
    other_class = (int(target[0, 3, 1]) + 1) % logits.shape[1]
    logits[(position[0], other_class, *position[1:])] = BAD[bad]
    value = call(case, build(case), logits, target)
    assert not torch.isfinite(value), f"{case}: {bad} at a labelled pixel gave {value.item()}"


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("case", sorted(CASES))
def test_non_finite_logits_at_ignored_pixels_change_nothing(case, bad):
    logits, target = _batch()
    logits = network_input(case, logits)
    ignored = (target == 255).unsqueeze(1).expand(-1, logits.shape[1], -1, -1)
    if _image_level(case):
        ignored = (target == 255).flatten(1).all(1, keepdim=True).expand(-1, logits.shape[1])
    poisoned = torch.where(ignored, BAD[bad], logits)
    value, grad = _value_and_grad(case, logits, target)
    poisoned_value, poisoned_grad = _value_and_grad(case, poisoned, target)
    assert torch.isfinite(poisoned_value)
    torch.testing.assert_close(poisoned_value, value)
    torch.testing.assert_close(poisoned_grad, grad)
    assert torch.equal(poisoned_grad[ignored], torch.zeros_like(poisoned_grad[ignored]))


@pytest.mark.parametrize("case", [c for c in sorted(CASES) if "dist_map" in build(c).reads])
def test_non_finite_distance_map_at_ignored_pixels_changes_nothing(case):
    logits, target = _batch()
    maps = dist_map(target)
    poisoned = torch.where((target == 255).unsqueeze(1), torch.nan, maps)
    loss = build(case)
    torch.testing.assert_close(loss(logits, poisoned, target), loss(logits, maps, target))
