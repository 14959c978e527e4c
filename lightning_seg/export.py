"""``lightning-seg export``: a deployable file from a trained checkpoint (``torch.export`` or ONNX).

The file maps a normalised image ``N×C×H×W`` (any batch size; H and W from the network's stride + 1 up
to :data:`MAX_SIZE`) to logits ``N×num_classes×H×W``; the padding to the network's stride and the crop
back are inside the graph, auxiliary outputs are left out. After writing, the file is run at two sizes
and compared with the eager network; a difference above the tolerance is an error and the file is
removed.

    lightning-seg export --config experiments/quickstart.yaml \
        --ckpt_path runs/quickstart/latest/checkpoints/last.ckpt --format onnx
    # writes runs/quickstart/latest/checkpoints/last.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram

from lightning_seg.models.layers import StridedNet

#: ``--format`` → file suffix.
FORMATS = {"torch": ".pt2", "onnx": ".onnx"}
#: Largest height and width the exported graph accepts.
MAX_SIZE = 8192
#: Networks of ``lightning_seg.models.__all__`` that do not export, and why.
NOT_EXPORTABLE: dict[str, str] = {
    "CCNet": (
        "torch.export cannot prove the criss-cross attention's reshapes valid for every H and W "
        "(guards such as (H+7)//8 != 1 that hold for all exportable sizes but that its solver cannot "
        "discharge); the legacy ONNX path exports it but differs from eager by up to 8e-3"
    ),
}


def _reflect_index(size: Tensor | int, padded: Tensor | int, device: torch.device) -> Tensor:
    """Indices ``0 … padded-1`` reflected at ``size-1`` (``F.pad(..., mode="reflect")`` as a gather)."""
    index = torch.arange(padded, device=device)
    return torch.where(index < size, index, 2 * (size - 1) - index)


class Deployable(nn.Module):
    """A network as it is deployed: image → logits at input resolution, nothing else.

    For a :class:`~lightning_seg.models.layers.StridedNet` the reflection padding to the stride is a
    gather with indices computed from the input's size (``F.pad`` in reflect mode puts guards on the
    size that ``torch.export`` cannot discharge), then the network's ``forward_padded`` and a crop;
    this equals the eager ``forward``. Other networks are called as they are.

    Shape:
        ``N×C×H×W`` → ``N×num_classes×H×W``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> Tensor:
        if not isinstance(self.net, StridedNet):
            out = self.net(image)
            return out["logits"] if isinstance(out, dict) else out
        stride = self.net.stride
        height, width = image.shape[-2:]
        rows = _reflect_index(height, stride * ((height + stride - 1) // stride), image.device)
        columns = _reflect_index(width, stride * ((width + stride - 1) // stride), image.device)
        out = self.net.forward_padded(image.index_select(2, rows).index_select(3, columns))
        logits = out["logits"] if isinstance(out, dict) else out
        crop_rows, crop_columns = torch.arange(height, device=image.device), torch.arange(width, device=image.device)
        return logits.index_select(2, crop_rows).index_select(3, crop_columns)


def min_size(net: nn.Module) -> int:
    """The smallest height and width the exported graph accepts.

    The network's stride + 1, or its ``export_min_size`` where it is larger: a network that downsamples
    past its stride inside (GALDNet's local distribution) would otherwise reach one-pixel maps, and
    ``torch.export`` cannot trace one graph valid both at one pixel and above.
    """
    return max(int(getattr(net, "stride", 1)) + 1, int(getattr(net, "export_min_size", 0)))


def check_sizes(net: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two sizes the export is traced and checked at: one a multiple of the stride, one not."""
    stride = int(getattr(net, "stride", 1))
    base = stride * -(-min_size(net) // stride)  # the smallest multiple of the stride the graph accepts
    return (base, base + stride), (base + stride // 2 + 1, base + stride - stride // 4 - 1)


def export_program(net: nn.Module) -> ExportedProgram:
    """``torch.export`` of :class:`Deployable` ``(net)`` with dynamic batch, height and width."""
    deployable = Deployable(net).eval()
    in_channels = int(getattr(net, "in_channels", 3))
    (height, width), _ = check_sizes(net)
    example = torch.randn(2, in_channels, height, width, device=next(net.parameters()).device)
    side = {"min": min_size(net), "max": MAX_SIZE}
    shapes = {"image": {0: Dim("batch", min=1, max=1024), 2: Dim("height", **side), 3: Dim("width", **side)}}
    with torch.no_grad():
        return torch.export.export(deployable, (example,), dynamic_shapes=shapes)


def write(program: ExportedProgram, path: Path, fmt: str) -> None:
    """Save ``program`` as a ``torch.export`` archive (``.pt2``) or an ONNX model."""
    if fmt == "torch":
        torch.export.save(program, str(path))
    elif fmt == "onnx":
        torch.onnx.export(program, f=str(path), input_names=["image"], output_names=["logits"], dynamo=True)
    else:
        raise ValueError(f"unknown export format '{fmt}'; valid: {', '.join(FORMATS)}")


def run_exported(path: Path, fmt: str, image: Tensor) -> Tensor:
    """Run the file at ``path`` on ``image`` (onnxruntime for ONNX) and return the logits."""
    if fmt == "torch":
        with torch.no_grad():
            return torch.export.load(str(path)).module()(image)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"image": image.cpu().numpy()})[0])


def check_exported(net: nn.Module, path: Path, fmt: str, tolerance: float = 1e-4) -> float:
    """The largest difference between the file's logits and the eager network's at :func:`check_sizes`.

    The difference is measured relative to the logits' scale: ``max|exported − eager| / max(1, max|eager|)``
    (float32 kernels differ by rounding, which grows with the values).

    Raises:
        ValueError: when it exceeds ``tolerance``.
    """
    net = net.eval()
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for size in check_sizes(net):
        image = torch.randn(1, int(getattr(net, "in_channels", 3)), *size, generator=generator)
        with torch.no_grad():
            expected = Deployable(net)(image.to(next(net.parameters()).device)).cpu()
        got = run_exported(path, fmt, image)
        if got.shape != expected.shape:
            raise ValueError(f"{path}: exported logits have shape {tuple(got.shape)}, eager {tuple(expected.shape)}")
        scale = max(1.0, float(expected.abs().max()))
        worst = max(worst, float((got - expected).abs().max()) / scale)
    if not worst <= tolerance:
        raise ValueError(f"{path}: exported logits differ from eager by {worst:.2e} (tolerance {tolerance:.0e})")
    return worst


def export_network(net: nn.Module, path: str | Path, fmt: str, tolerance: float = 1e-4) -> float:
    """Export ``net`` to ``path`` in ``fmt`` (``torch`` or ``onnx``), check it, return the largest difference.

    A file that does not match the eager network within ``tolerance`` is removed and a ``ValueError``
    raised.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; valid: {', '.join(FORMATS)}")
    name = type(net).__name__
    if name in NOT_EXPORTABLE:
        raise ValueError(f"{name} cannot be exported: {NOT_EXPORTABLE[name]}")
    path = Path(path)
    if path.suffix != FORMATS[fmt]:
        raise ValueError(f"a {fmt} export is written to a '{FORMATS[fmt]}' file, got '{path}'")
    write(export_program(net.eval()), path, fmt)
    try:
        return check_exported(net, path, fmt, tolerance)
    except Exception:
        path.unlink(missing_ok=True)
        raise


def parse_args(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="lightning-seg export",
        description="Write a deployable torch.export (.pt2) or ONNX file of a trained network. Further "
        "--section.key=value arguments override the config, as for fit.",
    )
    parser.add_argument("--config", action="append", required=True, help="YAML config(s) the model was trained with")
    parser.add_argument("--ckpt_path", required=True, type=Path, help="the trained checkpoint (.ckpt)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="torch (.pt2) or onnx")
    parser.add_argument("--output", type=Path, help="file to write (default: the checkpoint's name, new suffix)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest difference from eager, relative to max(1, max|logits|)"
    )
    return parser.parse_known_args(args)


def load_network(configs: list[str], ckpt_path: Path, overrides: list[str]) -> nn.Module:
    """The network the configs describe, with the checkpoint's weights."""
    from lightning_seg.experiment import from_config

    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist")
    module = from_config(*configs, overrides=overrides).module
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if "state_dict" not in checkpoint:
        raise ValueError(f"{ckpt_path} is not a Lightning checkpoint (no 'state_dict')")
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:  # missing, unexpected or differently shaped weights
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        detail = (lines[0] if lines else str(error))[:300]
        raise ValueError(
            f"{ckpt_path} does not hold the weights of the config's network {type(module.net).__name__}: {detail}"
        ) from None
    return module.net.eval()


def main(args: list[str]) -> int:
    """Entry point of ``lightning-seg export`` (registered in :data:`lightning_seg.cli.EXTRA_COMMANDS`)."""
    options, overrides = parse_args(args)
    output = options.output or options.ckpt_path.with_suffix(FORMATS[options.format])
    if output.exists() and not options.overwrite:
        raise ValueError(f"{output} exists; pass --overwrite to replace it or --output to write elsewhere")
    net = load_network(options.config, options.ckpt_path, overrides)
    difference = export_network(net, output, options.format, options.tolerance)
    print(f"wrote {output} ({options.format}); largest difference from eager (relative): {difference:.1e}")
    return 0
