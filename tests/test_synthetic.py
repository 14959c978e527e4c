import numpy as np
import pytest
import torch

from lightning_seg.data import SyntheticDataModule
from lightning_seg.data.synthetic import CLASS_NAMES, SyntheticSource


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    first = SyntheticSource("train", 4, 64, seed=3).load(2)
    again = SyntheticSource("train", 4, 64, seed=3).load(2)
    other = SyntheticSource("train", 4, 64, seed=4).load(2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_splits_are_different_images() -> None:
    train = SyntheticSource("train", 2, 64, seed=0).load(0)[1]
    val = SyntheticSource("val", 2, 64, seed=0).load(0)[1]
    assert not np.array_equal(train, val)


def test_class_frequencies_are_strongly_skewed() -> None:
    stats = SyntheticDataModule(num_train=128, image_size=128).class_stats
    freq = stats.pixel_frequency
    assert stats.num_classes == len(CLASS_NAMES) == 5
    assert freq[0] > 0.7  # background dominates
    assert freq[1] > 0.05  # large blobs
    assert 0 < freq[4] < 0.01  # the very rare class: under 1 % of pixels
    assert freq[2] < 0.02 and freq[3] < 0.05  # small objects and thin vessels are rare
    assert stats.image_counts[4] < stats.num_images  # the rare class is absent from some images


def test_rare_class_frequency_is_configurable() -> None:
    never = SyntheticDataModule(num_train=32, image_size=64, rare_probability=0.0).class_stats
    always = SyntheticDataModule(num_train=32, image_size=64, rare_probability=1.0).class_stats
    assert never.pixel_counts[4] == 0
    assert always.image_counts[4] == 32


def test_colour_alone_does_not_solve_the_task() -> None:
    # A nearest-mean-colour classifier fitted on the training pixels must fail on the small classes.
    source = SyntheticSource("train", 16, 64, seed=0)
    images, masks = zip(*(source.generate(i) for i in range(16)), strict=True)
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    labels = np.concatenate([m.ravel() for m in masks])
    means = np.stack([pixels[labels == c].mean(0) for c in range(5)])
    predicted = np.argmin(((pixels[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    for cls in (2, 3, 4):
        tp = np.sum((predicted == cls) & (labels == cls))
        iou = tp / np.sum((predicted == cls) | (labels == cls))
        assert iou < 0.3, f"class {CLASS_NAMES[cls]} is separable by colour alone (IoU {iou:.2f})"


def test_batches_follow_the_conventions() -> None:
    dm = SyntheticDataModule(num_train=4, num_val=2, image_size=32, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 32, 32) and batch["mask"].dtype == torch.int64
    assert batch["meta"]["name"][0].startswith("synthetic_train_")
    assert dm.num_classes == 5 and dm.ignore_index == 255 and len(dm.palette) == 5


def test_predict_split_has_no_masks() -> None:
    dm = SyntheticDataModule(num_train=2, num_val=2, num_test=3, image_size=32)
    dm.setup("predict")
    sample = dm.datasets["predict"][0]
    assert "mask" not in sample and len(dm.datasets["predict"]) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 8}, "image_size must be at least 16"),
        ({"num_train": 0}, "at least 1"),
        ({"rare_probability": 2.0}, "rare_probability"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticDataModule(**kwargs)
