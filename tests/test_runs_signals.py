"""A signal stops a real CLI run with a resumable, honestly named checkpoint and a non-zero status."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from lightning import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_seg.signals import CAUGHT, GracefulInterrupt, RunInterrupted

from .conftest import QUICKSTART, TINY_DATA

LONG_EPOCH = [*TINY_DATA, "--data.init_args.num_train=400", "--trainer.max_epochs=1",
              "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false"]


def start_fit(cwd: Path, *extra: str) -> subprocess.Popen:
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_seg.cli", "fit", "--config", str(QUICKSTART), *LONG_EPOCH, *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_training(run: Path, process: subprocess.Popen, timeout: float = 900) -> None:
    """Until the run is set up (its config is saved in setup, after the signal handlers are installed)."""
    deadline = time.monotonic() + timeout
    while not (run / "config.yaml").exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    time.sleep(1.0)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow),
               pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)], ids=["TERM", "INT", "USR1"]
)
def test_a_signal_saves_a_resumable_checkpoint_and_exits_non_zero(tmp_path: Path, signum: int) -> None:
    process = start_fit(tmp_path)
    wait_for_training(tmp_path / "runs/quickstart/latest", process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=900)
    assert process.returncode == 128 + signum, err[-3000:]
    (saved,) = (tmp_path / "runs/quickstart/latest/checkpoints").glob("*.ckpt")  # this one only, no score
    checkpoint = torch.load(saved, map_location="cpu", weights_only=False)
    step = checkpoint["global_step"]
    assert saved.name == f"interrupted-epoch0-step{step}.ckpt" and 0 < step < 100  # mid-epoch, no score
    # The message names the file to resume from, as a path from where the command ran.
    assert f"--ckpt_path {saved.resolve().relative_to(tmp_path.resolve())}" in err

    # Resume from it ("last" is the newest checkpoint of the latest run) and finish the epoch.
    resumed = start_fit(tmp_path, "--ckpt_path", "last")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err[-3000:]
    final = torch.load(tmp_path / "runs/quickstart/latest/checkpoints/last.ckpt", map_location="cpu",
                       weights_only=False)
    assert final["global_step"] == 100  # the interrupted epoch of 100 steps, finished after resuming
    assert len([p for p in (tmp_path / "runs/quickstart").iterdir() if not p.is_symlink()]) == 1


class _Step(LightningModule):
    """One linear layer whose training step does ``action`` (raise, or send this process a signal)."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.action = action

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.action()
        return self.layer(batch[0]).sum()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _FailingSetup(Callback):
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        raise ValueError("a later callback's setup fails")


def _raise(error: BaseException) -> Callable[[], None]:
    def action() -> None:
        raise error

    return action


ENDINGS = {  # how fit ends -> (what the step does, extra callbacks, what fit raises)
    "finished": (lambda: None, [], None),
    "exception": (_raise(ValueError("a bad step")), [], ValueError),
    "setup-exception": (lambda: None, [_FailingSetup()], ValueError),
    "KeyboardInterrupt": (_raise(KeyboardInterrupt()), [], SystemExit),  # Lightning exits with status 1
    "RunInterrupted": (lambda: signal.raise_signal(signal.SIGUSR1), [], RunInterrupted),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_previous_signal_handlers_are_back_however_fit_ends(tmp_path: Path, ending: str) -> None:
    action, callbacks, raised = ENDINGS[ending]
    before = {signum: signal.getsignal(signum) for signum in CAUGHT}
    mine = {signum: (lambda s, f: None) for signum in CAUGHT}  # distinct from every default handler
    try:
        for signum, handler in mine.items():
            signal.signal(signum, handler)
        trainer = Trainer(
            accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path, callbacks=[GracefulInterrupt(), *callbacks],
        )
        with pytest.raises(raised) if raised else contextlib.nullcontext():
            trainer.fit(_Step(action))
        after = {signum: signal.getsignal(signum) for signum in CAUGHT}
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert after == mine
