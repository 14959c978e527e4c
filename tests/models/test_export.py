"""Every network of ``lightning_seg.models.__all__`` exports (torch.export and ONNX) and matches eager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lightning_seg.models as models
from lightning_seg.cli import main
from lightning_seg.experiment import from_config
from lightning_seg.export import (
    NOT_EXPORTABLE,
    Deployable,
    check_exported,
    check_sizes,
    export_network,
    export_program,
    write,
)
from lightning_seg.zoo import zoo

from ..conftest import QUICKSTART, REPO, TINY_DATA

NETWORKS = [cls.__name__ for cls in zoo()]  # every nn.Module class in lightning_seg.models.__all__


def test_the_deployable_graph_equals_the_eager_network_at_sizes_off_the_stride() -> None:
    net = models.ContextNet(3).eval()
    image = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(Deployable(net)(image), net(image), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NETWORKS if n not in NOT_EXPORTABLE])
def test_network_exports_and_matches_eager_at_two_sizes(name: str, tmp_path: Path) -> None:
    net = getattr(models, name)(3).eval()
    program = export_program(net)
    for fmt, suffix in (("torch", ".pt2"), ("onnx", ".onnx")):
        path = tmp_path / f"{name}{suffix}"
        write(program, path, fmt)
        assert check_exported(net, path, fmt) <= 1e-4
    sizes = check_sizes(net)
    assert any(h % net.stride or w % net.stride for h, w in sizes) and any(
        not (h % net.stride or w % net.stride) for h, w in sizes
    )


@pytest.mark.parametrize("name", sorted(NOT_EXPORTABLE))
def test_networks_that_cannot_export_say_why(name: str, tmp_path: Path) -> None:
    assert name in NETWORKS, f"{name} is listed in NOT_EXPORTABLE but is not in lightning_seg.models.__all__"
    with pytest.raises(ValueError, match=f"{name} cannot be exported: ") as info:
        export_network(getattr(models, name)(3), tmp_path / "net.onnx", "onnx")
    assert "\n" not in str(info.value)


def test_a_file_that_differs_from_eager_is_an_error_and_is_removed(tmp_path: Path, monkeypatch) -> None:
    net = models.ContextNet(2).eval()
    monkeypatch.setattr(
        "lightning_seg.export.run_exported", lambda path, fmt, image: torch.zeros(1, 2, *image.shape[-2:])
    )
    monkeypatch.setattr("lightning_seg.export.export_program", lambda net: None)
    monkeypatch.setattr("lightning_seg.export.write", lambda program, path, fmt: path.write_bytes(b"x"))
    with pytest.raises(ValueError, match=r"net\.pt2: exported logits differ from eager by .* \(tolerance 1e-04\)"):
        export_network(net, tmp_path / "net.pt2", "torch")
    assert not (tmp_path / "net.pt2").exists()


def export(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["export", *args])
    return done.value.code


@pytest.mark.slow
def test_export_command_writes_a_file_from_a_trained_checkpoint(in_tmp: Path, capsys) -> None:
    config = ["--config", str(QUICKSTART), "--config", str(REPO / "experiments/models/contextnet.yaml")]
    short = [
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=0",
        "--trainer.callbacks=[]",
        "--trainer.logger=false",
    ]
    checkpoint = in_tmp / "contextnet.ckpt"
    datamodule, module, trainer = from_config(*config[1::2], overrides=[*TINY_DATA, *short])
    trainer.fit(module, datamodule)
    trainer.save_checkpoint(checkpoint)

    assert export(*config, *TINY_DATA, "--ckpt_path", str(checkpoint), "--format", "onnx") == 0
    assert "wrote " in capsys.readouterr().out
    output = in_tmp / "contextnet.onnx"
    assert check_exported(module.net.eval(), output, "onnx") <= 1e-4  # the trained weights, not fresh ones

    assert export(*config, *TINY_DATA, "--ckpt_path", str(checkpoint), "--format", "onnx") == 2
    assert "contextnet.onnx exists; pass --overwrite" in capsys.readouterr().err
    other = ["--config", str(QUICKSTART), "--config", str(REPO / "experiments/models/fast_scnn.yaml"), *TINY_DATA]
    assert export(*other, "--ckpt_path", str(checkpoint), "--output", str(in_tmp / "x.pt2"), "--format", "torch") == 2
    assert "does not hold the weights of the config's network FastSCNN" in capsys.readouterr().err
    assert not (in_tmp / "x.pt2").exists()
