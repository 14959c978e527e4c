"""Lovász-Softmax by binned errors against the paper's sorting algorithm (written here) and smp."""

import itertools

import pytest
import segmentation_models_pytorch as smp
import torch

from lightning_seg.losses import LovaszSoftmaxLoss, lovasz_softmax
from lightning_seg.losses.lovasz import DEFAULT_BINS, MAX_BINS


def _reference(probs: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> float:
    """Berman et al.'s Algorithm 1 in float64 Python: sort the errors, weight them by Jaccard increments."""
    probs, labels = probs.double().movedim(1, -1)[valid], labels[valid]
    losses = []
    for k in range(probs.shape[1]):
        truth = (labels == k).double()
        if truth.sum() == 0:
            continue
        errors = (truth - probs[:, k]).abs()
        order = errors.argsort(descending=True)
        previous, value, total = 0.0, 0.0, truth.sum().item()
        hits = misses = 0.0
        for i in order.tolist():
            hits += truth[i].item()
            misses += 1 - truth[i].item()
            jaccard = 1 - (total - hits) / (total + misses)
            value += errors[i].item() * (jaccard - previous)
            previous = jaccard
        losses.append(value)
    return sum(losses) / len(losses) if losses else 0.0


def _batch(seed: int, num_classes: int = 4, size: tuple[int, int] = (9, 7)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_classes, *size, generator=generator) * 2
    target = torch.randint(0, num_classes, (2, *size), generator=generator)
    target[target == 2] = 3  # class 2 absent: skipped, as in the paper's "present" mode
    target[1, 3:5] = 255
    return logits, target


def _loss(**kwargs) -> LovaszSoftmaxLoss:
    """The loss with binning even on these small batches (``exact_below=0``) unless told otherwise."""
    loss = LovaszSoftmaxLoss(**{"exact_below": 0, **kwargs})
    loss.bind_dataset(4, 255)
    return loss


@pytest.mark.parametrize("bins", [2, 3, 16, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_value_is_within_half_a_bin_of_the_sorted_one(seed, bins):
    logits, target = _batch(seed)
    valid = target != 255
    probs = logits.softmax(1)
    exact = _reference(probs, target, valid)
    binned = lovasz_softmax(probs, torch.where(valid, target, 0), valid, bins).item()
    assert abs(binned - exact) <= 0.5 / bins + 1e-6


def test_errors_on_the_grid_give_the_exact_value():
    """Probabilities that are multiples of 1/4 (two classes) are not rounded with ``bins=4``."""
    probs_1 = torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0, 0.25]])
    probs = torch.stack([1 - probs_1, probs_1], 1).view(1, 2, 2, 3)
    labels = torch.tensor([[[1, 0, 1], [1, 0, 0]]])
    valid = torch.ones_like(labels, dtype=torch.bool)
    value = lovasz_softmax(probs, labels, valid, bins=4)
    assert value.item() == pytest.approx(_reference(probs, labels, valid), abs=1e-7)


