"""Loss speed relative to plain cross-entropy, and distance-map throughput (scipy vs OpenCV).

Prints, for ``4×C×256×256`` logits (C = 5 and 19), the forward+backward time of every loss divided by
that of :class:`~lightning_seg.losses.CrossEntropyLoss` measured in the same run, with the targets
(region losses ≤ 2×, boundary loss with a precomputed map ≤ 1.5×); then signed distance maps per second
per worker for scipy's and OpenCV's exact transforms, against the samples per second one training step
of the quickstart network (U-Net, ResNet-18) consumes; and how far the binned Lovász-Softmax (default bins)
and smp's float32 sort are from a float64 sort, in value and in gradient.

    python benchmarks/losses.py [--device cpu|cuda] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import segmentation_models_pytorch as smp
import torch
from lightning import Callback, Trainer
from scipy.ndimage import distance_transform_edt

import lightning_seg.losses as L
from lightning_seg.losses.distance import signed_distance_map

SIZE = 256
BATCH = 4
REGION = {"DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalTverskyLoss", "LovaszSoftmaxLoss"}
TARGETS = {**dict.fromkeys(REGION, 2.0), "LovaszSoftmaxLoss per image": 2.0, "BoundaryLoss": 1.5}


def blob_masks(num_classes: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` masks ``SIZE×SIZE`` of random rectangles and discs, every class present, 1 % ignored."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = np.zeros((count, SIZE, SIZE), dtype=np.uint8)
    for mask in masks:
        for k in range(1, num_classes):
            for _ in range(3):
                y, x, r = rng.integers(0, SIZE), rng.integers(0, SIZE), rng.integers(4, SIZE // 6)
                if rng.random() < 0.5:
                    mask[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = k
                else:
                    mask[y : y + r, x : x + 2 * r] = k
        mask[rng.random((SIZE, SIZE)) < 0.01] = 255
    return masks


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, float]:
    """Fastest seconds of each function over ``repeats`` rounds after one warm-up.

    The functions run interleaved, round after round, and the minimum is kept: on a shared machine that
    is the least disturbed estimate, and every function sees the same disturbances.
    """
    best = dict.fromkeys(fns, float("inf"))
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def loss_ratios(num_classes: int, device: str, repeats: int) -> None:
    masks = blob_masks(num_classes, BATCH)
    target = torch.from_numpy(masks).long().to(device)
    dist_map = torch.from_numpy(np.stack([signed_distance_map(m, num_classes) for m in masks])).to(device)
    logits = torch.randn(BATCH, num_classes, SIZE, SIZE, device=device, requires_grad=True)
    embeddings = torch.randn(BATCH, 8, SIZE, SIZE, device=device, requires_grad=True)
    presence = torch.randn(BATCH, num_classes, device=device, requires_grad=True)
    losses: dict[str, tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]] = {
        name: (getattr(L, name)(), lambda loss: loss(logits, target))
        for name in ("CrossEntropyLoss", "FocalLoss", "OhemCrossEntropyLoss", "TopKLoss", *sorted(REGION))
    }
    losses["LovaszSoftmaxLoss per image"] = (L.LovaszSoftmaxLoss(per_image=True), lambda loss: loss(logits, target))
    for name in ("BoundaryLoss", "HausdorffDTLoss"):
        losses[name] = (getattr(L, name)(), lambda loss: loss(logits, dist_map, target))
    losses["SemanticEncodingLoss"] = (L.SemanticEncodingLoss(), lambda loss: loss(presence, target))
    losses["DiscriminativeLoss"] = (L.DiscriminativeLoss(), lambda loss: loss(embeddings, target))

    def step(loss: torch.nn.Module, call: Callable[[torch.nn.Module], torch.Tensor]) -> None:
        call(loss).backward()

    for loss, _ in losses.values():
        loss.bind_dataset(num_classes, 255)
        loss.to(device)
    times = timed({name: lambda lc=lc: step(*lc) for name, lc in losses.items()}, repeats, device)
    base = times["CrossEntropyLoss"]
    print(f"\n{BATCH}×{num_classes}×{SIZE}×{SIZE} on {device}: cross-entropy forward+backward {base * 1e3:.1f} ms")
    print(f"{'loss':<28}{'ms':>9}{'× CE':>8}  target")
    for name, seconds in times.items():
        target_ratio = TARGETS.get(name)
        verdict = (
            "" if target_ratio is None else f"≤ {target_ratio}× {'met' if seconds / base <= target_ratio else 'MISSED'}"
        )
        print(f"{name:<28}{seconds * 1e3:>9.1f}{seconds / base:>8.2f}  {verdict}")


def sorted_lovasz_float64(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Berman et al.'s Algorithm 1 (one sort per present class) in float64, differentiable: the reference."""
    valid = target != 255
    probs, labels = logits.double().softmax(1).movedim(1, -1)[valid], target[valid]
    losses = []
    for k in labels.unique():
        truth = (labels == k).double()
        errors, order = (truth - probs[:, k]).abs().sort(descending=True)
        truth = truth[order]
        jaccard = 1 - (truth.sum() - truth.cumsum(0)) / (truth.sum() + (1 - truth).cumsum(0))
        losses.append(errors @ torch.cat([jaccard[:1], jaccard.diff()]))
    return torch.stack(losses).mean()


