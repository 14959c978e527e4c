"""Cost of every diagnostics callback per validation epoch at 5, 19 and 150 classes, against the forward pass.

For each class count ``C`` a validation set of random-rectangle masks (class sizes following a Zipf law,
as in ADE20K; ``C`` long-ish class names) is scored by the quickstart network (U-Net / ResNet-18, random
init, ``C`` outputs) through ``Trainer.validate`` with a TensorBoard logger, the default offline
tracker. The baseline is the validation epoch with no callback: the forward pass, the loss, the
confusion matrix and the module's logging of every per-class score. Then each callback runs alone
(and all of them together) on the same data, and the script prints, per epoch:

- the time spent inside the callback's hooks (wall time of each hook, so it does not move with the
  load on the machine the way the difference of two epoch times does), and that time over the
  baseline epoch; split into the per-batch part (``on_validation_batch_end``, which grows with the
  number of validation images) and the per-epoch part (every other hook: tables, figures handed to
  the background process, logging), and the wait at the end of the stage (``teardown``) for the
  figures still being drawn — a fit pays that once, at its end, not every epoch;
- the bytes the callback wrote under ``diagnostics/`` (its PNG / CSV / JSON files) and the growth of
  the TensorBoard event file.

``ClassDistribution`` runs once per fit (``on_fit_start``), not every epoch: its cost is printed apart,
as is ``PredictionGallery``'s choice of rare samples (a scan of every validation mask at the first
validation epoch of a fit): the epochs measured find the samples chosen, as a fit's later epochs do.
Last, for all four together, the number of validation images from which they cost at most 10 % of the
epoch on this machine: per-epoch seconds ÷ (0.1 × baseline seconds per image − per-batch seconds per
image), or "never" when the per-batch part alone exceeds 10 % (:func:`images_at_ten_percent`).
Then the wall time of a short fit (``--fit-epochs``, one training batch each) with all four against
none: the whole cost per epoch, including the background drawing's competition for the CPU.
Figures are drawn in the background process (:mod:`lightning_seg.figures.background`), or in the
training process with ``--figures inline``. ``--threads 1`` gives torch one core fewer than this
2-core machine has, so that the background drawing finds an idle core, as it does beside a GPU run
(whose CPU mostly waits). Targets at 150 classes: every callback together under 10 % of a validation
epoch, under 1 MB of figures per epoch.

    python benchmarks/diagnostics.py [--classes 5 19 150] [--num-val 32] [--image-size 128] [--repeats 2]
        [--fit-epochs 4] [--figures background|inline] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

os.environ.setdefault("MPLBACKEND", "agg")

import lightning as L  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from lightning_seg.callbacks import (  # noqa: E402
    ClassDistribution,
    ConfusionMatrix,
    LossBreakdown,
    PerClassMetrics,
    PredictionGallery,
)
from lightning_seg.data.base import SampleSource, SegmentationDataModule  # noqa: E402
from lightning_seg.figures.background import MODE_VARIABLE, MODES, figure_drawer  # noqa: E402
from lightning_seg.models import SMPNet  # noqa: E402
from lightning_seg.module import SegmentationModule  # noqa: E402

HOOKS = (
    "setup",
    "on_fit_start",
    "on_validation_epoch_start",
    "on_validation_batch_end",
    "on_validation_epoch_end",
    "on_validation_end",
    "teardown",
)
PER_BATCH_HOOK = "on_validation_batch_end"
#: Where the diagnostics wait for the figures still being drawn in the background (at the end of a stage).
WAIT_HOOK = "teardown"
PER_EPOCH = {
    "PerClassMetrics": PerClassMetrics,
    "ConfusionMatrix": ConfusionMatrix,
    "PredictionGallery": PredictionGallery,
    "LossBreakdown": LossBreakdown,
}


class ZipfSource(SampleSource):
    """Random images with masks of random rectangles; class ``c`` is drawn with probability ∝ 1 / (c + 1)."""

    def __init__(self, num_samples: int, num_classes: int, size: int, seed: int) -> None:
        if size % 16:
            raise ValueError(f"--image-size must be a multiple of 16, got {size}")
        self.num_samples, self.num_classes, self.size, self.seed = num_samples, num_classes, size, seed

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        rng = np.random.default_rng((self.seed, index))
        weights = 1.0 / np.arange(1, self.num_classes + 1)
        mask = np.zeros((self.size, self.size), np.uint8)
        for c in rng.choice(self.num_classes, size=24, p=weights / weights.sum()):
            top, left = rng.integers(0, self.size - 4, 2)
            height, width = rng.integers(4, self.size // 2, 2)
            mask[top : top + height, left : left + width] = c
        # Photograph-like pixels (flat regions, smooth texture, mild noise), so that encoded sizes are
        # those of real images rather than of white noise.
        colours = np.random.default_rng(self.seed).uniform(40, 215, (self.num_classes, 3))
        texture = np.kron(rng.normal(0, 25, (self.size // 16, self.size // 16, 1)), np.ones((16, 16, 1)))
        pixels = colours[mask] + texture + rng.normal(0, 4, (self.size, self.size, 3))
        return pixels.clip(0, 255).astype(np.uint8), mask, f"sample_{index:05d}"


class ZipfDataModule(SegmentationDataModule):
    """``num_classes`` classes named ``category_<c>``; train and val splits of :class:`ZipfSource`."""

    def __init__(self, num_classes: int, num_train: int, num_val: int, size: int, batch_size: int) -> None:
        super().__init__(batch_size=batch_size)
        self.class_names = tuple(f"category_{c:03d}" for c in range(num_classes))
        self.sizes, self.size = {"train": num_train, "val": num_val}, size

    def build_source(self, split: str) -> SampleSource | None:
        if split not in self.sizes:
            return None
        return ZipfSource(self.sizes[split], self.num_classes, self.size, seed=len(split))


class HookTimer:
    """Adds up the wall time of the hooks it wraps: the per-batch hook and the final wait apart from the others."""

    def __init__(self) -> None:
        self.per_batch = 0.0
        self.per_epoch = 0.0
        self.wait = 0.0

    @property
    def seconds(self) -> float:
        return self.per_batch + self.per_epoch

    def wrap(self, callback: L.Callback) -> L.Callback:
        for name in HOOKS:
            hook = getattr(callback, name)
            part = {PER_BATCH_HOOK: "per_batch", WAIT_HOOK: "wait"}.get(name, "per_epoch")

            @functools.wraps(hook)
            def timed(*args, _hook=hook, _part=part, **kwargs):  # noqa: ANN002, ANN003, ANN202
                start = time.perf_counter()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    setattr(self, _part, getattr(self, _part) + time.perf_counter() - start)

            setattr(callback, name, timed)
        return callback


def images_at_ten_percent(fixed: float, per_batch: float, base: float, num_images: int) -> str:
    """Validation images from which the callbacks cost at most 10 % of the epoch (``"never"`` if no count does).

    The callbacks cost ``fixed + n · b`` seconds for ``n`` images and the epoch ``n · e`` (``b`` the
    callbacks' per-batch seconds per image, ``e`` the baseline epoch's seconds per image, both measured
    on ``num_images``), so ``n = fixed / (0.1 · e − b)``. The baseline holds the module's own
    per-epoch work too, so ``e`` is a little high for a large ``n`` and the count a little low.
    """
    margin = 0.1 * base / num_images - per_batch / num_images
    return "never" if margin <= 0 else f"{math.ceil(fixed / margin):,}"


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file())


def validate_once(
    module: SegmentationModule, datamodule: ZipfDataModule, callbacks: list[L.Callback], root: Path, accelerator: str
) -> dict[str, float]:
    """One validation epoch; returns its wall time, the time in the callbacks' hooks and the bytes written."""
    timer = HookTimer()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        default_root_dir=root,
        logger=TensorBoardLogger(root, name="tensorboard"),
        callbacks=[timer.wrap(c) for c in callbacks],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.validate(module, datamodule, verbose=False)
    return {
        "epoch": time.perf_counter() - start,
        "hooks": timer.seconds,
        "per_batch": timer.per_batch,
        "per_epoch": timer.per_epoch,
        "wait": timer.wait,
        "files": folder_bytes(root, "diagnostics/**/*.*"),
        "figures": folder_bytes(root, "diagnostics/**/*.png") + folder_bytes(root, "diagnostics/**/*.jpg"),
        "tensorboard": folder_bytes(root / "tensorboard", "events.out.tfevents*"),
    }


