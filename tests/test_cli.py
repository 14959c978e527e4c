"""The ``lightning-seg`` command, driven the way a user drives it."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lightning_seg.cli import main
from lightning_seg.data.synthetic import PALETTE

from .conftest import QUICKSTART, REPO, TINY_DATA
from .wandb_log import history_keys

SHORT_FIT = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.log_every_n_steps=1",
]


def run_command(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "lightning_seg.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_fit_then_test_and_predict_from_the_checkpoint(tmp_path: Path) -> None:
    fit = run_command(["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "val mIoU:" in fit.stdout and "vessel" in fit.stdout  # the per-class table
    checkpoint = tmp_path / "runs/quickstart/latest/checkpoints/last.ckpt"
    assert checkpoint.is_file()
    saved = yaml.safe_load((tmp_path / "runs/quickstart/latest/config.yaml").read_text())
    assert saved["model"]["init_args"]["net"]["init_args"]["arch"] == "Unet"

    test = run_command(["test", "--config", str(QUICKSTART), *TINY_DATA, "--ckpt_path", str(checkpoint)], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test mIoU:" in test.stdout

    predict = run_command(
        ["predict", "--config", str(QUICKSTART), *TINY_DATA, "--ckpt_path", str(checkpoint)], tmp_path
    )
    assert predict.returncode == 0, predict.stderr[-3000:]
    (predictions,) = (tmp_path / "runs/quickstart/latest").glob("predict-*/predictions")
    written = sorted(predictions.glob("*.png"))
    assert [p.name for p in written] == [f"synthetic_predict_{i:05d}.png" for i in range(4)]
    mask = Image.open(written[0])
    assert mask.mode == "P" and mask.size == (32, 32)
    assert set(np.unique(np.asarray(mask)).tolist()) <= set(range(5))
    assert mask.getpalette()[:15] == [c for colour in PALETTE for c in colour]


def test_rerunning_the_same_command_just_works(in_tmp: Path) -> None:
    args = ["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT, "--trainer.limit_val_batches=0"]
    main(args)
    main(args)
    runs = [p for p in (in_tmp / "runs/quickstart").iterdir() if not p.is_symlink()]
    assert len(runs) == 2 and all((run / "config.yaml").is_file() for run in runs)


@pytest.mark.parametrize(
    "swap",
    [
        ["--model.init_args.net.init_args.arch=FPN"],
        ["--model.init_args.net.init_args.encoder_name=tu-mobilenetv3_small_100"],
        ["--model.init_args.net.init_args.arch=DeepLabV3Plus", "--model.init_args.net.init_args.encoder_name=resnet34"],
    ],
)
def test_swapping_arch_and_encoder_from_the_command_line(in_tmp: Path, swap: list[str]) -> None:
    cli = main(["fit", "--config", str(QUICKSTART), *TINY_DATA, "--trainer.fast_dev_run=true", *swap])
    expected = swap[0].split("=")[1]
    net = cli.model.net.model
    described = f"{type(net).__name__} {cli.model.hparams['net']['init_args']['encoder_name']}"
    assert expected.split("-")[-1].lower() in described.lower()
    assert cli.trainer.state.finished


def test_print_config_round_trips(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(QUICKSTART), "--model.init_args.net.init_args.arch=FPN", "--print_config"])
    printed = capsys.readouterr().out
    (in_tmp / "printed.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "printed.yaml", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(printed)
    assert yaml.safe_load(printed)["model"]["init_args"]["net"]["init_args"]["arch"] == "FPN"


def test_help_lists_model_and_data_options(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    assert "--trainer.max_epochs" in text
    for option in (
        "--model.init_args.net ",
        "--model.init_args.loss ",
        "--model.init_args.net.init_args.arch ",
        "--data.init_args.image_size ",
        "--data.init_args.rare_probability ",
    ):
        assert option in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.init_args.net.init_args.arch=Unte", "unknown architecture 'Unte'. Did you mean Unet?"),
        (
            "--model.init_args.net.init_args.encoder_name=resnet180",
            "unknown encoder 'resnet180'. Did you mean resnet18",
        ),
        ("--trainer.max_epohs=3", "unrecognized arguments: --trainer.max_epohs=3. Did you mean --trainer.max_epochs"),
        ("--model.init_args.no_such_key=3", "SegmentationModule has no argument 'no_such_key'"),
        ("--model.init_args.ignore_indx=3", "has no argument 'ignore_indx'. Did you mean ignore_index?"),
        (
            "--model.init_args.net.class_path=lightning_seg.models.SMPNett",
            "model.init_args.net: lightning_seg.models has no class 'SMPNett'. Did you mean SMPNet",
        ),
        ("--data.init_args.batch_size=eight", "data.init_args.batch_size: expected int, got 'eight'"),
    ],
)
def test_config_errors_are_one_clear_line(
    in_tmp: Path, capsys: pytest.CaptureFixture, override: str, message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(QUICKSTART), *TINY_DATA, "--trainer.fast_dev_run=true", override])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_a_yaml_syntax_error_names_the_file_and_line(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    (in_tmp / "broken.yaml").write_text("trainer:\n  max_epochs: 3\n   devices: [1\n")
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(QUICKSTART), "--config", "broken.yaml"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "broken.yaml, line 3, column 11: YAML syntax error" in err and len(err.strip().splitlines()) <= 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_unavailable_accelerator_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(QUICKSTART), *TINY_DATA, "--trainer.accelerator=gpu"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--trainer.accelerator: " in err and "Available on this machine: cpu" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_debug_mode_keeps_the_full_report(
    in_tmp: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTNING_SEG_DEBUG", "1")
    with pytest.raises(Exception, match="Does not validate against any of the Union subtypes"):
        main(["fit", "--config", str(QUICKSTART), "--data.init_args.batch_size=eight"])


def test_every_help_hint_works_when_copied(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    hints = sorted(set(re.findall(r"\((--[\w.]+\.help [\w.]+) for details\)", capsys.readouterr().out)))
    assert len(hints) >= 3
    for hint in hints:
        with pytest.raises(SystemExit) as info:
            main(["fit", *hint.split()])
        assert info.value.code in (0, None), hint
        assert "--" in capsys.readouterr().out, hint


def test_num_classes_mismatch_with_checkpoint_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT])
    checkpoint = in_tmp / "runs/quickstart/latest/checkpoints/last.ckpt"
    # Same data, but a checkpoint from a 5-class run used with a 3-class dataset.
    three_classes = in_tmp / "three.py"
    three_classes.write_text(
        "from lightning_seg.data import SyntheticDataModule\n"
        "class ThreeClasses(SyntheticDataModule):\n"
        "    class_names = ('a', 'b', 'c')\n"
        "    def build_source(self, split):\n"
        "        source = super().build_source(split)\n"
        "        source.rare_probability = 0.0\n"
        "        return source\n"
    )
    sys.path.insert(0, str(in_tmp))
    try:
        with pytest.raises(SystemExit):
            main(
                [
                    "validate",
                    "--config",
                    str(QUICKSTART),
                    "--data",
                    "three.ThreeClasses",
                    *TINY_DATA,
                    "--ckpt_path",
                    str(checkpoint),
                ]
            )
    finally:
        sys.path.remove(str(in_tmp))
    assert "trained with num_classes=5 but the data has num_classes=3" in capsys.readouterr().err


def test_wandb_config_runs_offline_and_writes_its_run_directory(tmp_path: Path) -> None:
    config = REPO / "experiments" / "quickstart_wandb.yaml"
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    result = subprocess.run(
        [sys.executable, "-m", "lightning_seg.cli", "fit", "--config", str(config), *TINY_DATA, *SHORT_FIT],
        cwd=tmp_path,
        env=env_free | {"HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs/quickstart_wandb/latest/wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run has no .wandb log to sync"
    (log,) = runs[0].glob("*.wandb")
    assert {"val/miou", "val/iou/rare", "train/loss", "train/weight/cross_entropy"} <= history_keys(log)


def test_metrics_csv_holds_per_class_scores(in_tmp: Path) -> None:
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT])
    rows = list(csv.DictReader((in_tmp / "runs/quickstart/latest/csv/metrics.csv").open()))
    columns = set(rows[0])
    assert {"val/miou", "val/iou/rare", "train/loss", "train/weight/cross_entropy"} <= columns
