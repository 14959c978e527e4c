"""Inference in one place: whole images or sliding windows, test-time augmentation, sizes restored.

``validate``, ``test`` and ``predict`` all go through :class:`Inferer`, so the three stages see the same
logits for the same image. Sliding windows follow the usual tiled-inference scheme (as in nnU-Net,
Isensee et al. 2021, and MONAI's ``sliding_window_inference``): overlapping windows, forwarded a few at a
time, blended uniformly or with a Gaussian importance map. Test-time augmentation averages the softmax
probabilities of flipped and rescaled copies (or their logits, ``merge: logits``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

#: A network's forward pass reduced to its logits: ``N×3×h×w`` → ``N×C×h×w``.
Forward = Callable[[Tensor], Tensor]

BLENDINGS = ("uniform", "gaussian")
ACCUMULATE_ON = ("device", "cpu")
MERGES = ("probs", "logits")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class SlidingWindow:
    """How to cut an image into overlapping windows and blend their logits back together.

    Args:
        size: window ``(height, width)``, or one int for a square; usually the training crop.
        overlap: fraction of a window shared with the next one along each axis, in ``[0, 1)``;
            ignored when ``stride`` is given.
        stride: step ``(height, width)`` between windows; default: ``size × (1 − overlap)``.
        blending: ``uniform`` averages the windows that cover a pixel; ``gaussian`` weighs each
            window's pixels by a Gaussian centred on the window (nnU-Net), so that window borders,
            where the network lacks context, count less.
        sigma_scale: the Gaussian's standard deviation as a fraction of the window size.
        window_batch_size: windows forwarded together; the network's memory is bounded by this, not by
            the image.
        accumulate_on: where the image-sized logit sum lives: ``device`` (the image's) or ``cpu`` (only
            the window batch stays on the accelerator; for very large images).
    """

    size: int | tuple[int, int]
    overlap: float = 0.25
    stride: int | tuple[int, int] | None = None
    blending: str = "gaussian"
    sigma_scale: float = 0.125
    window_batch_size: int = 4
    accumulate_on: str = "device"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair(self.size, "sliding_window.size"))
        if self.stride is not None:
            object.__setattr__(self, "stride", _pair(self.stride, "sliding_window.stride"))
        if not 0 <= self.overlap < 1:
            raise ValueError(f"sliding_window.overlap must be in [0, 1), got {self.overlap}")
        if self.blending not in BLENDINGS:
            raise ValueError(f"sliding_window.blending must be one of {BLENDINGS}, got '{self.blending}'")
        if self.sigma_scale <= 0:
            raise ValueError(f"sliding_window.sigma_scale must be positive, got {self.sigma_scale}")
        if self.window_batch_size < 1:
            raise ValueError(f"sliding_window.window_batch_size must be at least 1, got {self.window_batch_size}")
        if self.accumulate_on not in ACCUMULATE_ON:
            raise ValueError(f"sliding_window.accumulate_on must be one of {ACCUMULATE_ON}, got '{self.accumulate_on}'")

    @property
    def steps(self) -> tuple[int, int]:
        """The stride between windows along height and width."""
        if self.stride is not None:
            return self.stride  # type: ignore[return-value]
        return tuple(max(1, int(s * (1 - self.overlap))) for s in self.size)  # type: ignore[return-value]

    def weight_map(self, device: torch.device) -> Tensor:
        """Each window pixel's blending weight, ``h×w`` float32 (all ones when uniform; max 1 when Gaussian)."""
        height, width = self.size  # type: ignore[misc]
        if self.blending == "uniform":
            return torch.ones(height, width, device=device)

        def gaussian(length: int) -> Tensor:
            centre = (length - 1) / 2
            positions = torch.arange(length, device=device, dtype=torch.float32)
            return torch.exp(-0.5 * ((positions - centre) / (self.sigma_scale * length)) ** 2)

        weights = gaussian(height)[:, None] * gaussian(width)[None, :]
        # Keep corner weights away from 0, so every pixel of the image has a positive total weight.
        return (weights / weights.max()).clamp_min(1e-3)


