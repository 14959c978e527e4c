"""Per-class pixel and image counts of masks, their cache in the user's cache folder, their DDP sharing."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lightning import Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassStats:
    """Class statistics of a training set.

    Attributes:
        pixel_counts: labelled pixels per class (ignored pixels excluded), length ``C``.
        image_counts: number of images that contain each class, length ``C``.
        num_images: number of masks scanned.
        image_pixel_counts: for each class, the labelled pixels of all the images that contain it
            (the denominator of median-frequency balancing), length ``C``.

    Raises:
        ValueError: if the per-class tuples differ in length, or a class has more pixels than the images
            that contain it.
    """

    pixel_counts: tuple[int, ...]
    image_counts: tuple[int, ...]
    num_images: int
    image_pixel_counts: tuple[int, ...]

    def __post_init__(self) -> None:
        lengths = {len(self.pixel_counts), len(self.image_counts), len(self.image_pixel_counts)}
        if len(lengths) != 1:
            raise ValueError(
                f"ClassStats needs one count per class in every field, got pixel_counts={self.pixel_counts}, "
                f"image_counts={self.image_counts}, image_pixel_counts={self.image_pixel_counts}"
            )
        if any(p > t for p, t in zip(self.pixel_counts, self.image_pixel_counts, strict=True)):
            raise ValueError(
                f"image_pixel_counts={self.image_pixel_counts} must be at least pixel_counts={self.pixel_counts} "
                "class by class (a class's images hold all its pixels)"
            )

    @property
    def num_classes(self) -> int:
        return len(self.pixel_counts)

    @property
    def pixel_frequency(self) -> np.ndarray:
        """Fraction of labelled pixels per class (sums to 1)."""
        counts = np.asarray(self.pixel_counts, dtype=np.float64)
        return counts / max(counts.sum(), 1.0)

    @property
    def image_frequency(self) -> np.ndarray:
        """Fraction of images containing each class."""
        return np.asarray(self.image_counts, dtype=np.float64) / max(self.num_images, 1)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ClassStats:
        """Statistics of a table of per-image counts (see :func:`class_counts`).

        Args:
            counts: ``N×(C+1)`` int: labelled pixels of each class in each image, then its ignored pixels.
        """
        counts = np.asarray(counts, dtype=np.int64)
        per_class = counts[:, :-1]
        labelled = per_class.sum(axis=1, keepdims=True)
        return cls(
            pixel_counts=tuple(int(v) for v in per_class.sum(axis=0)),
            image_counts=tuple(int(v) for v in (per_class > 0).sum(axis=0)),
            num_images=len(counts),
            image_pixel_counts=tuple(int(v) for v in np.where(per_class > 0, labelled, 0).sum(axis=0)),
        )

    @classmethod
    def from_masks(cls, masks: Iterable[np.ndarray], num_classes: int, ignore_index: int) -> ClassStats:
        """Count pixels and images per class over ``masks`` (each ``H×W`` integer array)."""
        rows = [class_counts(mask, num_classes, ignore_index) for mask in masks]
        return cls.from_counts(np.stack(rows) if rows else np.zeros((0, num_classes + 1), dtype=np.int64))


def class_counts(mask: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Pixels of each class in one mask, then its ignored pixels: ``(C+1,)`` int64.

    Raises:
        ValueError: if the mask holds a value that is neither a class nor ``ignore_index``.
    """
    counts = np.bincount(np.asarray(mask).ravel().astype(np.int64), minlength=max(num_classes, ignore_index + 1))
    other = counts.copy()
    other[:num_classes] = 0
    other[ignore_index] = 0
    if other.any():
        raise ValueError(f"mask values {np.flatnonzero(other)[:10].tolist()} are neither classes nor ignore_index")
    per_class = counts[:num_classes].copy()
    if ignore_index < num_classes:
        per_class[ignore_index] = 0  # an ignore value inside the class range: that class is never labelled
    return np.append(per_class, counts[ignore_index])


def file_list_key(files: Iterable[str | Path], *extra: object) -> str:
    """Hash a list of files (and settings such as the label mapping) into a short key."""
    digest = hashlib.sha1()
    for item in [*map(str, files), *map(repr, extra)]:
        digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def user_cache_dir() -> Path:
    """Where caches go: ``$LIGHTNING_SEG_CACHE``, else ``$XDG_CACHE_HOME/lightning_seg`` (``~/.cache``)."""
    if os.environ.get("LIGHTNING_SEG_CACHE"):
        return Path(os.environ["LIGHTNING_SEG_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lightning_seg"


_announced: set[Path] = set()


def announce_cache(folder: Path, what: str) -> None:
    """Log once per process where a cache of ``what`` lives."""
    if folder not in _announced:
        _announced.add(folder)
        log.info(f"lightning-seg: {what} cached in {folder} (set LIGHTNING_SEG_CACHE to move it)")


def cached_class_counts(key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the per-image class counts cached under ``key``, computing and caching them on a miss.

    The cache file is ``<user cache>/class_stats/class_stats_<key>.npy`` (:func:`user_cache_dir`), never
    the dataset folder (often shared or read-only). When the cache cannot be written the counts are
    still returned, with a warning.
    """
    folder = user_cache_dir() / "class_stats"
    path = folder / f"class_stats_{key}.npy"
    announce_cache(folder, "class statistics")
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):  # a truncated or foreign file: scan again, overwrite it
            return np.load(path, allow_pickle=False)
    counts = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            np.save(handle, counts)
        temporary.replace(path)  # atomic: another process never reads half a file
    except OSError as error:
        log.warning(f"lightning-seg: cannot write the class-statistics cache {path} ({error}); not cached")
    return counts


def computed_on_rank_zero(compute: Callable[[], np.ndarray], trainer: Trainer | None) -> np.ndarray:
    """``compute()`` on rank zero only while ``trainer`` fits on several processes, its result broadcast.

    Under DDP every process needs the class statistics (rare-class sampling, ``auto`` class weights) and
    would otherwise scan the training masks, or read their cache, itself. While a distributed ``fit``
    runs, every process must make this call at the same point: the first read of the DataModule's
    ``class_counts`` is in its ``setup`` (rare-class tools) or the module's (loss class statistics), on
    every process. Rank zero computes; the others receive its array, or the exception its scan raised,
    so no process waits for one that failed. Outside a distributed fit it is ``compute()``.

    Raises:
        Exception: what ``compute`` raised on rank zero, on every process.
    """
    fitting = trainer is not None and trainer.state.fn == "fit" and trainer.state.status == "running"
    if not fitting or trainer.world_size < 2:
        return compute()
    counts, error = None, None
    if trainer.is_global_zero:
        try:
            counts = compute()
        except Exception as raised:  # sent to the other processes, then raised here as it was
            error = raised
    shared, received = trainer.strategy.broadcast((counts, _portable(error)), src=0)
    if error is not None:
        raise error
    if received is not None:
        raise received
    return shared


def _portable(error: Exception | None) -> Exception | None:
    """``error`` if it survives pickling (a broadcast), else a ``RuntimeError`` with its message."""
    if error is None:
        return None
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # an exception class that cannot be rebuilt from its pickle
        return RuntimeError(f"{type(error).__name__}: {error}")
