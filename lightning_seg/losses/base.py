"""The contract every segmentation loss in this package follows, and what the losses share.

Precision and non-finite values are handled once, here, for every loss (:meth:`SegmentationLoss.__call__`):
the loss body runs in float32 (float64 inputs stay float64) with autocast off, ignored pixels' inputs are
replaced by 0 before any arithmetic, and a non-finite input at a labelled pixel makes the value NaN.

Shape:
    logits: ``N×C×H×W`` float, target: ``N×H×W`` int64 with class indices and one ``ignore_index``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.losses.class_weights import WEIGHTING_SCHEMES, compute_class_weights

if TYPE_CHECKING:
    from lightning_seg.data.stats import ClassStats


class SegmentationLoss(nn.Module):
    """Base class for losses that need dataset facts (``num_classes``, ``ignore_index``, statistics).

    A user writes those facts once, in the DataModule; :class:`~lightning_seg.module.SegmentationModule`
    hands them to every loss it holds: :meth:`bind_dataset` when the module is built and
    :meth:`bind_class_stats` when fitting starts. An ``ignore_index`` given explicitly to a loss wins
    over the dataset's.

    Args:
        ignore_index: target value that contributes neither value nor gradient; ``None`` = the dataset's.
    """

    #: Extra batch entries (e.g. ``"dist_map"``) this loss reads; the DataModule computes them in its
    #: workers, only when some loss asks.
    required_targets: frozenset[str] = frozenset()
    #: The batch entries passed to ``forward`` after the network output, in order (a
    #: :class:`~lightning_seg.losses.LossTerm` uses them unless told otherwise).
    reads: tuple[str, ...] = ("mask",)

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__()
        self._explicit_ignore_index = ignore_index
        self.ignore_index = 255 if ignore_index is None else ignore_index
        self.num_classes: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """Call ``forward`` in float32 with autocast off; ignored pixels' inputs are inert, non-finite ones not.

        * Floating-point inputs are cast to (at least) float32 and ``forward`` runs with autocast disabled,
          so a loss is the same under ``16-mixed``/``bf16-mixed`` as in float32 (counts cannot overflow
          float16 or round in bfloat16) and returns a float32 scalar (float64 for float64 inputs). The
          gradient reaches the inputs in their own dtype.
        * The target is the last integer tensor argument. Every floating-point input laid out per pixel
          (``N×…×H×W`` matching the target's ``N×H×W``) is replaced by 0 at ignored pixels with
          ``torch.where`` before ``forward`` sees it, so whatever an ignored pixel holds (NaN, Inf)
          changes neither the value nor any gradient, and its own gradient is exactly 0.
        * If such an input holds a non-finite value at a labelled pixel, the returned value is NaN even
          where the loss's arithmetic alone would stay finite (e.g. ``−inf`` for a class that is not the
          pixel's): a non-finite input never looks like a good loss.
        """
        target = next((a for a in reversed(args) if isinstance(a, Tensor) and not a.is_floating_point()), None)
        valid = None if target is None else target != self.ignore_index
        device = next((a.device for a in args if isinstance(a, Tensor)), torch.device("cpu"))
        autocast_off = (
            torch.autocast(device.type, enabled=False)
            if torch.amp.is_autocast_available(device.type)
            else contextlib.nullcontext()
        )
        finite: list[Tensor] = []
        with autocast_off:
            inputs = []
            for arg in args:
                if isinstance(arg, Tensor) and arg.is_floating_point():
                    arg = arg.to(torch.promote_types(arg.dtype, torch.float32))
                    if valid is not None and _per_pixel(arg, valid):
                        arg = torch.where(valid.unsqueeze(1), arg, 0)
                        finite.append(arg.isfinite().all())
                inputs.append(arg)
            value = super().__call__(*inputs, **kwargs)
            for all_finite in finite:
                value = value + torch.where(all_finite, 0.0, torch.nan)
        return value

    def bind_dataset(self, num_classes: int, ignore_index: int) -> None:
        """Receive the dataset's number of classes and ignore value."""
        self.num_classes = num_classes
        if self._explicit_ignore_index is None:
            self.ignore_index = ignore_index

    def bind_class_stats(self, stats: ClassStats) -> None:
        """Receive the training set's class statistics (used by ``auto`` class weights)."""

    def split_target(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(labels, valid)``: ignored pixels replaced by class 0 (safe to index with) and the valid mask.

        Shape:
            target ``N×H×W`` → labels ``N×H×W`` int64, valid ``N×H×W`` bool.
        """
        valid = target != self.ignore_index
        return torch.where(valid, target, 0).long(), valid

    def one_hot(self, target: Tensor, num_classes: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(one_hot, valid)`` with ignored pixels all-zero; ``ignore_index`` never reaches ``one_hot``.

        Shape:
            target ``N×H×W`` → one_hot ``N×C×H×W``, valid ``N×H×W`` bool.
        """
        labels, valid = self.split_target(target)
        encoded = F.one_hot(labels, num_classes).movedim(-1, 1).to(dtype)
        return encoded * valid.unsqueeze(1).to(dtype), valid


def _per_pixel(tensor: Tensor, valid: Tensor) -> bool:
    """Whether ``tensor`` (``N×K×H×W``) holds per-pixel values for the ``N×H×W`` mask ``valid``."""
    return tensor.ndim == valid.ndim + 1 and tensor.shape[0] == valid.shape[0] and tensor.shape[2:] == valid.shape[1:]


class ClassWeightedLoss(SegmentationLoss):
    """A loss with optional per-class weights, given or computed from the training set.

    The weights live in the ``weight`` buffer, so they are saved in checkpoints.

    Args:
        weight: ``None`` (unweighted), a list of ``C`` weights, ``"auto"`` (= ``"median"``) or a scheme
            name from :data:`~lightning_seg.losses.class_weights.WEIGHTING_SCHEMES`, computed in
            :meth:`bind_class_stats`.
        beta: the ``effective`` scheme's hyper-parameter.
        ignore_index: ``None`` = the dataset's.
    """

    def __init__(self, weight: list[float] | str | None = None, beta: float = 0.999, ignore_index: int | None = None):
        super().__init__(ignore_index)
        self.scheme: str | None = None
        self.beta = beta
        self._weights_ready = True
        if isinstance(weight, (int, float)):
            raise ValueError(
                f"{type(self).__name__}: a scalar class weight ({weight}) would change nothing (the mean divides "
                "by the weights); give one weight per class"
                + (", or Lin et al.'s alpha=..." if "alpha" in type(self).__init__.__code__.co_varnames else "")
            )
        if isinstance(weight, str):
            self.scheme = "median" if weight == "auto" else weight
            if self.scheme not in WEIGHTING_SCHEMES:
                raise ValueError(
                    f"{type(self).__name__}: unknown class weight '{weight}'; valid: "
                    f"{['auto', *sorted(WEIGHTING_SCHEMES)]} or a list of floats"
                )
            self._weights_ready = False
            weight = None
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))

    def bind_dataset(self, num_classes: int, ignore_index: int) -> None:
        super().bind_dataset(num_classes, ignore_index)
        if self.scheme is not None and self.weight is None:
            # Placeholder of the right shape so a checkpoint's weights can load before statistics arrive.
            self.weight = torch.ones(num_classes)
        elif self.weight is not None and len(self.weight) != num_classes:
            raise ValueError(
                f"{type(self).__name__}: {len(self.weight)} class weights given but the dataset has "
                f"{num_classes} classes"
            )

    def bind_class_stats(self, stats: ClassStats) -> None:
        if self.scheme is None:
            return
        if self.num_classes is not None and stats.num_classes != self.num_classes:
            raise ValueError(
                f"{type(self).__name__}: class statistics cover {stats.num_classes} classes, "
                f"the dataset has {self.num_classes}"
            )
        values = torch.as_tensor(compute_class_weights(stats, self.scheme, self.beta), dtype=torch.float32)
        self.weight = values.to(self.weight.device if self.weight is not None else "cpu")
        self._weights_ready = True

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        if prefix + "weight" in state_dict:
            self._weights_ready = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def class_weight(self, num_classes: int) -> Tensor | None:
        """Return the weights for a ``num_classes``-channel prediction (``None`` = unweighted)."""
        if not self._weights_ready:
            raise RuntimeError(
                f"{type(self).__name__}(weight='{self.scheme}') needs the training set's class statistics, "
                "but bind_class_stats was never called (fit through SegmentationModule, or call it yourself)"
            )
        if self.weight is not None and len(self.weight) != num_classes:
            raise ValueError(
                f"{type(self).__name__}: {len(self.weight)} class weights but the prediction has {num_classes} channels"
            )
        return self.weight
