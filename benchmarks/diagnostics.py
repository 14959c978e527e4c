"""Epoch time of a quickstart-sized run with and without the diagnostics callbacks, in the same process.

The model and data come from ``experiments/quickstart.yaml`` (SyntheticDataModule, SMPNet); every run
uses CSV and TensorBoard loggers under a temporary directory. Runs alternate (baseline, diagnostics,
baseline, ...) so that drift in machine load hits both alike. The first epoch of every run is left out of
the per-epoch figures (it holds the one-off work: data statistics, gallery selection, warm-up).

Two ratios are printed:

- *with / without*: median epoch time of the diagnostics runs over that of the baseline runs;
- *in-run*: within the diagnostics runs, epoch time over epoch time minus the time spent inside the
  diagnostics callbacks' hooks. This one is measured on the same epochs, so it does not move when other
  processes load the machine (on a shared machine the first ratio can swing by more than the overhead).

    python benchmarks/diagnostics.py --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("MPLBACKEND", "agg")

import lightning as L  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from lightning_seg.callbacks import (  # noqa: E402
    ClassDistribution,
    ConfusionMatrix,
    LossBreakdown,
    PerClassMetrics,
    PredictionGallery,
)
from lightning_seg.data.synthetic import SyntheticDataModule  # noqa: E402
from lightning_seg.models import SMPNet  # noqa: E402
from lightning_seg.module import SegmentationModule  # noqa: E402

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
HOOKS = (
    "setup",
    "on_fit_start",
    "on_validation_epoch_start",
    "on_validation_batch_end",
    "on_validation_epoch_end",
    "on_validation_end",
)


class EpochTimer(L.Callback):
    """Wall time of each training epoch (validation included) and of the timed hooks within it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.hook_times: list[float] = []
        self._hooks = 0.0

    def timed(self, hook):  # noqa: ANN001, ANN201 (a bound method in, a wrapper out)
        """Wrap a callback's hook so that its wall time is added to the current epoch's hook time."""

        @functools.wraps(hook)
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                self._hooks += time.perf_counter() - start

        return wrapper

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hooks = 0.0
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)
        self.hook_times.append(self._hooks)


def fit_once(config: dict, epochs: int, diagnostics: bool, root: Path, accelerator: str) -> EpochTimer:
    """One quickstart-sized fit; returns its timer."""
    L.seed_everything(0, verbose=False)
    datamodule = SyntheticDataModule(**config["data"]["init_args"])
    net_args = config["model"]["init_args"]["net"]["init_args"]
    module = SegmentationModule(
        net=functools.partial(SMPNet, **net_args),
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
    )
    timer = EpochTimer()
    callbacks: list[L.Callback] = [timer]
    if diagnostics:
        callbacks += [
            ClassDistribution(),
            PerClassMetrics(),
            ConfusionMatrix(),
            PredictionGallery(),
            LossBreakdown(),
        ]
        for callback in callbacks[1:]:
            for hook in HOOKS:
                setattr(callback, hook, timer.timed(getattr(callback, hook)))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        default_root_dir=root,
        logger=[CSVLogger(root, name="csv"), TensorBoardLogger(root, name="tensorboard")],
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule)
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (at least 2)")
    parser.add_argument("--repeats", type=int, default=1, help="baseline/diagnostics pairs")
    parser.add_argument("--num-train", type=int, help="override the quickstart's training images")
    parser.add_argument("--num-workers", type=int, help="override the quickstart's loader workers")
    parser.add_argument("--accelerator", default="auto")
    args = parser.parse_args()
    if args.epochs < 2:
        raise ValueError(
            f"--epochs must be at least 2 (the first epoch is reported apart), got {args.epochs}"
        )
    config = yaml.safe_load(QUICKSTART.read_text())
    overrides = {"num_train": args.num_train, "num_workers": args.num_workers}
    config["data"]["init_args"].update({k: v for k, v in overrides.items() if v is not None})
    print(f"data: {config['data']['init_args']}")
    epochs: dict[bool, list[float]] = {False: [], True: []}
    in_run: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for diagnostics in (False, True):
                label = "diagnostics" if diagnostics else "baseline"
                timer = fit_once(
                    config, args.epochs, diagnostics, Path(tmp) / f"{label}_{repeat}", args.accelerator
                )
                epochs[diagnostics] += timer.times[1:]
                if diagnostics:
                    in_run += [
                        t / (t - h) for t, h in zip(timer.times[1:], timer.hook_times[1:], strict=True)
                    ]
                hooks = (
                    f", in diagnostics hooks {[round(h, 2) for h in timer.hook_times]} s"
                    if diagnostics
                    else ""
                )
                print(f"{label:<11} run {repeat}: epochs {[round(t, 2) for t in timer.times]} s{hooks}")
    base, diag = statistics.median(epochs[False]), statistics.median(epochs[True])
    print(f"median epoch (after the first): baseline {base:.2f} s, with diagnostics {diag:.2f} s")
    print(f"ratio with / without: {diag / base:.3f}")
    print(f"ratio in-run (epoch / epoch minus diagnostics hooks), median: {statistics.median(in_run):.3f}")


if __name__ == "__main__":
    main()
