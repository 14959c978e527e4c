"""Drawing a figure once and encoding it as PNG or JPEG: the one step both drawing paths share."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


@dataclass(frozen=True)
class Picture:
    """An encoded figure: PNG or JPEG bytes and their pixel size."""

    encoded: bytes
    width: int
    height: int


@dataclass(frozen=True)
class FigureJob:
    """A figure to draw: ``builder(*args, **kwargs)`` saved at ``path`` (``.png``, or ``.jpg`` for photographs).

    ``builder`` must be a module-level function of a module that imports no torch (:mod:`lightning_seg.figures`),
    so that the background process can import it by name.
    """

    builder: Callable[..., Figure]
    args: tuple[Any, ...]
    path: Path
    kwargs: dict[str, Any] = field(default_factory=dict)


def encode(figure: Figure, suffix: str) -> Picture:
    """Draw ``figure`` once and encode it: JPEG (quality 90) for ``.jpg``/``.jpeg``, else PNG (fast compression).

    Photographs such as the gallery's are several times smaller as JPEG; charts stay sharp as PNG.
    """
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    buffer = io.BytesIO()
    if suffix.lower() in (".jpg", ".jpeg"):
        picture.save(buffer, format="JPEG", quality=90)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return Picture(buffer.getvalue(), *picture.size)


def draw(job: FigureJob) -> Picture:
    """Build ``job``'s figure, encode it and write it to ``job.path`` (parents created)."""
    picture = encode(job.builder(*job.args, **job.kwargs), job.path.suffix)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    job.path.write_bytes(picture.encoded)
    return picture