@pytest.mark.parametrize(("per_image", "seed"), itertools.product([False, True], [3, 4]))
def test_default_matches_smp_value_and_gradient(per_image, seed):
    logits, target = _batch(seed, num_classes=5, size=(32, 24))
    target[target == 4] = 0
    target[0, :2] = 255
    logits = logits.requires_grad_(True)
    ours = _loss(per_image=per_image)
    theirs = smp.losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)
    value = ours(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    expected = theirs(logits, target)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(value, expected, atol=1e-5, rtol=0)
    # Pixels whose errors share a bin share a subgradient: single pixels differ by up to ~0.3 % of the
    # largest gradient (measured), the gradient as a whole by ~0.02 % in L1.
    torch.testing.assert_close(grad, expected_grad, atol=1e-2 * expected_grad.abs().max().item(), rtol=0)
    assert (grad - expected_grad).abs().sum() <= 1e-3 * expected_grad.abs().sum()


@pytest.mark.parametrize("per_image", [False, True])
def test_exact_mode_is_smp_and_accepts_float64(per_image):
    logits, target = _batch(8)
    theirs = smp.losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)(logits, target)
    for bins in (None, 2**16):
        ours = _loss(per_image=per_image, bins=bins)
        torch.testing.assert_close(ours(logits.double(), target).float(), theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bins", [None, DEFAULT_BINS, 2**16])
def test_per_image_averages_the_images_that_have_labelled_pixels(bins):
    """Value and gradient are the mean over the images of each image's loss; an all-ignored image is left
    out of the mean (smp's per-image mode fails on such a batch)."""
    logits, target = _batch(5)
    target = torch.cat([target[:1], torch.full_like(target[:1], 255), target[1:]])
    logits = torch.cat([logits[:1], logits[:1], logits[1:]]).requires_grad_(True)
    single = torch.stack([_loss(bins=bins)(logits[i : i + 1], target[i : i + 1]) for i in (0, 2)]).mean()
    per_image = _loss(per_image=True, bins=bins)(logits, target)
    torch.testing.assert_close(per_image, single)
    torch.testing.assert_close(*(torch.autograd.grad(value, logits)[0] for value in (per_image, single)))
    with pytest.raises(RuntimeError):
        smp.losses.LovaszLoss("multiclass", per_image=True, ignore_index=255)(logits, target)


@pytest.mark.parametrize("bins", [0, MAX_BINS + 1])
def test_bins_out_of_range_are_refused(bins):
    with pytest.raises(ValueError, match=f"bins must be an integer from 1 to {MAX_BINS}.*got bins={bins}"):
        LovaszSoftmaxLoss(bins=bins)


def test_bins_too_many_for_the_classes_are_refused():
    labels, valid = torch.zeros(3, 1, 1, dtype=torch.long), torch.ones(3, 1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"2·classes·\(bins \+ 1\) < 2\^31.*bins=2097152 with 600 classes$"):
        lovasz_softmax(torch.full((3, 600, 1, 1), 1 / 600), labels, valid, 2**21)
    # 2·300·(2²¹ + 1) < 2³¹ fits one table for the batch, not one per image.
    with pytest.raises(ValueError, match="bins=2097152 with 300 classes × 3 images$"):
        lovasz_softmax(torch.full((3, 300, 1, 1), 1 / 300), labels, valid, 2**21, per_image=True)


def test_non_finite_logits_give_nan_like_cross_entropy():
    """A NaN or infinite logit at a labelled pixel makes the loss NaN (not a crash or a wrong bin count);
    at an ignored pixel it changes nothing."""
    logits, target = _batch(5)
    finite = _loss()(logits, target)
    for bad in (float("nan"), float("inf")):
        broken = logits.clone()
        broken[0, 1, 0, 0] = bad
        assert torch.isnan(_loss()(broken, target))
        broken = logits.clone()
        broken[1, 1, 3, 0] = bad  # row 3 of image 1 is ignored
        torch.testing.assert_close(_loss()(broken, target), finite)


@pytest.mark.parametrize("per_image", [False, True])
def test_few_labelled_pixels_fall_back_to_the_exact_sort(per_image):
    """Below ``exact_below`` labelled pixels the value and gradient are smp's sort's, exactly; at or above
    it they are the binned ones."""
    logits, target = _batch(6, size=(16, 16))
    logits.requires_grad_(True)
    labelled = int((target != 255).sum())
    exact = smp.losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)(logits, target)
    binned = _loss(per_image=per_image)(logits, target)
    for threshold, expected in ((labelled + 1, exact), (labelled, binned)):
        value = _loss(per_image=per_image, exact_below=threshold)(logits, target)
        torch.testing.assert_close(value, expected, atol=0, rtol=0)
        torch.testing.assert_close(*(torch.autograd.grad(v, logits)[0] for v in (value, expected)), atol=0, rtol=0)
    assert LovaszSoftmaxLoss().exact_below == 8192
    with pytest.raises(ValueError, match="exact_below is a number of labelled pixels >= 0, got -1"):
        LovaszSoftmaxLoss(exact_below=-1)
