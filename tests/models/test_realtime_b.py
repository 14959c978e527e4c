"""ContextNet, Fast-SCNN, BiSeNet V1 and V2: parameter counts, shapes, auxiliary outputs, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_seg.cli import main
from lightning_seg.data.synthetic import SyntheticSource
from lightning_seg.losses import CompositeLoss, CrossEntropyLoss, LossTerm
from lightning_seg.models import BiSeNetV1, BiSeNetV2, ContextNet, FastSCNN

from ..conftest import QUICKSTART, REPO, TINY_DATA

#: network → (published or reference parameter count at 19 classes, auxiliary output names).
NETWORKS = {
    ContextNet: (0.85e6, ()),  # the table (the paper)
    FastSCNN: (1.11e6, ()),
    BiSeNetV1: (13e6, ("aux_16", "aux_32")),  # "about 13 M" with ResNet-18
    BiSeNetV2: (3.36e6, ("aux_4", "aux_8", "aux_16", "aux_32")),  # CoinCheung/BiSeNet without boosters
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_parameter_count_within_5_percent(cls: type) -> None:
    target, _ = NETWORKS[cls]
    net = cls(19)
    params = count(net) - (count(net.boosters) if cls is BiSeNetV2 else 0)
    assert abs(params - target) <= 0.05 * target, f"{cls.__name__}: {params:,} vs {target:,.0f}"


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_outputs_at_input_resolution_for_sizes_not_divisible_by_the_stride(cls: type) -> None:
    _, aux = NETWORKS[cls]
    net = cls(3)
    for height, width in ((64, 96), (45, 70)):
        out = net(torch.randn(2, 3, height, width))
        out = out if isinstance(out, dict) else {"logits": out}
        assert set(out) == {"logits", *aux}
        for name, value in out.items():
            assert value.shape == (2, 3, height, width), name


def test_the_crop_keeps_the_top_left_of_the_padded_prediction() -> None:
    # Padding is added at the bottom and right only: the logits of a 45×70 image are those the network
    # computes on its reflection-padded 64×96 version, cropped (an independent pad with numpy).
    net = ContextNet(3).eval()
    image = torch.randn(1, 3, 45, 70)
    padded = torch.from_numpy(np.pad(image.numpy(), ((0, 0), (0, 0), (0, 19), (0, 26)), mode="reflect"))
    with torch.no_grad():
        torch.testing.assert_close(net(image), net(padded)[..., :45, :70])


@pytest.mark.parametrize("cls", [BiSeNetV1, BiSeNetV2], ids=lambda c: c.__name__)
def test_each_auxiliary_output_trains_its_head_and_the_shared_layers(cls: type) -> None:
    net = cls(3)
    mask = torch.randint(0, 3, (2, 64, 64))
    for name in NETWORKS[cls][1]:
        net.zero_grad()
        loss = CompositeLoss([LossTerm(CrossEntropyLoss(), input=name, name=name)])
        loss(net(torch.randn(2, 3, 64, 64)), {"mask": mask}).total.backward()
        heads = net.aux_heads if cls is BiSeNetV1 else net.boosters
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads[name].parameters()), name
        others = [p.grad for key, head in heads.items() if key != name for p in head.parameters()]
        assert all(g is None or not g.any() for g in others), name
        assert net.head[-1].weight.grad is None or not net.head[-1].weight.grad.any()


def synthetic_batch(size: int = 64, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    source = SyntheticSource("train", count, size, seed=0)
    images, masks = zip(*(source.generate(i) for i in range(count)), strict=True)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return (image - 0.5) / 0.25, torch.from_numpy(np.stack(masks)).long()


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_a_few_steps_on_synthetic_data_lower_the_loss(cls: type) -> None:
    torch.manual_seed(0)
    image, mask = synthetic_batch()
    net = cls(5)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        out = net(image)
        return F.cross_entropy(out["logits"] if isinstance(out, dict) else out, mask)

    first = loss()
    for _ in range(6):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 0.8 * first.item()


def test_bisenet_v1_takes_any_encoder() -> None:
    net = BiSeNetV1(4, encoder_name="tu-mobilenetv3_small_100")
    assert net(torch.randn(2, 3, 64, 64))["aux_32"].shape == (2, 4, 64, 64)
    assert count(net) < 3e6


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ContextNet(0), r"num_classes must be a positive int, got 0"),
        (lambda: BiSeNetV2(2.5), r"num_classes must be a positive int, got 2\.5"),
        (lambda: BiSeNetV1(3, encoder_name="resnet180"), r"unknown encoder 'resnet180'\. Did you mean resnet18"),
        (
            lambda: FastSCNN(3)(torch.randn(1, 1, 32, 32)),
            r"FastSCNN expects images of shape N×3×H×W, got \(1, 1, 32, 32\)",
        ),
    ],
)
def test_bad_arguments_give_one_line(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


CONFIGS = {"bisenet_v1": BiSeNetV1, "bisenet_v2": BiSeNetV2, "contextnet": ContextNet, "fast_scnn": FastSCNN}
FAST_FIT = [
    "--trainer.fast_dev_run=true",
    "--trainer.logger=false",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


def fit(config: str, tmp_path: Path, *extra: str):
    args = ["fit", "--config", str(QUICKSTART), "--config", str(REPO / "experiments/models" / f"{config}.yaml")]
    return main([*args, *TINY_DATA, *FAST_FIT, f"--trainer.default_root_dir={tmp_path}", *extra])


def test_auxiliary_outputs_are_loss_terms_through_the_cli(tmp_path: Path) -> None:
    cli = fit("bisenet_v1", tmp_path)
    assert cli.trainer.state.finished and isinstance(cli.model.net, BiSeNetV1)
    logged = cli.trainer.callback_metrics
    total = logged["train/loss"]
    terms = [logged[f"train/loss/{name}"] for name in ("cross_entropy", "aux_16", "aux_32")]
    torch.testing.assert_close(total, sum(terms))  # weights 1, 1, 1
    assert isinstance(cli.model.optimizers().optimizer, torch.optim.SGD)


def test_a_term_reading_an_output_the_network_lacks_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        fit("bisenet_v1", tmp_path, "--model.init_args.net=lightning_seg.models.FastSCNN")
    assert done.value.code != 0
    assert "reads ['aux_16'], which the network outputs ['logits']" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("config", ["bisenet_v2", "contextnet", "fast_scnn"])
def test_every_model_config_fits(config: str, tmp_path: Path) -> None:
    cli = fit(config, tmp_path)
    assert cli.trainer.state.finished and isinstance(cli.model.net, CONFIGS[config])


def test_every_network_of_this_family_has_a_config() -> None:
    assert {p.stem for p in (REPO / "experiments/models").glob("*.yaml")} >= set(CONFIGS)
