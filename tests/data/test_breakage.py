"""Real-world breakage in a user's own folder: each case is read correctly or fails with one clear line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import data_fixtures as fx
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lightning_seg.data import FolderDataModule, VOCDataModule
from lightning_seg.data.imageio import read_image

BINARY = ("background", "object")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _binary_folder(root, stored_fg: int, suffix: str = ".png", count: int = 3) -> list[np.ndarray]:
    """images/ + masks/ in train/ subfolders; masks store the foreground as ``stored_fg``; returns 0/1 truths."""
    truths = []
    for i in range(count):
        fx.write_image(root / "images/train" / f"s{i}.jpg", (32, 32), seed=i)
        blocks = np.random.default_rng(i).integers(0, 2, (4, 4))
        blocks[0, 0] = 1
        binary = np.kron(blocks, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
        path = root / "masks/train" / f"s{i}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"quality": 90} if suffix == ".jpg" else {}
        Image.fromarray((binary * stored_fg).astype(np.uint8)).save(path, **options)
        truths.append(binary)
    return truths


def _masks(datamodule) -> list[np.ndarray]:
    datamodule.setup("fit")
    source = datamodule.datasets["train"].source
    return [source.load(i)[1] for i in range(len(source))]


def test_0_255_masks_with_the_default_mapping_are_an_error_that_says_what_to_set(tmp_path):
    _binary_folder(tmp_path, 255)
    datamodule = FolderDataModule(tmp_path, class_names=BINARY)
    message = r"mask .*s0.png holds only 0 and 255.*ignore_index.*mask_format: binary.*mask_values"
    with pytest.raises(ValueError, match=message):
        _masks(datamodule)
    with pytest.raises(ValueError, match=message):
        datamodule.compute_class_stats()


@pytest.mark.parametrize(
    ("stored_fg", "suffix", "kwargs"),
    [
        (255, ".png", {"mask_format": "binary"}),
        (1, ".png", {"mask_format": "binary"}),
        (255, ".jpg", {"mask_format": "binary"}),
        (255, ".png", {"mask_values": {0: 0, 255: 1}}),
    ],
)
def test_binary_masks_by_an_explicit_rule(tmp_path, stored_fg, suffix, kwargs):
    truths = _binary_folder(tmp_path, stored_fg, suffix)
    datamodule = FolderDataModule(tmp_path, class_names=BINARY, **kwargs)
    for mask, truth in zip(_masks(datamodule), truths, strict=True):
        np.testing.assert_array_equal(mask, truth)
    stats = datamodule.compute_class_stats()
    assert stats.pixel_counts[1] == sum(int(t.sum()) for t in truths) > 0


def test_binary_masks_with_values_neither_0_1_nor_0_255_are_an_error(tmp_path):
    _binary_folder(tmp_path, 7)
    message = r"mask .*s0.png has values up to 7: mask_format 'binary' expects 0/1 or 0/255"
    with pytest.raises(ValueError, match=message):
        _masks(FolderDataModule(tmp_path, class_names=BINARY, mask_format="binary"))


def test_mask_values_reject_unlisted_values_and_bad_targets(tmp_path):
    _binary_folder(tmp_path, 255)
    with pytest.raises(ValueError, match=r"mask .*s0.png has label values \[255\] that mask_values does not list"):
        _masks(FolderDataModule(tmp_path, class_names=BINARY, mask_values={0: 0, 1: 1}))
    with pytest.raises(ValueError, match=r"mask_values maps 255 to 2, which is neither a class \(0..1\) nor"):
        FolderDataModule(tmp_path, class_names=BINARY, mask_values={0: 0, 255: 2})


def test_multiclass_masks_holding_only_class_0_and_the_ignore_value_are_an_error(tmp_path):
    _binary_folder(tmp_path, 255)
    datamodule = FolderDataModule(tmp_path, class_names=("bg", "a", "b"))
    with pytest.raises(ValueError, match=r"hold only class 0 and the ignore value 255.*mask_values"):
        datamodule.compute_class_stats()


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".bmp", ".webp"])
def test_truncated_images_are_rejected_with_their_path(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    fx.write_image(path, (64, 64), seed=0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"cannot read image .*photo{suffix}: .*truncated"):
        read_image(path)


def test_truncated_mask_is_rejected_with_its_path(tmp_path):
    fx.make_folder(tmp_path)
    path = tmp_path / "masks/train/train_00.png"
    path.write_bytes(path.read_bytes()[:-30])
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    with pytest.raises(ValueError, match=r"cannot read mask .*train_00.png: .*truncated"):
        datamodule.compute_class_stats()


def _rotated_pair(root, height: int, width: int, mask_upright: bool) -> None:
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90° clockwise to view) and its mask.

    The image's colour encodes the class (class k → grey level 80k), so alignment is checkable after decoding.
    """
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[: height // 2, : width // 3] = 1
    labels[height // 2 :, width // 2 :] = 2
    pixels = np.repeat((labels * 80)[..., None], 3, axis=2)
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "images/train").mkdir(parents=True)
    (root / "masks/train").mkdir(parents=True)
    Image.fromarray(pixels).save(root / "images/train/p.jpg", quality=95, exif=exif)
    stored = np.rot90(labels, k=-1) if mask_upright else labels  # orientation 6 = 90° clockwise
    fx.write_label(root / "masks/train/p.png", stored)


@pytest.mark.parametrize(("height", "width", "mask_upright"), [(24, 40, False), (24, 40, True), (32, 32, False)])
def test_exif_orientation_is_applied_to_image_and_mask_alike(tmp_path, height, width, mask_upright):
    _rotated_pair(tmp_path, height, width, mask_upright)
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES)
    datamodule.setup("fit")
    image, mask, _ = datamodule.datasets["train"].source.load(0)
    assert image.shape[:2] == mask.shape == (width, height)  # upright: the sideways image is turned
    np.testing.assert_array_equal(np.round(image[..., 0] / 80.0).astype(np.uint8), mask)
    upright = np.rot90(np.where(np.arange(height)[:, None] < height // 2, 1, 0), k=-1)
    assert mask[0, -1] == 1 and upright[0, -1] == 1  # the top-left class-1 block is now top-right
    assert datamodule.compute_class_stats().num_images == 1


def test_duplicate_stems_are_an_error_naming_both_files(tmp_path):
    fx.make_folder(tmp_path)
    fx.write_image(tmp_path / "images/train/train_00.png", (40, 48), seed=1)
    with pytest.raises(ValueError, match=r"two files share the name 'train_00'.*train_00.jpg.*train_00.png"):
        FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES).setup("fit")


def _flat_folder(root, count: int = 10) -> None:
    for i in range(count):
        fx.write_image(root / "images" / f"img{i:02d}.jpg", (16, 16), seed=i)
        fx.write_label(root / "masks" / f"img{i:02d}.png", fx.random_labels((16, 16), [0, 1, 2], seed=i))


def _split_names(datamodule) -> dict[str, list[str]]:
    return {s: [x.name for x in datamodule.list_split(s) or []] for s in ("train", "val", "test")}


def test_flat_folder_is_split_by_a_seeded_val_fraction(tmp_path):
    _flat_folder(tmp_path)
    names = _split_names(FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, val_fraction=0.3))
    assert len(names["val"]) == 3 and len(names["train"]) == 7 and names["test"] == []
    assert sorted(names["train"] + names["val"]) == [f"img{i:02d}" for i in range(10)]
    again = _split_names(FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, val_fraction=0.3))
    assert again == names
    other = [
        _split_names(FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, val_fraction=0.3, split_seed=s))
        for s in (1, 2, 3)
    ]
    assert any(o["val"] != names["val"] for o in other)
    few = tmp_path / "few"
    _flat_folder(few, count=3)
    assert _split_names(FolderDataModule(few, class_names=fx.FOLDER_CLASSES))["val"] == []  # round(0.3) = 0
    with pytest.raises(ValueError, match=r"val_fraction must lie in \[0, 1\), got 1.5"):
        FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, val_fraction=1.5)


