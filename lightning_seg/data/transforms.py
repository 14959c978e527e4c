"""Albumentations pipelines from YAML: inline dicts (``A.to_dict`` form) or saved files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import albumentations as A
from albumentations.core.serialization import SERIALIZABLE_REGISTRY, shorten_class_name

from lightning_seg.data.crops import ScaleCrop

#: What a config may give as a pipeline: the dict ``A.to_dict`` produces (with or without its top-level
#: ``transform`` key), a path to a pipeline saved with ``A.save``, or a built pipeline.
TransformSpec = dict[str, Any] | str | Path | A.BasicTransform | A.BaseCompose | None

_DROPOUT_MODULE = "albumentations.augmentations.dropout"


def build_transform(spec: TransformSpec, ignore_index: int) -> A.BaseCompose | None:
    """Build an albumentations pipeline whose geometric transforms fill masks with ``ignore_index``.

    Args:
        spec: see :data:`TransformSpec`; ``None`` gives ``None`` (no augmentation).
        ignore_index: the value padded or rotated-in mask pixels receive.
    """
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"transform file {path} does not exist (expected a pipeline saved with A.save)")
        data_format = "yaml" if path.suffix in {".yaml", ".yml"} else "json"
        pipeline = A.load(str(path), data_format=data_format)
    elif isinstance(spec, dict):
        pipeline = A.from_dict({"transform": _complete_probabilities(spec.get("transform", spec))})
    elif isinstance(spec, (A.BasicTransform, A.BaseCompose)):
        pipeline = spec
    else:
        raise TypeError(f"a transform must be a dict, a file path or an albumentations transform, got {spec!r}")
    if not isinstance(pipeline, A.BaseCompose):
        pipeline = A.Compose([pipeline])
    _fill_masks_with(pipeline, ignore_index)
    return pipeline


def _complete_probabilities(node: Any) -> Any:
    """Give every transform without a ``p`` its class's own default.

    ``A.from_dict`` sets a missing ``p`` to 0.5, so a hand-written ``PadIfNeeded`` or ``RandomCrop`` would
    silently apply to only half the samples.
    """
    if isinstance(node, list):
        return [_complete_probabilities(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _complete_probabilities(value) for key, value in node.items()}
    name = node.get("__class_fullname__")
    if name is not None and "p" not in node and name not in ("Compose", "Sequential"):
        cls = SERIALIZABLE_REGISTRY.get(shorten_class_name(name))
        if cls is None:
            raise ValueError(f"unknown albumentations transform '{name}' in the pipeline")
        parameter = inspect.signature(cls.__init__).parameters.get("p")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            node["p"] = parameter.default
    return node


def _fill_masks_with(pipeline: A.BaseCompose, ignore_index: int) -> None:
    """Make every transform that invents mask pixels (padding, rotation, ...) fill them with ``ignore_index``.

    albumentations 2.x fills masks with 0 by default, which silently labels padding as class 0. Dropout
    transforms are left alone: their ``fill_mask`` (default ``None``: keep the mask) is a deliberate label.
    """
    for transform in pipeline.transforms:
        if isinstance(transform, A.BaseCompose):
            _fill_masks_with(transform, ignore_index)
        elif hasattr(transform, "fill_mask") and not type(transform).__module__.startswith(_DROPOUT_MODULE):
            transform.fill_mask = ignore_index


def scale_crop_flip(height: int, width: int, scale: tuple[float, float] = (0.5, 2.0), color: bool = True) -> A.Compose:
    """Build the usual training pipeline for natural scenes: random rescale, pad and crop in one step, flip.

    The rescale, padding and crop are one :class:`~lightning_seg.data.crops.ScaleCrop` (only the crop is
    resampled), which the DataModule's class-aware crop options configure.

    Args:
        height: crop height.
        width: crop width.
        scale: range of the random rescale factor (``(1, 1)`` keeps the size).
        color: add mild brightness/contrast jitter.
    """
    transforms: list[A.BasicTransform] = [ScaleCrop(height, width, scale=scale), A.HorizontalFlip(p=0.5)]
    if color:
        transforms.append(A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5))
    return A.Compose(transforms)
