"""Sliding-window inference: its cost over forwarding the same windows alone, and peak memory vs image size.

1. Overhead. One image, cut into the windows :func:`sliding_window_logits` uses; the baseline forwards
   exactly those windows, in the same batches, and keeps nothing. Runs are interleaved in pairs; the
   median paired ratio is printed (target ≤ 1.15: blending and bookkeeping cost at most 15 %).
2. Memory. For each image size, a fresh process forwards one image whole and one through sliding
   windows, and reports the growth of its peak resident memory (CPU; Linux, the peak reset through
   ``/proc/self/clear_refs`` just before) or ``torch.cuda.max_memory_allocated`` (GPU); windowed memory
   should stay flat beyond the window, apart from the image-sized input and logits.

    python benchmarks/inference.py [--image-size 512] [--window 256] [--repeats 7] [--sizes 256 512 1024]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time

import torch

from lightning_seg.inference import Forward, SlidingWindow, sliding_window_logits, window_starts
from lightning_seg.models import SMPNet


def windows_alone(net: Forward, image: torch.Tensor, window: SlidingWindow) -> None:
    """The baseline: forward the windows sliding_window_logits forwards, in the same batches, keep nothing."""
    height, width = window.size  # type: ignore[misc]
    steps = window.steps
    corners = list(
        itertools.product(
            window_starts(image.shape[-2], height, steps[0]), window_starts(image.shape[-1], width, steps[1])
        )
    )
    crops = [image[0, :, t : t + height, c : c + width] for t, c in corners]
    for first in range(0, len(crops), window.window_batch_size):
        net(torch.stack(crops[first : first + window.window_batch_size]))


def logits_of(net: torch.nn.Module) -> Forward:
    """The network's forward reduced to its logits (SMPNet returns a dict)."""

    def forward(image: torch.Tensor) -> torch.Tensor:
        out = net(image)
        return out["logits"] if isinstance(out, dict) else out

    return forward


def timed(function, *args) -> float:  # noqa: ANN001, ANN002
    start = time.perf_counter()
    function(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def overhead(args: argparse.Namespace, device: torch.device) -> None:
    net = logits_of(SMPNet(19).to(device).eval())
    image = torch.randn(1, 3, args.image_size, args.image_size, device=device)
    print(f"overhead: U-Net/ResNet-18, 19 classes, {args.image_size}² image, {args.window}² windows, {device}")
    for blending, accumulate_on in (("gaussian", "device"), ("uniform", "device"), ("gaussian", "cpu")):
        window = SlidingWindow(
            args.window, overlap=0.25, blending=blending, window_batch_size=4, accumulate_on=accumulate_on
        )
        with torch.no_grad():
            windows_alone(net, image, window)  # warm-up
            sliding_window_logits(net, image, window)
            pairs = [
                (timed(sliding_window_logits, net, image, window), timed(windows_alone, net, image, window))
                for _ in range(args.repeats)
            ]
        ratios = [s / b for s, b in pairs]
        sliding, alone = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        print(
            f"  {blending:8s} accumulate_on={accumulate_on:6s} sliding {sliding * 1e3:7.1f} ms  windows alone "
            f"{alone * 1e3:7.1f} ms  median ratio {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )


MEMORY_CHILD = """
import json, sys, torch
from lightning_seg.inference import Forward, SlidingWindow, sliding_window_logits
from lightning_seg.models import SMPNet
size, window, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field))
    return int(line.split()[1]) * 1024
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = SMPNet(19).to(device).eval()
def net(x):
    out = model(x)
    return out["logits"] if isinstance(out, dict) else out
image = torch.randn(1, 3, size, size, device=device)
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
else:  # reset the peak resident size (Linux), then read it back after the forward
    open("/proc/self/clear_refs", "w").write("5")
    before = rss("VmRSS")
with torch.no_grad():
    if mode == "whole":
        net(image)
    else:
        sliding_window_logits(net, image, SlidingWindow(window, overlap=0.25, window_batch_size=2))
if device.type == "cuda":
    after = torch.cuda.max_memory_allocated()
else:
    after = rss("VmHWM")
print(json.dumps({"mib": (after - before) / 2**20}))
"""


def memory(args: argparse.Namespace) -> None:
    print(f"peak memory growth (MiB) of one forward, U-Net/ResNet-18, 19 classes, {args.window}² windows, batch 2")
    print(f"  {'image':>7}  {'whole':>8}  {'sliding':>8}  {'logits alone':>12}")
    for size in args.sizes:
        row = []
        for mode in ("whole", "sliding"):
            done = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, str(size), str(args.window), mode], capture_output=True, text=True
            )
            row.append(
                json.loads(done.stdout.strip().splitlines()[-1])["mib"] if done.returncode == 0 else float("nan")
            )
        logits = 19 * size * size * 4 / 2**20
        print(f"  {size:>6}²  {row[0]:8.0f}  {row[1]:8.0f}  {logits:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 1536])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not args.skip_overhead:
        overhead(args, device)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
