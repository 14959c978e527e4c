"""Stopping a run on a signal: save a checkpoint that resumes, then exit with the signal's status.

SIGINT (Ctrl+C), SIGTERM (``kill``, schedulers) and SIGUSR1 (SLURM's pre-emption warning with
``--signal=USR1@90``) are caught; at the next training-step boundary, every process saves
``<run>/checkpoints/interrupted-epochE-stepS.ckpt`` (named for what it is: no score that was not
measured for those weights) and the command exits with ``128 + signal`` (130, 143, 138), so a scheduler
or a script never reads an interrupted run as a success. A second signal of the same kind stops at once.

Under SLURM with Lightning's auto-requeue (its ``SLURMEnvironment``), SIGUSR1 and SIGTERM stay with
Lightning: it saves ``hpc_ckpt_N.ckpt`` in the run directory, requeues the job, and the requeued job
resumes from it in the same run directory (:func:`lightning_seg.runs.cluster_run_id`).
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_seg.runs import CHECKPOINTS, run_directory

CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class RunInterrupted(BaseException):
    """Raised at a step boundary after a signal, once the interrupt checkpoint is saved.

    A ``BaseException`` (as ``KeyboardInterrupt``), so no ``except Exception`` in user code swallows it.

    Args:
        signum: the signal received.
        checkpoint: the checkpoint saved.
    """

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; resume with --ckpt_path {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, the shell's convention for a process ended by a signal."""
        return 128 + self.signum


def interrupt_checkpoint_name(epoch: int, step: int) -> str:
    """``interrupted-epoch{E}-step{S}.ckpt``: where training stopped, never a score."""
    return f"interrupted-epoch{epoch}-step{step}.ckpt"


class GracefulInterrupt(Callback):
    """Turn SIGINT / SIGTERM / SIGUSR1 into a resumable checkpoint and :class:`RunInterrupted`.

    The CLI adds it to every ``fit``. Handlers are installed in ``setup``, before Lightning's own (which
    then call both for SIGTERM), and the previous ones are put back however ``fit`` ends: in ``teardown``
    when it finishes, in ``on_exception`` when it raises (Lightning calls no ``teardown`` then). Under DDP
    every process agrees at each step (one boolean all-reduce), so all of them save the same step and stop
    together.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.signum = None
        environment = trainer._accelerator_connector.cluster_environment
        slurm_requeue = isinstance(environment, SLURMEnvironment) and environment.auto_requeue
        for signum in CAUGHT:
            if slurm_requeue and signum != signal.SIGINT:
                continue  # Lightning saves hpc_ckpt_N.ckpt and requeues the job
            self._previous[signum] = signal.signal(signum, self._handle)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore(trainer)

    def _restore(self, trainer: Trainer) -> None:
        """Put back the handlers found in ``setup``, now and after Lightning's own teardown.

        Lightning records the handlers it finds when it installs its own (after ``setup``, so ours) and
        re-installs them in its teardown, which on an exception runs after ``on_exception``: its record
        of ours is replaced by what ours replaced.
        """
        recorded = trainer._signal_connector._original_handlers
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
            if recorded.get(signum) == self._handle:
                recorded[signum] = handler
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum not in self._previous or self.signum == signum:
            # Not training any more (Lightning may have re-installed this handler), or a second signal:
            # behave as if nothing caught it.
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signum = signum

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        received = self.signum is not None
        if trainer.strategy.reduce_boolean_decision(received, all=False):
            signum = int(trainer.strategy.broadcast(self.signum if received else 0)) or signal.SIGTERM
            raise RunInterrupted(signum, self._save(trainer))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Lightning's own SIGTERM handling (DDP: it broadcasts the signal and raises at the next step).
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            self._save(trainer)
        self._restore(trainer)

    @staticmethod
    def _save(trainer: Trainer) -> Path:
        name = interrupt_checkpoint_name(trainer.current_epoch, trainer.global_step)
        path = run_directory(trainer) / CHECKPOINTS / name
        trainer.save_checkpoint(path)
        return path
