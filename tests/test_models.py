import pytest
import torch

from lightning_seg.models import SMPNet


@pytest.mark.parametrize(
    ("arch", "encoder"),
    [("Unet", "resnet18"), ("FPN", "resnet18"), ("unetplusplus", "resnet18"), ("FPN", "tu-mobilenetv3_small_100")],
)
def test_any_arch_and_encoder_gives_logits_at_input_resolution(arch: str, encoder: str) -> None:
    net = SMPNet(4, arch=arch, encoder_name=encoder)
    logits = net(torch.randn(2, 3, 48, 40))["logits"]
    assert logits.shape == (2, 4, 48, 40)


def test_sizes_not_divisible_by_the_stride_are_padded_and_cropped() -> None:
    net = SMPNet(3).eval()
    image = torch.randn(1, 3, 45, 70)
    logits = net(image)["logits"]
    assert logits.shape == (1, 3, 45, 70)
    logits.sum().backward()  # gradients flow through the padding


def test_presence_head_for_the_semantic_encoding_loss() -> None:
    out = SMPNet(5, presence_head=True)(torch.randn(2, 3, 32, 32))
    assert out["presence"].shape == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "Unte"}, r"unknown architecture 'Unte'\. Did you mean Unet\?.*Valid choices: .*FPN"),
        ({"encoder_name": "resnet180"}, r"unknown encoder 'resnet180'\. Did you mean resnet18.*Valid choices"),
        ({"encoder_name": "tu-notamodel_xyz"}, r"unknown timm encoder 'notamodel_xyz'"),
    ],
)
def test_unknown_names_give_one_line_with_choices(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        SMPNet(3, **kwargs)
    assert "\n" not in str(info.value)


def test_wrong_channel_count_is_named() -> None:
    with pytest.raises(ValueError, match=r"N×3×H×W, got \(1, 1, 32, 32\)"):
        SMPNet(3)(torch.randn(1, 1, 32, 32))
