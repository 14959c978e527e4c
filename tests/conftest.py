"""Shared test set-up: offline, headless, and small enough for a 2-core machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "agg")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "experiments" / "quickstart.yaml"

#: Command-line overrides that shrink the quickstart to seconds.
TINY_DATA = [
    "--data.init_args.num_train=8",
    "--data.init_args.num_val=4",
    "--data.init_args.num_test=4",
    "--data.init_args.image_size=32",
    "--data.init_args.batch_size=4",
    "--data.init_args.num_workers=0",
]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary directory, so configs' relative ``runs/`` paths land there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    return tmp_path
