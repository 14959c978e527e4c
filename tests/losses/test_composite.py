"""CompositeLoss: weighted sums, names, what each term reads, scheduling, and the YAML recipe."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn

from lightning_seg.losses import (
    BoundaryLoss,
    CompositeLoss,
    CrossEntropyLoss,
    DiceLoss,
    GeneralizedDiceLoss,
    LossTerm,
    Rebalance,
    SemanticEncodingLoss,
    as_composite,
    bind_losses,
    signed_distance_map,
)

C = 3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    mask = torch.randint(0, C, (2, 2, 3), generator=generator).repeat_interleave(3, 1).repeat_interleave(3, 2)
    mask[0, 0] = 255
    dist_map = torch.from_numpy(np.stack([signed_distance_map(m.numpy(), C) for m in mask]))
    outputs = {"logits": torch.randn(2, C, 6, 9, generator=generator), "presence": torch.randn(2, C)}
    return outputs, {"image": torch.zeros(2, 3, 6, 9), "mask": mask, "dist_map": dist_map}


def test_total_is_the_weighted_sum_and_every_term_is_returned(batch):
    outputs, data = batch
    loss = CompositeLoss(
        [
            LossTerm(GeneralizedDiceLoss(), weight=Rebalance(term="region")),
            LossTerm(BoundaryLoss(), weight=Rebalance(term="boundary")),
            LossTerm(SemanticEncodingLoss(), weight=0.2, name="se", input="presence"),
        ]
    )
    loss.set_progress(epoch=10, step=123)
    out = loss(outputs, data)
    assert out.weights == pytest.approx({"generalized_dice": 0.9, "boundary": 0.11, "se": 0.2})
    expected = {
        "generalized_dice": GeneralizedDiceLoss()(outputs["logits"], data["mask"]),
        "boundary": BoundaryLoss()(outputs["logits"], data["dist_map"], data["mask"]),
        "se": SemanticEncodingLoss()(outputs["presence"], data["mask"]),
    }
    for name, value in expected.items():
        torch.testing.assert_close(out.terms[name], value)
    torch.testing.assert_close(out.total, sum(out.weights[n] * v for n, v in expected.items()))


def test_terms_read_what_their_loss_declares(batch):
    loss = CompositeLoss([LossTerm(DiceLoss()), LossTerm(BoundaryLoss()), LossTerm(nn.MSELoss(), target="dist_map")])
    assert [t.targets for t in loss.terms] == [["mask"], ["dist_map", "mask"], ["dist_map"]]
    assert loss.required_targets == frozenset({"dist_map"})
    assert as_composite(CrossEntropyLoss()).required_targets == frozenset()


def test_missing_entries_and_duplicate_names_raise(batch):
    outputs, data = batch
    loss = CompositeLoss([LossTerm(BoundaryLoss())])
    with pytest.raises(KeyError, match="loss term 'boundary' reads \\['dist_map'\\]"):
        loss(outputs, {"mask": data["mask"]})
    with pytest.raises(ValueError, match="must be unique, got \\['dice'\\]"):
        CompositeLoss([LossTerm(DiceLoss()), LossTerm(DiceLoss())])


def test_bind_losses_reaches_every_term():
    loss = as_composite(CompositeLoss([LossTerm(DiceLoss(ignore_index=7)), LossTerm(CrossEntropyLoss())]))
    bind_losses(loss, num_classes=5, ignore_index=100)
    dice, ce = (t.loss for t in loss.terms)
    assert (dice.num_classes, dice.ignore_index) == (5, 7)  # an explicit ignore_index wins
    assert (ce.num_classes, ce.ignore_index) == (5, 100)


def test_the_gdl_boundary_recipe_builds_from_yaml():
    fragment = yaml.safe_load((ROOT / "experiments" / "losses" / "gdl_boundary.yaml").read_text())
    parser = ArgumentParser()
    parser.add_argument("--loss", type=nn.Module)
    loss = parser.instantiate(parser.parse_object({"loss": fragment["model"]["init_args"]["loss"]})).loss
    assert isinstance(loss, CompositeLoss)
    assert [type(t.loss) for t in loss.terms] == [GeneralizedDiceLoss, BoundaryLoss]
    loss.set_progress(epoch=95, step=0)
    assert loss.current_weights() == pytest.approx({"generalized_dice": 0.1, "boundary": 0.96})
