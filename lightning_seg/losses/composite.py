"""Weighted, scheduled sums of loss terms."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_seg.losses.base import SegmentationLoss
from lightning_seg.losses.schedules import Constant, WeightSchedule


def _snake_case(name: str) -> str:
    name = re.sub(r"Loss$", "", name) or name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class LossOutput(NamedTuple):
    """What a composite loss returns: the weighted total, each unweighted term, each current weight."""

    total: Tensor
    terms: dict[str, Tensor]
    weights: dict[str, float]


class LossTerm(nn.Module):
    """One term of a :class:`CompositeLoss`: a loss, its weight schedule and what it reads.

    Args:
        loss: the loss module, called as ``loss(outputs[input], *[batch[t] for t in target])`` (with a list
            of inputs: ``loss(*[outputs[i] for i in input], *[batch[t] for t in target])``).
        weight: a constant or a :class:`~lightning_seg.losses.schedules.WeightSchedule`.
        name: the name used in logs (``train/loss/<name>``); default: the loss class in snake case.
        input: which network output the loss reads (``logits`` or a named auxiliary output), or a list of
            outputs for a loss that compares predictions (e.g. ``[logits_texture, logits]``). A map
            (``N×C×h×w``) smaller than the mask, such as a deep-supervision output, is upsampled to the
            mask's size (bilinear) before the loss sees it; the mask is never downsampled.
        target: which batch entry (or entries) the loss reads after ``input``: ``mask``, ``dist_map``,
            ...; ``None`` = what the loss declares in ``reads`` (``mask`` for a plain module).
    """

    def __init__(
        self,
        loss: nn.Module,
        weight: float | WeightSchedule = 1.0,
        name: str | None = None,
        input: str | list[str] = "logits",
        target: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.schedule = weight if isinstance(weight, WeightSchedule) else Constant(weight)
        self.name = name or _snake_case(type(loss).__name__)
        self.inputs = [input] if isinstance(input, str) else list(input)
        if target is None:
            target = list(getattr(loss, "reads", ("mask",)))
        self.targets = [target] if isinstance(target, str) else list(target)

    def resized(self, name: str, prediction: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """``prediction`` upsampled (bilinear) to the mask's size when it is a smaller ``N×C×h×w`` map."""
        mask = batch.get("mask")
        if prediction.ndim != 4 or mask is None or prediction.shape[-2:] == mask.shape[-2:]:
            return prediction
        (h, w), (height, width) = prediction.shape[-2:], mask.shape[-2:]
        if h > height or w > width:
            raise ValueError(
                f"loss term '{self.name}' reads '{name}' of size {h}×{w}, larger than the mask's "
                f"{height}×{width}; auxiliary outputs must be at the mask's resolution or below"
            )
        return F.interpolate(prediction, size=(height, width), mode="bilinear", align_corners=False)


class CompositeLoss(nn.Module):
    """A weighted sum of loss terms whose weights may change over training.

    Args:
        terms: the terms; their names must be unique.
    """

    def __init__(self, terms: list[LossTerm]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("CompositeLoss needs at least one term, got an empty list")
        names = [t.name for t in terms]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"CompositeLoss term names must be unique, got {duplicated} more than once")
        self.terms = nn.ModuleList(terms)
        self.epoch = 0
        self.step = 0

    @property
    def required_targets(self) -> frozenset[str]:
        """Extra targets the data workers must compute for some term (e.g. ``dist_map``).

        Entries a dataset provides by itself (such as instance ids) are not listed: a term that reads a
        missing entry raises a clear error on the first batch.
        """
        needed: set[str] = set()
        for module in self.modules():
            needed.update(getattr(module, "required_targets", ()) if module is not self else ())
        return frozenset(needed)

    def set_progress(self, epoch: int, step: int) -> None:
        """Tell the schedules where training is."""
        self.epoch, self.step = epoch, step

    def current_weights(self) -> dict[str, float]:
        return {t.name: float(t.schedule(self.epoch, self.step)) for t in self.terms}

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> LossOutput:
        weights = self.current_weights()
        values: dict[str, Tensor] = {}
        total = torch.zeros((), device=next(iter(outputs.values())).device)
        for term in self.terms:
            missing = [k for k in term.inputs if k not in outputs] + [k for k in term.targets if k not in batch]
            if missing:
                raise KeyError(
                    f"loss term '{term.name}' reads {missing}, which the network outputs "
                    f"{sorted(outputs)} and the batch {sorted(batch)} do not contain"
                )
            predictions = [term.resized(k, outputs[k], batch) for k in term.inputs]
            value = term.loss(*predictions, *[batch[t] for t in term.targets])
            values[term.name] = value
            total = total + weights[term.name] * value
        return LossOutput(total, values, weights)


def as_composite(loss: nn.Module) -> CompositeLoss:
    """Wrap a single loss as a one-term composite, so the module has one code path."""
    return loss if isinstance(loss, CompositeLoss) else CompositeLoss([LossTerm(loss)])


def bind_losses(loss: nn.Module, num_classes: int, ignore_index: int) -> None:
    """Hand the dataset's facts to every :class:`SegmentationLoss` inside ``loss``."""
    for module in loss.modules():
        if isinstance(module, SegmentationLoss):
            module.bind_dataset(num_classes, ignore_index)