def fit_seconds(
    module: SegmentationModule,
    datamodule: ZipfDataModule,
    callbacks: list[L.Callback],
    root: Path,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """Wall seconds of a fit of ``args.fit_epochs`` epochs (one training batch and the validation set each).

    What a fit pays for the callbacks, all included: the figures drawn in the background compete with
    the next epoch for the CPU, and the fit's end waits for the last ones; that wait (seconds in the
    callbacks' ``teardown``, paid once per fit) is the second number returned.
    """
    timer = HookTimer()
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        default_root_dir=root,
        logger=TensorBoardLogger(root, name="tensorboard"),
        callbacks=[timer.wrap(c) for c in callbacks],
        max_epochs=args.fit_epochs,
        limit_train_batches=1,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule)
    return time.perf_counter() - start, timer.wait


def fit_start_cost(datamodule: ZipfDataModule, module: SegmentationModule, root: Path) -> tuple[float, int]:
    """Seconds and bytes of ``ClassDistribution.on_fit_start`` (statistics already scanned, as at setup)."""
    callback = ClassDistribution()
    logger = TensorBoardLogger(root, name="tensorboard")
    trainer = SimpleNamespace(
        datamodule=datamodule, loggers=[logger], is_global_zero=True, global_step=0, log_dir=str(root)
    )
    callback._root = root / "diagnostics"
    start = time.perf_counter()
    callback.on_fit_start(trainer, module)
    seconds = time.perf_counter() - start
    figure_drawer().collect(until=0)  # the figure drawn in the background, to count its bytes
    return seconds, folder_bytes(root / "diagnostics")


