"""One ``fit`` with ``fast_dev_run`` per DataModule, from its experiments/<dataset>.yaml, on its fixture."""

from __future__ import annotations

import json
from pathlib import Path

import data_fixtures as fx
import pytest

from lightning_seg.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

TINY_PIPELINE = {
    "__class_fullname__": "Compose",
    "transforms": [
        {"__class_fullname__": "PadIfNeeded", "min_height": 32, "min_width": 32, "border_mode": 0},
        {"__class_fullname__": "RandomCrop", "height": 32, "width": 32},
    ],
}

# config name → (fixture writer, extra arguments for the tiny fixture)
DATASETS = {
    "folder": (
        fx.make_folder,
        ["--data.init_args.class_names=[bg,a,b]", "--data.init_args.palette=null"]
        + [f"--data.init_args.train_transform={json.dumps(TINY_PIPELINE)}"],
    ),
    "voc": (lambda root: fx.make_voc(root, trainaug=True), ["--data.init_args.crop_size=[32,32]"]),
    "cityscapes": (fx.make_cityscapes, ["--data.init_args.crop_size=[32,32]"]),
    "camvid": (fx.make_camvid, ["--data.init_args.crop_size=[32,32]"]),
    "ade20k": (fx.make_ade20k, ["--data.init_args.crop_size=[32,32]"]),
    "drive": (fx.make_drive, ["--data.init_args.crop_size=[32,32]"]),
    "kvasir": (fx.make_kvasir, ["--data.init_args.crop_size=[32,32]"]),
}


# The folder run stays in the default suite; the benchmark datasets' runs (about 5 s each on an idle
# 2-core machine, far more on a busy one) are marked slow.
@pytest.mark.parametrize(
    "name", [name if name == "folder" else pytest.param(name, marks=pytest.mark.slow) for name in DATASETS]
)
def test_fit_fast_dev_run_on_the_fixture(name, tmp_path, monkeypatch):
    make, extra = DATASETS[name]
    make(tmp_path / "data")
    monkeypatch.chdir(tmp_path)  # the config's runs/<name>/ paths land in the temporary folder
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "cache"))
    cli = main(
        [
            "fit",
            "--config",
            str(EXPERIMENTS / f"{name}.yaml"),
            f"--data.init_args.root={tmp_path / 'data'}",
            "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            *extra,
        ]
    )
    datamodule = cli.datamodule
    assert cli.trainer.state.finished
    assert cli.model.num_classes == datamodule.num_classes
    assert list(cli.model.class_names) == list(datamodule.class_names)
    assert "val/miou" in cli.trainer.callback_metrics
    assert list((tmp_path / "cache").rglob("class_stats_*.npy"))  # the class statistics were scanned and cached
