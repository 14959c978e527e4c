"""Sliding windows and test-time augmentation against whole-image logits and hand-computed merges."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_seg.inference import Inferer, SlidingWindow, TestTimeAugmentation, sliding_window_logits, window_starts
from lightning_seg.module import SegmentationModule


def pointwise_net(num_classes: int = 4) -> nn.Module:
    """Fully convolutional with a 1×1 receptive field: a window's logits are exactly the image's there."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, num_classes, 1)).eval()


def context_net(num_classes: int = 4) -> nn.Module:
    """3×3 context, not left-right symmetric: flips change its output."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 3, padding=1)).eval()


@pytest.mark.parametrize(
    ("blending", "accumulate_on", "size"),
    [("uniform", "device", (64, 64)), ("uniform", "cpu", (61, 50)), ("gaussian", "device", (61, 50))],
)
@torch.no_grad()
def test_sliding_window_equals_the_whole_image_for_a_fully_convolutional_net(blending, accumulate_on, size):
    net = pointwise_net()
    image = torch.randn(2, 3, *size)  # 4× the window along each side (or a little less, not a multiple)
    window = SlidingWindow(16, overlap=0.5, blending=blending, window_batch_size=3, accumulate_on=accumulate_on)
    logits = sliding_window_logits(net, image, window)
    torch.testing.assert_close(logits, net(image), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_images_smaller_than_the_window_are_padded_and_cropped_back():
    net = pointwise_net()
    image = torch.randn(1, 3, 10, 7)
    torch.testing.assert_close(sliding_window_logits(net, image, SlidingWindow((16, 12))), net(image))


def test_windows_cover_the_image_and_end_at_its_border():
    assert window_starts(64, 16, 8) == [0, 8, 16, 24, 32, 40, 48]
    assert window_starts(61, 16, 12) == [0, 12, 24, 36, 45]
    assert window_starts(10, 16, 8) == [0]
    assert SlidingWindow((32, 16), overlap=0.25).steps == (24, 12)
    assert SlidingWindow(32, stride=(5, 7)).steps == (5, 7)


@torch.no_grad()
def test_the_network_only_ever_sees_window_batches():
    seen: list[tuple[int, ...]] = []
    net = pointwise_net()

    def forward(crops: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(crops.shape))
        return net(crops)

    sliding_window_logits(forward, torch.randn(2, 3, 100, 70), SlidingWindow(32, overlap=0.5, window_batch_size=5))
    # 2 images × 6 rows × 4 columns = 48 windows, in batches of at most 5 windows of 32×32
    assert sum(shape[0] for shape in seen) == 48
    assert all(shape[0] <= 5 and shape[1:] == (3, 32, 32) for shape in seen)


def test_gaussian_weights_peak_at_the_centre_and_stay_positive():
    weights = SlidingWindow(15, blending="gaussian").weight_map(torch.device("cpu"))
    assert weights[7, 7] == 1 and weights.min() > 0
    assert weights[0, 0] < weights[3, 3] < weights[7, 7]
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.T)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be a positive"),
        ({"size": 8, "overlap": 1.0}, r"overlap must be in \[0, 1\)"),
        ({"size": 8, "blending": "cosine"}, "blending must be one of"),
        ({"size": 8, "window_batch_size": 0}, "window_batch_size must be at least 1"),
        ({"size": 8, "accumulate_on": "gpu"}, "accumulate_on must be one of"),
    ],
)
def test_bad_window_options_say_what_is_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlidingWindow(**kwargs)


# ----- test-time augmentation -----
@pytest.mark.parametrize("merge", ["probs", "logits"])
@torch.no_grad()
def test_flip_tta_is_equivariant_and_symmetric_on_a_symmetric_input(merge):
    net = context_net()
    inferer = Inferer(tta=TestTimeAugmentation(hflip=True, vflip=True, merge=merge))
    half = torch.randn(1, 3, 12, 8)
    symmetric = torch.cat([half, half.flip(3)], dim=3)  # left-right mirror image
    assert not torch.allclose(net(symmetric), net(symmetric).flip(3), atol=1e-3)  # the net alone is not
    out = inferer(net, symmetric)
    torch.testing.assert_close(out, out.flip(3))
    image = torch.randn(1, 3, 12, 16)
    torch.testing.assert_close(inferer(net, image.flip(3)), inferer(net, image).flip(3))
    torch.testing.assert_close(inferer(net, image.flip(2)), inferer(net, image).flip(2))


@torch.no_grad()
def test_tta_averages_probabilities_or_logits_as_computed_by_hand():
    net = context_net()
    image = torch.randn(2, 3, 16, 12)
    views = [net(image), net(image.flip(3)).flip(3)]
    half = F.interpolate(net(F.interpolate(image, scale_factor=0.5, mode="bilinear")), size=(16, 12), mode="bilinear")
    half_flip = F.interpolate(
        net(F.interpolate(image, scale_factor=0.5, mode="bilinear").flip(3)).flip(3), size=(16, 12), mode="bilinear"
    )
    views += [half, half_flip]
    probs = Inferer(tta=TestTimeAugmentation(scales=(1.0, 0.5))).__call__(net, image).softmax(1)
    torch.testing.assert_close(probs, torch.stack([v.softmax(1) for v in views]).mean(0))
    logits = Inferer(tta=TestTimeAugmentation(scales=(1.0, 0.5), merge="logits"))(net, image)
    torch.testing.assert_close(logits, torch.stack(views).mean(0))


@torch.no_grad()
def test_tta_combines_with_sliding_windows():
    net = pointwise_net()
    image = torch.randn(1, 3, 40, 36)
    tta = TestTimeAugmentation(hflip=True, vflip=True, scales=(1.0, 0.75))
    windowed = Inferer(SlidingWindow(16, overlap=0.25, window_batch_size=7), tta)(net, image)
    torch.testing.assert_close(windowed, Inferer(tta=tta)(net, image), rtol=1e-5, atol=1e-5)


# ----- the module: one inference for val, test and predict -----
@torch.no_grad()
def test_the_module_evaluates_through_the_inferer_in_the_chosen_stages():
    window = SlidingWindow(8, overlap=0.5, blending="uniform")
    module = SegmentationModule(
        net=lambda n: pointwise_net(n), num_classes=4, sliding_window=window, inference_stages=["test"]
    )
    module.eval()
    calls: list[int] = []
    module.net.register_forward_hook(lambda *args: calls.append(args[1][0].shape[-1]))
    batch = {"image": torch.randn(2, 3, 24, 20), "mask": torch.randint(0, 4, (2, 24, 20))}
    module.test_step(batch, 0)
    assert set(calls) == {8}  # windows only
    calls.clear()
    module.validation_step(batch, 0)
    assert calls == [20]  # validation forwards whole images: not among inference_stages
    torch.testing.assert_close(module.test_metrics.compute(), module.val_metrics.compute())
    with pytest.raises(ValueError, match="inference_stages"):
        SegmentationModule(num_classes=4, inference_stages=["train"])


MEMORY_SCRIPT = """
import json, resource, sys, torch
from torch import nn
from lightning_seg.inference import SlidingWindow, sliding_window_logits
torch.set_num_threads(1)
side, channels = int(sys.argv[1]), 128
net = nn.Sequential(nn.Conv2d(3, channels, 1), nn.ReLU(), nn.Conv2d(channels, 2, 1)).eval()
image = torch.randn(1, 3, side, side)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    logits = sliding_window_logits(net, image, SlidingWindow(128, overlap=0.25, window_batch_size=2))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": (after - before) / 1024, "shape": list(logits.shape)}))
"""


def test_peak_memory_of_a_large_image_is_bounded_by_the_window_batch():
    side = 1024
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(side)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1, 2, side, side]
    whole_image_activations = 128 * side * side * 4 / 2**20  # 512 MiB for one 128-channel float32 map
    accumulators = (2 + 1) * side * side * 4 / 2**20  # the logit sum (2 classes) and the weight sum: 12 MiB
    assert result["peak_mib"] < accumulators + 64, result
    assert result["peak_mib"] < whole_image_activations / 10
