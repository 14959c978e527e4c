"""The model zoo measured: parameters, GFLOPs and CPU latency at 512×1024, beside the published speed.

One row per network of ``lightning_seg.models.__all__`` (built with its defaults at 19 classes) and for
three smp baselines (U-Net R18, DeepLabV3+ R50, Segformer-b0 via ``SMPNet``): parameters, GFLOPs of
one forward pass on a ``1×3×512×1024`` image (``torch.utils.flop_counter``; a multiply-add counts as
2 FLOPs), median CPU latency of ``--repeats`` forward passes after one warm-up (eval mode, no grad,
``--threads`` torch threads), its ratio to U-Net R18 measured in the same run, and the published FPS
with the GPU and resolution it was measured at. Prints a Markdown table.

    python benchmarks/models.py [--repeats 5] [--threads 2] [--only ContextNet,FastSCNN]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from lightning_seg.models import SMPNet
from lightning_seg.zoo import zoo

SIZE = (512, 1024)
BASELINES = {
    "smp U-Net R18": {"arch": "Unet", "encoder_name": "resnet18"},
    "smp DeepLabV3+ R50": {"arch": "DeepLabV3Plus", "encoder_name": "resnet50"},
    "smp Segformer-b0": {"arch": "Segformer", "encoder_name": "mit_b0"},
}
#: Published speed, as each paper reports it: network → (fps, input size H×W, device). "size not stated":
#: the text found (the abstract) names no input size; ">" is the paper's "over". Networks whose paper
#: text found states no fps (ENet, CGNet, ExtremeC3Net, the context and U-Net networks) have no entry.
PUBLISHED = {
    # arXiv 1805.04554, abstract: 18.3 fps at full 1024×2048 resolution (41.9 fps pipelined, not used).
    "ContextNet": ("18.3", "1024×2048", "Titan X (Maxwell)"),
    "FastSCNN": ("123.5", "1024×2048", "Titan Xp"),
    "BiSeNetV1": ("65.5", "768×1536", "Titan Xp"),
    "BiSeNetV2": ("156", "512×1024", "GTX 1080 Ti"),
    # Romera et al., IEEE T-ITS 2018 (no arXiv id), abstract: over 83 fps on one Titan X (7 fps on a Jetson TX1).
    "ERFNet": (">83", "size not stated", "Titan X"),
    # arXiv 1906.09826, abstract: over 62 fps on one GTX 1080Ti; size from the authors' README (63 fps at 512×1024).
    "ESNet": (">62", "512×1024", "GTX 1080 Ti"),
    # arXiv 1905.02423, abstract: over 71 fps on one GTX 1080Ti; size = the 1024×512 (W×H) input of its Fig. 1.
    "LEDNet": (">71", "512×1024", "GTX 1080 Ti"),
    # arXiv 1907.11357, abstract: 104 fps on one GTX 1080Ti.
    "DABNet": ("104", "size not stated", "GTX 1080 Ti"),
    # arXiv 1809.06323, abstract: 108 fps on one GTX 1080Ti for high-resolution inputs; the authors' README: 512×1024.
    "EDANet": ("108", "512×1024", "GTX 1080 Ti"),
    # arXiv 1803.06815, abstract: high-resolution images at 112 fps on "a standard GPU" (9 fps on an edge device).
    "ESPNet": ("112", "size not stated", "GPU not named"),
    # arXiv 1911.09099, abstract: 100.6 fps on a real mobile device (device and size not named there).
    "SINet": ("100.6", "size not stated", "mobile device"),
    # Zhang et al., Computers & Graphics 2019 (no arXiv id), abstract: 224×224 RGB images at 30 fps on an iPhone 7.
    "PortraitNet": ("30", "224×224", "iPhone 7"),
}


def networks() -> dict[str, torch.nn.Module]:
    """Every zoo network at 19 classes, then the smp baselines (name → network in eval mode)."""
    built = {cls.__name__: cls(19) for cls in zoo()}
    built.update({name: SMPNet(19, **kwargs) for name, kwargs in BASELINES.items()})
    return {name: net.eval() for name, net in built.items()}


def gflops(net: torch.nn.Module, image: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(image)
    return counter.get_total_flops() / 1e9


def latency(net: torch.nn.Module, image: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward pass after a warm-up."""
    times = []
    with torch.no_grad():
        net(image)
        for _ in range(repeats):
            start = time.perf_counter()
            net(image)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated names (the U-Net R18 baseline always runs)")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    image = torch.randn(1, 3, *SIZE)
    chosen = {name for name in options.only.split(",") if name}
    rows = []
    for name, net in networks().items():
        if chosen and name not in chosen and name != "smp U-Net R18":
            continue
        params = sum(p.numel() for p in net.parameters()) / 1e6
        rows.append((name, params, gflops(net, image), latency(net, image, options.repeats)))
        print(f"# {name}: {params:.2f} M, {rows[-1][2]:.1f} GFLOPs, {rows[-1][3] * 1e3:.0f} ms", flush=True)
    baseline = next(row[3] for row in rows if row[0] == "smp U-Net R18")
    print(f"\nCPU: {options.threads} threads, batch 1, {SIZE[0]}×{SIZE[1]}, median of {options.repeats}\n")
    print("| network | params (M) | GFLOPs | CPU ms | × U-Net R18 | published fps (input, GPU) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, params, flops, seconds in rows:
        fps, size, gpu = PUBLISHED.get(name, ("—", "", ""))
        published = f"{fps} ({size}, {gpu})" if size else fps
        print(f"| {name} | {params:.2f} | {flops:.1f} | {seconds * 1e3:.0f} | {seconds / baseline:.2f} | {published} |")


if __name__ == "__main__":
    main()
