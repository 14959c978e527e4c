"""DDP with 2 CPU processes (gloo): the same scores as 1 process, every prediction written once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import QUICKSTART, TINY_DATA
from .test_cli import run_command

CPU = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2"]


def only_run(root: Path, prefix: str) -> Path:
    (run,) = [p for p in root.glob(f"{prefix}-*") if p.is_dir()]
    return run


@pytest.mark.slow
def test_ddp_validation_sums_the_confusion_matrix_of_every_process(tmp_path: Path) -> None:
    # 8 validation images: 4 per process under DDP, so no sample is repeated to even out the shards.
    data = [*TINY_DATA, "--data.init_args.num_val=8", "--data.init_args.batch_size=2"]
    single = run_command(["validate", "--config", str(QUICKSTART), *data, *CPU, "--trainer.devices=1"], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    one = only_run(tmp_path / "runs/quickstart", "validate")
    (tmp_path / "ddp").mkdir()
    double = run_command(["validate", "--config", str(QUICKSTART), *data, *CPU, *DDP], tmp_path / "ddp")
    assert double.returncode == 0, double.stderr[-3000:]
    two = only_run(tmp_path / "ddp/runs/quickstart", "validate")
    (csv_one,) = (one / "diagnostics/confusion_matrix").glob("val_epoch_*.csv")
    (csv_two,) = (two / "diagnostics/confusion_matrix").glob("val_epoch_*.csv")
    matrix_one = pd.read_csv(csv_one, index_col=0).to_numpy()
    matrix_two = pd.read_csv(csv_two, index_col=0).to_numpy()
    assert matrix_one.sum() == 8 * 32 * 32  # every pixel of every image once (nothing ignored)
    np.testing.assert_array_equal(matrix_two, matrix_one)
    assert "val mIoU:" in double.stdout and double.stdout.count("val mIoU:") == 1  # printed by rank zero


@pytest.mark.slow
def test_ddp_predict_writes_every_image_exactly_once(tmp_path: Path) -> None:
    # 5 images on 2 processes: Lightning's predict sampler must not repeat one to even out the shards.
    data = [*TINY_DATA, "--data.init_args.num_test=5", "--data.init_args.batch_size=2"]
    predict = run_command(["predict", "--config", str(QUICKSTART), *data, *CPU, *DDP], tmp_path)
    assert predict.returncode == 0, predict.stderr[-3000:]
    run = only_run(tmp_path / "runs/quickstart", "predict")
    written = sorted(p.name for p in (run / "predictions").rglob("*.png"))
    assert written == [f"synthetic_predict_{i:05d}.png" for i in range(5)]
