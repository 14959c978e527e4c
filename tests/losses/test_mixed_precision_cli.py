"""Mixed precision and compilation end to end, through the CLI on the quickstart config (tiny data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_seg.cli import main
from tests.conftest import QUICKSTART, TINY_DATA

QUIET = [
    "--trainer.callbacks=[]",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


#: A shallower U-Net, so compiling it takes seconds rather than minutes on two cores.
SMALL_NET = [
    "--model.init_args.net.init_args.arch_kwargs={encoder_depth: 3, decoder_channels: [32, 16, 8]}",
]


def _fit(root: Path, *extra: str) -> dict[str, float]:
    cli = main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *QUIET, f"--trainer.default_root_dir={root}", *extra])
    assert cli.trainer.state.finished
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items() if "loss" in k}


def test_bf16_mixed_gives_finite_losses_equal_to_float32(in_tmp: Path) -> None:
    fp32 = _fit(in_tmp / "fp32", "--trainer.fast_dev_run=true")
    bf16 = _fit(in_tmp / "bf16", "--trainer.fast_dev_run=true", "--trainer.precision=bf16-mixed")
    assert set(bf16) == set(fp32) and {"train/loss", "val/loss"} <= set(bf16)
    for key, value in bf16.items():
        assert torch.isfinite(torch.tensor(value)), key
        # Same seed, same weights, same first batch: the training loss differs only by the network's bf16
        # arithmetic; the validation loss comes after one AdamW step taken from bf16 gradients.
        assert value == pytest.approx(fp32[key], rel=2e-2 if key.startswith("train/") else 1e-1), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_16_mixed_gives_finite_losses_equal_to_float32(in_tmp: Path) -> None:
    cuda = [a.replace("accelerator=cpu", "accelerator=gpu") for a in ("--trainer.fast_dev_run=true",)]
    fp32 = _fit(in_tmp / "fp32", *cuda, "--trainer.accelerator=gpu")
    fp16 = _fit(in_tmp / "fp16", *cuda, "--trainer.accelerator=gpu", "--trainer.precision=16-mixed")
    for key, value in fp16.items():
        assert torch.isfinite(torch.tensor(value)), key
        assert value == pytest.approx(fp32[key], rel=3e-2), key


@pytest.mark.slow
def test_compiled_network_trains_a_few_steps(in_tmp: Path) -> None:
    losses = _fit(
        in_tmp / "compiled",
        "--model.init_args.compile=true",
        *SMALL_NET,
        "--trainer.max_steps=3",
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
    )
    assert torch.isfinite(torch.tensor(losses["train/loss"]))
