"""Region losses against segmentation-models-pytorch and formulas worked in float64 here."""

import pytest
import segmentation_models_pytorch as smp
import torch

from lightning_seg.losses import DiceLoss, FocalTverskyLoss, GeneralizedDiceLoss, TverskyLoss

C = 4


def _batch(seed: int, absent: int | None = None):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, C, 9, 7, generator=generator) * 2
    target = torch.randint(0, C, (2, 9, 7), generator=generator)
    if absent is not None:
        target[target == absent] = (absent + 1) % C
    target[1, 3:5] = 255
    return logits, target


def _bound(loss):
    loss.bind_dataset(C, 255)
    return loss


def _counts(logits, target):
    """Per-class TP, FP, FN over the batch in float64, ignored pixels removed."""
    valid = target != 255
    p = logits.double().softmax(1).permute(0, 2, 3, 1)[valid]
    g = torch.nn.functional.one_hot(target[valid], C).double()
    tp = (p * g).sum(0)
    return tp, p.sum(0) - tp, g.sum(0) - tp, g.sum(0)


@pytest.mark.parametrize(("seed", "absent"), [(0, None), (1, 2), (2, None)])
def test_dice_matches_smp_and_the_formula(seed, absent):
    logits, target = _batch(seed, absent)
    ours = _bound(DiceLoss())(logits, target)
    theirs = smp.losses.DiceLoss("multiclass", ignore_index=255)(logits, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    tp, fp, fn, g = _counts(logits, target)
    per_class = torch.where(g > 0, 1 - 2 * tp / (2 * tp + fp + fn), 0.0)  # absent classes contribute 0
    assert ours.item() == pytest.approx(per_class.mean().item(), abs=1e-5)


@pytest.mark.parametrize("smooth", [0.5, 10.0])
def test_dice_smoothing_is_smp_06s_formula(smooth):
    """``(2I + 2s) / (|P| + |G| + 2s)``: smp 0.6 (its Tversky with α = β = 1/2), not ``(2I + s) / (… + s)``."""
    logits, target = _batch(5, absent=2)
    ours = _bound(DiceLoss(smooth=smooth))(logits, target)
    theirs = smp.losses.DiceLoss("multiclass", ignore_index=255, smooth=smooth)(logits, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    tp, fp, fn, g = _counts(logits, target)
    per_class = torch.where(g > 0, 1 - (2 * tp + 2 * smooth) / (2 * tp + fp + fn + 2 * smooth), 0.0)
    assert ours.item() == pytest.approx(per_class.mean().item(), abs=1e-5)
    other = torch.where(g > 0, 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth), 0.0).mean()
    assert abs(ours.item() - other.item()) > 1e-4


def test_weighted_dice_matches_smp():
    logits, target = _batch(3)
    weight = [0.1, 1.0, 2.0, 3.0]
    ours = _bound(DiceLoss(weight=weight))(logits, target)
    theirs = smp.losses.DiceLoss("multiclass", ignore_index=255, class_weights=weight)(logits, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("alpha", "beta_fn"), [(0.3, 0.7), (0.7, 0.3), (0.5, 0.5)])
def test_tversky_matches_smp_and_the_formula(alpha, beta_fn):
    logits, target = _batch(4, absent=1)
    ours = _bound(TverskyLoss(alpha=alpha, beta_fn=beta_fn))(logits, target)
    theirs = smp.losses.TverskyLoss("multiclass", ignore_index=255, alpha=alpha, beta=beta_fn)(logits, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    tp, fp, fn, g = _counts(logits, target)
    per_class = torch.where(g > 0, 1 - tp / (tp + alpha * fp + beta_fn * fn), 0.0)
    assert ours.item() == pytest.approx(per_class.mean().item(), abs=1e-5)


def test_tversky_with_equal_halves_is_dice():
    logits, target = _batch(5)
    torch.testing.assert_close(
        _bound(TverskyLoss(alpha=0.5, beta_fn=0.5))(logits, target), _bound(DiceLoss())(logits, target)
    )


def test_focal_tversky_applies_the_exponent_per_class():
    logits, target = _batch(6, absent=3)
    tp, fp, fn, g = _counts(logits, target)
    tversky = torch.where(g > 0, 1 - tp / (tp + 0.3 * fp + 0.7 * fn), 0.0)
    expected = (tversky ** (3 / 4)).mean()  # γ = 4/3
    ours = _bound(FocalTverskyLoss())(logits, target)
    assert ours.item() == pytest.approx(expected.item(), abs=1e-5)
    # smp raises the class mean instead: a different number.
    smp_focal = smp.losses.TverskyLoss("multiclass", ignore_index=255, alpha=0.3, beta=0.7, gamma=0.75)
    assert smp_focal(logits, target).item() == pytest.approx((tversky.mean() ** 0.75).item(), abs=1e-5)
    assert not torch.isclose(ours, smp_focal(logits, target), rtol=1e-3)


def test_focal_tversky_with_gamma_one_is_tversky():
    logits, target = _batch(7)
    torch.testing.assert_close(
        _bound(FocalTverskyLoss(gamma=1.0))(logits, target), _bound(TverskyLoss())(logits, target)
    )


def _gdl_reference(logits, target):
    """Sudre et al.'s formula in float64; an absent class takes the largest present weight."""
    tp, fp, fn, g = _counts(logits, target)
    w = 1.0 / g**2
    w[g == 0] = w[g > 0].max()
    return 1 - 2 * (w * tp).sum() / (w * (2 * tp + fp + fn)).sum()


@pytest.mark.parametrize(("seed", "absent"), [(9, None), (10, 2), (11, 0)])
def test_generalized_dice_matches_the_formula(seed, absent):
    logits, target = _batch(seed, absent)
    ours = _bound(GeneralizedDiceLoss())(logits, target)
    assert ours.item() == pytest.approx(_gdl_reference(logits, target).item(), abs=1e-6)


def test_generalized_dice_empty_class_convention():
    """Predicting an absent class costs like missing the rarest present class; never inf or NaN."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 1  # class 1: 2 px (rare), class 0: 14 px, classes 2 and 3: absent
    logits = torch.full((1, C, 4, 4), -20.0)
    logits[0, 0] = 20.0
    logits[0, 1, 0, :2] = 40.0
    perfect = _bound(GeneralizedDiceLoss())(logits, target)
    assert perfect.item() == pytest.approx(0.0, abs=1e-6)
    wrong = logits.clone()
    wrong[0, 2, 3, :2] = 60.0  # two class-0 pixels predicted as the absent class 2
    value = _bound(GeneralizedDiceLoss())(wrong, target)
    # w = 1/14², 1/2², and 1/2² for the absent classes: 2 wrongly predicted pixels.
    w0, w1, w2 = 1 / 14**2, 1 / 2**2, 1 / 2**2
    expected = 1 - 2 * (w0 * 12 + w1 * 2) / (w0 * (12 + 14) + w1 * 4 + w2 * 2)
    assert value.item() == pytest.approx(expected, abs=1e-6)
