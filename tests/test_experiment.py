"""``lightning_seg.from_config`` builds what the CLI builds from the same YAML, with the same links."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import lightning_seg
from lightning_seg.cli import main
from lightning_seg.data import SyntheticDataModule
from lightning_seg.losses import LovaszSoftmaxLoss
from lightning_seg.module import SegmentationModule

from .conftest import QUICKSTART, REPO, TINY_DATA

SHORT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]


def test_builds_the_configured_objects_with_the_dataset_linked_in(in_tmp: Path) -> None:
    datamodule, module, trainer = lightning_seg.from_config(QUICKSTART, overrides=[*TINY_DATA, *SHORT])
    assert isinstance(datamodule, SyntheticDataModule) and datamodule.sizes["train"] == 8
    assert isinstance(module, SegmentationModule)
    assert (module.num_classes, module.class_names) == (datamodule.num_classes, list(datamodule.class_names))
    assert module.ignore_index == datamodule.ignore_index
    assert trainer.max_epochs == 1
    configured = {
        entry["class_path"].rsplit(".", 1)[-1]
        for entry in yaml.safe_load(QUICKSTART.read_text())["trainer"]["callbacks"]
    }
    assert configured <= {type(callback).__name__ for callback in trainer.callbacks}


def test_config_equals_the_clis_resolved_config(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    overrides = [*TINY_DATA, "--trainer.max_epochs=3", "--model.init_args.optimizer.init_args.lr=0.01"]
    experiment = lightning_seg.from_config(QUICKSTART, overrides=overrides)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(QUICKSTART), *overrides, "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    built = yaml.safe_load(
        main(["--config", str(QUICKSTART), *TINY_DATA], run=False).parser.dump(experiment.config, skip_none=False)
    )
    for section in ("seed_everything", "model", "data"):
        assert built[section] == printed[section], section
    # The trainer too, but for what the CLI derives for this run when it builds it: the run directory,
    # which every logger writes into (lightning_seg.runs).
    run_keys = {"default_root_dir", "logger"}
    assert {k: v for k, v in built["trainer"].items() if k not in run_keys} == {
        k: v for k, v in printed["trainer"].items() if k not in run_keys
    }
    run_dir = built["trainer"]["default_root_dir"]
    assert run_dir.startswith("runs/quickstart/")
    for built_logger, printed_logger in zip(built["trainer"]["logger"], printed["trainer"]["logger"], strict=True):
        assert built_logger["class_path"] == printed_logger["class_path"]
        assert built_logger["init_args"]["save_dir"] == run_dir
    assert built["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.01


def test_later_files_overlay_earlier_ones(in_tmp: Path) -> None:
    experiment = lightning_seg.from_config(QUICKSTART, REPO / "experiments/losses/lovasz.yaml", overrides=TINY_DATA)
    assert any(isinstance(m, LovaszSoftmaxLoss) for m in experiment.module.loss.modules())


def test_trained_checkpoint_loads_with_the_safe_loader(in_tmp: Path) -> None:
    datamodule, module, trainer = lightning_seg.from_config(QUICKSTART, overrides=[*TINY_DATA, *SHORT])
    trainer.fit(module, datamodule=datamodule)
    path = in_tmp / "from_config.ckpt"
    trainer.save_checkpoint(path)
    restored = SegmentationModule.load_from_checkpoint(path, map_location="cpu")  # weights_only: torch's default
    image = next(iter(datamodule.val_dataloader()))["image"]
    module.eval(), restored.eval()
    with torch.no_grad():
        assert torch.equal(restored(image)["logits"], module(image)["logits"])


def test_needs_a_config() -> None:
    with pytest.raises(ValueError, match="at least one config file"):
        lightning_seg.from_config()
