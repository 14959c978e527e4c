"""Attention U-Net and R2U-Net: their blocks against the papers' formulas, shapes, training, recipes, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_seg.cli import main
from lightning_seg.losses import CompositeLoss, CrossEntropyLoss, LossTerm
from lightning_seg.losses.composite import bind_losses
from lightning_seg.models import AttentionUNet, R2UNet
from lightning_seg.models.unet.attention_unet import AttentionGate
from lightning_seg.models.unet.r2unet import RecurrentConv

from ..conftest import QUICKSTART, REPO, TINY_DATA

NETWORKS = [AttentionUNet, R2UNet]


def test_attention_gate_with_a_constant_score_scales_the_skip_by_its_sigmoid() -> None:
    gate = AttentionGate(4, 6).eval()
    with torch.no_grad():
        gate.psi.weight.zero_()
        gate.psi.bias.fill_(0.3)
    x, g = torch.randn(2, 4, 8, 10), torch.randn(2, 6, 4, 5)
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (2, 1, 8, 10)
    torch.testing.assert_close(alpha, torch.full_like(alpha, torch.sigmoid(torch.tensor(0.3)).item()))
    torch.testing.assert_close(gate(x, g), gate.out(alpha * x))


def test_attention_coefficients_follow_the_additive_formula() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(4, 6, inter_channels=3)
    x, g = torch.randn(1, 4, 6, 6), torch.randn(1, 6, 3, 3)
    # q at coarse cell (i, j) from x's 2×2 block and g's cell, written out with plain tensor algebra.
    q = torch.empty(1, 1, 3, 3)
    for i in range(3):
        for j in range(3):
            patch = x[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            theta = torch.einsum("oikl,ikl->o", gate.theta.weight, patch)
            phi = gate.phi.weight[:, :, 0, 0] @ g[0, :, i, j] + gate.phi.bias
            q[0, 0, i, j] = gate.psi.weight[0, :, 0, 0] @ torch.relu(theta + phi) + gate.psi.bias[0]
    expected = torch.nn.functional.interpolate(q, size=(6, 6), mode="bilinear", align_corners=False).sigmoid()
    torch.testing.assert_close(gate.coefficients(x, g), expected, atol=1e-6, rtol=1e-5)


def test_recurrent_conv_unrolls_the_papers_recurrence() -> None:
    torch.manual_seed(0)
    layer = RecurrentConv(3, steps=2).eval()
    x = torch.randn(1, 3, 5, 5)
    drive = layer.feedforward(x)
    h = layer.norm(drive).relu()  # t = 0
    for _ in range(2):
        h = layer.norm(drive + layer.recurrent(h)).relu()
    torch.testing.assert_close(layer(x), h)


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize("size", [(32, 32), (45, 70)])
def test_outputs_at_two_input_sizes(cls, size) -> None:
    out = cls(3, base_channels=4, deep_supervision=True)(torch.randn(2, 3, *size))
    assert set(out) == {"logits", "aux_2", "aux_4", "aux_8"}
    assert out["logits"].shape == (2, 3, *size)
    for stride in (2, 4, 8):
        expected = (32 // stride, 32 // stride) if size == (32, 32) else size
        assert out[f"aux_{stride}"].shape == (2, 3, *expected)
    assert set(cls(3, base_channels=4, depth=2)(torch.randn(1, 3, 20, 20))) == {"logits"}


@pytest.mark.parametrize("cls", NETWORKS)
def test_a_few_steps_lower_the_loss(cls) -> None:
    torch.manual_seed(0)
    net = cls(3, base_channels=4, depth=3, deep_supervision=True)
    terms = [LossTerm(CrossEntropyLoss(), name="ce")]
    terms += [LossTerm(CrossEntropyLoss(), 0.5, name=name, input=name) for name in ("aux_2", "aux_4")]
    loss = CompositeLoss(terms)
    bind_losses(loss, 3, 255)
    image = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, 8:24, 8:24] = 1
    mask[1, :4] = 2
    mask[0, -2:] = 255
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    values = []
    for _ in range(4):
        out = loss(net(image), {"image": image, "mask": mask})
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        values.append(out.total.item())
    assert values[-1] < values[0]


def test_attention_unet_recipe_trains_with_deep_supervision(in_tmp: Path) -> None:
    config = REPO / "experiments" / "models" / "attention_unet.yaml"
    args = ["--model.init_args.net.init_args.base_channels=4", "--trainer.callbacks=[]", "--trainer.fast_dev_run=true"]
    cli = main(["fit", "--config", str(QUICKSTART), "--config", str(config), *TINY_DATA, *args])
    logged = {k.removeprefix("train/loss/") for k in cli.trainer.callback_metrics if k.startswith("train/loss/")}
    assert logged == {"ce", "aux_2", "aux_4", "aux_8"}


@pytest.mark.slow
def test_r2unet_recipe_trains(in_tmp: Path) -> None:
    config = REPO / "experiments" / "models" / "r2unet.yaml"
    args = ["--model.init_args.net.init_args.base_channels=4", "--trainer.callbacks=[]", "--trainer.fast_dev_run=true"]
    assert main(["fit", "--config", str(QUICKSTART), "--config", str(config), *TINY_DATA, *args]).trainer.state.finished


@pytest.mark.slow
@pytest.mark.parametrize("cls", NETWORKS)
def test_export(cls) -> None:
    net = cls(3, base_channels=4, deep_supervision=True).eval()
    image = torch.randn(1, 3, 32, 32)
    program = torch.export.export(net, (image,))
    expected, exported = net(image), program.module()(image)
    for key, value in expected.items():
        torch.testing.assert_close(exported[key], value)
