"""Write predictions to disk: palette PNGs of class indices, colour overlays, class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from lightning_seg.runs import run_directory

PROBABILITY_FORMATS = ("npy", "png")
#: Colour of ``ignore_index`` pixels (as VOC draws its void borders).
IGNORE_COLOUR = (224, 224, 192)


class PredictionWriter(BasePredictionWriter):
    """Save one palette PNG per predicted image, at the image's own size, in a folder no run reuses.

    ``<folder>/<name>.png`` holds class indices (``ignore_index`` where the dataset ignores pixels by
    definition), coloured with the palette the checkpoint carries (else the DataModule's, else a fixed
    colour map). ``<name>`` is the input's name (``meta["name"]``), sub-folders included.

    Each prediction run writes to a fresh folder: ``output_dir`` (default ``<run dir>/predictions``,
    :func:`lightning_seg.runs.run_directory`), or, when that folder already holds
    files, the first free ``<output_dir>_1``, ``<output_dir>_2``, ...; a previous run's predictions are
    never overwritten. After writing a batch, its entry in the returned predictions keeps only the
    ``names`` and the ``files`` written (the logits would hold every image in memory).

    Args:
        output_dir: base folder to write into; default ``<run dir>/predictions``.
        overlay: also write ``<name>_overlay.png``, the input image blended with the coloured prediction.
        alpha: opacity of the prediction in the overlay.
        probabilities: also write class probabilities: ``npy`` (``<name>_probs.npy``, ``C×H×W``
            float16) or ``png`` (``<name>_prob_<class>.png``, 16-bit, probability × 65535); ``None``: not.
    """

    def __init__(
        self,
        output_dir: str | Path | None = None,
        overlay: bool = False,
        alpha: float = 0.5,
        probabilities: str | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if probabilities is not None and probabilities not in PROBABILITY_FORMATS:
            raise ValueError(f"probabilities must be one of {PROBABILITY_FORMATS} or null, got '{probabilities}'")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.overlay = overlay
        self.alpha = alpha
        self.probabilities = probabilities
        #: The folder of the current (or last) prediction run.
        self.folder: Path | None = None

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        base = self.output_dir or run_directory(trainer) / "predictions"
        folder = fresh_folder(base) if trainer.is_global_zero else None
        self.folder = Path(trainer.strategy.broadcast(str(folder) if folder else None))
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.folder is None:
            raise RuntimeError("PredictionWriter.write_on_batch_end called before on_predict_start")
        datamodule = trainer.datamodule if trainer.datamodule is not None else None
        palette = getattr(pl_module, "palette", None) or getattr(datamodule, "palette", None)
        ignore_index = int(getattr(pl_module, "ignore_index", 255))
        colours = palette_array(palette, ignore_index)
        class_names = list(getattr(pl_module, "class_names", []))
        written: list[list[str]] = []
        for index, name in enumerate(prediction["names"]):
            stem = self.folder / name
            stem.parent.mkdir(parents=True, exist_ok=True)
            preds = prediction["preds"][index].to("cpu").numpy()
            if preds.max(initial=0) > 255:
                raise ValueError(f"cannot write class index {preds.max()} to an 8-bit PNG; at most 256 classes")
            files = [_with_suffix(stem, ".png")]
            image = Image.fromarray(preds.astype(np.uint8), mode="P")
            image.putpalette([int(v) for v in colours.ravel()])
            image.save(files[0])
            if self.overlay:
                rgb = _input_image(batch, index, preds.shape, pl_module, datamodule)
                blended = (1 - self.alpha) * rgb + self.alpha * colours[preds]
                files.append(_with_suffix(stem, "_overlay.png"))
                Image.fromarray(blended.round().astype(np.uint8)).save(files[-1])
            if self.probabilities is not None:
                probs = prediction["logits"][index].float().softmax(0).to("cpu")
                files += self._write_probabilities(stem, probs, class_names)
            written.append([str(f) for f in files])
        # Keep what the run returns small: the files replace the tensors.
        for key in ("logits", "preds"):
            prediction.pop(key, None)
        prediction["files"] = written

    def _write_probabilities(self, stem: Path, probs: torch.Tensor, class_names: list[str]) -> list[Path]:
        if self.probabilities == "npy":
            path = _with_suffix(stem, "_probs.npy")
            np.save(path, probs.half().numpy())
            return [path]
        names = class_names if len(class_names) == probs.shape[0] else [str(i) for i in range(probs.shape[0])]
        paths = []
        for name, channel in zip(names, probs, strict=True):
            path = _with_suffix(stem, f"_prob_{name}.png")
            Image.fromarray((channel.numpy() * 65535).round().astype(np.uint16)).save(path)
            paths.append(path)
        return paths


def fresh_folder(base: Path) -> Path:
    """``base`` if it is missing or empty, else the first ``<base>_N`` (N = 1, 2, ...) that is."""
    candidate, number = base, 0
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = base.with_name(f"{base.name}_{number}")
    return candidate


def palette_array(palette: Sequence[Sequence[int]] | None, ignore_index: int = 255) -> np.ndarray:
    """A ``256×3`` uint8 colour table: the palette's colours first, then a fixed random colour map.

    ``ignore_index`` gets :data:`IGNORE_COLOUR` unless the palette itself defines that entry.
    """
    colours = np.random.default_rng(0).integers(0, 256, (256, 3)).astype(np.uint8)
    if 0 <= ignore_index < 256:
        colours[ignore_index] = IGNORE_COLOUR
    for index, colour in enumerate(palette or ()):
        colours[index] = colour
    return colours


def _with_suffix(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def _input_image(
    batch: dict[str, Any], index: int, size: tuple[int, ...], pl_module: LightningModule, datamodule: Any
) -> np.ndarray:
    """The input image as the network saw it, un-normalised and resized to ``size``: ``H×W×3`` float 0–255."""
    mean = getattr(pl_module, "mean", None) or getattr(datamodule, "mean", None)
    std = getattr(pl_module, "std", None) or getattr(datamodule, "std", None)
    if mean is None or std is None:
        raise ValueError("overlays need the input normalisation: the model and the DataModule give no mean/std")
    meta = batch.get("meta", {})
    image = batch["image"][index].float()
    if "size" in meta:
        height, width = meta["size"][index].tolist()
        image = image[:, :height, :width]
    image = image * torch.tensor(std).view(-1, 1, 1).to(image) + torch.tensor(mean).view(-1, 1, 1).to(image)
    if tuple(image.shape[-2:]) != tuple(size):
        image = F.interpolate(image[None], size=tuple(size), mode="bilinear")[0]
    return (image.clamp(0, 1) * 255).permute(1, 2, 0).cpu().numpy()
