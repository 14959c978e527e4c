"""Can data loading keep up with training? Train-pipeline throughput against a model step, same run.

Writes a Cityscapes-like dataset (1024×2048 PNG images and labelIds masks, in the official layout) to a
temporary folder, then measures images/s of ``CityscapesDataModule``'s training loader (PNG decoding,
labelId mapping, random rescale + 512×1024 crop + flip + jitter, normalisation, collation) with 0, 1 and
2 worker processes, printed as ratios to 0 workers, and the time of one training step (forward, backward,
AdamW) of U-Net / ResNet-18 on CPU at the same crop and batch size.

    python benchmarks/data.py [--images 12] [--batch-size 2] [--batches 6] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from lightning_seg.data import CityscapesDataModule
from lightning_seg.models import SMPNet

HEIGHT, WIDTH = 1024, 2048
CROP = (512, 1024)


def write_dataset(root: Path, count: int) -> None:
    """Smooth street-like images (so PNGs compress like photos) with blocky labelIds masks; one val image."""
    rng = np.random.default_rng(0)
    label_ids = np.array([7, 8, 11, 21, 23, 24, 26, 0, 3])
    for index in range(count + 1):
        split, city = ("val", "city9") if index == count else ("train", f"city{index % 2}")
        name = f"{city}_{index:06d}_000019"
        low = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
        image = cv2.resize(low, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        labels = cv2.resize(rng.choice(label_ids, (32, 64)).astype(np.uint8), (WIDTH, HEIGHT), interpolation=0)
        images, masks = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(images / f"{name}_leftImg8bit.png")
        Image.fromarray(labels).save(masks / f"{name}_gtFine_labelIds.png")


def loader_throughput(root: Path, workers: int, batch_size: int, batches: int) -> float:
    """Images per second of the training loader, after its first batch (worker start-up excluded)."""
    datamodule = CityscapesDataModule(root, crop_size=CROP, batch_size=batch_size, num_workers=workers)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    next(loader)
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        try:
            batch = next(loader)
        except StopIteration:
            loader = iter(datamodule.train_dataloader())
            batch = next(loader)
        seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - start)


def model_step_seconds(batch_size: int, num_classes: int, repeats: int = 2) -> float:
    """Seconds per training step of U-Net / ResNet-18 on CPU (after one warm-up step)."""
    net = SMPNet(num_classes=num_classes, arch="Unet", encoder_name="resnet18")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    image = torch.randn(batch_size, 3, *CROP)
    mask = torch.randint(0, num_classes, (batch_size, *CROP))
    times = []
    for step in range(repeats + 1):
        start = time.perf_counter()
        outputs = net(image)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs
        loss = torch.nn.functional.cross_entropy(logits, mask, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6, help="batches timed per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    print(f"torch threads: {torch.get_num_threads()}, CPU cores available: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, args.images)
        rates = {w: loader_throughput(root, w, args.batch_size, args.batches) for w in args.workers}
    step = model_step_seconds(args.batch_size, num_classes=19)
    model_rate = args.batch_size / step
    base = rates[args.workers[0]]
    print(f"train pipeline at {CROP[0]}×{CROP[1]} crops of {HEIGHT}×{WIDTH} PNGs, batch {args.batch_size}:")
    for workers, rate in rates.items():
        print(
            f"  {workers} workers: {rate:6.2f} images/s  ({rate / base:4.2f}× {args.workers[0]} workers, "
            f"{rate / model_rate:5.2f}× the model's consumption)"
        )
    print(f"U-Net/ResNet-18 training step on CPU: {step:.2f} s/step = {model_rate:.2f} images/s")


if __name__ == "__main__":
    main()
