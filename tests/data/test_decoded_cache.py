"""``cache: raw``: samples decoded once into memory-mapped arrays give exactly what decoding gives."""

from __future__ import annotations

import os

import data_fixtures as fx
import numpy as np
import pytest

from lightning_seg.data import FolderDataModule
from lightning_seg.data.decoded_cache import DecodedCache
from lightning_seg.data.imageio import read_image


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_samples_equal_decoded_ones_and_are_reused(tmp_path, user_cache, monkeypatch):
    fx.make_folder(tmp_path / "data")
    plain = FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES)
    cached = FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, cache="raw")
    for datamodule in (plain, cached):
        datamodule.setup("fit")
    source = cached.datasets["train"].source
    assert isinstance(source, DecodedCache)
    for index in range(4):
        for got, want in zip(source.load(index), plain.datasets["train"].source.load(index), strict=True):
            np.testing.assert_array_equal(got, want)
    assert cached.class_stats == plain.class_stats
    assert source.path.parent == user_cache / "decoded"
    sizes = {p.name: p.stat().st_size for p in source.path.iterdir()}
    assert sizes["images.u8"] == sum(m.size * 3 for m in fx.make_folder(tmp_path / "again")["train"].values())

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(DecodedCache, "_write", refuse)
    again = FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, cache="raw")
    again.setup("fit")
    np.testing.assert_array_equal(again.datasets["train"].source.load(1)[0], source.load(1)[0])
    batch = next(iter(again.train_dataloader()))
    assert batch["image"].dtype.is_floating_point and batch["mask"].shape[0] == batch["image"].shape[0]


def test_a_changed_image_gives_a_new_cache(tmp_path, user_cache):
    fx.make_folder(tmp_path / "data")
    FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, cache="raw").setup("fit")
    path = tmp_path / "data/images/train/train_00.jpg"
    fx.write_image(path, (40, 48), seed=99)
    os.utime(path, ns=(1, 1))
    datamodule = FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, cache="raw")
    datamodule.setup("fit")
    np.testing.assert_array_equal(datamodule.datasets["train"].source.load(0)[0], read_image(path))
    assert len([p for p in (user_cache / "decoded").iterdir() if p.is_dir()]) == 3  # train+val, then train again


def test_not_enough_disk_space_is_an_error_before_writing(tmp_path, monkeypatch):
    import shutil

    fx.make_folder(tmp_path / "data")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(ValueError, match=r"decoded cache needs about .* GiB but .* has 0.00 GiB free"):
        FolderDataModule(tmp_path / "data", class_names=fx.FOLDER_CLASSES, cache="raw").setup("fit")
