"""Every DataModule on a miniature fixture in its dataset's real layout: splits, labels, batches, stats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import data_fixtures as fx
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from lightning_seg.data import (
    ADE20KDataModule,
    CamVidDataModule,
    CityscapesDataModule,
    DRIVEDataModule,
    FolderDataModule,
    KvasirSEGDataModule,
    SegmentationDataModule,
    VOCDataModule,
)
from lightning_seg.data.kvasir import fixed_split
from lightning_seg.losses.distance import signed_distance_map

CROP = (32, 32)


@dataclass
class Case:
    make: Callable[[Path], dict]
    build: Callable[..., SegmentationDataModule]
    num_classes: int


def _kvasir_expected(root: Path) -> dict:
    masks = fx.make_kvasir(root)
    return {split: {n: masks[n] for n in fixed_split(list(masks), split)} for split in ("train", "val", "test")}


CASES = {
    "folder": Case(
        fx.make_folder,
        lambda root, **kw: FolderDataModule(root, class_names=fx.FOLDER_CLASSES, crop_size=CROP, **kw),
        3,
    ),
    "folder_rgb_lists": Case(
        lambda root: fx.make_folder(root, layout="lists", mask_format="rgb"),
        lambda root, **kw: FolderDataModule(
            root,
            class_names=fx.FOLDER_CLASSES,
            palette=fx.FOLDER_PALETTE,
            mask_format="rgb",
            ignore_color=(255, 255, 255),
            crop_size=CROP,
            **kw,
        ),
        3,
    ),
    "voc": Case(fx.make_voc, lambda root, **kw: VOCDataModule(root, crop_size=CROP, **kw), 21),
    "cityscapes": Case(fx.make_cityscapes, lambda root, **kw: CityscapesDataModule(root, crop_size=CROP, **kw), 19),
    "camvid": Case(fx.make_camvid, lambda root, **kw: CamVidDataModule(root, crop_size=CROP, **kw), 11),
    "ade20k": Case(fx.make_ade20k, lambda root, **kw: ADE20KDataModule(root, crop_size=CROP, **kw), 150),
    "drive": Case(fx.make_drive, lambda root, **kw: DRIVEDataModule(root, crop_size=CROP, **kw), 2),
    "kvasir": Case(_kvasir_expected, lambda root, **kw: KvasirSEGDataModule(root, crop_size=CROP, **kw), 2),
}


@pytest.fixture(scope="module", params=list(CASES))
def dataset(request, tmp_path_factory):
    """``(case name, root, expected masks by split and name, DataModule)``, written once per module."""
    case = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    expected = case.make(root)
    datamodule = case.build(root, batch_size=2)
    datamodule.setup()
    return request.param, root, expected, datamodule


def test_splits_samples_and_exact_label_mapping(dataset):
    name, _, expected, datamodule = dataset
    assert datamodule.num_classes == CASES[name].num_classes == len(datamodule.class_names)
    for split, masks in expected.items():
        split = "train" if split == "trainaug" else split
        source = datamodule.datasets[split].source
        assert len(source) == len(masks)
        for index in range(len(source)):
            image, mask, sample = source.load(index)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
            np.testing.assert_array_equal(mask, masks[sample], err_msg=f"{name} {split} {sample}")


def test_train_batch_is_cropped_and_typed(dataset):
    _, _, _, datamodule = dataset
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (2, 3, *CROP)
    assert batch["mask"].dtype == torch.int64 and batch["mask"].shape == (2, *CROP)
    assert len(batch["meta"]["name"]) == 2
    labels = set(batch["mask"].unique().tolist())
    assert labels <= set(range(datamodule.num_classes)) | {datamodule.ignore_index}


def test_evaluation_batches_of_mixed_sizes_are_padded_with_ignore(dataset):
    name, _, _, datamodule = dataset
    datamodule.batch_size = 2
    batch = next(iter(datamodule.val_dataloader()))
    sizes = [datamodule.datasets["val"][i]["mask"].shape for i in range(len(batch["meta"]["name"]))]
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    assert batch["mask"].shape[-2:] == (height, width) and batch["image"].shape[-2:] == (height, width)
    for k, (h, w) in enumerate(sizes):
        assert (batch["mask"][k, h:, :] == datamodule.ignore_index).all()
        assert (batch["mask"][k, :, w:] == datamodule.ignore_index).all()
        assert (batch["image"][k, :, h:, :] == 0).all()


def test_class_stats_match_counts_made_here(dataset, monkeypatch, tmp_path):
    _, _, expected, datamodule = dataset
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path))
    train = expected.get("trainaug", expected["train"])
    classes = range(datamodule.num_classes)
    pixels = [sum(int((m == k).sum()) for m in train.values()) for k in classes]
    images = [sum(1 for m in train.values() if (m == k).any()) for k in classes]
    stats = datamodule.compute_class_stats()
    assert list(stats.pixel_counts) == pixels
    assert list(stats.image_counts) == images
    assert stats.num_images == len(train)


def test_predict_split_has_images_without_masks(dataset):
    _, _, _, datamodule = dataset
    predict = datamodule.datasets["predict"]
    item = predict[0]
    assert "mask" not in item and item["image"].shape[0] == 3
    batch = next(iter(datamodule.predict_dataloader()))
    assert "mask" not in batch


def test_plot_sample_draws_image_mask_and_overlay(dataset):
    _, _, _, datamodule = dataset
    figure = datamodule.plot_sample(0, split="val")
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    assert len(figure.legends[0].get_texts()) >= 1
    augmented = datamodule.plot_sample(0, split="train", augment=True)
    assert augmented.axes[0].images[0].get_array().shape[:2] == CROP
    assert len(datamodule.plot_sample(0, split="predict").axes) == 1


def test_default_train_pipeline_never_turns_padding_into_a_class(dataset):
    _, _, _, datamodule = dataset
    pipeline = datamodule.transforms["train"]
    pipeline.set_random_seed(0)
    image = np.full((10, 12, 3), 128, dtype=np.uint8)
    mask = np.ones((10, 12), dtype=np.uint8)
    seen: set[int] = set()
    for _ in range(8):
        seen |= set(np.unique(pipeline(image=image, mask=mask)["mask"]).tolist())
    assert seen <= {1, datamodule.ignore_index}
    assert 1 in seen


# ----- dataset-specific label facts, read against the raw files -----


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    fx.make_cityscapes(tmp_path)
    datamodule = CityscapesDataModule(tmp_path, crop_size=CROP)
    source = datamodule.build_source("train")
    checked = 0
    for index, sample in enumerate(source.samples):
        raw = np.asarray(Image.open(sample.labels[0]))
        mask = source.load(index)[1]
        if sample.labels[0].name.endswith("_labelTrainIds.png"):
            np.testing.assert_array_equal(mask, raw)  # used as stored
            continue
        assert (mask[raw == 26] == 13).all() and (mask[raw == 3] == 255).all() and (mask[raw == 7] == 0).all()
        for label_id, train_id in fx.CITYSCAPES_IDS.items():
            assert (mask[raw == label_id] == train_id).all()
        checked += 1
    assert checked == 3
    assert datamodule.class_names[13] == "car" and datamodule.palette[13] == (0, 0, 142)


def test_ade20k_shifts_labels_and_ignores_other(tmp_path):
    fx.make_ade20k(tmp_path)
    source = ADE20KDataModule(tmp_path, crop_size=CROP).build_source("train")
    raw = np.asarray(Image.open(source.samples[0].labels[0]))
    mask = source.load(0)[1]
    assert (mask[raw == 0] == 255).all() and (mask[raw == 5] == 4).all() and (mask[raw == 150] == 149).all()


def test_camvid_void_is_ignored(tmp_path):
    fx.make_camvid(tmp_path)
    source = CamVidDataModule(tmp_path, crop_size=CROP).build_source("test")
    raw = np.asarray(Image.open(source.samples[0].labels[0]))
    mask = source.load(0)[1]
    assert (raw == 11).any() and (mask[raw == 11] == 255).all() and (mask[raw == 10] == 10).all()


def test_voc_border_follows_the_configured_ignore_index(tmp_path):
    fx.make_voc(tmp_path)
    source = VOCDataModule(tmp_path, crop_size=CROP, ignore_index=100).build_source("val")
    raw = np.asarray(Image.open(source.samples[0].labels[0]))
    assert Image.open(source.samples[0].labels[0]).mode == "P"
    mask = source.load(0)[1]
    assert (mask[raw == 255] == 100).all() and (mask[raw == 15] == 15).all()


def test_voc_trainaug_reads_the_augmented_masks(tmp_path):
    expected = fx.make_voc(tmp_path, trainaug=True)
    source = VOCDataModule(tmp_path, train_split="trainaug", crop_size=CROP).build_source("train")
    assert [s.name for s in source.samples] == list(expected["trainaug"])
    assert all(s.labels[0].parent.name == "SegmentationClassAug" for s in source.samples)


def test_drive_outside_field_of_view_is_ignored_and_val_is_fixed(tmp_path):
    fx.make_drive(tmp_path)
    datamodule = DRIVEDataModule(tmp_path, crop_size=CROP)
    assert [s.name for s in datamodule.build_source("val").samples] == ["37", "38"]
    assert [s.name for s in datamodule.build_source("train").samples] == ["21", "22", "23"]
    source = datamodule.build_source("train")
    fov = np.asarray(Image.open(source.samples[0].labels[1]).convert("L")) > 127
    vessels = np.asarray(Image.open(source.samples[0].labels[0]).convert("L")) > 127
    mask = source.load(0)[1]
    assert (~fov).any() and (mask[~fov] == 255).all()
    np.testing.assert_array_equal(mask[fov], vessels[fov].astype(np.uint8))


def test_drive_without_test_annotations_predicts_the_test_images(tmp_path):
    fx.make_drive(tmp_path, test_manual=False)
    datamodule = DRIVEDataModule(tmp_path, crop_size=CROP)
    assert datamodule.build_source("test") is None
    assert [s.name for s in datamodule.build_source("predict").samples] == ["01", "02"]


def test_kvasir_jpeg_masks_are_thresholded(tmp_path):
    expected = fx.make_kvasir(tmp_path)
    source = KvasirSEGDataModule(tmp_path, crop_size=CROP).build_source("train")
    raw = np.asarray(Image.open(source.samples[0].labels[0]).convert("L"))
    # The stored JPEG values are neither 0 nor 255 (about 3 and 250, plus compression noise).
    assert 0 < raw.min() < 20 and 235 < raw.max() < 255
    for index, sample in enumerate(source.samples):
        np.testing.assert_array_equal(source.load(index)[1], expected[sample.name])


def test_kvasir_split_is_fixed_disjoint_and_complete(tmp_path):
    names = [f"img{i:04d}" for i in range(1000)]
    parts = {split: fixed_split(names, split) for split in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [800, 100, 100]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == names
    assert fixed_split(list(reversed(names)), "val") == parts["val"]  # independent of listing order


def test_kvasir_uses_split_lists_when_present(tmp_path):
    expected = fx.make_kvasir(tmp_path, count=4)
    names = sorted(expected)
    (tmp_path / "train.txt").write_text("\n".join(names[:3]) + "\n")
    (tmp_path / "val.txt").write_text(names[3] + "\n")
    datamodule = KvasirSEGDataModule(tmp_path, crop_size=CROP)
    assert [s.name for s in datamodule.build_source("train").samples] == names[:3]
    assert [s.name for s in datamodule.build_source("test").samples] == [names[3]]


def test_folder_predict_dir_and_palette(tmp_path):
    fx.make_folder(tmp_path / "data")
    predict = tmp_path / "new_images"
    predict.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(predict / "scan.png")
    datamodule = FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, predict_dir=predict)
    datamodule.setup("predict")
    item = datamodule.datasets["predict"][0]
    assert item["meta"]["name"] == "scan" and item["image"].shape == (3, 20, 30)
    assert len(datamodule.build_source("test")) == 2


def test_pin_memory_and_persistent_workers_defaults(tmp_path):
    fx.make_folder(tmp_path)
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, num_workers=2)
    assert datamodule.persistent_workers is True
    assert datamodule.pin_memory == torch.cuda.is_available()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers is True


def test_requested_dist_map_is_computed_after_augmentation_and_padded_with_zero(tmp_path):
    fx.make_folder(tmp_path)
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, crop_size=CROP, batch_size=2)
    datamodule.setup("fit")
    datamodule.request_targets({"dist_map"})  # after setup: the datasets share the DataModule's targets
    item = datamodule.datasets["train"][0]
    assert item["dist_map"].shape == (3, *CROP)
    expected = signed_distance_map(item["mask"].numpy(), num_classes=3, ignore_index=255)
    np.testing.assert_allclose(item["dist_map"].numpy(), expected)
    batch = next(iter(datamodule.val_dataloader()))
    sizes = [datamodule.datasets["val"][i]["mask"].shape for i in range(2)]
    assert batch["dist_map"].shape == (2, 3, *batch["mask"].shape[-2:])
    for k, (h, w) in enumerate(sizes):
        assert (batch["dist_map"][k, :, h:, :] == 0).all() and (batch["dist_map"][k, :, :, w:] == 0).all()
    with pytest.raises(ValueError, match=r"unknown extra targets \['edges'\]"):
        datamodule.request_targets({"edges"})