def lovasz_accuracy(num_classes: int, device: str) -> None:
    masks = blob_masks(num_classes, BATCH, seed=2)
    target = torch.from_numpy(masks).long().to(device)
    logits = 2 * torch.randn(BATCH, num_classes, SIZE, SIZE, device=device)
    ours = L.LovaszSoftmaxLoss()
    ours.bind_dataset(num_classes, 255)
    candidates = {
        "reference": sorted_lovasz_float64,
        f"binned, {ours.bins} bins": ours,
        "smp (float32 sort)": smp.losses.LovaszLoss("multiclass", ignore_index=255),
    }
    results = {}
    for name, loss in candidates.items():
        x = logits.clone().requires_grad_(True)
        value = loss(x, target)
        results[name] = (value.item(), torch.autograd.grad(value, x)[0].double())
    value, grad = results.pop("reference")
    for name, (other_value, other_grad) in results.items():
        print(
            f"Lovász C={num_classes}, {name}: |value − float64 sort| {abs(other_value - value):.1e}, "
            f"gradient L1 error {(other_grad - grad).abs().sum() / grad.abs().sum():.1e} (relative)"
        )


def lovasz_small_batches(device: str, repeats: int, num_classes: int = 5) -> None:
    """Binned vs sorted Lovász-Softmax against a float64 sort as the labelled-pixel count shrinks.

    Near-uniform logits (``0.001·N(0, 1)``, a network at initialisation) put every error in a few bins;
    that is where binning is least accurate. Also times both evaluations, to choose ``exact_below``.
    """
    binned = L.LovaszSoftmaxLoss(exact_below=0)
    smp_sort = smp.losses.LovaszLoss("multiclass", ignore_index=255)
    for side in (8, 16, 32, 64, 128, 256):
        # Uniformly random labels: every class present even on the smallest images.
        target = torch.randint(0, num_classes, (1, side, side), device=device)
        for scale in (2.0, 1e-3):
            logits = scale * torch.randn(1, num_classes, side, side, device=device)
            x = logits.clone().requires_grad_(True)
            reference = sorted_lovasz_float64(x, target)
            ref_grad = torch.autograd.grad(reference, x)[0]
            row = []
            for name, loss in {"binned": binned, "smp sort": smp_sort}.items():
                x = logits.clone().requires_grad_(True)
                value = loss(x, target)
                grad = torch.autograd.grad(value, x)[0].double()
                error = (grad - ref_grad).abs()
                row.append(
                    f"{name}: value {abs(value.item() - reference.item()):.1e}, gradient L1 "
                    f"{error.sum() / ref_grad.abs().sum():.1e}, worst pixel {error.max() / ref_grad.abs().max():.1e}"
                )
            print(f"Lovász {side}×{side} ({side * side} px), logits {scale}·N(0,1): " + "; ".join(row))
        logits = torch.randn(1, num_classes, side, side, device=device, requires_grad=True)
        seconds = timed(
            {
                name: lambda loss=loss, x=logits, t=target: torch.autograd.grad(loss(x, t), x)
                for name, loss in {"binned": binned, "sort": smp_sort}.items()
            },
            repeats,
            device,
        )
        print(f"  time {side * side} px: binned {seconds['binned'] * 1e3:.2f} ms, sort {seconds['sort'] * 1e3:.2f} ms")


