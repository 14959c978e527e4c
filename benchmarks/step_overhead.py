"""Time of a training step through SegmentationModule + Lightning versus a hand-written PyTorch loop.

Same network (U-Net / ResNet-18), same data (synthetic batches already in memory), same optimizer
(AdamW), same loss (cross-entropy), in the same process, runs interleaved in pairs. Prints both times
and the median paired ratio; target: Lightning overhead under 5 %.

    python benchmarks/step_overhead.py [--steps 30] [--image-size 128] [--batch-size 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from lightning import LightningDataModule, Trainer
from torch.utils.data import DataLoader, Dataset

from lightning_seg.data import SyntheticDataModule
from lightning_seg.models import SMPNet
from lightning_seg.module import SegmentationModule


class InMemory(Dataset):
    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        return self.batches[index]


class Batches(LightningDataModule):
    def __init__(self, batches: list[dict]) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(InMemory(self.batches), batch_size=None, shuffle=False)


def make_batches(steps: int, image_size: int, batch_size: int) -> list[dict]:
    dm = SyntheticDataModule(num_train=steps * batch_size, image_size=image_size, batch_size=batch_size)
    dm.setup("fit")
    loader = DataLoader(dm.datasets["train"], batch_size=batch_size)
    return [{"image": b["image"], "mask": b["mask"]} for b in loader][:steps]


def plain_loop(batches: list[dict], device: torch.device) -> float:
    torch.manual_seed(0)
    net = SMPNet(5).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    start = None
    for index, batch in enumerate(batches):
        if index == 1:  # the first step pays one-off allocation costs
            _sync(device)
            start = time.perf_counter()
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        loss = F.cross_entropy(net(image)["logits"], mask, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / (len(batches) - 1)


class StepTimer:
    """Time from the end of the first training batch to the end of the last one."""

    def __init__(self) -> None:
        self.start = self.end = 0.0

    def __call__(self, batch_idx: int, device: torch.device) -> None:
        _sync(device)
        if batch_idx == 0:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def lightning_loop(batches: list[dict], device: torch.device) -> float:
    torch.manual_seed(0)
    model = SegmentationModule(net=SMPNet, num_classes=5, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3))
    timer = StepTimer()
    model.on_train_batch_end = lambda outputs, batch, batch_idx: timer(batch_idx, device)
    trainer = Trainer(
        max_epochs=1,
        accelerator=device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=1,
    )
    trainer.fit(model, Batches(batches))
    return (timer.end - timer.start) / (len(batches) - 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = make_batches(args.steps, args.image_size, args.batch_size)
    plain, lightning = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        plain.append(plain_loop(batches, device))
        lightning.append(lightning_loop(batches, device))
    ratios = sorted(lit / ref for ref, lit in zip(plain, lightning, strict=True))
    ratio = statistics.median(ratios)
    print(f"device: {device}, batch {args.batch_size}×3×{args.image_size}², {args.steps} steps, {args.repeats} pairs")
    for name, times in (("plain PyTorch loop", plain), ("SegmentationModule", lightning)):
        print(f"{name}: {1000 * min(times):7.1f} ms/step best, {1000 * statistics.median(times):7.1f} median")
    print(f"ratio (Lightning / plain), median of paired runs: {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f} %)")
    print(f"paired ratios: {', '.join(f'{r:.3f}' for r in ratios)}; of best times: {min(lightning) / min(plain):.3f}")


if __name__ == "__main__":
    main()
