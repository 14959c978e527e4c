"""The process's allocator: the arena cap set at start, freed memory given back at every epoch's end."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lightning import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from lightning_seg import allocator
from tests.conftest import QUICKSTART, TINY_DATA

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "malloc_trim")
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc's mallopt and malloc_trim")


@needs_glibc
def test_the_arena_cap_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.limit_malloc_arenas() is True


def test_a_cap_chosen_in_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    looked_up = []
    monkeypatch.setattr(allocator, "_glibc_function", looked_up.append)
    assert allocator.limit_malloc_arenas() is False and looked_up == []


def test_the_cli_sets_it_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_seg import cli

    calls = []
    monkeypatch.setattr(cli, "limit_malloc_arenas", lambda: calls.append(True))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == [True]


def resident_mib() -> float:
    """This process's resident set now (``/proc/self/statm``), in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@needs_glibc
@pytest.mark.parametrize("make", [lambda: bytes(2048), lambda: np.ones(256)], ids=["bytes", "numpy"])
def test_the_trim_gives_freed_small_blocks_back(make) -> None:  # noqa: ANN001
    """64 MiB of 2 KiB blocks, every 64th kept: free() cannot shrink the heap past the kept ones, the trim can."""
    allocator.release_freed_memory()  # what earlier tests freed is not reused: the blocks need new pages
    before = resident_mib()
    blocks = [make() for _ in range(32768)]
    grown = resident_mib() - before
    kept = blocks[::64]
    del blocks
    freed_but_held = resident_mib()
    assert allocator.release_freed_memory() is True
    given_back = freed_but_held - resident_mib()
    assert grown > 32 and given_back > 0.75 * grown, (grown, given_back)
    assert len(kept) == 512


def test_the_trim_is_a_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator._libc.__wrapped__() is None
    monkeypatch.setattr(allocator, "_libc", lambda: None)
    assert allocator.release_freed_memory() is False and allocator.limit_malloc_arenas() is False
    monkeypatch.setattr(allocator, "_libc", lambda: object())  # a C library without them (musl has no mallopt)
    assert allocator.release_freed_memory() is False and allocator.limit_malloc_arenas() is False


@pytest.mark.parametrize("frozen_before", [0, 5])
def test_the_callback_collects_and_trims_after_every_training_epoch_and_trims_after_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frozen_before: int
) -> None:
    hooks = []
    fake_gc = SimpleNamespace(
        collect=lambda: hooks.append("collect"),
        freeze=lambda: hooks.append("freeze"),
        unfreeze=lambda: hooks.append("unfreeze"),
        get_freeze_count=lambda: frozen_before,
    )
    monkeypatch.setattr(allocator, "gc", fake_gc)
    monkeypatch.setattr(allocator, "release_freed_memory", lambda: hooks.append(trainer.state.stage.value) or True)
    release = allocator.ReleaseFreedMemory()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[release],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(BoringModel())
    epochs = ["validate", "collect", "train"] * 2  # each epoch's validation ends before its training epoch does
    # What exists at the start is frozen out of the collections and thawed at the end, unless frozen already.
    assert hooks == (["freeze", *epochs, "unfreeze"] if frozen_before == 0 else epochs)
    assert release.calls == 4 and release.seconds > 0


@pytest.mark.parametrize("no_trim", [None, "1"])
def test_the_cli_adds_the_trim_unless_told_not_to(in_tmp: Path, monkeypatch: pytest.MonkeyPatch, no_trim) -> None:  # noqa: ANN001
    from lightning_seg.cli import main

    if no_trim is None:
        monkeypatch.delenv(allocator.NO_TRIM_ENV, raising=False)
    else:
        monkeypatch.setenv(allocator.NO_TRIM_ENV, no_trim)
    cli = main(["--config", str(QUICKSTART), *TINY_DATA], run=False)
    trims = [c for c in cli.trainer.callbacks if isinstance(c, allocator.ReleaseFreedMemory)]
    assert len(trims) == (0 if no_trim else 1)
