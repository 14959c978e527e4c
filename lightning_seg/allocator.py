"""The process's memory allocator: keep a long run's resident set flat (glibc ``mallopt``, ``malloc_trim``).

glibc gives each thread that allocates its own heap arena (up to 8 per core) and keeps freed blocks in
the heap that held them, returning memory to the system only from the top of a heap. A training process
whose threads (torch's intra-op pool, the loggers' writer threads, figure drawing) allocate and free
buffers of varying sizes every epoch therefore keeps growing its resident set although nothing leaks.
Two remedies, both applied by the CLI:

- :func:`limit_malloc_arenas` caps the arenas at 2 (what ``MALLOC_ARENA_MAX=2`` sets), once at start;
- :class:`ReleaseFreedMemory` collects garbage and calls :func:`release_freed_memory` (``malloc_trim(0)``,
  which gives the free pages inside every arena back to the system) at every training epoch's end, and
  trims at every validation epoch's end. ``LIGHTNING_SEG_NO_TRIM=1`` leaves it out.

Measured with ``benchmarks/soak.py`` (40 epochs of the quickstart with every diagnostic; growth of the
median resident set of the last 5 epochs over the 5 after warm-up): +6.3 % with glibc's default, +1.3 %
and +2.3 % in two runs with the arena cap alone, +1.2 % with the trim added (a saw-tooth of about 50 MiB
as the figures waited for Python's oldest-generation collection), +0.07 % with the collection too
(22 ms per call); ``benchmarks/README.md`` has every run.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
import time
from typing import Any

from lightning import Callback, LightningModule, Trainer

#: glibc's ``mallopt`` parameter number of ``M_ARENA_MAX`` (``malloc.h``).
M_ARENA_MAX = -8
#: The arena cap used when the user has not set ``MALLOC_ARENA_MAX``.
DEFAULT_ARENAS = 2
#: Set to ``1`` to keep the CLI from adding :class:`ReleaseFreedMemory`.
NO_TRIM_ENV = "LIGHTNING_SEG_NO_TRIM"


@functools.cache
def _libc() -> Any:
    """The C library this process runs on (``None`` outside Linux, where neither remedy applies)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)  # the symbols already loaded: the C library's among them
    except OSError:
        return None


def _glibc_function(name: str) -> Any:
    """The C library's function ``name``, or ``None`` where it has none (not glibc, e.g. musl)."""
    return getattr(_libc(), name, None)


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` unless ``MALLOC_ARENA_MAX`` is set; return whether it was.

    A no-op (``False``) outside Linux/glibc, or when the user chose a value through the environment
    (glibc has read it at start-up then).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arenas))


def release_freed_memory() -> bool:
    """Give the free memory of every malloc arena back to the system (glibc's ``malloc_trim(0)``).

    Returns whether any was given back; a no-op (``False``) where the C library is not glibc.
    """
    trim = _glibc_function("malloc_trim")
    return trim is not None and bool(trim(0))


class ReleaseFreedMemory(Callback):
    """Give freed memory back at the end of every training epoch (and every validation epoch).

    At a training epoch's end a full garbage collection (``gc.collect``) first frees what only reference
    cycles keep alive (a matplotlib figure and its canvas refer to each other): otherwise that waits for
    Python's rare oldest-generation collection and the resident set saw-tooths over several epochs. Then
    :func:`release_freed_memory` gives the free pages back. At a validation epoch's end it only trims
    (during ``fit`` the training epoch's end follows). What exists when training starts (modules, the
    model, the data) is frozen out of the collections (``gc.freeze``, undone at teardown, left alone if
    someone else froze first), so each one only visits what the epochs made: about 25 ms instead of
    about 290 ms on the soak (a cycle among the frozen objects that becomes garbage waits for
    teardown). Each process (each DDP rank) cleans its own heap; ``seconds`` and ``calls`` add up what
    it costs.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._froze = False

    def _release(self, collect: bool) -> None:
        start = time.perf_counter()
        if collect:
            gc.collect()
        release_freed_memory()
        self.seconds += time.perf_counter() - start
        self.calls += 1

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._froze = gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._thaw()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._thaw()

    def _thaw(self) -> None:
        if self._froze:
            gc.unfreeze()
            self._froze = False

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._release(collect=True)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._release(collect=False)
