"""``lightning-seg models``: every network of :mod:`lightning_seg.models` with its parameter count."""

from __future__ import annotations

import argparse
import inspect

from torch import nn

import lightning_seg.models as models


def zoo() -> list[type[nn.Module]]:
    """Every ``nn.Module`` class that :mod:`lightning_seg.models` exports in ``__all__``."""
    found = (getattr(models, name) for name in models.__all__)
    return [cls for cls in found if inspect.isclass(cls) and issubclass(cls, nn.Module)]


def summary(cls: type) -> str:
    """The first line of a class's docstring."""
    return (inspect.getdoc(cls) or "").split("\n", 1)[0].strip()


def zoo_table(num_classes: int = 19) -> str:
    """A plain-text table: network, class path, parameters (millions) at ``num_classes``, summary."""
    rows = []
    for cls in zoo():
        try:
            net = cls(num_classes)
        except (TypeError, ValueError) as error:  # a network that needs more than num_classes says so
            rows.append((cls.__name__, "n/a", "", f"cannot be built from num_classes alone: {error}"))
            continue
        count = sum(p.numel() for p in net.parameters())
        rows.append((cls.__name__, f"{count / 1e6:.3f} M", str(getattr(net, "stride", "")), summary(cls)))
    header = ("network", f"params@{num_classes}", "stride", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.append("\nUse one with  --model.init_args.net.class_path lightning_seg.models.<network>  (defaults shown).")
    return "\n".join(lines)


def main(args: list[str]) -> int:
    """Print :func:`zoo_table`; ``--num_classes`` sets the class count the parameters are counted at."""
    parser = argparse.ArgumentParser(prog="lightning-seg models", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--num_classes", type=int, default=19, help="classes the counts are for (default 19)")
    options = parser.parse_args(args)
    if options.num_classes < 2:
        raise ValueError(f"--num_classes must be at least 2, got {options.num_classes}")
    print(zoo_table(options.num_classes))
    return 0
