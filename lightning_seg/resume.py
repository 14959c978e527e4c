"""Exact resume: the random number generators continue where the checkpointed run left them.

Lightning checkpoints weights, optimizer, schedulers, loops and callbacks, but not the global random
state (Python, NumPy, torch, CUDA) that shuffles the training set and drives augmentations. Without it a
resumed run draws another order for the next epoch than the run it continues. :class:`ExactResume`
stores the states in the checkpoint and puts them back just before training continues, after the
validation sanity check (which draws from torch's generator when it creates its data loader).

What is exact: resuming from a checkpoint saved at the end of an epoch (``last.ckpt``), on one
process. A checkpoint saved mid-epoch (``interrupted-*.ckpt``) restarts that epoch's loader, so the
remaining steps see another order. Under DDP every process restores rank zero's states.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer


def collect_rng_states() -> dict[str, Any]:
    """The global random states of Python, NumPy, torch (CPU) and every CUDA device.

    Only tensors and plain Python values, so that ``torch.load(weights_only=True)`` reads them.
    """
    _, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global random states from :func:`collect_rng_states`."""
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(Callback):
    """Save the global random states with every checkpoint and restore them when training resumes.

    The CLI adds it to every ``fit``.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng_states": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng_states")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending)  # again after the sanity check, if one runs

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pending = None