def test_class_statistics_cache_goes_to_the_user_cache_and_is_logged_once(tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    fx.make_folder(root)
    monkeypatch.delenv("LIGHTNING_SEG_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with caplog.at_level(logging.INFO, logger="lightning_seg"):
        FolderDataModule(root, class_names=fx.FOLDER_CLASSES).compute_class_stats()
        FolderDataModule(root, class_names=fx.FOLDER_CLASSES).compute_class_stats()
    assert not (root / ".lightning_seg").exists()
    files = list((tmp_path / "xdg" / "lightning_seg").rglob("class_stats_*"))
    assert len(files) == 1
    logged = [r.getMessage() for r in caplog.records if "class statistics" in r.getMessage()]
    assert len(logged) == 1 and str(files[0].parent) in logged[0]
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "moved"))
    FolderDataModule(root, class_names=fx.FOLDER_CLASSES).compute_class_stats()
    assert list((tmp_path / "moved").rglob("class_stats_*"))


@pytest.mark.parametrize("given", ["VOCdevkit/VOC2012", "VOCdevkit", "."])
def test_voc_root_may_be_the_voc2012_folder_vocdevkit_or_its_parent(tmp_path, given):
    fx.make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    datamodule = VOCDataModule(tmp_path / given)
    assert datamodule.root == tmp_path / "VOCdevkit" / "VOC2012"
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) == 3


