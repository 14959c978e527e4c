"""Training samplers: epochs drawn from (seed, epoch), per-sample augmentation seeds, mid-epoch skips."""

from __future__ import annotations

from pathlib import Path

import data_fixtures as fx
import numpy as np
import pytest
import torch

from lightning_seg.data import FolderDataModule
from lightning_seg.data.resumable import ResumableSampler


def test_each_epoch_is_a_permutation_drawn_from_the_seed_and_the_epoch() -> None:
    sampler = ResumableSampler(10, seed=3)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert sorted(index for index, _ in keys) == list(range(10))
        assert len({seed for _, seed in keys}) == 10  # every sample its own augmentation seed
        orders.append(keys)
    assert orders[0] == orders[2] and orders[0] != orders[1]
    assert list(ResumableSampler(10, seed=4)) != orders[0]


def test_ranks_share_one_sequence_padded_like_torch() -> None:
    whole = ResumableSampler(7, seed=1, num_replicas=1, rank=0)
    ranks = [ResumableSampler(7, seed=1, num_replicas=3, rank=r) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]
    keys = list(whole)
    indices = [index for index, _ in keys]
    padded = indices + indices[:2]  # 7 indices padded to 9 with the first ones, as DistributedSampler pads
    shared = [key for sampler in ranks for key in sampler]
    for rank, sampler in enumerate(ranks):
        assert [index for index, _ in sampler] == padded[rank::3]
    assert set(keys) <= set(shared)  # the 7 samples keep their seeds; the 2 repeats get their own
    assert len({seed for _, seed in shared}) == 9


def test_skip_next_starts_one_epoch_past_the_samples_already_seen() -> None:
    sampler = ResumableSampler(12, seed=0, num_replicas=2, rank=1)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.skip_next(4)
    assert len(sampler) == 6  # Lightning's batch count stays the epoch's
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # once only
    with pytest.raises(ValueError, match="negative"):
        sampler.skip_next(-1)


def _datamodule(root: Path, num_workers: int, **options) -> FolderDataModule:
    datamodule = FolderDataModule(
        root, class_names=fx.FOLDER_CLASSES, crop_size=(16, 16), batch_size=2, num_workers=num_workers, **options
    )
    datamodule.setup("fit")
    return datamodule


def _epoch(loader) -> list[dict]:
    return [{"image": b["image"].clone(), "mask": b["mask"].clone()} for b in loader]


def _assert_same_batches(left: list[dict], right: list[dict]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
        torch.testing.assert_close(a["mask"], b["mask"], rtol=0, atol=0)


@pytest.mark.parametrize("options", [{}, {"rare_class_sampling": True, "copy_paste_p": 0.5}], ids=["shuffle", "rare"])
def test_augmented_batches_do_not_depend_on_the_workers_and_a_skip_gives_the_epochs_tail(
    tmp_path: Path, options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx.make_folder(tmp_path)
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")  # as seed_everything (the CLI's seed_everything) sets it
    torch.manual_seed(0)
    np.random.seed(0)
    alone = _datamodule(tmp_path, 0, **options)
    loader = alone.train_dataloader()
    loader.sampler.set_epoch(2)
    reference = _epoch(loader)
    assert len(reference) >= 2
    # Another process state (other global seeds), two data workers: the same samples, augmented alike.
    torch.manual_seed(123)
    np.random.seed(123)
    workers = _datamodule(tmp_path, 2, **options).train_dataloader()
    workers.sampler.set_epoch(2)
    _assert_same_batches(_epoch(workers), reference)
    # What a resumed run does: start the epoch after the first batch.
    loader.sampler.skip_next(loader.batch_size)
    _assert_same_batches(_epoch(loader), reference[1:])