def window_starts(length: int, window: int, step: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``window``; the last one ends at ``length``."""
    if length <= window:
        return [0]
    return sorted(set(range(0, length - window, step)) | {length - window})


def sliding_window_logits(forward: Forward, image: Tensor, window: SlidingWindow) -> Tensor:
    """Logits of a whole image assembled from overlapping windows.

    Images smaller than the window are zero-padded (after normalisation, the mean colour) and cropped
    back. Windows of every image in the batch are forwarded ``window_batch_size`` at a time; their
    logits, times the blending weights, are summed in float32 on ``window.accumulate_on`` and divided by
    the summed weights.

    Shape:
        image ``N×3×H×W`` → logits ``N×C×H×W`` float32, on the image's device or the CPU.
    """
    num, _, height, width = image.shape
    win_h, win_w = window.size  # type: ignore[misc]
    pad_h, pad_w = max(win_h - height, 0), max(win_w - width, 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
    full_h, full_w = image.shape[-2:]
    step_h, step_w = window.steps
    corners = list(itertools.product(window_starts(full_h, win_h, step_h), window_starts(full_w, win_w, step_w)))
    target = torch.device("cpu") if window.accumulate_on == "cpu" else image.device
    weights = window.weight_map(image.device)
    weight_sum = torch.zeros(full_h, full_w, device=target)
    target_weights = weights.to(target)
    for top, left in corners:
        weight_sum[top : top + win_h, left : left + win_w] += target_weights
    logit_sum: Tensor | None = None
    jobs = [(index, top, left) for index in range(num) for top, left in corners]
    for first in range(0, len(jobs), window.window_batch_size):
        chunk = jobs[first : first + window.window_batch_size]
        crops = torch.stack([image[i, :, t : t + win_h, c : c + win_w] for i, t, c in chunk])
        out = forward(crops)
        weighted = (out.float() * weights).to(target)
        if logit_sum is None:
            logit_sum = torch.zeros(num, out.shape[1], full_h, full_w, device=target)
        for (index, top, left), logits in zip(chunk, weighted, strict=True):
            logit_sum[index, :, top : top + win_h, left : left + win_w] += logits
    assert logit_sum is not None  # at least one window always exists
    return (logit_sum / weight_sum)[..., :height, :width]


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Which flipped and rescaled copies of an image to predict, and how to merge them.

    Every combination of scale × horizontal flip (if on) × vertical flip (if on) is predicted, mapped
    back to the image's pixel grid (flipped back, resized bilinearly) and merged.

    Args:
        hflip: add horizontally flipped copies.
        vflip: add vertically flipped copies.
        scales: image scale factors (``1.0`` = as is); logits are resized back to the image size.
        merge: ``probs`` averages softmax probabilities (returned as their logarithm, so softmax and
            argmax give the averaged probabilities and their class); ``logits`` averages logits.
    """

    __test__ = False  # not a pytest test class despite its name

    hflip: bool = True
    vflip: bool = False
    scales: tuple[float, ...] = field(default=(1.0,))

    merge: str = "probs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"tta.scales must be positive numbers, got {list(self.scales)}")
        if self.merge not in MERGES:
            raise ValueError(f"tta.merge must be one of {MERGES}, got '{self.merge}'")

    def views(self) -> list[tuple[float, tuple[int, ...]]]:
        """Every ``(scale, flipped dims)`` predicted; dims 3 = horizontal, 2 = vertical."""
        flips = [()] + ([(3,)] if self.hflip else [])
        if self.vflip:
            flips += [(*f, 2) for f in flips]
        return [(scale, dims) for scale in self.scales for dims in flips]


class Inferer:
    """Logits of images as the configured inference computes them: whole, windowed, augmented.

    Args:
        sliding_window: window the images (``None``: forward each image whole).
        tta: test-time augmentation (``None``: the image as is).
    """

    def __init__(self, sliding_window: SlidingWindow | None = None, tta: TestTimeAugmentation | None = None) -> None:
        self.sliding_window = sliding_window
        self.tta = tta

    @property
    def active(self) -> bool:
        """Whether this differs from one plain forward pass."""
        return self.sliding_window is not None or self.tta is not None

    def single(self, forward: Forward, image: Tensor) -> Tensor:
        """Logits of one view: windowed or whole. Shape: ``N×3×H×W`` → ``N×C×H×W``."""
        if self.sliding_window is None:
            return forward(image)
        return sliding_window_logits(forward, image, self.sliding_window)

    def __call__(self, forward: Forward, image: Tensor) -> Tensor:
        """Logits (or, with TTA merging probabilities, log mean probabilities) of ``image``.

        Shape:
            image ``N×3×H×W`` → ``N×C×H×W``.
        """
        if self.tta is None:
            return self.single(forward, image)
        size = image.shape[-2:]
        total: Tensor | None = None
        views = self.tta.views()
        for scale, dims in views:
            view = image if scale == 1.0 else F.interpolate(image, scale_factor=scale, mode="bilinear")
            logits = self.single(forward, view.flip(dims) if dims else view).float()
            logits = logits.flip(dims) if dims else logits
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear")
            term = logits.softmax(1) if self.tta.merge == "probs" else logits
            total = term if total is None else total + term
        assert total is not None  # views() is never empty
        mean = total / len(views)
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log() if self.tta.merge == "probs" else mean

    def per_image(
        self, forward: Forward, images: Tensor, sizes: Tensor | None = None, original_sizes: Tensor | None = None
    ) -> list[Tensor]:
        """Logits of each image of a padded batch, at that image's own original size.

        Each image is first cropped to its size before padding (``sizes``) and inferred with the images
        of the same size only, so a prediction never depends on what else is in the batch; its logits
        are then resized (bilinearly) to the size the image had before the prediction transform
        (``original_sizes``).

        Shape:
            images ``N×3×H×W``, sizes and original_sizes ``N×2`` (height, width) → ``N`` tensors
            ``C×h_i×w_i``.
        """
        num = images.shape[0]
        sizes_list = _sizes(sizes, num, images.shape[-2:])
        originals = _sizes(original_sizes, num, None) if original_sizes is not None else sizes_list
        results: list[Tensor | None] = [None] * num
        for size in dict.fromkeys(sizes_list):
            members = [i for i in range(num) if sizes_list[i] == size]
            logits = self(forward, images[members, :, : size[0], : size[1]])
            for row, index in enumerate(members):
                results[index] = resize_logits(logits[row], originals[index])
        return results  # type: ignore[return-value]


def _sizes(sizes: Tensor | None, num: int, default: torch.Size | None) -> list[tuple[int, int]]:
    if sizes is None:
        return [(int(default[0]), int(default[1]))] * num  # type: ignore[index]
    rows = [tuple(int(v) for v in row) for row in torch.as_tensor(sizes).reshape(-1, 2).tolist()]
    if len(rows) != num:
        raise ValueError(f"got {len(rows)} image sizes for a batch of {num} images")
    return rows  # type: ignore[return-value]


def resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """Logits resized bilinearly to ``size`` (unchanged when already that size).

    Shape:
        ``C×h×w`` → ``C×size[0]×size[1]``.
    """
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits[None].float(), size=tuple(size), mode="bilinear")[0]


def resize_region(region: Tensor, size: Sequence[int]) -> Tensor:
    """A boolean region (e.g. pixels ignored by definition) resized by nearest neighbour.

    Shape:
        ``h×w`` bool → ``size[0]×size[1]`` bool.
    """
    if tuple(region.shape) == tuple(size):
        return region
    return F.interpolate(region[None, None].float(), size=tuple(size), mode="nearest")[0, 0] > 0.5
