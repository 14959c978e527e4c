"""Cross-entropy family against torch, formulas worked in float64, sorts done here, and smp."""

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from lightning_seg.losses import CrossEntropyLoss, FocalLoss, OhemCrossEntropyLoss, TopKLoss

C = 4


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, C, 8, 8, generator=generator, dtype=torch.float64) * 2
    target = torch.randint(0, C, (2, 8, 8), generator=generator)
    target[0, :2] = 255
    return logits, target


def _bound(loss):
    loss.bind_dataset(C, 255)
    return loss


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weight", [None, [0.5, 1.0, 2.0, 4.0]])
def test_cross_entropy_matches_torch_mean(batch, weight, smoothing):
    logits, target = batch
    ours = _bound(CrossEntropyLoss(weight=weight, label_smoothing=smoothing))(logits, target)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    expected = F.cross_entropy(logits, target, weight=w, ignore_index=255, label_smoothing=smoothing)
    torch.testing.assert_close(ours, expected)


def test_cross_entropy_is_zero_not_nan_when_all_ignored(batch):
    logits, target = batch
    logits.requires_grad_(True)
    value = _bound(CrossEntropyLoss())(logits, torch.full_like(target, 255))
    assert torch.isnan(F.cross_entropy(logits, torch.full_like(target, 255), ignore_index=255))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("weight", [None, [0.5, 1.0, 2.0, 4.0]])
def test_focal_with_gamma_zero_equals_cross_entropy(batch, weight):
    logits, target = batch
    focal = _bound(FocalLoss(gamma=0.0, weight=weight))(logits, target)
    torch.testing.assert_close(focal, _bound(CrossEntropyLoss(weight=weight))(logits, target))


def test_focal_matches_formula_in_float64(batch):
    logits, target = batch
    alpha = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    valid = target != 255
    p = logits.softmax(1).permute(0, 2, 3, 1)[valid]  # M×C
    y = target[valid]
    p_t = p[torch.arange(len(y)), y]
    expected = (alpha[y] * (1 - p_t) ** 2 * -torch.log(p_t)).sum() / alpha[y].sum()
    torch.testing.assert_close(_bound(FocalLoss(gamma=2.0, weight=alpha.tolist()))(logits, target), expected)


def test_softmax_focal_differs_from_smp_one_vs_rest_sigmoid_focal(batch):
    logits, target = batch
    logits = logits.float()
    ours = _bound(FocalLoss(gamma=2.0))(logits, target)
    theirs = smp.losses.FocalLoss("multiclass", gamma=2.0, ignore_index=255)(logits, target)
    # smp averages, over classes, a sigmoid focal loss of "class c vs the rest".
    valid = target != 255
    one_vs_rest = (
        sum(
            sigmoid_focal_loss(logits[:, c][valid], (target[valid] == c).float(), alpha=-1, reduction="mean")
            for c in range(C)
        )
        / C
    )
    torch.testing.assert_close(theirs, one_vs_rest)
    assert not torch.isclose(ours, theirs, rtol=0.05)


def test_smp_soft_cross_entropy_mean_divides_by_ignored_pixels_too(batch):
    logits, target = batch
    ours = _bound(CrossEntropyLoss())(logits, target)
    theirs = smp.losses.SoftCrossEntropyLoss(smooth_factor=0.0, ignore_index=255)(logits, target)
    valid_fraction = (target != 255).double().mean()
    assert valid_fraction < 1
    torch.testing.assert_close(theirs, ours * valid_fraction)
    assert not torch.isclose(theirs, ours)


def _per_pixel_ce(logits, target):
    valid = (target != 255).numpy().ravel()
    log_p = logits.log_softmax(1).permute(0, 2, 3, 1).reshape(-1, C).numpy()[valid]
    y = target.numpy().ravel()[valid]
    return -log_p[np.arange(len(y)), y]


@pytest.mark.parametrize(("threshold", "min_kept"), [(0.7, 10), (0.7, 100), (0.05, 20), (0.3, 1000)])
def test_ohem_matches_a_sort(batch, threshold, min_kept):
    logits, target = batch
    ce = _per_pixel_ce(logits, target)
    prob = np.exp(-ce)
    order = np.argsort(prob, kind="stable")
    kept = prob < threshold
    if kept.sum() < min_kept:
        kept = np.zeros_like(kept)
        kept[order[:min_kept]] = True
    expected = ce[kept].mean()
    loss = _bound(OhemCrossEntropyLoss(threshold=threshold, min_kept=min_kept))
    assert loss(logits, target).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("k", [1.0, 10.0, 37.5, 100.0])
def test_topk_matches_a_sort(batch, k):
    logits, target = batch
    ce = np.sort(_per_pixel_ce(logits, target))[::-1]
    expected = ce[: int(np.ceil(len(ce) * k / 100))].mean()
    assert _bound(TopKLoss(k=k))(logits, target).item() == pytest.approx(expected, rel=1e-10)


def test_topk_ranks_weighted_losses():
    """Class weights decide which pixels are kept: pixel B's raw loss is smaller than A's, its weighted one larger."""
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]], dtype=torch.float64)  # 1×2×1×2
    target = torch.tensor([[[1, 1]]])
    target[0, 0, 1] = 0  # pixel A (index 0): class 1, p = 1/(1+e²); pixel B (index 1): class 0, p = 1/2
    raw = -torch.log_softmax(logits, 1)[0, :, 0].gather(0, target[0])[0]
    assert raw[0] > raw[1]
    weight = [10.0, 1.0]
    loss = TopKLoss(k=50.0, weight=weight)
    loss.bind_dataset(2, 255)
    # The kept pixel is B (weighted loss 10·ℓ_B > 1·ℓ_A); its weighted mean is ℓ_B.
    assert loss(logits, target).item() == pytest.approx(raw[1].item(), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.25, 0.75])
def test_focal_alpha_is_lin_et_al_balanced_form_as_torchvision(batch, alpha):
    """On two classes, softmax focal with α on logits (0, z) equals torchvision's sigmoid focal of z."""
    logits, target = batch
    z, labels = logits[:, 1] - logits[:, 0], torch.where(target == 255, 0, target.clamp_max(1))
    target = torch.where(target == 255, 255, labels)
    valid = target != 255
    two_class = torch.stack([torch.zeros_like(z), z], 1)
    ours = _bound(FocalLoss(gamma=2.0, alpha=alpha))(two_class, target)
    expected = sigmoid_focal_loss(z[valid], labels[valid].double(), alpha=alpha, gamma=2.0, reduction="mean")
    torch.testing.assert_close(ours, expected)
    # A scalar α is not normalised away: it changes the value.
    assert abs(ours.item() - _bound(FocalLoss(gamma=2.0))(two_class, target).item()) > 1e-3


def test_a_scalar_class_weight_is_refused_naming_alpha():
    with pytest.raises(ValueError, match=r"scalar class weight \(0.25\) would change nothing.*alpha="):
        FocalLoss(weight=0.25)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="gamma must be >= 0, got -1"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="percentage in \\(0, 100\\], got 0"):
        TopKLoss(k=0)
    with pytest.raises(ValueError, match="0 < threshold <= 1"):
        OhemCrossEntropyLoss(threshold=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be in \\[0, 1\\], got 2"):
        CrossEntropyLoss(label_smoothing=2)
