"""Data-side imbalance tools against counts worked out independently: sampling, class-aware crops, copy-paste."""

from __future__ import annotations

import albumentations as A
import data_fixtures as fx
import numpy as np
import pytest
import torch

from lightning_seg.data import FolderDataModule
from lightning_seg.data.copy_paste import RareClassCopyPaste
from lightning_seg.data.crops import ScaleCrop
from lightning_seg.data.rare_class import RareClassPicker, RareClassSampler, rare_class_probabilities

# 6 images × 3 classes (+ ignored): class 2 is rare and only in images 4 and 5; image 3 holds class 1 only.
COUNTS = np.array(
    [[900, 100, 0, 5], [800, 200, 0, 0], [1000, 0, 0, 0], [0, 1000, 0, 0], [700, 280, 20, 0], [950, 0, 50, 9]]
)


def test_probabilities_follow_daformers_formula_by_hand():
    f = np.array([0.7, 0.2, 0.1, 0.0])
    by_hand = np.array([np.exp(0.3 / 0.1), np.exp(0.8 / 0.1), np.exp(0.9 / 0.1), 0.0])
    np.testing.assert_allclose(rare_class_probabilities(f, 0.1), by_hand / by_hand.sum(), rtol=1e-12)
    assert rare_class_probabilities(f, 1e-4)[2] == pytest.approx(1.0)  # tiny T: the rarest class only
    np.testing.assert_allclose(rare_class_probabilities(f, 1e6)[:3], 1 / 3, rtol=1e-5)  # huge T: uniform
    with pytest.raises(ValueError, match="temperature must be positive"):
        rare_class_probabilities(f, 0.0)


def test_sampled_class_and_image_frequencies_match_a_count():
    picker = RareClassPicker(COUNTS, temperature=0.5)
    totals = COUNTS[:, :3].sum(0)
    p_class = np.exp((1 - totals / totals.sum()) / 0.5)
    p_class /= p_class.sum()
    holders = [[0, 1, 2, 4, 5], [0, 1, 3, 4], [4, 5]]
    p_image = np.array([sum(p_class[c] / len(h) for c, h in enumerate(holders) if i in h) for i in range(6)])
    sampler = RareClassSampler(picker, seed=3)
    drawn = []
    for epoch in range(3000):
        sampler.set_epoch(epoch)
        drawn += [index for index, _ in sampler]
    frequency = np.bincount(drawn, minlength=6) / len(drawn)
    sigma = np.sqrt(p_image * (1 - p_image) / len(drawn))
    assert np.all(np.abs(frequency - p_image) < 5 * sigma + 1e-9), (frequency, p_image)
    classes, images = picker.draw(20000, torch.Generator().manual_seed(0))
    class_frequency = np.bincount(classes, minlength=3) / len(classes)
    assert np.all(np.abs(class_frequency - p_class) < 5 * np.sqrt(p_class * (1 - p_class) / 20000))
    assert all(COUNTS[i, c] > 0 for c, i in zip(classes, images, strict=True))


def test_min_pixels_keeps_images_with_too_few_pixels_of_the_class_out():
    picker = RareClassPicker(COUNTS, temperature=0.5, min_pixels=30)
    classes, images = picker.draw(2000, torch.Generator().manual_seed(1))
    assert set(images[classes == 2].tolist()) == {5}  # image 4 holds only 20 pixels of class 2


def test_ranks_split_one_shared_sequence_and_a_resumed_epoch_draws_the_same():
    picker = RareClassPicker(COUNTS, temperature=0.1)
    single = RareClassSampler(picker, seed=7, num_replicas=1, rank=0)
    ranks = [RareClassSampler(picker, seed=7, num_replicas=2, rank=r) for r in (0, 1)]
    for epoch in (0, 5):
        for sampler in (single, *ranks):
            sampler.set_epoch(epoch)
        whole = list(single)
        assert list(ranks[0]) == whole[0::2] and list(ranks[1]) == whole[1::2]
        assert len(whole) == 6
    resumed = RareClassSampler(picker, seed=7)
    resumed.set_epoch(5)  # what Lightning does when a run resumes at epoch 5
    assert list(resumed) == whole
    single.set_epoch(6)
    assert list(single) != whole


