"""Predict a folder of one's own images with what a checkpoint knows: no training data, no masks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightning_seg.data.base import SampleSource, SegmentationDataModule
from lightning_seg.data.imageio import IMAGE_EXTENSIONS, read_image

#: What prediction needs from the model, as the module stores it in a checkpoint's hyperparameters.
CHECKPOINT_FACTS = ("class_names", "palette", "mean", "std", "ignore_index")


def find_images(input: Path) -> list[Path]:
    """Every image file under ``input`` (recursively, sorted; hidden files skipped), or ``input`` itself.

    Raises:
        FileNotFoundError: if ``input`` does not exist or holds no image.
    """
    if input.is_file():
        if input.suffix.lower() not in IMAGE_EXTENSIONS:
            raise FileNotFoundError(f"{input} is not an image: expected one of {', '.join(IMAGE_EXTENSIONS)}")
        return [input]
    if not input.is_dir():
        raise FileNotFoundError(f"predict input {input} does not exist")
    found = sorted(
        path
        for path in input.rglob("*")
        if path.is_file()
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(input).parts)
    )
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {input}")
    return found


class ImageFolderSource(SampleSource):
    """Images without masks; each named by its path under the folder without extension (``a/b/0001``).

    Images are read by the same function as every training dataset (:func:`lightning_seg.data.files.read_image`).

    Raises:
        ValueError: if two files would give the same prediction file (``x.png`` and ``x.jpg``).
    """

    def __init__(self, input: Path) -> None:
        self.root = None  # never cached: there are no masks
        self.paths = find_images(input)
        base = input if input.is_dir() else input.parent
        self.names = [path.relative_to(base).with_suffix("").as_posix() for path in self.paths]
        seen: dict[str, Path] = {}
        for name, path in zip(self.names, self.paths, strict=True):
            if name in seen:
                raise ValueError(f"{seen[name]} and {path} would both be predicted as '{name}.png'; rename or move one")
            seen[name] = path

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        return read_image(self.paths[index]), None, self.names[index]


class ImageFolderDataModule(SegmentationDataModule):
    """Every image of a folder, for ``predict`` only, normalised and named as the model expects.

    The class names, palette, normalisation and ignore index are the model's own: the CLI fills them from
    the checkpoint given with ``--ckpt_path`` (see :func:`facts_from_checkpoint`), so a folder is predicted
    with ``lightning-seg predict --ckpt_path X --data lightning_seg.data.ImageFolderDataModule
    --data.input DIR``. Without a checkpoint give them explicitly.

    Args:
        input: a folder (searched recursively, any common image format; EXIF orientation applied) or one
            image file.
        class_names: the model's classes (their number is ``num_classes``).
        palette: one RGB colour per class for the written masks.
        mean: the normalisation mean the model was trained with (0–1 scale).
        std: the normalisation std.
        ignore_index: the model's ignore value (written where a dataset ignores pixels by definition).
        **kwargs: ``batch_size``, ``num_workers``, ``predict_transform`` ... (see
            :class:`~lightning_seg.data.base.SegmentationDataModule`).
    """

    def __init__(
        self,
        input: str | Path,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        ignore_index: int = 255,
        **kwargs: Any,
    ) -> None:
        missing = [name for name, value in (("class_names", class_names), ("mean", mean), ("std", std)) if not value]
        if missing:
            raise ValueError(
                f"ImageFolderDataModule needs the model's {', '.join(missing)}: predict with --ckpt_path of a "
                "lightning-seg checkpoint (which records them) or give them as --data.init_args.<name>"
            )
        self.input = Path(input).expanduser()
        self.source = ImageFolderSource(self.input)  # lists the files now: a bad folder fails here
        self.class_names = tuple(class_names)  # type: ignore[arg-type]
        self.palette = tuple(tuple(int(v) for v in colour) for colour in palette or ())
        super().__init__(mean=mean, std=std, ignore_index=ignore_index, **kwargs)  # type: ignore[arg-type]

    def build_source(self, split: str) -> SampleSource | None:
        return self.source if split == "predict" else None


def facts_from_checkpoint(path: str | Path) -> dict[str, Any]:
    """The class names, palette, normalisation and ignore index a lightning-seg checkpoint records.

    Raises:
        ValueError: if the checkpoint has no module hyperparameters or lacks the class names or the
            normalisation (a checkpoint written before they were recorded).
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters") or {}
    facts = {key: hparams[key] for key in CHECKPOINT_FACTS if hparams.get(key) is not None}
    missing = [key for key in ("class_names", "mean", "std") if key not in facts]
    if missing:
        raise ValueError(
            f"checkpoint {path} does not record {', '.join(missing)}; give them as --data.init_args.<name>"
        )
    return facts
