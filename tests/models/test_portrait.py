"""PortraitNet, SINet, ExtremeC3Net: parameter counts, outputs, consistency, texture augmentation, recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_seg.cli import main
from lightning_seg.losses import CompositeLoss, ConsistencyLoss, CrossEntropyLoss, EdgeLoss, LossTerm
from lightning_seg.losses.composite import bind_losses
from lightning_seg.models import ExtremeC3Net, PortraitNet, SINet
from lightning_seg.models.portrait.blocks import texture_augment

from ..conftest import REPO

SMALL = {"encoder_name": "tu-mobilenetv3_small_050"}


@pytest.mark.parametrize(("net", "paper"), [(PortraitNet, 2.1e6), (SINet, 0.087e6), (ExtremeC3Net, 0.038e6)])
def test_parameter_count_matches_the_paper(net, paper) -> None:
    # PortraitNet: "about 2.1 M" with MobileNetV2 (width 1); SINet: 0.087 M, ExtremeC3Net 0.038 M (2 classes).
    assert sum(p.numel() for p in net(2).parameters()) == pytest.approx(paper, rel=0.05)


@pytest.mark.parametrize("cls", [SINet, ExtremeC3Net])
@pytest.mark.parametrize("size", [(64, 64), (45, 70)])
def test_small_portrait_nets_give_logits_and_a_few_steps_lower_the_loss(cls, size) -> None:
    torch.manual_seed(0)
    net = cls(2)
    assert set(net(torch.randn(2, 3, *size))) == {"logits"}
    image = torch.randn(2, 3, *size)
    mask = torch.zeros(2, *size, dtype=torch.long)
    mask[:, 10:40, 12:30] = 1
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    values = []
    for _ in range(4):
        logits = net(image)["logits"]
        assert logits.shape == (2, 2, *size)
        loss = torch.nn.functional.cross_entropy(logits, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    assert values[-1] < values[0]


@pytest.mark.parametrize("size", [(64, 64), (45, 70)])
def test_outputs_at_two_input_sizes(size) -> None:
    out = PortraitNet(2, **SMALL)(torch.randn(2, 3, *size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (2, 2, *size),
        "logits_texture": (2, 2, *size),
        "border": (2, 1, *size),
    }


def test_in_evaluation_the_textured_view_is_the_image_itself() -> None:
    net = PortraitNet(2, **SMALL).eval()
    out = net(torch.randn(1, 3, 32, 32))
    assert out["logits_texture"] is out["logits"]
    assert set(PortraitNet(2, consistency=False, **SMALL)(torch.randn(2, 3, 32, 32))) == {"logits", "border"}


def test_texture_augmentation_keeps_shape_changes_values_and_is_the_identity_at_strength_0() -> None:
    torch.manual_seed(0)
    image = torch.randn(4, 3, 16, 16)
    augmented = texture_augment(image)
    assert augmented.shape == image.shape and not torch.allclose(augmented, image)
    torch.testing.assert_close(texture_augment(image, strength=0.0), image)


def test_consistency_is_zero_for_identical_predictions_and_the_kl_divergence_otherwise() -> None:
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6, requires_grad=True)
    mask = torch.randint(0, 3, (2, 5, 6))
    mask[0, 0] = 255
    loss = ConsistencyLoss(temperature=2.0)
    assert loss(teacher, teacher, mask).item() == 0.0
    valid = mask != 255
    per_pixel = torch.nn.functional.kl_div(
        (student / 2).log_softmax(1), (teacher / 2).softmax(1), reduction="none"
    ).sum(1)
    expected = per_pixel[valid].mean() * 4
    value = loss(student, teacher, mask)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert student.grad[0, :, 0].abs().sum() == 0  # ignored row


def test_a_few_steps_lower_the_loss_with_all_four_terms() -> None:
    torch.manual_seed(0)
    net = PortraitNet(2, **SMALL)
    loss = CompositeLoss(
        [
            LossTerm(CrossEntropyLoss(), name="ce"),
            LossTerm(CrossEntropyLoss(), name="ce_texture", input="logits_texture"),
            LossTerm(EdgeLoss(gamma=2.0, width=2), 0.1, name="boundary", input="border"),
            LossTerm(ConsistencyLoss(), 2.0, name="consistency", input=["logits_texture", "logits"]),
        ]
    )
    bind_losses(loss, 2, 255)
    image = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, 6:26, 10:22] = 1
    edge = torch.zeros(2, 32, 32, dtype=torch.uint8)
    edge[:, 6:26, 10] = edge[:, 6:26, 21] = 1
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    values = []
    for _ in range(4):
        out = loss(net(image), {"image": image, "mask": mask, "edge": edge})
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        values.append(out.total.item())
    assert set(out.terms) == {"ce", "ce_texture", "boundary", "consistency"}
    assert values[-1] < values[0]


def write_portraits(root: Path) -> None:
    """A FolderDataModule tree of a few 40×32 'portraits': a bright ellipse (person) on a dark ground."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :32]
    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            person = ((yy - 22) / 14) ** 2 + ((xx - 16 + i) / 9) ** 2 <= 1
            image = rng.integers(0, 80, (40, 32, 3)) + 150 * person[..., None]
            for folder, array in (("images", image.astype(np.uint8)), ("masks", person.astype(np.uint8))):
                (root / folder / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / folder / split / f"{i}.png")


