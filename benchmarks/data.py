"""Is the input pipeline faster than decoding? Loader images/s against decode-only, in one run, one thread.

Writes a Cityscapes-like dataset (2048×1024 PNG images and labelIds masks, official layout) to a temporary
folder, then measures, in one process with one OpenCV/torch thread:

- decode-only: ``cv2.imread`` of each image and its mask, nothing else (the baseline);
- the training loader of ``CityscapesDataModule`` (default pipeline: random rescale 0.5–2 + pad + 512×1024
  crop in one resampling, flip, brightness/contrast, normalisation, collation), 0 workers, so its rate
  is the rate of one worker, without and with ``cache: raw`` (decoded memory-mapped arrays, built first
  and not timed);

and prints each rate and its ratio to decode-only. Target: loader with the cache ≥ 2× decode-only.

    python benchmarks/data.py [--images 12] [--epochs 3] [--batch-size 2]
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

HEIGHT, WIDTH = 1024, 2048
CROP = (512, 1024)


def write_dataset(root: Path, count: int) -> list[tuple[Path, Path]]:
    """Smooth street-like images (so PNGs compress like photos) with blocky labelIds masks; one val image."""
    rng = np.random.default_rng(0)
    label_ids = np.array([7, 8, 11, 21, 23, 24, 26, 0, 3])
    pairs = []
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
        image_path, mask_path = images / f"{name}_leftImg8bit.png", masks / f"{name}_gtFine_labelIds.png"
        Image.fromarray(image).save(image_path)
        Image.fromarray(labels).save(mask_path)
        if split == "train":
            pairs.append((image_path, mask_path))
    return pairs


def decode_only(pairs: list[tuple[Path, Path]], epochs: int) -> float:
    """Images per second of decoding each image and its mask with OpenCV, nothing else."""
    start = time.perf_counter()
    for _ in range(epochs):
        for image, mask in pairs:
            cv2.imread(str(image), cv2.IMREAD_COLOR)
            cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
    return epochs * len(pairs) / (time.perf_counter() - start)


def loader_rate(root: Path, epochs: int, batch_size: int, cache: str | None) -> float:
    """Images per second of the training loader with 0 workers (one process), after one untimed batch."""
    datamodule = CityscapesDataModule(root, crop_size=CROP, batch_size=batch_size, num_workers=0, cache=cache)
    datamodule.setup("fit")  # builds the decoded cache when asked (not timed)
    next(iter(datamodule.train_dataloader()))
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in datamodule.train_dataloader():
            seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the images per measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"one thread; CPU cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LIGHTNING_SEG_CACHE"] = str(root / "cache")
        pairs = write_dataset(root / "data", args.images)
        decode = decode_only(pairs, args.epochs)
        plain = loader_rate(root / "data", args.epochs, args.batch_size, cache=None)
        cached = loader_rate(root / "data", args.epochs, args.batch_size, cache="raw")
        decode_again = decode_only(pairs, args.epochs)  # the machine's load drifts: bracket the loader runs
    baseline = (decode + decode_again) / 2
    print(f"{args.images} images {WIDTH}×{HEIGHT} PNG, {CROP[0]}×{CROP[1]} crops, batch {args.batch_size}, "
          f"{args.epochs} epochs per measurement")  # fmt: skip
    print(f"  decode-only (cv2.imread image + mask): {decode:6.2f} and {decode_again:6.2f} images/s")
    print(f"  loader, no cache:                       {plain:6.2f} images/s = {plain / baseline:4.2f}× decode-only")
    print(f"  loader, cache: raw:                     {cached:6.2f} images/s = {cached / baseline:4.2f}× decode-only")


if __name__ == "__main__":
    main()
