"""Bad input at the boundary: each mistake gives one clear error naming the file, the value and what was expected."""

from __future__ import annotations

import shutil

import data_fixtures as fx
import numpy as np
import pytest
from PIL import Image

from lightning_seg.data import (
    ADE20KDataModule,
    CamVidDataModule,
    CityscapesDataModule,
    DRIVEDataModule,
    FolderDataModule,
    KvasirSEGDataModule,
    VOCDataModule,
)

# name → (fixture writer, DataModule, a required folder, a mask file of a training image)
LAYOUTS = {
    "folder": (
        fx.make_folder,
        lambda r: FolderDataModule(r, class_names=fx.FOLDER_CLASSES),
        "masks",
        "masks/train/train_01.png",
    ),
    "voc": (fx.make_voc, VOCDataModule, "SegmentationClass", "SegmentationClass/2007_000039.png"),
    "cityscapes": (
        fx.make_cityscapes,
        CityscapesDataModule,
        "gtFine/train",
        "gtFine/train/bochum/bochum_000001_000019_gtFine_labelIds.png",
    ),
    "camvid": (fx.make_camvid, CamVidDataModule, "trainannot", "trainannot/0001TP_000001.png"),
    "ade20k": (
        fx.make_ade20k,
        ADE20KDataModule,
        "annotations/training",
        "annotations/training/ADE_train_00000002.png",
    ),
    "drive": (fx.make_drive, DRIVEDataModule, "training/1st_manual", "training/1st_manual/22_manual1.gif"),
    "kvasir": (fx.make_kvasir, KvasirSEGDataModule, "masks", None),
}


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOCDataModule: dataset root .*nowhere does not exist"):
        VOCDataModule(tmp_path / "nowhere")


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_root_not_in_the_expected_layout_names_the_folder(tmp_path, name):
    make, build, folder, _ = LAYOUTS[name]
    make(tmp_path)
    shutil.rmtree(tmp_path / folder)
    with pytest.raises(FileNotFoundError, match=rf"not in the expected layout: missing folder .*{folder}$"):
        build(tmp_path)


@pytest.mark.parametrize("name", [n for n in LAYOUTS if LAYOUTS[n][3] is not None])
def test_image_without_mask(tmp_path, name):
    make, build, _, mask_file = LAYOUTS[name]
    make(tmp_path)
    (tmp_path / mask_file).unlink()
    datamodule = build(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"image .* has no mask: expected .*"):
        datamodule.setup("fit")


def test_kvasir_image_without_mask(tmp_path):
    fx.make_kvasir(tmp_path, count=3)
    (tmp_path / "masks" / "cju0001polyp.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image .*cju0001polyp.jpg has no mask: expected .*masks/cju0001polyp"):
        KvasirSEGDataModule(tmp_path).setup("fit")


def test_size_mismatch_fails_on_load_and_in_the_scan(tmp_path):
    fx.make_folder(tmp_path)
    fx.write_label(tmp_path / "masks/train/train_01.png", np.zeros((10, 12), dtype=np.uint8))
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    message = r"image .*train_01.jpg is 36×44 but its mask .*train_01.png is 10×12"
    with pytest.raises(ValueError, match=message):
        datamodule.compute_class_stats()
    datamodule.setup("fit")
    with pytest.raises(ValueError, match=message):
        datamodule.datasets["train"][1]


@pytest.mark.parametrize(
    ("name", "build", "mask_file", "values", "valid"),
    [
        (
            "folder",
            lambda r: FolderDataModule(r, class_names=fx.FOLDER_CLASSES),
            "masks/train/train_01.png",
            [3, 30],
            "0..2",
        ),
        ("voc", VOCDataModule, "SegmentationClass/2007_000039.png", [21], "0..20"),
        ("camvid", CamVidDataModule, "trainannot/0001TP_000001.png", [12], "0..10"),
        ("ade20k", ADE20KDataModule, "annotations/training/ADE_train_00000002.png", [151, 200], "0..149"),
    ],
)
def test_label_values_outside_the_classes(tmp_path, name, build, mask_file, values, valid):
    LAYOUTS[name][0](tmp_path)
    path = tmp_path / mask_file
    labels = np.asarray(Image.open(path)).copy()
    labels.ravel()[: len(values)] = values
    fx.write_label(path, labels)
    datamodule = build(tmp_path)
    shown = ", ".join(str(v) for v in values)
    message = (
        rf"mask .*{path.name} has label values \[{shown}\] outside the classes \({valid}\) and not the ignore value 255"
    )
    with pytest.raises(ValueError, match=message):
        datamodule.compute_class_stats()