def scipy_signed_distance_map(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """The same map with scipy's exact transform (the reference)."""
    out = np.zeros((num_classes, *mask.shape), dtype=np.float32)
    valid = mask != 255
    for k in range(num_classes):
        inside = mask == k
        if inside.any() and not inside.all():
            out[k] = distance_transform_edt(~inside) * ~inside - (distance_transform_edt(inside) - 1) * inside
    out[:, ~valid] = 0
    return out


def distance_throughput(num_classes: int, repeats: int) -> None:
    masks = blob_masks(num_classes, 8, seed=1)
    fns = {"scipy": scipy_signed_distance_map, "opencv": signed_distance_map}
    seconds = timed({k: lambda fn=fn: [fn(m, num_classes) for m in masks] for k, fn in fns.items()}, repeats, "cpu")
    rates = {name: len(masks) / s for name, s in seconds.items()}
    error = max(
        float(np.abs(signed_distance_map(m, num_classes) - scipy_signed_distance_map(m, num_classes)).max())
        for m in masks
    )
    print(
        f"distance maps {SIZE}×{SIZE}, C={num_classes}: scipy {rates['scipy']:.0f}/s, opencv "
        f"{rates['opencv']:.0f}/s per worker ({rates['opencv'] / rates['scipy']:.1f}×), max |diff| {error:.1e}"
    )


def training_rate(num_classes: int, device: str, repeats: int) -> float:
    """Samples per second of one forward+backward of the quickstart network at ``SIZE×SIZE``."""
    from lightning_seg.models import SMPNet

    net = SMPNet(num_classes).to(device)
    images = torch.randn(BATCH, 3, SIZE, SIZE, device=device)
    target = torch.randint(0, num_classes, (BATCH, SIZE, SIZE), device=device)
    loss = L.CrossEntropyLoss()
    seconds = timed({"step": lambda: loss(net(images)["logits"], target).backward()}, repeats, device)
    return BATCH / seconds["step"]


class _StepTimer(Callback):
    """Wall-clock seconds of every training step (forward, loss, backward, optimizer)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.seconds.append(time.perf_counter() - self._start)


def precision_step_times(device: str, steps: int, warmup: int = 3) -> None:
    """Median training-step time through ``Trainer`` in float32, ``bf16-mixed`` (``16-mixed`` on CUDA too)
    and with ``compile: true``, on the quickstart's synthetic data (8×3×128², 5 classes) with a U-Net /
    ResNet-18 cut to encoder depth 3 (so compiling takes minutes, not tens of minutes, on 2 CPU cores).
    The first ``warmup`` steps (compilation included) are left out.
    """
    from lightning_seg.data import SyntheticDataModule
    from lightning_seg.models import SMPNet
    from lightning_seg.module import SegmentationModule

    runs = {"fp32": ("32-true", False), "bf16-mixed": ("bf16-mixed", False), "fp32 + compile": ("32-true", True)}
    if device == "cuda":
        runs |= {"16-mixed": ("16-mixed", False), "bf16-mixed + compile": ("bf16-mixed", True)}
    medians = {}
    for name, (precision, compile_net) in runs.items():
        torch.manual_seed(0)
        net = partial(SMPNet, arch_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]})
        module = SegmentationModule(net=net, num_classes=5, compile=compile_net, nan_guard=False)
        data = SyntheticDataModule(
            num_train=8 * (steps + warmup), num_val=8, image_size=128, batch_size=8, num_workers=0
        )
        timer = _StepTimer()
        trainer = Trainer(
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=1,
            precision=precision,
            max_steps=steps + warmup,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        trainer.fit(module, datamodule=data)
        medians[name] = float(np.median(timer.seconds[warmup:]))
        print(f"training step, {name}: {medians[name] * 1e3:.0f} ms (median of {len(timer.seconds) - warmup})")
    base = medians["fp32"]
    print("  ratios to fp32: " + ", ".join(f"{k} {v / base:.2f}" for k, v in medians.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    parser.add_argument("--only", choices=["lovasz-small", "precision"], default=None, help="run one section only")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.only == "lovasz-small":
        lovasz_small_batches(args.device, args.repeats)
        return
    if args.only == "precision":
        precision_step_times(args.device, args.steps)
        return
    for num_classes in (5, 19):
        loss_ratios(num_classes, args.device, args.repeats)
    print()
    for num_classes in (5, 19):
        lovasz_accuracy(num_classes, args.device)
    print()
    for num_classes in (5, 19):
        distance_throughput(num_classes, args.repeats)
        print(
            f"  quickstart U-Net/ResNet-18 training consumes {training_rate(num_classes, args.device, 2):.1f} "
            f"samples/s on {args.device}"
        )


if __name__ == "__main__":
    main()
