"""Every loss class exported by ``lightning_seg.losses``, found automatically, and how to call it.

A new loss is covered by the tests that use :data:`CASES` without editing them, as long as it reads
batch entries named in :data:`BUILDERS`; otherwise :func:`test_every_exported_loss_is_covered` fails and
says which entry needs a builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import lightning_seg.losses as L
from lightning_seg.geometry import semantic_edges

C = 4


def _is_abstract(cls: type) -> bool:
    return any(getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in dir(cls))


def exported_loss_classes() -> list[type[L.SegmentationLoss]]:
    """Concrete loss classes exported by the package: ``SegmentationLoss`` subclasses with a forward."""
    found = []
    for value in vars(L).values():
        if (
            isinstance(value, type)
            and issubclass(value, L.SegmentationLoss)
            and not _is_abstract(value)
            and value.forward is not nn.Module.forward
        ):
            found.append(value)
    return sorted(found, key=lambda c: c.__name__)


#: Non-default settings worth covering beside each class's defaults.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "CrossEntropyLoss": [{"weight": [1.0, 2.0, 3.0, 4.0], "label_smoothing": 0.1}],
    "FocalLoss": [{"weight": [1.0, 2.0, 3.0, 4.0], "gamma": 0.5}, {"alpha": 0.25}],
    "OhemCrossEntropyLoss": [{"min_kept": 20}],
    "TopKLoss": [{"k": 5.0, "weight": [1.0, 2.0, 3.0, 4.0]}],
    "DiceLoss": [{"weight": [1.0, 2.0, 3.0, 4.0], "smooth": 1.0}, {"log_loss": True}],
    "LovaszSoftmaxLoss": [{"per_image": True}, {"bins": None}, {"exact_below": 0}],
    "BoundaryLoss": [{"classes": [0, 2]}],
}

#: Losses whose network input is ``N×C`` per-image logits rather than ``N×C×H×W``.
IMAGE_LEVEL_INPUT = {"SemanticEncodingLoss"}
#: Losses that compare two network outputs, each ``N×C×H×W`` (``input: [a, b]`` in a CompositeLoss).
PAIR_INPUT = {"ConsistencyLoss"}
#: Losses whose network input is one logit per pixel, ``N×1×H×W``.
SINGLE_CHANNEL_INPUT = {"EdgeLoss"}


def dist_map(target: torch.Tensor, num_classes: int = C) -> torch.Tensor:
    return torch.from_numpy(np.stack([L.signed_distance_map(m.numpy(), num_classes) for m in target]))


#: Batch entry a loss ``reads`` → how to build it from the target mask.
BUILDERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mask": lambda target: target,
    "instances": lambda target: target,
    "dist_map": dist_map,
    "edge": lambda target: torch.from_numpy(np.stack([semantic_edges(m.numpy()) for m in target])),
}


def _case_id(cls: type, kwargs: dict[str, Any]) -> str:
    return cls.__name__ + ("(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else "")


CASES: dict[str, tuple[type, dict[str, Any]]] = {
    _case_id(cls, kwargs): (cls, kwargs)
    for cls in exported_loss_classes()
    for kwargs in [{}, *VARIANTS.get(cls.__name__, [])]
}


def build(case: str) -> nn.Module:
    cls, kwargs = CASES[case]
    loss = cls(**kwargs)
    loss.bind_dataset(C, 255)
    return loss


def network_input(case: str, pixel_logits: torch.Tensor) -> torch.Tensor:
    """The tensor the loss reads from the network: the pixel logits, their first channel, or their per-image mean."""
    name = CASES[case][0].__name__
    if name in SINGLE_CHANNEL_INPUT:
        return pixel_logits[:, :1].clone()
    if name not in IMAGE_LEVEL_INPUT:
        return pixel_logits
    return pixel_logits.float().mean((2, 3)).to(pixel_logits.dtype)


def call(case: str, loss: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``loss(logits, *entries it reads)`` with the entries built from ``target`` (on the logits' device).

    A loss comparing two predictions (:data:`PAIR_INPUT`) gets the logits and, as the second prediction,
    the logits with their channels rolled by one.
    """
    predictions = [logits, logits.roll(1, dims=1)] if CASES[case][0].__name__ in PAIR_INPUT else [logits]
    return loss(*predictions, *[BUILDERS[name](target.cpu()).to(logits.device) for name in loss.reads])
