"""Drawing the diagnostics' figures in a background process, so that training does not wait for matplotlib.

At 150 classes the five diagnostics spend about 3 s per validation epoch in matplotlib (text layout
above all), whatever the size of the validation set; that is most of a CPU validation epoch of a small
set and many GPU ones. :class:`FigureDrawer` hands each :class:`FigureJob` (the builder's name and its
numbers) to one worker process (:mod:`lightning_seg.figures.worker`) and returns at once; the worker
draws, encodes and writes the file, and the answer (the encoded picture) is sent to the loggers by the
training process's main thread the next time a figure is submitted or collected — at the latest when
the stage ends (:meth:`FigureDrawer.collect` from the diagnostics' ``teardown``), before the loggers
close. At most :data:`MAX_PENDING` figures wait; a run that makes figures faster than they are drawn
waits for them there.

``LIGHTNING_SEG_FIGURES=inline`` draws in the training process instead (as does any failure to start
or keep the worker, after one warning): the same files and the same logged pictures. The worker is a
fresh interpreter, so matplotlib settings made in the training process (``rcParams``, styles) do not
reach it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lightning_seg.figures.encoding import FigureJob, Picture, draw
from lightning_seg.figures.worker import frame, receive

log = logging.getLogger(__name__)

#: Environment variable choosing where figures are drawn: ``background`` (default) or ``inline``.
MODE_VARIABLE = "LIGHTNING_SEG_FIGURES"
MODES = ("background", "inline")
#: Figures handed over and not yet answered beyond which :meth:`FigureDrawer.submit` waits.
MAX_PENDING = 8
#: Seconds :meth:`FigureDrawer.collect` waits for the worker before drawing what is left itself.
WAIT_SECONDS = 300.0

Deliver = Callable[[Picture], None]
_WORKER_GONE = object()


class FigureError(RuntimeError):
    """A figure's builder raised in the background process (the message holds its traceback)."""


def background_requested() -> bool:
    """Whether :data:`MODE_VARIABLE` asks for the background process (the default); a bad value is an error."""
    mode = os.environ.get(MODE_VARIABLE, "background").strip().lower() or "background"
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={os.environ[MODE_VARIABLE]!r}: expected one of {', '.join(MODES)}")
    return mode == "background"


class FigureDrawer:
    """Draws :class:`FigureJob` s in one background process and delivers each :class:`Picture` on the main thread.

    Args:
        background: draw in the worker process (``None``: as :data:`MODE_VARIABLE` says); else inline.
    """

    def __init__(self, background: bool | None = None) -> None:
        self.background = background_requested() if background is None else background
        self._process: subprocess.Popen | None = None
        self._outbox: queue.Queue = queue.Queue()
        self._answers: queue.Queue = queue.Queue()
        self._pending: dict[int, tuple[FigureJob, Deliver]] = {}
        self._ids = itertools.count()

    @property
    def pending(self) -> int:
        """Figures handed to the worker whose answer has not been delivered yet."""
        return len(self._pending)

    def submit(self, job: FigureJob, deliver: Deliver) -> None:
        """Draw ``job`` (in the background if possible); ``deliver(picture)`` is called once it is drawn."""
        self.collect(until=MAX_PENDING - 1)
        job = replace(job, path=job.path.absolute())  # the worker's working directory may differ from ours
        if not (self.background and self._start()):
            deliver(draw(job))
            return
        ident = next(self._ids)
        self._pending[ident] = (job, deliver)
        # Pickled here, not in the writer thread: the job is a snapshot of the numbers as they are now.
        self._outbox.put(frame((ident, pickle.dumps(job, pickle.HIGHEST_PROTOCOL))))

    def collect(self, until: int | None = None, timeout: float = WAIT_SECONDS) -> None:
        """Deliver every answer that has arrived; with ``until``, first wait until at most that many are pending.

        Raises :class:`FigureError` for a figure whose builder failed in the worker. If the worker has
        stopped, or sends nothing for ``timeout`` seconds while figures are awaited, the pending figures
        are drawn here and every later one too (one warning says why).
        """
        deadline = time.monotonic() + timeout
        while self._pending:
            waiting = until is not None and len(self._pending) > until
            try:
                answer = self._answers.get(block=waiting, timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                if waiting:
                    self._fall_back(f"the figure process sent nothing for {timeout:.0f} s")
                return
            if answer is _WORKER_GONE:
                code = self._process.poll() if self._process is not None else None
                self._fall_back(f"the figure process stopped (exit code {code})")
                return
            ident, picture = answer
            job, deliver = self._pending.pop(ident)
            if isinstance(picture, str):
                raise FigureError(f"drawing {job.path} failed in the figure process:\n{picture}")
            deliver(picture)

    def close(self) -> None:
        """Stop the worker (after it has drawn what it was given); undelivered answers are dropped."""
        process, self._process = self._process, None
        if process is None:
            return
        self._outbox.put(None)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _start(self) -> bool:
        """Start the worker unless it runs; whether it does (a failure to start falls back to inline)."""
        if self._process is not None:
            return True
        package_root = str(Path(__file__).resolve().parents[2])  # the lightning_seg this process imported
        env = {**os.environ, "MPLBACKEND": "agg"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lightning_seg.figures.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as error:
            self._fall_back(f"the figure process could not start ({error})")
            return False
        self._outbox, self._answers = queue.Queue(), queue.Queue()
        process = self._process
        threading.Thread(target=_write, args=(self._outbox, process.stdin), daemon=True).start()
        threading.Thread(target=_read, args=(process.stdout, self._answers), daemon=True).start()
        return True

    def _fall_back(self, why: str) -> None:
        """Draw from now on in this process, starting with every pending figure."""
        log.warning("lightning-seg: %s; drawing the diagnostics' figures in the training process from now on", why)
        self.background = False
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
        pending, self._pending = self._pending, {}
        for ident in sorted(pending):
            job, deliver = pending[ident]
            deliver(draw(job))


def _write(outbox: queue.Queue, stream) -> None:  # noqa: ANN001 (a pipe)
    """Writer thread: send each framed message to the worker; close its input at ``None`` (or a broken pipe).

    A write that fails means the worker is gone: the reader thread reports that, so it is not raised here.
    """
    with contextlib.suppress(OSError, ValueError):
        try:
            while (message := outbox.get()) is not None:
                stream.write(message)
                stream.flush()
        finally:
            stream.close()


def _read(stream, answers: queue.Queue) -> None:  # noqa: ANN001 (a pipe)
    """Reader thread: queue every answer of the worker, then a marker when its output ends."""
    try:
        while (answer := receive(stream)) is not None:
            answers.put(answer)
    finally:
        answers.put(_WORKER_GONE)


_drawer: FigureDrawer | None = None


def figure_drawer() -> FigureDrawer:
    """The process's drawer (created on first use; its worker is stopped at exit)."""
    global _drawer
    if _drawer is None:
        _drawer = FigureDrawer()
        atexit.register(_drawer.close)
    return _drawer