def test_unreadable_image_and_mask(tmp_path):
    fx.make_folder(tmp_path)
    (tmp_path / "images/train/train_00.jpg").write_bytes(b"not an image")
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    datamodule.setup("fit")
    with pytest.raises(ValueError, match=r"cannot read image .*train_00.jpg"):
        datamodule.datasets["train"][0]
    with pytest.raises(ValueError, match=r"cannot read image .*train_00.jpg"):
        datamodule.compute_class_stats()
    (tmp_path / "masks/train/train_01.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"cannot read mask .*train_01.png"):
        datamodule.datasets["train"][1]


def test_unknown_colour_in_rgb_masks(tmp_path):
    fx.make_folder(tmp_path, mask_format="rgb")
    path = tmp_path / "masks/train/train_00.png"
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] = (1, 2, 3)
    Image.fromarray(pixels).save(path)
    datamodule = FolderDataModule(
        tmp_path,
        class_names=fx.FOLDER_CLASSES,
        palette=fx.FOLDER_PALETTE,
        mask_format="rgb",
        ignore_color=(255, 255, 255),
    )
    datamodule.setup("fit")
    with pytest.raises(
        ValueError, match=r"mask .*train_00.png has colours \[\(1, 2, 3\)\] that are not in the palette"
    ):
        datamodule.datasets["train"][0]


def test_colour_mask_read_as_index_mask(tmp_path):
    fx.make_folder(tmp_path, mask_format="rgb")
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    datamodule.setup("fit")
    with pytest.raises(ValueError, match=r"mask .* is colour-coded; expected one channel of class indices"):
        datamodule.datasets["train"][0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": []}, "class_names must name at least one class"),
        (
            {"class_names": fx.FOLDER_CLASSES, "palette": [(0, 0, 0)]},
            "palette has 1 colours but there are 3 class_names",
        ),
        ({"class_names": fx.FOLDER_CLASSES, "mask_format": "rgb"}, "mask_format 'rgb' needs a palette"),
        (
            {"class_names": fx.FOLDER_CLASSES, "mask_format": "gif"},
            "mask_format must be 'index', 'binary' or 'rgb', got 'gif'",
        ),
        ({"class_names": fx.FOLDER_CLASSES, "batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"class_names": fx.FOLDER_CLASSES, "num_workers": -1}, "num_workers must be 0 or more, or 'auto', got -1"),
        ({"class_names": fx.FOLDER_CLASSES, "ignore_index": 300}, r"ignore_index must be in 0..255 .*got 300"),
        (
            {"class_names": fx.FOLDER_CLASSES, "crop_size": (0, 8)},
            r"crop_size must be two positive .*\[0, 8\]",
        ),
    ],
)
def test_bad_folder_settings(tmp_path, kwargs, message):
    fx.make_folder(tmp_path)
    with pytest.raises(ValueError, match=message):
        FolderDataModule(tmp_path, **kwargs)


def test_folder_without_any_training_split(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    message = r"no training split under .*: expected .*images/train/, .*train.txt, or images directly in"
    with pytest.raises(FileNotFoundError, match=message):
        datamodule.setup("fit")


def test_split_list_naming_a_missing_image(tmp_path):
    fx.make_folder(tmp_path, layout="lists")
    (tmp_path / "splits/val.txt").write_text("val_00\nghost\n")
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    with pytest.raises(FileNotFoundError, match=r"image 'ghost' listed for this split is not in .*images"):
        datamodule.setup("validate")


def test_voc_trainaug_without_its_list(tmp_path):
    fx.make_voc(tmp_path, trainaug=True)
    (tmp_path / "ImageSets/Segmentation/trainaug.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"trainaug needs the list .*trainaug.txt"):
        VOCDataModule(tmp_path, train_split="trainaug").setup("fit")


def test_plot_sample_index_out_of_range(tmp_path):
    fx.make_folder(tmp_path)
    with pytest.raises(ValueError, match=r"index 9 is out of range for the 'val' split of 2 samples"):
        FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES).plot_sample(9, split="val")