def test_portrait_recipe_trains_on_a_folder(in_tmp: Path) -> None:
    write_portraits(in_tmp / "portraits")
    cli = main(
        [
            "fit",
            "--config",
            str(REPO / "experiments" / "portrait.yaml"),
            f"--data.init_args.root={in_tmp / 'portraits'}",
            "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            f"--model.init_args.net.init_args.encoder_name={SMALL['encoder_name']}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
        ]
    )
    logged = {k.removeprefix("train/loss/") for k in cli.trainer.callback_metrics if k.startswith("train/loss/")}
    assert logged == {"ce", "ce_texture", "boundary", "consistency"}
    assert "edge" in cli.datamodule.extra_targets
    assert cli.trainer.callback_metrics["val/loss/consistency"] == 0  # evaluation: one view


@pytest.mark.parametrize("recipe", ["sinet", "extremec3net"])
def test_small_portrait_net_recipe_trains_on_the_portrait_folder(in_tmp: Path, recipe: str) -> None:
    # The recipes go on top of experiments/portrait.yaml (their comments say so): network and loss swapped.
    write_portraits(in_tmp / "portraits")
    cli = main(
        [
            "fit",
            "--config",
            str(REPO / "experiments" / "portrait.yaml"),
            "--config",
            str(REPO / "experiments" / "models" / f"{recipe}.yaml"),
            f"--data.init_args.root={in_tmp / 'portraits'}",
            "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert cli.trainer.state.finished
    assert type(cli.model.net) is {"sinet": SINet, "extremec3net": ExtremeC3Net}[recipe]
    # Every output of the network is read by a named term, and every term is logged with its weight.
    terms = {term.name: term.inputs for term in cli.model.loss.terms}
    outputs = cli.model.train()(torch.randn(2, 3, 64, 64))
    assert set(outputs) == {name for inputs in terms.values() for name in inputs} == {"logits"}
    metrics = cli.trainer.callback_metrics
    assert {k.removeprefix("train/loss/") for k in metrics if k.startswith("train/loss/")} == set(terms)
    assert {k.removeprefix("train/weight/") for k in metrics if k.startswith("train/weight/")} == set(terms)
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/loss"])
    assert cli.datamodule.extra_targets == {}  # the portrait recipe's edge target is not asked for any more


@pytest.mark.slow
@pytest.mark.parametrize(
    "net", [PortraitNet(2, **SMALL), SINet(2), ExtremeC3Net(2)], ids=["PortraitNet", "SINet", "ExtremeC3Net"]
)
def test_export(net) -> None:
    net = net.eval()
    image = torch.randn(1, 3, 32, 32)
    program = torch.export.export(net, (image,))
    for key, value in net(image).items():
        torch.testing.assert_close(program.module()(image)[key], value)
