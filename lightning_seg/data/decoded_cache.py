"""An opt-in cache of decoded samples: each image and mask decoded once into memory-mapped uint8 arrays.

Decoding a 2048×1024 PNG pair costs more than all of the training pipeline after it. With ``cache: raw``
the DataModule decodes every sample of a split once (with a progress bar, after reporting the size it will
take), into two flat files under ``<user cache>/decoded/<key>/`` (:func:`~lightning_seg.data.stats.user_cache_dir`,
moved by ``LIGHTNING_SEG_CACHE``; keep it on a local disk). The key hashes the image and label files'
paths, sizes and modification times and the label decoding, as the class-statistics cache does, so a
changed file gives a new cache. Later reads are slices of the memory-mapped files: a worker only copies
the bytes its crop touches, and the operating system's page cache keeps hot samples in memory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lightning_seg.data.base import SampleSource
from lightning_seg.data.stats import announce_cache, file_list_key, user_cache_dir

log = logging.getLogger(__name__)


class DecodedCache(SampleSource):
    """Wrap a source so that its samples are read from memory-mapped decoded arrays.

    Args:
        source: the samples to cache; its :meth:`~SampleSource.fingerprint` must cover every file that
            :meth:`~SampleSource.load` reads (see :meth:`FileSource.fingerprint`).
        folder: where caches live; default: ``<user cache>/decoded``.
        expected_bytes: the cache's size if known before decoding (reported, and checked against the
            free disk space); default: measured from the first sample.
    """

    def __init__(self, source: SampleSource, folder: Path | None = None, expected_bytes: int | None = None) -> None:
        fingerprint = source.fingerprint(with_images=True)
        if fingerprint is None:
            raise ValueError(f"{type(source).__name__} cannot be cached: its samples are not stored files")
        self.source, self.root = source, source.root
        base = folder if folder is not None else user_cache_dir() / "decoded"
        self.path = base / file_list_key(fingerprint, "decoded-v1")
        announce_cache(base, "decoded samples")
        if not (self.path / "index.json").is_file():
            self._build(expected_bytes)
        index = json.loads((self.path / "index.json").read_text())
        self.names: list[str] = index["names"]
        self.entries = np.asarray(index["entries"], dtype=np.int64)  # image offset, mask offset, height, width
        self._arrays: tuple[int, np.memmap, np.memmap | None] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def describe(self, index: int) -> str:
        return self.source.describe(index)

    def fingerprint(self, with_images: bool = False) -> list[str] | None:
        return self.source.fingerprint(with_images=with_images)

    def ignored_region(self, index: int) -> np.ndarray | None:
        return self.source.ignored_region(index)

    def _maps(self) -> tuple[np.memmap, np.memmap | None]:
        """The memory maps, opened once per process (a forked worker opens its own)."""
        if self._arrays is None or self._arrays[0] != os.getpid():
            images = np.memmap(self.path / "images.u8", dtype=np.uint8, mode="r")
            has_masks = (self.path / "masks.u8").stat().st_size > 0  # an empty file cannot be mapped
            masks = np.memmap(self.path / "masks.u8", dtype=np.uint8, mode="r") if has_masks else None
            self._arrays = (os.getpid(), images, masks)
        return self._arrays[1], self._arrays[2]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}  # a spawned worker maps the files itself

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        images, masks = self._maps()
        image_at, mask_at, height, width = (int(v) for v in self.entries[index])
        image = images[image_at : image_at + height * width * 3].reshape(height, width, 3)
        mask = (
            None if mask_at < 0 or masks is None else masks[mask_at : mask_at + height * width].reshape(height, width)
        )
        return image, mask, self.names[index]

    def masks(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            mask = self.load(index)[1]
            if mask is not None:
                yield mask

    def _build(self, expected_bytes: int | None) -> None:
        """Decode every sample once into the cache folder; one process builds while the others wait."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.parent / f"{self.path.name}.lock", "w")  # closed by the with below
        except OSError as error:
            raise ValueError(
                f"cannot write the decoded cache in {self.path.parent} ({error}): set LIGHTNING_SEG_CACHE to a "
                "writable local folder, or drop cache: raw"
            ) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # DDP ranks on one machine: the first builds, the rest reuse
            if (self.path / "index.json").is_file():
                return
            self._write(expected_bytes)

    def _write(self, expected_bytes: int | None) -> None:
        from tqdm import tqdm

        total = len(self.source)
        first_image, first_mask, _ = self.source.load(0)
        estimate = expected_bytes or total * (first_image.size + (first_mask.size if first_mask is not None else 0))
        free = shutil.disk_usage(self.path.parent).free
        log.info(f"lightning-seg: caching {total} decoded samples (about {estimate / 2**30:.2f} GiB) in {self.path}")
        if estimate > free:
            raise ValueError(
                f"the decoded cache needs about {estimate / 2**30:.2f} GiB but {self.path.parent} has "
                f"{free / 2**30:.2f} GiB free: set LIGHTNING_SEG_CACHE to a larger local disk, or drop cache: raw"
            )
        building = self.path.with_name(f"{self.path.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        names, entries = [], []
        image_at = mask_at = 0
        with open(building / "images.u8", "wb") as images, open(building / "masks.u8", "wb") as masks:
            for index in tqdm(range(total), desc="decoding samples once", disable=not sys.stderr.isatty()):
                image, mask, name = self.source.load(index)
                image = np.ascontiguousarray(image, dtype=np.uint8)
                images.write(image.tobytes())
                entry = [image_at, -1, image.shape[0], image.shape[1]]
                image_at += image.size
                if mask is not None:
                    masks.write(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
                    entry[1] = mask_at
                    mask_at += mask.size
                names.append(name)
                entries.append(entry)
        (building / "index.json").write_text(json.dumps({"names": names, "entries": entries}))
        building.replace(self.path)  # complete or absent: an interrupted build leaves no half cache