def _corner_mask() -> np.ndarray:
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[:10, :10] = 1
    return mask


def _balanced(crop: np.ndarray, ratio: float) -> bool:
    counts = np.bincount(crop[crop != 255].ravel(), minlength=2)
    return (counts > 0).sum() > 1 and counts.max() / counts.sum() < ratio


@pytest.mark.parametrize(("cat_max_ratio", "tries"), [(1.0, 1), (0.75, 3)])
def test_cat_max_ratio_retries_match_the_brute_force_acceptance_rate(cat_max_ratio, tries):
    mask = _corner_mask()
    windows = [mask[y : y + 16, x : x + 16] for y in range(25) for x in range(25)]
    q = np.mean([_balanced(w, 0.75) for w in windows])  # share of windows a single try accepts
    expected = 1 - (1 - q) ** tries
    crop = A.Compose([ScaleCrop(16, 16, scale=(1, 1), cat_max_ratio=cat_max_ratio, max_tries=tries)], seed=0)
    draws = 600
    accepted = np.mean([_balanced(crop(image=np.zeros((40, 40, 3), np.uint8), mask=mask)["mask"], 0.75)
                        for _ in range(draws)])  # fmt: skip
    assert abs(accepted - expected) < 5 * np.sqrt(expected * (1 - expected) / draws)


def test_rare_centred_crops_always_hold_the_rare_class():
    crop = A.Compose([ScaleCrop(16, 16, scale=(0.75, 1.5), rare_p=1.0, class_probabilities=(0.0, 1.0))], seed=0)
    mask = _corner_mask()
    assert all((crop(image=np.zeros((40, 40, 3), np.uint8), mask=mask)["mask"] == 1).any() for _ in range(100))
    plain = A.Compose([ScaleCrop(16, 16, scale=(0.75, 1.5))], seed=0)
    assert not all((plain(image=np.zeros((40, 40, 3), np.uint8), mask=mask)["mask"] == 1).any() for _ in range(100))


def test_scale_crop_keeps_image_and_mask_aligned_and_pads_with_ignore():
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:15, 10:25] = 1
    image = np.repeat((mask * 200)[..., None], 3, axis=2)
    crop = A.Compose([ScaleCrop(48, 48, scale=(0.5, 2.0), fill_mask=255)], seed=0)
    for _ in range(20):
        out = crop(image=image, mask=mask)
        assert out["image"].shape == (48, 48, 3) and out["mask"].shape == (48, 48)
        labelled = out["mask"] != 255
        assert (~labelled).any()  # a 48×48 crop of a ≤ 40×60 image needs padding at some scale, or rows
        agree = (out["image"][..., 0][labelled] > 100) == (out["mask"][labelled] == 1)
        assert agree.mean() > 0.95  # nearest-neighbour mask vs bilinear image: only edge pixels differ
        assert (out["image"][~labelled] == 0).all()


def test_copy_paste_pastes_the_drawn_class_with_its_pixels():
    picker = RareClassPicker(COUNTS, temperature=0.01)  # class 2 nearly always
    paste = RareClassCopyPaste(1.0, picker)
    image, mask = np.full((8, 8, 3), 10, np.uint8), np.zeros((8, 8), np.uint8)
    donor_mask = np.zeros((8, 8), np.uint8)
    donor_mask[2:4, 3:6] = 2
    donor_mask[6:, :] = 1
    donor_image = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    asked = []
    torch.manual_seed(0)
    out_image, out_mask = paste(image, mask, lambda i, seed: (asked.append(i), (donor_image, donor_mask))[1])
    assert asked[0] in (4, 5)  # a donor that holds class 2
    np.testing.assert_array_equal(out_mask, np.where(donor_mask == 2, 2, 0))
    np.testing.assert_array_equal(out_image[donor_mask == 2], donor_image[donor_mask == 2])
    np.testing.assert_array_equal(out_image[donor_mask != 2], image[donor_mask != 2])
    assert (image == 10).all() and (mask == 0).all()  # inputs untouched


