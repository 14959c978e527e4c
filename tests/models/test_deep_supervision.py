"""Deep supervision: lower-resolution outputs upsampled to the mask inside a loss term, aligned when padded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_seg.losses import CompositeLoss, CrossEntropyLoss, LossTerm
from lightning_seg.models.layers import StridedNet


def test_a_smaller_output_is_upsampled_to_the_mask_in_its_term() -> None:
    aux = torch.randn(2, 3, 4, 5)
    mask = torch.randint(0, 3, (2, 16, 20))
    mask[0, :2] = 255
    loss = CompositeLoss([LossTerm(CrossEntropyLoss(), name="aux", input="aux", weight=0.4)])
    out = loss({"logits": torch.randn(2, 3, 16, 20), "aux": aux}, {"mask": mask})
    upsampled = F.interpolate(aux, size=(16, 20), mode="bilinear", align_corners=False)
    expected = F.cross_entropy(upsampled, mask, ignore_index=255)
    torch.testing.assert_close(out.terms["aux"], expected)
    torch.testing.assert_close(out.total, 0.4 * expected)


def test_an_output_larger_than_the_mask_is_refused() -> None:
    loss = CompositeLoss([LossTerm(CrossEntropyLoss(), name="aux", input="aux")])
    with pytest.raises(ValueError, match=r"'aux' of size 32×32, larger than the mask's 16×16"):
        loss(
            {"logits": torch.randn(1, 2, 16, 16), "aux": torch.randn(1, 2, 32, 32)},
            {"mask": torch.zeros(1, 16, 16).long()},
        )


class Pooled(StridedNet):
    """Logits = the image's first two channels; ``aux`` = the same, average-pooled by 4."""

    stride = 4

    def forward_padded(self, image: Tensor) -> dict[str, Tensor]:
        return {"logits": image[:, :2], "aux": F.avg_pool2d(image[:, :2], 4)}


def test_a_padded_image_gives_auxiliary_maps_aligned_with_it() -> None:
    image = torch.randn(1, 3, 13, 18)
    out = Pooled()(image)
    padded = F.pad(image, (0, 2, 0, 3), mode="reflect")
    expected = F.interpolate(F.avg_pool2d(padded[:, :2], 4), size=(16, 20), mode="bilinear")[..., :13, :18]
    torch.testing.assert_close(out["aux"], expected)
    unpadded = Pooled()(torch.randn(1, 3, 16, 20))
    assert unpadded["aux"].shape == (1, 2, 4, 5)
