"""The context networks' recipes through the CLI: every auxiliary output is read by its named loss term."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_seg.cli import main

from ..conftest import QUICKSTART, REPO, TINY_DATA

SMALL_NET = [
    "--model.init_args.net.init_args.encoder_name=tu-regnetx_002",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


@pytest.mark.parametrize(
    ("recipe", "terms", "extra"),
    [
        pytest.param("ccnet", {"ce", "aux"}, [], marks=pytest.mark.slow),
        pytest.param("galdnet", {"ce", "aux"}, [], marks=pytest.mark.slow),
        ("encnet", {"ce", "aux", "se"}, []),
        # DFN's border term makes the data workers compute the `edge` target.
        ("dfn", {"ce", "aux_8", "aux_16", "aux_32", "border"}, ["--model.init_args.net.init_args.channels=16"]),
    ],
)
def test_recipe_trains_with_its_auxiliary_terms(in_tmp: Path, recipe: str, terms: set[str], extra: list[str]) -> None:
    config = REPO / "experiments" / "models" / f"{recipe}.yaml"
    cli = main(
        [
            "fit",
            "--config",
            str(QUICKSTART),
            "--config",
            str(config),
            *TINY_DATA,
            *SMALL_NET,
            *(extra or ["--model.init_args.net.init_args.head_channels=16"]),
            "--trainer.fast_dev_run=true",
        ]
    )
    logged = {key.removeprefix("train/loss/") for key in cli.trainer.callback_metrics if key.startswith("train/loss/")}
    assert logged == terms
    assert ("edge" in cli.datamodule.extra_targets) == ("border" in terms)
    assert {key.removeprefix("train/weight/") for key in cli.trainer.callback_metrics if "weight/" in key} == terms
