"""The one-time scan of the training masks: cached in the user's cache folder, keyed by the file list, reused."""

from __future__ import annotations

import os
import shutil

import data_fixtures as fx
import numpy as np
import pytest

from lightning_seg.data import ClassStats, FolderDataModule, SyntheticDataModule
from lightning_seg.data import base as data_base


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "user_cache"
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(folder))
    return folder


def _datamodule(root, **kwargs):
    return FolderDataModule(root, class_names=fx.FOLDER_CLASSES, **kwargs)


def _cache_files(user_cache):
    return sorted((user_cache / "class_stats").glob("class_stats_*.npy"))


def _refuse_to_scan(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the masks were scanned again")

    monkeypatch.setattr(data_base, "class_counts", refuse)


def test_cache_is_written_to_the_user_cache_and_reused(tmp_path, monkeypatch, user_cache):
    root = tmp_path / "data"
    expected = fx.make_folder(root)
    stats = _datamodule(root).class_stats
    assert not (root / ".lightning_seg").exists()  # the dataset folder is never written
    (cache,) = _cache_files(user_cache)
    masks = list(expected["train"].values())
    per_image = np.asarray([[int((m == k).sum()) for k in range(3)] + [int((m == 255).sum())] for m in masks])
    np.testing.assert_array_equal(np.load(cache), per_image)
    pixels = per_image[:, :3].sum(0).tolist()
    image_pixels = [sum(int((m != 255).sum()) for m in masks if (m == k).any()) for k in range(3)]
    assert list(stats.pixel_counts) == pixels and list(stats.image_pixel_counts) == image_pixels
    assert stats.num_images == 4 and stats == ClassStats.from_masks(masks, 3, 255)

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


def test_a_changed_mask_or_label_rule_changes_the_key(tmp_path, user_cache):
    root = tmp_path / "data"
    fx.make_folder(root)
    before = _datamodule(root).class_stats
    path = root / "masks/train/train_00.png"
    fx.write_label(path, np.zeros((40, 48), dtype=np.uint8))
    os.utime(path, ns=(1, 1))
    after = _datamodule(root).class_stats
    assert after != before and after.pixel_counts[0] > before.pixel_counts[0]
    assert len(_cache_files(user_cache)) == 2
    remapped = _datamodule(root, mask_values={0: 0, 1: 2, 2: 1, 255: 255}).class_stats
    assert remapped.pixel_counts == (after.pixel_counts[0], after.pixel_counts[2], after.pixel_counts[1])
    assert len(_cache_files(user_cache)) == 3


def test_an_unwritable_cache_warns_and_still_returns_the_statistics(tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    fx.make_folder(root)
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "blocked"))
    stats = _datamodule(root).class_stats
    assert stats.num_images == 4
    assert any("cannot write the class-statistics cache" in r.getMessage() for r in caplog.records)


def test_a_truncated_cache_file_is_rescanned(tmp_path, user_cache):
    root = tmp_path / "data"
    fx.make_folder(root)
    stats = _datamodule(root).class_stats
    (cache,) = _cache_files(user_cache)
    cache.write_bytes(cache.read_bytes()[:20])
    assert _datamodule(root).class_stats == stats
    assert ClassStats.from_counts(np.load(cache)) == stats


def test_generated_data_is_never_cached(user_cache):
    datamodule = SyntheticDataModule(num_train=2, num_val=1, num_test=1, image_size=32)
    stats = datamodule.class_stats
    assert stats.num_images == 2
    assert not user_cache.exists()
