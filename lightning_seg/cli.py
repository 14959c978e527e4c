"""The ``lightning-seg`` command: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``."""

from __future__ import annotations

import math
import os
from pathlib import Path

from lightning import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from lightning_seg.metrics import SCORES
from lightning_seg.module import SegmentationModule


def configure_wandb_mode() -> None:
    """Run W&B offline unless the user has an API key, so it never prompts for a login or hangs."""
    if "WANDB_MODE" in os.environ:
        return
    netrc = Path.home() / ".netrc"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    if not has_key:
        os.environ["WANDB_MODE"] = "offline"


def format_scores(metrics: dict[str, float], stage: str, class_names: list[str]) -> str:
    """A plain-text table of per-class scores from logged metrics (``<stage>/iou/<name>`` ...)."""

    def cell(key: str) -> str:
        value = metrics.get(key)
        return "   n/a" if value is None or math.isnan(float(value)) else f"{float(value):6.3f}"

    width = max(len("class"), *(len(n) for n in class_names))
    lines = [f"{stage} mIoU: {cell(f'{stage}/miou').strip()}", f"{'class':<{width}}  " + "  ".join(f"{s:>9}" for s in SCORES)]
    for name in class_names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(f'{stage}/{s}/{name}'):>9}" for s in SCORES))
    return "\n".join(lines)


class SegmentationCLI(LightningCLI):
    """LightningCLI that links the dataset's facts into the model and prints per-class scores."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningArgumentParser)
        for key in ("num_classes", "ignore_index", "class_names"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    def _print_scores(self, stage: str) -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        if f"{stage}/miou" in metrics:
            print("\n" + format_scores(metrics, stage, self.model.class_names))

    def after_fit(self) -> None:
        self._print_scores("val")

    def after_test(self) -> None:
        self._print_scores("test")

    def after_validate(self) -> None:
        self._print_scores("val")


def main(args: list[str] | None = None, run: bool = True) -> SegmentationCLI:
    """Entry point of ``lightning-seg``; tests call it in-process with an argument list."""
    configure_wandb_mode()
    return SegmentationCLI(
        SegmentationModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
