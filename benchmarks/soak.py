"""Soak test: many short epochs of the quickstart with every diagnostic on; does memory keep growing?

Runs ``lightning-seg fit`` in this process (the quickstart config: CSV + TensorBoard loggers, the five
diagnostics callbacks every epoch, the checkpoint callback) on small synthetic images with
``num_workers=0`` (the data in this process), and prints, after every training epoch (its validation
included), the resident set size (``/proc/self/statm``), the summed resident set of its child processes
(figure drawing in the background, if any), the epoch's own peak (``VmHWM``, reset every epoch), the
run's peak so far (the largest epoch peak) and what the CLI's memory release (``gc.collect`` and
``malloc_trim`` at each epoch end, ``lightning_seg.allocator``; ``LIGHTNING_SEG_NO_TRIM=1`` runs without
it) cost in the epoch. The baseline is the first
epoch after the warm-up (allocator pools, lazy imports and the first figures are allocated by then); the
target is growth under 2 % from it to the last epoch (also printed: medians of 5 epochs, since single
epochs spike by a few per cent).

    python benchmarks/soak.py [--epochs 40] [--warmup 5] [--image-size 64]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from lightning import Callback  # noqa: E402

from lightning_seg.allocator import ReleaseFreedMemory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int | str = "self") -> float:
    """The resident set size of process ``pid`` now, in MiB (0 if it has ended)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def descendants(pid: int | str = "self") -> list[int]:
    """The process ids of every child of ``pid``, their children, and so on (``/proc/<pid>/task/*/children``)."""
    pids = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as children:
                text = children.read()
        except (FileNotFoundError, ProcessLookupError):  # the thread or the process has ended
            continue
        for child in map(int, text.split()):
            pids += [child, *descendants(child)]
    return pids


def epoch_peak_mib() -> float:
    """The largest resident set since the last call, in MiB (``VmHWM``, reset through ``clear_refs``)."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the high-water mark: the next value is the next epoch's own peak
    return kib / 1024


class Row(NamedTuple):
    """What one epoch's end measured (MiB, and milliseconds for the memory release)."""

    epoch: int
    rss: float
    children_rss: float
    epoch_peak: float
    run_peak: float
    release_ms: float
    epoch_s: float

    @property
    def tree_rss(self) -> float:
        """The resident set of this process and all its descendants."""
        return self.rss + self.children_rss


class MemoryLog(Callback):
    """Record the memory of the process (and its children) at the end of every training epoch."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._release_seconds = 0.0
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        if not self.rows:
            epoch_peak_mib()  # start the first epoch's peak here, not at import
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        epoch_peak = epoch_peak_mib()
        run_peak = max([epoch_peak] + [row.run_peak for row in self.rows])  # resetting VmHWM resets ru_maxrss
        release_seconds = sum(c.seconds for c in trainer.callbacks if isinstance(c, ReleaseFreedMemory))
        release_ms = 1000 * (release_seconds - self._release_seconds)
        self._release_seconds = release_seconds
        children = sum(rss_mib(pid) for pid in descendants())
        epoch_s = time.perf_counter() - self._epoch_start
        row = Row(trainer.current_epoch, rss_mib(), children, epoch_peak, run_peak, release_ms, epoch_s)
        self.rows.append(row)
        print(
            f"epoch {row.epoch:3d}  rss {row.rss:8.1f} MiB  children rss {row.children_rss:6.1f} MiB  "
            f"epoch peak {row.epoch_peak:8.1f} MiB  run peak {row.run_peak:8.1f} MiB  "
            f"release {row.release_ms:6.1f} ms of {row.epoch_s:5.1f} s",
            flush=True,
        )


def change(first: float, last: float) -> str:
    """``first -> last MiB (+x.xx %)``."""
    return f"{first:.1f} -> {last:.1f} MiB ({100 * (last / first - 1):+.2f} %)"


def summarise(rows: list[Row], warmup: int, releases: list[ReleaseFreedMemory]) -> None:
    """Print the growth from the first epoch after ``warmup`` to the last, and what the release cost."""
    base, last = rows[warmup], rows[-1]
    print(
        f"\nafter warm-up (epoch {base.epoch}) -> epoch {last.epoch}: rss {change(base.rss, last.rss)}, "
        f"process tree rss {change(base.tree_rss, last.tree_rss)}, "
        f"epoch peak {change(base.epoch_peak, last.epoch_peak)}, run peak {change(base.run_peak, last.run_peak)}; "
        "target < 2 %"
    )
    # Single epochs spike by a few per cent (a figure's buffers freed later): medians of 5 epochs.
    for name, field in (("rss", "rss"), ("process tree rss", "tree_rss"), ("epoch peak", "epoch_peak")):
        first = statistics.median(getattr(row, field) for row in rows[warmup : warmup + 5])
        final = statistics.median(getattr(row, field) for row in rows[-5:])
        print(f"median {name} of the 5 epochs after warm-up -> of the last 5: {change(first, final)}")
    calls = sum(release.calls for release in releases)
    if calls:
        seconds = sum(release.seconds for release in releases)
        per_epoch = sorted(row.release_ms for row in rows)
        share = 100 * seconds / sum(row.epoch_s for row in rows)
        print(
            f"gc.collect + malloc_trim: {calls} calls, {1000 * seconds / calls:.1f} ms each on average, "
            f"{statistics.median(per_epoch):.1f} ms per epoch (median; largest {per_epoch[-1]:.1f} ms), "
            f"{share:.1f} % of the epochs' time"
        )
    else:
        print("gc.collect + malloc_trim: off (LIGHTNING_SEG_NO_TRIM=1)")
    print(f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')} (the CLI caps the arenas at 2 if unset)")


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
    if len(memory.rows) <= args.warmup:
        sys.exit(f"need more than --warmup {args.warmup} epochs, ran {len(memory.rows)}")
    summarise(memory.rows, args.warmup, [c for c in cli.trainer.callbacks if isinstance(c, ReleaseFreedMemory)])


if __name__ == "__main__":
    main()
