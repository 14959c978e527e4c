"""The background figure process: reads :class:`FigureJob` s from stdin, draws them, answers on stdout.

Started by :class:`lightning_seg.figures.background.FigureDrawer` as ``python -m lightning_seg.figures.worker``
(a fresh interpreter, not a fork: nothing of the training process — CUDA, threads, the user's
``__main__`` — is inherited or re-run). Messages are pickles, each preceded by its length (8 bytes,
little endian). For each job it answers ``(job id, Picture)`` or ``(job id, traceback text)``; it
stops at the end of its input, i.e. when the training process closes the pipe or exits. It ignores
SIGINT: Ctrl-C in a terminal reaches the whole process group, and the training process, which saves
a checkpoint on SIGINT, still wants the figures already handed over. It runs at the lowest CPU
priority (``nice`` 19): it draws with the CPU time training leaves idle and never slows the threads of
torch's parallel kernels, which all wait for the slowest of them.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import sys
import traceback
from typing import Any, BinaryIO

from lightning_seg.figures.encoding import draw

HEADER = struct.Struct("<Q")


def frame(message: Any) -> bytes:
    """``message`` as one length-prefixed pickle, as :func:`receive` reads it."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def send(stream: BinaryIO, message: Any) -> None:
    """Write ``message`` (:func:`frame`) and flush."""
    stream.write(frame(message))
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """Read one message written by :func:`send`; ``None`` at the end of the stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve(jobs: BinaryIO, answers: BinaryIO) -> None:
    """Draw every ``(id, pickled FigureJob)`` read from ``jobs``; answer each on ``answers``, until the end of input.

    The job is unpickled inside the ``try``: a job whose builder cannot be imported here is answered
    with that error like any other.
    """
    while (message := receive(jobs)) is not None:
        ident, job = message
        try:
            answer: Any = draw(pickle.loads(job))
        except Exception:  # the training process raises it, with this traceback, where it collects the answer
            answer = traceback.format_exc()
        send(answers, (ident, answer))
        # A figure and its canvas refer to each other: without this, every figure drawn would wait for
        # Python's rare oldest-generation collection, and the worker's resident set would saw-tooth up.
        gc.collect()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # not on Windows
        os.nice(19)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints (even from C) must not corrupt the answers
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
