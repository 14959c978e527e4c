"""Regenerate the README's diagnostics pictures from a real, short quickstart run (``make docs-figures``).

Runs ``lightning-seg fit --config experiments/quickstart.yaml --trainer.max_epochs=<epochs>`` in a
temporary directory (so no ``runs/`` folder of the user's is touched), then copies the last epoch's
figures next to this script under the names the README links, checks that each one opens, and prints
the console summary and the loss-breakdown shares the README quotes.

    python docs/diagnostics/make_figures.py [--epochs 6] [--limit-train-batches N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
QUICKSTART = REPO / "experiments" / "quickstart.yaml"
#: README picture -> where a run's diagnostics folder holds it (the last match is the last epoch).
PICTURES = {
    "class_distribution.png": "class_distribution/class_distribution.png",
    "per_class_curves.png": "per_class_metrics/curves.png",
    "confusion_matrix.png": "confusion_matrix/val_epoch_*.png",
    "gallery_rare.jpg": "gallery/rare_epoch_*.jpg",
    "gallery_worst.jpg": "gallery/worst_epoch_*.jpg",
    "loss_breakdown.png": "loss_breakdown/epoch_*.png",
}


def find(root: Path, pattern: str) -> Path:
    """The last file (by name, so the last epoch) matching ``*/diagnostics/<pattern>`` anywhere under ``root``."""
    matches = sorted(root.rglob(f"diagnostics/{pattern}"), key=lambda p: p.name)
    if not matches:
        raise FileNotFoundError(f"the quickstart run under {root} wrote no diagnostics/{pattern}")
    return matches[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the quickstart run")
    parser.add_argument("--limit-train-batches", type=int, help="training batches per epoch (default: all 40)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder the pictures are written to")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ.setdefault("WANDB_MODE", "offline")
    from PIL import Image

    from lightning_seg.cli import main as cli

    out, cwd = args.out.resolve(), Path.cwd()
    limit = [] if args.limit_train_batches is None else [f"--trainer.limit_train_batches={args.limit_train_batches}"]
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the quickstart's relative runs/ paths land in the temporary folder
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                cli(["fit", "--config", str(QUICKSTART), f"--trainer.max_epochs={args.epochs}", *limit])
        finally:
            os.chdir(cwd)
        for name, pattern in PICTURES.items():
            source = find(Path(tmp), pattern)
            with Image.open(source) as picture:
                picture.load()
                print(f"{name}: {picture.size[0]}×{picture.size[1]} px, {source.stat().st_size:,} bytes")
            shutil.copyfile(source, out / name)
        history = find(Path(tmp), "loss_breakdown/history.csv").read_text().splitlines()
    last = history[0].split(",").index("epoch")
    final = [row for row in history[1:] if row.split(",")[last] == history[-1].split(",")[last]]
    print("\nloss breakdown, last epoch:\n" + "\n".join([history[0], *final]))
    summary = printed.getvalue()
    print("\nconsole summary:" + summary[summary.rfind("\nval mIoU") :])


if __name__ == "__main__":
    main()
