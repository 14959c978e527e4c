"""Every exported loss under fp16/bf16 inputs and CPU autocast, against its float32 value.

The batch has more than 65,504 labelled pixels (the largest float16), where a count summed in the
logits' dtype overflows (float16) or rounds (bfloat16).
"""

from __future__ import annotations

import pytest
import torch

from lightning_seg.losses import CompositeLoss, CrossEntropyLoss, DiceLoss, LossTerm
from tests.losses import loss_cases
from tests.losses.loss_cases import CASES, build, call, exported_loss_classes, network_input

HALF = [torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def big_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, loss_cases.C, (2, 12, 12), generator=generator)
    target = blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)  # 2×192×192, blobs of 16×16
    target[1, :10] = 255
    one_hot = torch.nn.functional.one_hot(target.clamp_max(loss_cases.C - 1), loss_cases.C).movedim(-1, 1)
    logits = torch.randn(2, loss_cases.C, 192, 192, generator=generator) * 1.5 + 2.0 * one_hot
    assert (target != 255).sum() > 65_504
    return logits, target


def test_every_exported_loss_is_covered():
    for cls in exported_loss_classes():
        unknown = set(cls.reads) - set(loss_cases.BUILDERS)
        assert not unknown, f"{cls.__name__} reads {unknown}: add a builder to tests/losses/loss_cases.py"
    assert len(exported_loss_classes()) >= 13


_FLOAT32_VALUES: dict[str, torch.Tensor] = {}
#: Every loss class at its defaults, and the variants whose arithmetic differs in ways precision can touch.
PRECISION_VARIANTS = ("CrossEntropyLoss(", "FocalLoss(alpha", "LovaszSoftmaxLoss(")
PRECISION_CASES = [c for c in sorted(CASES) if "(" not in c or c.startswith(PRECISION_VARIANTS)]
#: Cases too slow at this size for the default run (the exact sort of 70k pixels).
SLOW = {"LovaszSoftmaxLoss(bins=None)"}


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in PRECISION_CASES])
def test_half_precision_and_autocast_give_the_float32_value(case, dtype, big_batch):
    logits, target = big_batch
    logits = network_input(case, logits)
    rounded = logits.to(dtype).requires_grad_(True)
    value = call(case, build(case), rounded, target)
    value.backward()
    assert value.dtype == torch.float32 and value.ndim == 0
    assert rounded.grad.dtype == dtype and torch.isfinite(rounded.grad).all()
    # The same (representable) values in float32: the loss computes in float32 either way.
    reference = call(case, build(case), rounded.detach().float(), target)
    torch.testing.assert_close(value.detach(), reference, rtol=1e-4, atol=1e-6)
    # Under autocast (as in a 16-mixed / bf16-mixed training step) with the network's low-precision output.
    with torch.autocast("cpu", dtype=dtype):
        autocast_value = call(case, build(case), rounded.detach(), target)
    assert autocast_value.dtype == torch.float32
    torch.testing.assert_close(autocast_value, reference, rtol=1e-4, atol=1e-6)
    # Against the unrounded float32 logits: only the inputs' rounding differs.
    if case not in _FLOAT32_VALUES:
        _FLOAT32_VALUES[case] = call(case, build(case), logits, target)
    torch.testing.assert_close(value.detach(), _FLOAT32_VALUES[case], rtol=1e-2, atol=1e-4)


def test_autocast_network_output_gives_the_float32_value(big_batch):
    """A 1×1 convolution under autocast produces low-precision logits, as a network's last layer does."""
    logits, target = big_batch
    head = torch.nn.Conv2d(loss_cases.C, loss_cases.C, 1)
    for dtype in HALF:
        with torch.autocast("cpu", dtype=dtype):
            produced = head(logits)
            assert produced.dtype == dtype
            value = CrossEntropyLoss()(produced, target)
        reference = torch.nn.functional.cross_entropy(head(logits), target, ignore_index=255)
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, reference, rtol=1e-2, atol=0)


def test_composite_total_is_float32_under_half_inputs(big_batch):
    logits, target = big_batch
    composite = CompositeLoss([LossTerm(CrossEntropyLoss()), LossTerm(DiceLoss(), weight=0.5)])
    batch = {"mask": target}
    out = composite({"logits": logits.half()}, batch)
    reference = composite({"logits": logits.half().float()}, batch)
    assert out.total.dtype == torch.float32
    torch.testing.assert_close(out.total, reference.total)
    assert all(v.dtype == torch.float32 for v in out.terms.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_16_mixed_gives_the_float32_value(case, big_batch):
    logits, target = big_batch
    head = torch.nn.Conv2d(loss_cases.C, loss_cases.C, 1).cuda()
    loss = build(case).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        produced = head(logits.cuda())
        value = call(case, loss, network_input(case, produced), target)
    assert value.dtype == torch.float32 and value.is_cuda
    reference = call(case, loss, network_input(case, produced.float()), target)
    torch.testing.assert_close(value, reference, rtol=1e-4, atol=1e-6)
    exact = call(case, loss, network_input(case, head(logits.cuda())), target)
    torch.testing.assert_close(value, exact, rtol=1e-2, atol=1e-4)
