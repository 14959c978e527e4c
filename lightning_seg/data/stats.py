"""Per-class pixel and image counts of a set of masks, and their on-disk cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np


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
    def from_masks(cls, masks: Iterable[np.ndarray], num_classes: int, ignore_index: int) -> ClassStats:
        """Count pixels and images per class over ``masks`` (each ``H×W`` integer array)."""
        pixels = np.zeros(num_classes, dtype=np.int64)
        images = np.zeros(num_classes, dtype=np.int64)
        image_pixels = np.zeros(num_classes, dtype=np.int64)
        n = 0
        for mask in masks:
            valid = mask[mask != ignore_index]
            counts = np.bincount(valid.ravel().astype(np.int64), minlength=num_classes)[:num_classes]
            pixels += counts
            images += counts > 0
            image_pixels += np.where(counts > 0, valid.size, 0)
            n += 1
        return cls(
            pixel_counts=tuple(int(v) for v in pixels),
            image_counts=tuple(int(v) for v in images),
            num_images=n,
            image_pixel_counts=tuple(int(v) for v in image_pixels),
        )

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> ClassStats:
        """Read statistics written by :meth:`to_json`.

        Raises:
            ValueError: if the file is not valid JSON or lacks a field (e.g. ``image_pixel_counts`` in a
                file written before that field existed).
        """
        raw = json.loads(Path(path).read_text())
        missing = [f.name for f in fields(cls) if not isinstance(raw, dict) or f.name not in raw]
        if missing:
            raise ValueError(f"{path}: class statistics lack the fields {missing}; rescan the masks")
        return cls(
            pixel_counts=tuple(int(v) for v in raw["pixel_counts"]),
            image_counts=tuple(int(v) for v in raw["image_counts"]),
            num_images=int(raw["num_images"]),
            image_pixel_counts=tuple(int(v) for v in raw["image_pixel_counts"]),
        )


def file_list_key(files: Iterable[str | Path], *extra: object) -> str:
    """Hash a list of files (and settings such as the label mapping) into a short key."""
    digest = hashlib.sha1()
    for item in [*map(str, files), *map(repr, extra)]:
        digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


#: Folder (inside a dataset root) that holds the cached class statistics.
CACHE_DIRNAME = ".lightning_seg"


def user_cache_dir() -> Path:
    """Where caches go when a dataset folder is read-only: ``$LIGHTNING_SEG_CACHE``, else the XDG cache."""
    if os.environ.get("LIGHTNING_SEG_CACHE"):
        return Path(os.environ["LIGHTNING_SEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lightning_seg"


def cached_class_stats(key: str, root: Path | None, compute: Callable[[], ClassStats]) -> ClassStats:
    """Return the statistics cached under ``key``, computing and caching them on a miss.

    The cache file ``class_stats_<key>.json`` is looked up in ``<root>/.lightning_seg/`` and then in
    :func:`user_cache_dir`; a new one is written next to the data, or in the user cache when the data
    folder cannot be written.
    """
    name = f"class_stats_{key}.json"
    folders = ([root / CACHE_DIRNAME] if root is not None else []) + [user_cache_dir()]
    for folder in folders:
        if (folder / name).is_file():
            try:
                return ClassStats.from_json(folder / name)
            except (ValueError, TypeError):
                continue  # a truncated, foreign or older-format file: scan again and overwrite it
    stats = compute()
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stats.to_json(folder / name)
        except OSError:
            continue
        break
    return stats