def test_voc_root_error_names_the_places_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOCDataModule: .* has no JPEGImages/.*VOC2012.*VOCdevkit/VOC2012"):
        VOCDataModule(tmp_path)


def test_worker_counts_fit_the_machine(tmp_path, monkeypatch, caplog):
    fx.make_folder(tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with caplog.at_level(logging.INFO, logger="lightning_seg"):
        datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, num_workers=8)
    assert datamodule.num_workers == 2
    assert any("num_workers 8" in r.getMessage() and "2 CPU" in r.getMessage() for r in caplog.records)
    assert FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, num_workers="auto").num_workers == 1
    with pytest.raises(ValueError, match=r"num_workers must be 0 or more, or 'auto', got 'many'"):
        FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, num_workers="many")


def test_shipped_configs_validate_every_epoch_and_let_the_machine_choose_workers():
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if "max_epochs" not in config.get("trainer", {}) or "data" not in config:
            continue  # not a training config (prediction, inference)
        every = config["trainer"].get("check_val_every_n_epoch", 1)
        epochs = config["trainer"]["max_epochs"]
        assert every == 1 or epochs // every >= 20, f"{path.name} validates only every {every} epochs"
        if path.stem == "drive":
            assert every == 1, "DRIVE epochs are 4 steps: validate every epoch to pick a best checkpoint"
        workers = config["data"]["init_args"].get("num_workers", 0)
        assert workers == "auto" or workers <= 2, path.name


def test_worker_errors_name_the_file_and_reason_in_one_line(tmp_path):
    fx.make_folder(tmp_path)
    bad = tmp_path / "images/train/train_00.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    datamodule = FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES, num_workers=1, crop_size=(16, 16))
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    with pytest.raises(ValueError) as caught:
        for _ in loader:
            pass
    first = str(caught.value).splitlines()[0]
    assert "train_00.jpg" in first and "truncated" in first and "Caught" not in first
    assert isinstance(torch.utils.data.get_worker_info(), type(None))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    from PIL import ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=exif)
    with Image.open(path) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)


def test_a_worker_error_is_one_line_at_the_cli(tmp_path, monkeypatch, capsys):
    from lightning_seg.cli import main

    fx.make_folder(tmp_path / "data")
    bad = tmp_path / "data/images/train/train_01.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "cache"))
    resize = '{"__class_fullname__": "Resize", "height": 16, "width": 16}'
    crop = f'{{"__class_fullname__": "Compose", "transforms": [{resize}]}}'
    with pytest.raises(SystemExit) as done:
        main(
            ["fit", "--config", str(EXPERIMENTS / "folder.yaml"), f"--data.init_args.root={tmp_path / 'data'}",
             "--data.init_args.class_names=[bg,a,b]", "--data.init_args.palette=null", "--data.init_args.num_workers=1",
             f"--data.init_args.train_transform={crop}", "--trainer.fast_dev_run=true", "--trainer.accelerator=cpu",
             "--trainer.callbacks=[]"]
        )  # fmt: skip
    assert done.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lightning-seg")]
    assert len(errors) == 1
    assert "train_01.jpg" in errors[0] and "truncated" in errors[0].lower() and "Caught" not in errors[0]


def test_a_name_listed_twice_is_an_error(tmp_path):
    fx.make_folder(tmp_path, layout="lists")
    (tmp_path / "splits/train.txt").write_text("train_00\ntrain_01\ntrain_00\n")
    with pytest.raises(ValueError, match=r"the split list names \['train_00'\] more than once"):
        FolderDataModule(tmp_path, class_names=fx.FOLDER_CLASSES).setup("fit")


def test_jpeg_binary_masks_read_as_class_ids_suggest_the_binary_format(tmp_path):
    _binary_folder(tmp_path, 255, suffix=".jpg")
    with pytest.raises(ValueError, match=r"(?i)set mask_format: binary"):
        _masks(FolderDataModule(tmp_path, class_names=BINARY))