def gallery_selection_cost(datamodule: ZipfDataModule, root: Path) -> tuple[float, list[str]]:
    """Seconds of ``PredictionGallery``'s choice of rare samples (a scan of every validation mask) and the choice.

    A fit makes it once, at its first validation epoch; the epochs measured here reuse it, as later
    epochs of a fit do, so that the per-epoch column holds only what every epoch costs.
    """
    callback = PredictionGallery()
    callback._root = root / "diagnostics"
    start = time.perf_counter()
    selection = callback._select(SimpleNamespace(datamodule=datamodule, lightning_module=None))
    return time.perf_counter() - start, selection


def later_epoch(make: type[L.Callback], selection: list[str]) -> L.Callback:
    """A new callback of class ``make`` in the state a fit's later epochs find it: the gallery's samples chosen."""
    callback = make()
    if isinstance(callback, PredictionGallery):
        callback.selection = list(selection)
    return callback


def measure(num_classes: int, args: argparse.Namespace, tmp: Path) -> None:
    L.seed_everything(0, verbose=False)
    datamodule = ZipfDataModule(num_classes, args.num_train, args.num_val, args.image_size, args.batch_size)
    module = SegmentationModule(
        net=functools.partial(SMPNet, arch="Unet", encoder_name="resnet18", encoder_weights=None),
        num_classes=num_classes,
        class_names=datamodule.class_names,
    )
    _ = datamodule.class_stats  # scanned once at the start of a fit (the module's setup)
    datamodule.setup("validate")
    selection_seconds, selection = gallery_selection_cost(datamodule, tmp / f"c{num_classes}_selection")
    runs = {"baseline (no callback)": list}
    runs.update({n: (lambda c=c: [later_epoch(c, selection)]) for n, c in PER_EPOCH.items()})
    runs["all four together"] = lambda: [later_epoch(c, selection) for c in PER_EPOCH.values()]
    # Warm-up with every callback, so that no callback's row pays for matplotlib's first figure and fonts.
    validate_once(module, datamodule, runs["all four together"](), tmp / f"c{num_classes}_warmup", args.accelerator)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name, make in runs.items():
            root = tmp / f"c{num_classes}_{repeat}_{len(results[name])}_{name.split()[0]}"
            results[name].append(validate_once(module, datamodule, make(), root, args.accelerator))
    base = statistics.median(r["epoch"] for r in results["baseline (no callback)"])
    base_tb = statistics.median(r["tensorboard"] for r in results["baseline (no callback)"])
    print(f"\nC = {num_classes}: {args.num_val} val images of {args.image_size}², batch {args.batch_size}; "
          "baseline validation epoch (forward + loss + confusion matrix + the module's logging) "
          f"{base:.2f} s (median of {args.repeats})")
    print("| callback | s in hooks per epoch | × val epoch | per-batch s | per-epoch s | wait at the end s | "
          "figures (PNG, JPEG) bytes | all files bytes | TensorBoard bytes added |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in list(results.items())[1:]:
        hooks, per_batch, per_epoch, wait = (median(rows, k) for k in ("hooks", "per_batch", "per_epoch", "wait"))
        tensorboard = statistics.median(r["tensorboard"] for r in rows) - base_tb
        print(f"| {name} | {hooks:.3f} | {hooks / base:.3f} | {per_batch:.3f} | {per_epoch:.3f} | {wait:.3f} "
              f"| {rows[0]['figures']:,} | {rows[0]['files']:,} | {tensorboard:,.0f} |")
    seconds, written = fit_start_cost(datamodule, module, tmp / f"c{num_classes}_distribution")
    print(f"| ClassDistribution (once per fit) | {seconds:.3f} | {seconds / base:.3f} | | {seconds:.3f} | "
          f"| {written:,} (all files) | | |")
    print(f"| PredictionGallery's choice of samples (once per fit) | {selection_seconds:.3f} "
          f"| {selection_seconds / base:.3f} | | {selection_seconds:.3f} | | | | |")
    together = results["all four together"]
    per_batch, per_epoch = median(together, "per_batch"), median(together, "per_epoch")
    print(f"All four together cost 10 % of the validation epoch from "
          f"{images_at_ten_percent(per_epoch, per_batch, base, args.num_val)} validation images on this machine "
          f"(per-epoch {per_epoch:.3f} s, per-batch {per_batch / args.num_val * 1000:.2f} ms per image; "
          f"baseline {base / args.num_val * 1000:.1f} ms per image)")
    if args.fit_epochs:
        # A first fit pays for one-off set-up (the training split, the optimiser): not counted.
        fit_seconds(module, datamodule, runs["all four together"](), tmp / f"c{num_classes}_fit_warmup", args)
        fits: dict[str, list[float]] = {"baseline": [], "all four": []}
        waits: list[float] = []
        for repeat in range(args.repeats):
            for name, make in (("baseline", runs["baseline (no callback)"]), ("all four", runs["all four together"])):
                root = tmp / f"c{num_classes}_fit_{repeat}_{name.split()[0]}"
                seconds, wait = fit_seconds(module, datamodule, make(), root, args)
                fits[name].append(seconds)
                if name == "all four":
                    waits.append(wait)
        whole = statistics.median(fits["all four"]) - statistics.median(fits["baseline"])
        wait = statistics.median(waits)
        added, steady = whole / args.fit_epochs, (whole - wait) / args.fit_epochs
        print(f"Fit of {args.fit_epochs} epochs (1 training batch and the {args.num_val} validation images each), "
              f"median of {args.repeats}: baseline {statistics.median(fits['baseline']):.2f} s, all four "
              f"{statistics.median(fits['all four']):.2f} s: {added:+.3f} s per epoch = {added / base:.3f} × the "
              f"validation epoch (wall time, drawing in the background competing for the CPU included); of the "
              f"difference, {wait:.2f} s is the fit's end waiting for its last figures (once per fit), the rest "
              f"{steady:+.3f} s per epoch = {steady / base:.3f} × the validation epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[5, 19, 150])
    parser.add_argument("--num-val", type=int, default=32, help="validation images")
    parser.add_argument("--num-train", type=int, default=32, help="training images (class statistics)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="validation epochs per configuration")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--fit-epochs", type=int, default=4, help="epochs of the fit measured whole (0: none)")
    parser.add_argument(
        "--figures", choices=MODES, default="background", help="where figures are drawn (LIGHTNING_SEG_FIGURES)"
    )
    args = parser.parse_args()
    os.environ[MODE_VARIABLE] = args.figures
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"figures drawn: {args.figures}; torch CPU threads: {torch.get_num_threads()} of {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for num_classes in args.classes:
            measure(num_classes, args, Path(tmp))


if __name__ == "__main__":
    main()
