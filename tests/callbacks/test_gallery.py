"""PredictionGallery: rare-sample selection, per-sample mIoU, de-normalisation, overlays, the epoch flow."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_jaccard_index

from lightning_seg.callbacks import PredictionGallery
from lightning_seg.callbacks.gallery import denormalise, per_sample_miou, select_rare_samples
from lightning_seg.data.stats import ClassStats
from lightning_seg.figures.gallery import overlay


def val_counts(masks: list[np.ndarray]) -> np.ndarray:
    return np.stack([ClassStats.from_masks([m], 4, 255).pixel_counts for m in masks])


def test_selection_starts_with_the_samples_holding_the_rarest_class(crafted_val_masks) -> None:
    counts = val_counts(crafted_val_masks)
    # 'rare' (3) has 7 val pixels: 5 in sample 4, 2 in sample 2; 'car' (2) has 20, most in sample 5.
    assert select_rare_samples(counts, 1) == [4]
    assert select_rare_samples(counts, 2) == [4, 5]
    # Class order by val pixels: rare 7, car 20, background 164, road 192. Round one takes one sample per
    # class (ties go to the lowest index), round two the second 'rare' sample, then background's best left.
    assert select_rare_samples(counts, 6) == [4, 5, 0, 1, 2, 3]
    assert sorted(select_rare_samples(counts, 10)) == list(range(6))
    assert select_rare_samples(np.zeros((3, 4), int), 2) == []


def test_per_sample_miou_by_hand_and_against_torchmetrics() -> None:
    target = torch.tensor([[[0, 1], [1, 255]], [[2, 2], [0, 0]], [[255, 255], [255, 255]]])
    preds = torch.tensor([[[0, 1], [0, 1]], [[2, 2], [0, 0]], [[1, 1], [1, 1]]])
    miou = per_sample_miou(preds, target, num_classes=4, ignore_index=255)
    assert miou[0].item() == pytest.approx(0.5) and miou[1].item() == pytest.approx(1.0)
    assert torch.isnan(miou[2])
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 6, 6), generator=generator)
    target[:, 0] = 255
    preds = torch.randint(0, 4, (3, 6, 6), generator=generator)
    miou = per_sample_miou(preds, target, 4, 255)
    for i in range(3):
        per_class = multiclass_jaccard_index(
            preds[i], target[i], 4, average="none", ignore_index=255, zero_division=float("nan")
        )
        assert miou[i].item() == pytest.approx(torch.nanmean(per_class).item())


def test_denormalise_inverts_the_datamodule_normalisation() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalised = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)(image=image)["image"]
    restored = denormalise(torch.from_numpy(normalised.transpose(2, 0, 1)), mean, std)
    assert restored.shape == image.shape and restored.dtype == np.uint8
    assert np.abs(restored.astype(int) - image).max() <= 1


def test_overlay_paints_labelled_pixels_and_keeps_ignored_ones() -> None:
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [255, 1]])
    colors = np.array([[0, 0, 0], [200, 50, 0]], np.uint8)
    out = overlay(image, mask, colors, 255, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(out[0, 1], [150, 75, 50])
    np.testing.assert_array_equal(out[1, 0], image[1, 0])


def test_epoch_shows_rare_and_worst_samples(make_trainer, datamodule, tmp_path) -> None:
    callback = PredictionGallery(num_rare=2, num_worst=2)
    trainer = make_trainer(datamodule)
    callback.setup(trainer, None, "fit")
    callback.on_validation_epoch_start(trainer, None)
    assert callback.selection == ["val_4", "val_5"]
    loader = datamodule.val_dataloader()
    wrong = {"val_1", "val_3"}  # predicted all background: the two worst samples
    for i, batch in enumerate(loader):
        target = batch["mask"]
        preds = torch.stack(
            [
                torch.zeros_like(t) if n in wrong else t.clamp(max=3)
                for n, t in zip(batch["meta"]["name"], target, strict=True)
            ]
        )
        callback.on_validation_batch_end(trainer, None, {"preds": preds, "target": target}, batch, i)
    callback.on_validation_epoch_end(trainer, None)
    callback.teardown(trainer, None, "fit")  # figures are drawn in the background: on disk by teardown
    folder = tmp_path / "diagnostics" / "gallery"
    shown = json.loads((folder / "epoch_000.json").read_text())
    assert [s["name"] for s in shown["rare"]] == ["val_4", "val_5"]
    assert all(s["miou"] == pytest.approx(1.0) for s in shown["rare"])
    assert {s["name"] for s in shown["worst"]} == wrong and all(s["miou"] < 1 for s in shown["worst"])
    selection = json.loads((folder / "selection.json").read_text())
    assert [s["name"] for s in selection["samples"]] == ["val_4", "val_5"]
    assert selection["val_pixels"]["rare"] == 7
    assert (folder / "rare_epoch_000.jpg").is_file() and (folder / "worst_epoch_000.jpg").is_file()
    assert callback.state_dict()["selection"] == ["val_4", "val_5"]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_rare"):
        PredictionGallery(num_rare=0, num_worst=0)
    with pytest.raises(ValueError, match="alpha"):
        PredictionGallery(alpha=2.0)
