"""The real-time networks ENet, ERFNet, ESNet, LEDNet, DABNet, CGNet, EDANet and ESPNet."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from lightning_seg.cli import main
from lightning_seg.data.synthetic import SyntheticSource
from lightning_seg.models import CGNet, DABNet, EDANet, ENet, ERFNet, ESNet, ESPNet, LEDNet

from ..conftest import QUICKSTART, REPO, TINY_DATA

#: Parameters at 19 classes as the papers (and issue 14) give them, in millions.
PUBLISHED = {
    ENet: 0.37,
    ERFNet: 2.07,
    ESNet: 1.66,
    LEDNet: 0.94,
    DABNet: 0.76,
    CGNet: 0.50,
    EDANet: 0.68,
    ESPNet: 0.36,
}
NETWORKS = list(PUBLISHED)
CONFIGS = {ENet: "enet", ERFNet: "erfnet", ESNet: "esnet", LEDNet: "lednet", DABNet: "dabnet", CGNet: "cgnet",
           EDANet: "edanet", ESPNet: "espnet"}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a shared machine OpenMP's waiting costs 20x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ids(cls: type) -> str:
    return cls.__name__


@pytest.mark.parametrize("cls", NETWORKS, ids=ids)
def test_parameter_count_matches_the_paper_within_5_percent(cls: type) -> None:
    count = sum(p.numel() for p in cls(19).parameters()) / 1e6
    assert count == pytest.approx(PUBLISHED[cls], rel=0.05)


@pytest.mark.parametrize("cls", NETWORKS, ids=ids)
def test_logits_at_input_resolution_also_off_the_stride(cls: type) -> None:
    net = cls(3).eval()
    with torch.no_grad():
        for size in ((64, 64), (45, 70)):
            logits = net(torch.randn(1, 3, *size))
            assert logits.shape == (1, 3, *size)
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize("cls", NETWORKS, ids=ids)
def test_a_few_steps_on_synthetic_data_lower_the_loss(cls: type) -> None:
    torch.manual_seed(0)
    source = SyntheticSource("train", 2, 32, seed=0)
    images, masks = zip(*(source.generate(i) for i in range(2)), strict=True)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    mask = torch.from_numpy(np.stack(masks)).long()
    net = cls(5)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(net(image), mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-2:]) < 0.85 * losses[0], losses


@pytest.mark.parametrize("cls", NETWORKS, ids=ids)
def test_bad_arguments_are_one_line(cls: type) -> None:
    with pytest.raises(ValueError, match=r"num_classes must be a positive int, got 0") as info:
        cls(0)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"N×3×H×W, got \(1, 1, 32, 32\)"):
        cls(2)(torch.randn(1, 1, 32, 32))


@pytest.mark.slow
@pytest.mark.parametrize("cls", NETWORKS, ids=ids)
def test_each_network_config_fits_overlaid_on_the_quickstart(cls: type, in_tmp: Path) -> None:
    config = REPO / "experiments" / "models" / f"{CONFIGS[cls]}.yaml"
    cli = main(["fit", "--config", str(QUICKSTART), "--config", str(config), *TINY_DATA, "--trainer.fast_dev_run=true"])
    assert type(cli.model.net) is cls
    assert cli.trainer.state.finished


def test_each_config_overlays_a_dataset_config_with_another_optimizer(capsys: pytest.CaptureFixture) -> None:
    """cityscapes.yaml trains with SGD (momentum); an Adam recipe on top must not inherit its arguments."""
    for cls, name in CONFIGS.items():
        recipe = yaml.safe_load((REPO / "experiments" / "models" / f"{name}.yaml").read_text())["model"]["init_args"]
        with pytest.raises(SystemExit) as done:
            main(["fit", "--config", str(REPO / "experiments/cityscapes.yaml"),
                  "--config", str(REPO / "experiments/models" / f"{name}.yaml"), "--print_config"])  # fmt: skip
        assert done.value.code in (0, None)
        model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
        assert model["net"]["class_path"] == f"lightning_seg.models.{cls.__name__}"
        assert model["optimizer"]["class_path"] == recipe["optimizer"]["class_path"]
        assert model["optimizer"]["init_args"].items() >= recipe["optimizer"]["init_args"].items()


def test_models_command_lists_every_network_with_its_parameter_count(capsys: pytest.CaptureFixture) -> None:
    import lightning_seg.models as models

    with pytest.raises(SystemExit) as done:
        main(["models", "--num_classes", "7"])
    assert done.value.code == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    zoo = [getattr(models, n) for n in models.__all__ if isinstance(getattr(models, n), type)]
    for cls in zoo:
        if issubclass(cls, torch.nn.Module) and cls in PUBLISHED:
            assert rows[cls.__name__] == f"{sum(p.numel() for p in cls(7).parameters()) / 1e6:.3f}"
    assert set(PUBLISHED) <= set(zoo) and {c.__name__ for c in zoo if issubclass(c, torch.nn.Module)} <= set(rows)


def test_models_command_rejects_a_bad_class_count(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["models", "--num_classes", "1"])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == "lightning-seg models: error: --num_classes must be at least 2, got 1"
