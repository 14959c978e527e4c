"""Loss recipes through the real CLI: every YAML in experiments/losses/ trains, schedules are logged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lightning_seg.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "experiments" / "losses").glob("*.yaml"))
TINY = [
    "--data.init_args.num_train=8",
    "--data.init_args.num_val=2",
    "--data.init_args.num_test=2",
    "--data.init_args.image_size=32",
    "--data.init_args.batch_size=2",
    "--data.init_args.num_workers=0",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "agg")


def test_every_recipe_is_listed():
    names = {p.stem for p in RECIPES}
    expected = {"ce", "weighted_ce", "focal", "dice", "gdl", "dice_ce", "gdl_boundary", "focal_tversky", "lovasz"}
    assert expected <= names


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_with_fast_dev_run(recipe, tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            str(ROOT / "experiments" / "quickstart.yaml"),
            "--config",
            str(recipe),
            "--trainer.fast_dev_run=true",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            *TINY,
        ]
    )
    assert cli.trainer.state.finished
    loss = cli.model.loss
    fragment = yaml.safe_load(recipe.read_text())["model"]["init_args"]["loss"]
    terms = fragment.get("init_args", {}).get("terms")
    expected = [t["loss"] for t in terms] if terms else [fragment["class_path"]]
    assert [f"lightning_seg.losses.{type(t.loss).__name__}" for t in loss.terms] == expected
    for term in loss.terms:
        assert torch.isfinite(cli.trainer.callback_metrics[f"train/loss/{term.name}"])
    assert set(cli.datamodule.extra_targets) == set(loss.required_targets)


def test_logged_weights_follow_the_schedules(tmp_path):
    fragment = {
        "trainer": {
            "max_epochs": 3,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "log_every_n_steps": 1,
            "default_root_dir": str(tmp_path),
            "logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}}],
        },
        "model": {
            "init_args": {
                "loss": {
                    "class_path": "lightning_seg.losses.CompositeLoss",
                    "init_args": {
                        "terms": [
                            {
                                "loss": "lightning_seg.losses.CrossEntropyLoss",
                                "name": "ce",
                                "weight": {"class_path": "LinearRamp", "init_args": {"length": 2}},
                            },
                            {
                                "loss": "lightning_seg.losses.DiceLoss",
                                "weight": {
                                    "class_path": "Step",
                                    "init_args": {"milestones": [3], "values": [1.0, 0.5], "unit": "step"},
                                },
                            },
                        ]
                    },
                }
            }
        },
    }
    config = tmp_path / "schedule.yaml"
    config.write_text(yaml.safe_dump(fragment))
    main(["fit", "--config", str(ROOT / "experiments" / "quickstart.yaml"), "--config", str(config), *TINY])
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    rows = metrics.dropna(subset=["train/weight/ce"])
    assert len(rows) == 6  # 3 epochs × 2 steps
    assert rows["train/weight/ce"].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    assert rows["epoch"].tolist() == [0, 0, 1, 1, 2, 2]
    assert rows["train/weight/dice"].tolist() == pytest.approx([1.0 if s < 3 else 0.5 for s in rows["step"]])
    assert rows["step"].tolist() == [0, 1, 2, 3, 4, 5]
