"""Read back what an offline W&B run wrote to its ``.wandb`` file (a LevelDB-style record log)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, _, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B":
        raise ValueError(f"{path} is not a W&B run log (header {ident!r})")
    offset, pending = FILE_HEADER.size, b""
    while offset + RECORD_HEADER.size <= len(data):
        room = BLOCK - offset % BLOCK
        if room < RECORD_HEADER.size:  # the rest of the block is padding
            offset += room
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, offset)
        offset += RECORD_HEADER.size
        chunk, offset = data[offset : offset + length], offset + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def history_keys(path: Path) -> set[str]:
    """Every metric key logged to the run's history."""
    keys: set[str] = set()
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return keys
