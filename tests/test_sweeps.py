"""The W&B sweeps in experiments/sweeps/ expand, as the W&B agent expands them, into valid CLI runs."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from lightning_seg.cli import main
from lightning_seg.module import SegmentationModule

from .conftest import REPO, TINY_DATA

SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))


def agent_command(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The command line the W&B agent runs for one trial (``wandb_agent.Agent._command_run``'s macros)."""
    macros = {
        "env": ["/usr/bin/env"],
        "interpreter": ["python"],
        "program": [sweep["program"]],
        **create_sweep_command_args({"args": {name: {"value": value} for name, value in values.items()}}),
    }
    command: list[str] = []
    for chunk in map(str, sweep["command"]):
        command += macros[chunk[2:-1]] if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return command


def trial_values(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the categorical values, with each distribution at its two ends."""
    choices = {
        name: spec["values"] if "values" in spec else [spec["min"], spec["max"]] for name, spec in parameters.items()
    }
    return [dict(zip(choices, combination, strict=True)) for combination in itertools.product(*choices.values())]


def cli_args(command: list[str]) -> list[str]:
    """The arguments after the program, with the repository's relative config paths made absolute."""
    program = command.index("lightning_seg/cli.py")
    args = command[program + 1 :]
    for index, arg in enumerate(args):
        if arg.startswith("experiments/"):
            args[index] = str(REPO / arg)
        elif arg.startswith("--config=experiments/"):
            args[index] = f"--config={REPO / arg.split('=', 1)[1]}"
    return args


@pytest.fixture(scope="module")
def parser() -> Any:
    """The CLI's parser without subcommands (``run=False``): it parses what follows ``fit``."""
    cli = main(["--config", str(REPO / "experiments" / "quickstart.yaml"), *TINY_DATA], run=False)
    return cli.parser


def test_sweeps_exist_and_use_the_agent_macros() -> None:
    assert {path.name for path in SWEEPS} >= {"loss_lr.yaml", "class_weights.yaml"}
    for path in SWEEPS:
        sweep = yaml.safe_load(path.read_text())
        assert (REPO / sweep["program"]).is_file()
        assert sweep["command"][:4] == ["${env}", "${interpreter}", "${program}", "fit"]
        assert sweep["command"][-1] == "${args}"
        assert sweep["metric"] == {"name": "val/miou", "goal": "maximize"}


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_trial_parses(path: Path, parser: Any) -> None:
    sweep = yaml.safe_load(path.read_text())
    for values in trial_values(sweep["parameters"]):
        command = agent_command(sweep, values)
        assert command[:3] == ["/usr/bin/env", "python", "lightning_seg/cli.py"]
        assert cli_args(command)[0] == "fit"
        model = parser.parse_args(cli_args(command)[1:]).model.init_args
        for name, value in values.items():
            if name == "config":
                recipe = yaml.safe_load((REPO / value).read_text())
                assert model.loss.class_path == recipe["model"]["init_args"]["loss"]["class_path"]
            elif name == "model.init_args.optimizer.init_args.lr":
                assert model.optimizer.init_args.lr == pytest.approx(value)
            elif name == "model.init_args.loss.class_path":
                assert model.loss.class_path == value
            elif name == "model.init_args.loss.init_args.weight":
                assert model.loss.init_args.weight == value
            else:
                raise AssertionError(f"{path.name}: no check for parameter {name}")


def test_class_weight_trial_in_either_argument_order(parser: Any) -> None:
    """The agent may send the parameters in any order; the loss and its weighting must not depend on it."""
    sweep = yaml.safe_load((REPO / "experiments/sweeps/class_weights.yaml").read_text())
    values = {
        "model.init_args.loss.class_path": "lightning_seg.losses.FocalLoss",
        "model.init_args.loss.init_args.weight": "enet",
    }
    for ordered in (values, dict(reversed(values.items()))):
        loss = parser.parse_args(cli_args(agent_command(sweep, ordered))[1:]).model.init_args.loss
        assert (loss.class_path, loss.init_args.weight) == ("lightning_seg.losses.FocalLoss", "enet")


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_one_trial_trains_offline(path: Path, in_tmp: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    values = trial_values(sweep["parameters"])[-1]
    cli = main([*cli_args(agent_command(sweep, values)), *TINY_DATA, "--trainer.fast_dev_run=1"])
    assert isinstance(cli.model, SegmentationModule)
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
