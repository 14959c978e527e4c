"""Soak test: many short epochs of the quickstart with every diagnostic on; does memory keep growing?

Runs ``lightning-seg fit`` in this process (the quickstart config: CSV + TensorBoard loggers, the five
diagnostics callbacks every epoch, the checkpoint callback) on small synthetic images with
``num_workers=0`` (everything in one process, so its resident set is the whole run), and prints, after
every training epoch (its validation included), the resident set size (``/proc/self/statm``), the
epoch's own peak (``VmHWM``, reset every epoch) and the run's peak so far (the largest epoch peak). The
baseline is the first epoch after the warm-up (allocator pools, lazy imports and the first figures are
allocated by then); the target is growth under 2 % from it to the last epoch (also printed: medians of
5 epochs, since single epochs spike by a few per cent).

    python benchmarks/soak.py [--epochs 40] [--warmup 5] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from lightning import Callback  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    """The resident set size of this process now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def epoch_peak_mib() -> float:
    """The largest resident set since the last call, in MiB (``VmHWM``, reset through ``clear_refs``)."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the high-water mark: the next value is the next epoch's own peak
    return kib / 1024


class MemoryLog(Callback):
    """Record the resident set, the epoch's own peak and the run's peak at the end of every training epoch."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float, float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        if not self.rows:
            epoch_peak_mib()  # start the first epoch's peak here, not at import

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        epoch_peak = epoch_peak_mib()
        run_peak = max([epoch_peak] + [row[2] for row in self.rows])  # resetting VmHWM resets ru_maxrss too
        self.rows.append((trainer.current_epoch, rss_mib(), epoch_peak, run_peak))
        epoch, rss, epoch_peak, peak = self.rows[-1]
        print(
            f"epoch {epoch:3d}  rss {rss:8.1f} MiB  epoch peak {epoch_peak:8.1f} MiB  run peak {peak:8.1f} MiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()

    from lightning_seg.cli import main as cli_main

    memory = MemoryLog()
    with tempfile.TemporaryDirectory() as root:
        os.chdir(root)
        cli = cli_main(
            [
                "--config",
                str(REPO / "experiments" / "quickstart.yaml"),
                f"--trainer.max_epochs={args.epochs}",
                "--trainer.enable_progress_bar=false",
                "--trainer.log_every_n_steps=1",
                "--data.init_args.num_train=32",
                "--data.init_args.num_val=16",
                "--data.init_args.num_test=4",
                f"--data.init_args.image_size={args.image_size}",
                "--data.init_args.batch_size=8",
                "--data.init_args.num_workers=0",
                f"--model.init_args.lr_scheduler.init_args.T_max={args.epochs}",
            ],
            run=False,
        )
        cli.trainer.callbacks.append(memory)
        cli.trainer.fit(cli.model, cli.datamodule)
    rows = memory.rows
    if len(rows) <= args.warmup:
        sys.exit(f"need more than --warmup {args.warmup} epochs, ran {len(rows)}")
    _, base_rss, base_epoch_peak, base_peak = rows[args.warmup]
    _, last_rss, last_epoch_peak, last_peak = rows[-1]
    print(
        f"\nafter warm-up (epoch {args.warmup}) -> epoch {rows[-1][0]}: "
        f"rss {base_rss:.1f} -> {last_rss:.1f} MiB ({100 * (last_rss / base_rss - 1):+.2f} %), "
        f"epoch peak {base_epoch_peak:.1f} -> {last_epoch_peak:.1f} MiB "
        f"({100 * (last_epoch_peak / base_epoch_peak - 1):+.2f} %), "
        f"run peak {base_peak:.1f} -> {last_peak:.1f} MiB ({100 * (last_peak / base_peak - 1):+.2f} %); target < 2 %"
    )
    # Single epochs spike by a few per cent (a figure's buffers freed later): medians of 5 epochs.
    for column, name in ((1, "rss"), (2, "epoch peak")):
        first = statistics.median(row[column] for row in rows[args.warmup : args.warmup + 5])
        last = statistics.median(row[column] for row in rows[-5:])
        print(
            f"median {name} of the 5 epochs after warm-up -> of the last 5: {first:.1f} -> {last:.1f} MiB "
            f"({100 * (last / first - 1):+.2f} %)"
        )
    print(f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')} (the CLI caps the arenas at 2 if unset)")


if __name__ == "__main__":
    main()
