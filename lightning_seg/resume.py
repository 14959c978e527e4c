"""Exact resume: the random number generators and the training order continue where the checkpoint left them.

Lightning checkpoints weights, optimizer, schedulers, loops and callbacks, but not the global random
state (Python, NumPy, torch, CUDA) that drives dropout and augmentations, and it restarts an interrupted
epoch's loader from its first batch. :class:`ExactResume` stores the random states and the position in
the epoch with every checkpoint. When training continues it puts the states back (just before training,
after the validation sanity check, which draws from torch's generator when it creates its data loader)
and, for a checkpoint saved mid-epoch (``interrupted-*.ckpt``, or a mid-epoch validation's), starts the
epoch's sampler past the batches already trained on.

What is exact: resuming from any checkpoint, at an epoch end or mid-epoch, when the training loader's
sampler is a :class:`~lightning_seg.data.resumable.ResumableSampler` (every DataModule of this package
uses one). With another sampler a mid-epoch resume restarts that epoch (Lightning warns). Under DDP
every process restores rank zero's random states.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer

from lightning_seg.data.resumable import ResumableSampler

#: The start of Lightning's warning when a run resumes mid-epoch with a loader it cannot resume.
LIGHTNING_NOT_RESUMABLE = "You're resuming from a checkpoint that ended before the epoch ended"


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
    """Save the random states and the epoch position with every checkpoint; restore both when training resumes.

    The CLI adds it to every ``fit``.
    """

    def __init__(self) -> None:
        self._trainer: Trainer | None = None
        self._pending: dict[str, Any] | None = None
        self._position: dict[str, Any] | None = None
        self._quiet: warnings.catch_warnings | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"rng_states": collect_rng_states()}
        if self._trainer is not None:
            # Batches trained on in the current epoch (their optimizer steps done) when the checkpoint is saved.
            done = self._trainer.fit_loop.epoch_loop.batch_progress.current.processed
            state["position"] = {"epoch": self._trainer.current_epoch, "batches": int(done)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng_states")
        self._position = state_dict.get("position")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending)  # again after the sanity check, if one runs

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        position, states, self._position, self._pending = self._position, self._pending, None, None
        if position is None or trainer.current_epoch != position["epoch"]:
            return  # a fresh run, or the checkpoint's epoch was complete
        done = position["batches"]
        if not 0 < done < trainer.num_training_batches:
            return
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if not isinstance(sampler, ResumableSampler):
            return  # Lightning warns that a non-resumable loader restarts the epoch
        # Lightning created the epoch's iterator before setting the sampler's epoch (it does so next, with
        # this value) and from the epoch's first batch: create it again, past the batches already trained on.
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
        sampler.skip_next(done * loader.batch_size)
        iter(trainer.fit_loop._data_fetcher)
        if states is not None:
            restore_rng_states(states)  # creating the iterators drew from torch's generator
        # Lightning is about to warn that the loader is not resumable (it does not know the sampler is).
        self._quiet = warnings.catch_warnings()
        self._quiet.__enter__()
        warnings.filterwarnings("ignore", message=LIGHTNING_NOT_RESUMABLE)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._stop_quiet()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._stop_quiet()

    def _stop_quiet(self) -> None:
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None
