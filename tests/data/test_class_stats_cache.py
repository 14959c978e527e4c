"""The one-time scan of the training masks: cached next to the data, keyed by the file list, reused."""

from __future__ import annotations

import json
import os
import shutil

import data_fixtures as fx
import numpy as np
import pytest

from lightning_seg.data import ClassStats, FolderDataModule, SyntheticDataModule


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "user_cache"
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(folder))
    return folder


def _datamodule(root):
    return FolderDataModule(root, class_names=fx.FOLDER_CLASSES)


def _refuse_to_scan(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the masks were scanned again")

    monkeypatch.setattr(ClassStats, "from_masks", classmethod(refuse))


def test_cache_is_written_next_to_the_data_and_reused(tmp_path, monkeypatch):
    root = tmp_path / "data"
    expected = fx.make_folder(root)
    stats = _datamodule(root).class_stats
    files = list((root / ".lightning_seg").glob("class_stats_*.json"))
    assert len(files) == 1
    on_disk = json.loads(files[0].read_text())
    masks = list(expected["train"].values())
    pixels = [sum(int((m == k).sum()) for m in masks) for k in range(3)]
    image_pixels = [sum(int((m != 255).sum()) for m in masks if (m == k).any()) for k in range(3)]
    assert on_disk["pixel_counts"] == pixels == list(stats.pixel_counts)
    assert on_disk["image_pixel_counts"] == image_pixels == list(stats.image_pixel_counts)
    assert on_disk["num_images"] == 4
    assert ClassStats.from_json(files[0]) == stats

    _refuse_to_scan(monkeypatch)
    again = _datamodule(root)
    assert again.class_stats == stats
    assert again.class_stats is again.class_stats  # scanned (or read) once per DataModule


def test_moving_the_dataset_keeps_its_cache(tmp_path, monkeypatch):
    fx.make_folder(tmp_path / "data")
    stats = _datamodule(tmp_path / "data").class_stats
    shutil.copytree(tmp_path / "data", tmp_path / "moved")  # copies keep sizes and modification times
    _refuse_to_scan(monkeypatch)
    assert _datamodule(tmp_path / "moved").class_stats == stats


def test_a_changed_mask_changes_the_key(tmp_path):
    root = tmp_path / "data"
    fx.make_folder(root)
    before = _datamodule(root).class_stats
    path = root / "masks/train/train_00.png"
    fx.write_label(path, np.zeros((40, 48), dtype=np.uint8))
    os.utime(path, ns=(1, 1))
    after = _datamodule(root).class_stats
    assert after != before and after.pixel_counts[0] > before.pixel_counts[0]
    assert len(list((root / ".lightning_seg").glob("class_stats_*.json"))) == 2


def test_read_only_data_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, user_cache):
    root = tmp_path / "data"
    fx.make_folder(root)
    (root / ".lightning_seg").write_text("a file where the cache folder would go")  # cannot be written
    stats = _datamodule(root).class_stats
    assert len(list(user_cache.glob("class_stats_*.json"))) == 1
    _refuse_to_scan(monkeypatch)
    assert _datamodule(root).class_stats == stats


def test_a_truncated_cache_file_is_rescanned(tmp_path):
    root = tmp_path / "data"
    fx.make_folder(root)
    stats = _datamodule(root).class_stats
    (cache,) = (root / ".lightning_seg").glob("class_stats_*.json")
    cache.write_text('{"pixel_counts": [1, 2')
    assert _datamodule(root).class_stats == stats
    assert ClassStats.from_json(cache) == stats


def test_a_cache_file_from_before_image_pixel_counts_is_rescanned_and_rewritten(tmp_path):
    root = tmp_path / "data"
    fx.make_folder(root)
    stats = _datamodule(root).class_stats
    (cache,) = (root / ".lightning_seg").glob("class_stats_*.json")
    old = {k: v for k, v in json.loads(cache.read_text()).items() if k != "image_pixel_counts"}
    cache.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"lack the fields \['image_pixel_counts'\]"):
        ClassStats.from_json(cache)
    assert _datamodule(root).class_stats == stats
    assert ClassStats.from_json(cache) == stats


def test_generated_data_is_never_cached(user_cache):
    datamodule = SyntheticDataModule(num_train=2, num_val=1, num_test=1, image_size=32)
    stats = datamodule.class_stats
    assert stats.num_images == 2
    assert not user_cache.exists()
