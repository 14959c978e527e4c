"""Write predicted masks to disk as palette PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image


class PredictionWriter(BasePredictionWriter):
    """Save one PNG per predicted image: pixel values are class indices, colours the dataset palette.

    The file is named after the input (``meta["name"]``), so ``<output_dir>/<name>.png``. The palette
    comes from ``trainer.datamodule.palette`` when it has one, otherwise a fixed colour map.

    Args:
        output_dir: folder to write into (created if missing).
        save_probabilities: also save the softmax probabilities as ``<name>.npy`` (``C×H×W`` float16).
    """

    def __init__(self, output_dir: str | Path = "predictions", save_probabilities: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.save_probabilities = save_probabilities

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
        self.output_dir.mkdir(parents=True, exist_ok=True)
        palette = _flat_palette(getattr(trainer.datamodule, "palette", None) if trainer.datamodule else None)
        preds = prediction["preds"].to("cpu").numpy()
        if preds.max(initial=0) > 255:
            raise ValueError(f"cannot write class index {preds.max()} to an 8-bit PNG; at most 256 classes")
        for index, name in enumerate(prediction["names"]):
            image = Image.fromarray(preds[index].astype(np.uint8), mode="P")
            image.putpalette(palette)
            image.save(self.output_dir / f"{Path(name).stem}.png")
            if self.save_probabilities:
                np.save(self.output_dir / f"{Path(name).stem}.npy", prediction["probs"][index].cpu().half().numpy())


def _flat_palette(palette: Sequence[Sequence[int]] | None) -> list[int]:
    """A 256-entry flat RGB palette: the dataset's colours first, then a deterministic colour map."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (256, 3))
    for index, colour in enumerate(palette or ()):
        colours[index] = colour
    return [int(v) for v in colours.ravel()]
