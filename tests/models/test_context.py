"""Context networks (CCNet, EncNet, DFN, GALDNet): attention/encoding against brute force, shapes, training, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_seg.geometry import semantic_edges
from lightning_seg.losses import CompositeLoss, CrossEntropyLoss, EdgeLoss, LossTerm, SemanticEncodingLoss
from lightning_seg.losses.composite import bind_losses
from lightning_seg.models import DFN, CCNet, EncNet, GALDNet
from lightning_seg.models.context import CrissCrossAttention
from lightning_seg.models.context.encnet import Encoding

SMALL = {"encoder_name": "tu-regnetx_002", "head_channels": 16}
#: network, small arguments, {output: stride} (0 = per image).
NETWORKS = [
    pytest.param(CCNet, SMALL, {"aux": 8}, id="CCNet"),
    pytest.param(EncNet, {**SMALL, "codewords": 8}, {"aux": 8, "presence": 0}, id="EncNet"),
    pytest.param(
        DFN,
        {"encoder_name": "tu-regnetx_002", "channels": 16, "border_channels": 8},
        {"aux_8": 8, "aux_16": 16, "aux_32": 32, "border": 4},
        id="DFN",
    ),
    pytest.param(GALDNet, {**SMALL, "inner_channels": 16}, {"aux": 8}, id="GALDNet"),
]


def brute_force_criss_cross(attention: CrissCrossAttention, x: torch.Tensor) -> torch.Tensor:
    """Every pixel's row and column (itself once), one pixel at a time, straight from the paper's formula."""
    query, key, value = attention.query(x), attention.key(x), attention.value(x)
    n_images, _, height, width = x.shape
    out = torch.zeros_like(value)
    for n in range(n_images):
        for h in range(height):
            for w in range(width):
                positions = [(i, w) for i in range(height)] + [(h, j) for j in range(width) if j != w]
                assert len(positions) == height + width - 1
                keys = torch.stack([key[n, :, i, j] for i, j in positions])
                values = torch.stack([value[n, :, i, j] for i, j in positions])
                weights = (keys @ query[n, :, h, w]).softmax(0)
                out[n, :, h, w] = weights @ values
    return attention.gamma * out + x


def test_criss_cross_attention_matches_a_loop_over_rows_and_columns() -> None:
    torch.manual_seed(0)
    attention = CrissCrossAttention(16, reduction=4)
    with torch.no_grad():
        attention.gamma.fill_(0.7)  # 0 at initialisation would hide the attention
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(attention(x), brute_force_criss_cross(attention, x), atol=1e-5, rtol=1e-5)


def test_encoding_layer_matches_explicit_residuals() -> None:
    torch.manual_seed(0)
    layer = Encoding(6, codewords=4)
    x = torch.randn(2, 6, 3, 5)
    features = x.flatten(2).transpose(1, 2)  # N×hw×D
    residuals = features[:, :, None, :] - layer.codewords  # N×hw×K×D
    assignment = (-layer.smoothing * residuals.pow(2).sum(-1)).softmax(-1)
    expected = (assignment[..., None] * residuals).sum(1)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cls", "kwargs", "strides"), NETWORKS)
@pytest.mark.parametrize("size", [(64, 64), (45, 70)])
def test_outputs_at_two_input_sizes(cls, kwargs, strides, size) -> None:
    out = cls(3, **kwargs)(torch.randn(2, 3, *size))
    assert set(out) == {"logits", *strides}
    assert out["logits"].shape == (2, 3, *size)
    for name, stride in strides.items():
        channels = 1 if name == "border" else 3
        if stride == 0:
            assert out[name].shape == (2, channels)
        elif size == (64, 64):  # unpadded: at the output's own stride
            assert out[name].shape == (2, channels, 64 // stride, 64 // stride)
        else:  # padded: upsampled and cropped back, aligned with the image
            assert out[name].shape == (2, channels, *size)


def test_output_stride_16_and_the_auxiliary_head_can_be_dropped() -> None:
    out = CCNet(2, output_stride=16, aux_head=False, **SMALL)(torch.randn(1, 3, 64, 64))
    assert set(out) == {"logits"}
    assert CCNet(2, output_stride=16, **SMALL)(torch.randn(1, 3, 64, 64))["aux"].shape == (1, 2, 4, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder_name": "densenet121"}, r"encoder 'densenet121' cannot run at output_stride=8 \(.*dilated"),
        ({"output_stride": 4}, r"output_stride must be one of \[8, 16, 32\], got 4"),
        ({"encoder_name": "resnet180"}, r"unknown encoder 'resnet180'"),
    ],
)
def test_bad_encoder_settings_are_one_line(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        EncNet(3, **{**SMALL, **kwargs})
    assert "\n" not in str(info.value)


def loss_for(strides: dict[str, int]) -> CompositeLoss:
    """Cross-entropy on the logits and every auxiliary map, SE loss on ``presence``, EdgeLoss on ``border``."""
    terms = [LossTerm(CrossEntropyLoss(), name="ce")]
    for name in strides:
        loss = {"presence": SemanticEncodingLoss(), "border": EdgeLoss(gamma=2.0)}.get(name, CrossEntropyLoss())
        terms.append(LossTerm(loss, 0.4, name=name, input=name))
    composite = CompositeLoss(terms)
    bind_losses(composite, 3, 255)
    return composite


@pytest.mark.parametrize(("cls", "kwargs", "strides"), NETWORKS)
def test_a_few_steps_lower_the_loss_with_every_auxiliary_term(cls, kwargs, strides) -> None:
    torch.manual_seed(0)
    net = cls(3, **kwargs)
    loss = loss_for(strides)
    image = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, 8:24, 8:24] = 1
    mask[1, :4] = 2
    mask[0, -2:] = 255
    batch = {
        "image": image,
        "mask": mask,
        "edge": torch.from_numpy(np.stack([semantic_edges(m.numpy()) for m in mask])),
    }
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    values = []
    for _ in range(4):
        out = loss(net(image), batch)
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        values.append(out.total.item())
    assert set(out.terms) == {"ce", *strides}
    assert values[-1] < values[0]


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "kwargs", "strides"), NETWORKS)
def test_export(cls, kwargs, strides) -> None:
    net = cls(3, **kwargs).eval()
    image = torch.randn(1, 3, 32, 32)
    program = torch.export.export(net, (image,))
    expected, exported = net(image), program.module()(image)
    for key, value in expected.items():
        torch.testing.assert_close(exported[key], value)