def test_the_datamodule_wires_every_tool(tmp_path):
    fx.make_folder(tmp_path)
    datamodule = FolderDataModule(
        tmp_path, class_names=fx.FOLDER_CLASSES, crop_size=(16, 16), batch_size=2, rare_class_sampling=True,
        rare_class_temperature=0.1, cat_max_ratio=0.75, rare_crop_p=0.5, copy_paste_p=0.5,
    )  # fmt: skip
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert isinstance(loader.sampler, RareClassSampler)
    (crop,) = [t for t in datamodule.transforms["train"].transforms if isinstance(t, ScaleCrop)]
    assert crop.cat_max_ratio == 0.75 and crop.rare_p == 0.5 and len(crop.class_probabilities) == 3
    assert datamodule.datasets["train"].copy_paste is not None
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["mask"].shape == (2, 16, 16)


def test_class_aware_crops_need_a_scale_crop(tmp_path):
    fx.make_folder(tmp_path)
    datamodule = FolderDataModule(
        tmp_path, class_names=fx.FOLDER_CLASSES, cat_max_ratio=0.75,
        train_transform=A.Compose([A.RandomCrop(16, 16)]),
    )  # fmt: skip
    with pytest.raises(ValueError, match="cat_max_ratio and rare_crop_p need a lightning_seg.data.crops.ScaleCrop"):
        datamodule.setup("fit")


def test_class_distribution_reports_the_sampled_frequencies_next_to_the_dataset(tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    from lightning_seg.callbacks import ClassDistribution

    fx.make_folder(tmp_path / "data")
    datamodule = FolderDataModule(
        tmp_path / "data", class_names=fx.FOLDER_CLASSES, crop_size=(16, 16), batch_size=2,
        rare_class_sampling=True, rare_class_temperature=0.05,
    )  # fmt: skip
    datamodule.setup("fit")
    trainer = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), datamodule=datamodule,
                              loggers=[], is_global_zero=True, current_epoch=0, global_step=0)  # fmt: skip
    module = SimpleNamespace(num_classes=3)
    callback = ClassDistribution()
    callback.setup(trainer, module, "fit")
    counted = np.zeros(3, dtype=np.int64)
    for index, batch in enumerate(datamodule.train_dataloader()):
        callback.on_train_batch_end(trainer, module, None, batch, index)
        counted += np.bincount(batch["mask"][batch["mask"] != 255].numpy().ravel(), minlength=3)
    callback.on_train_epoch_end(trainer, module)
    table = pd.read_csv(tmp_path / "diagnostics/class_distribution/sampled_class_frequency.csv")
    assert table["class"].tolist() == list(fx.FOLDER_CLASSES)
    np.testing.assert_array_equal(table["sampled_pixel_count"], counted)
    np.testing.assert_allclose(table["sampled_pixel_frequency"], counted / counted.sum())
    np.testing.assert_allclose(table["dataset_pixel_frequency"], datamodule.class_stats.pixel_frequency)


def test_uint8_batches_normalised_on_the_device_equal_the_usual_batches(tmp_path):
    fx.make_folder(tmp_path)
    batches = []
    for on_device in (False, True):
        datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, batch_size=2,
                                      normalize_on_device=on_device)  # fmt: skip
        datamodule.setup("validate")
        raw = next(iter(datamodule.val_dataloader()))
        if on_device:
            assert raw["image"].dtype == torch.uint8 and raw["mask"].dtype == torch.uint8
        batches.append(datamodule.on_after_batch_transfer(raw, 0))
    usual, moved = batches
    assert moved["image"].dtype == torch.float32 and moved["mask"].dtype == torch.int64
    padding = torch.zeros_like(usual["mask"], dtype=torch.bool)
    padding[1, 36:], padding[1, :, 44:] = True, True  # the second image is 36×44, the first 40×48
    inside = ~padding.unsqueeze(1).expand_as(usual["image"])
    torch.testing.assert_close(moved["image"][inside], usual["image"][inside], atol=1e-5, rtol=0)
    assert moved["image"][~inside].abs().max() < 0.01  # the mean colour: about 0, as the usual padding
    torch.testing.assert_close(moved["mask"], usual["mask"])
    assert (moved["mask"][padding] == 255).all()
