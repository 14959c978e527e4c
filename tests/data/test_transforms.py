"""Albumentations pipelines from configs: inline dicts, saved files, and masks padded with ignore_index."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import yaml

from lightning_seg.data.transforms import build_transform

IGNORE = 255

# albumentations 2.0.8's to_dict writes PadIfNeeded's derived 'padding', which from_dict then reports.
pytestmark = pytest.mark.filterwarnings("ignore:Argument\\(s\\) 'padding' are not valid:UserWarning")


def _small_sample() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((10, 12, 3), 200, dtype=np.uint8)
    mask = np.ones((10, 12), dtype=np.uint8)  # every real pixel is class 1; class 0 must never appear
    return image, mask


GEOMETRIC = {
    "PadIfNeeded": lambda: A.PadIfNeeded(min_height=24, min_width=24, border_mode=cv2.BORDER_CONSTANT),
    "RandomCrop(pad_if_needed)": lambda: A.RandomCrop(height=24, width=24, pad_if_needed=True),
    "Rotate": lambda: A.Rotate(limit=(45, 45), border_mode=cv2.BORDER_CONSTANT, p=1.0),
    "Affine": lambda: A.Affine(scale=0.5, rotate=30, border_mode=cv2.BORDER_CONSTANT, p=1.0),
    "SafeRotate": lambda: A.SafeRotate(limit=(30, 30), border_mode=cv2.BORDER_CONSTANT, p=1.0),
    "Perspective": lambda: A.Perspective(scale=(0.2, 0.2), fit_output=True, border_mode=cv2.BORDER_CONSTANT, p=1.0),
}


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_geometric_transforms_pad_masks_with_ignore_index(name):
    image, mask = _small_sample()
    # albumentations alone fills invented mask pixels with class 0: the pitfall being guarded against.
    raw = A.Compose([GEOMETRIC[name]()], strict=True, seed=0)(image=image, mask=mask)["mask"]
    assert 0 in np.unique(raw)
    guarded = build_transform(A.Compose([GEOMETRIC[name]()], strict=True, seed=0), IGNORE)
    out = guarded(image=image, mask=mask)["mask"]
    assert set(np.unique(out).tolist()) == {1, IGNORE}
    # The padded positions are exactly where albumentations had put 0.
    assert np.array_equal(out == IGNORE, raw == 0)


def test_guard_reaches_nested_compositions_and_inline_dicts():
    spec = A.to_dict(
        A.Compose([A.OneOf([A.PadIfNeeded(min_height=20, min_width=20, border_mode=cv2.BORDER_CONSTANT)], p=1.0)])
    )
    pipeline = build_transform(spec, ignore_index=7)
    image, mask = _small_sample()
    out = pipeline(image=image, mask=mask)["mask"]
    assert out.shape == (20, 20)
    assert set(np.unique(out).tolist()) == {1, 7}


def test_dropout_mask_fill_is_left_alone():
    pipeline = build_transform(A.Compose([A.CoarseDropout(p=1.0)]), IGNORE)
    assert pipeline.transforms[0].fill_mask is None  # None = dropout keeps the labels


def _pipeline() -> A.Compose:
    return A.Compose(
        [
            A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0),
            A.PadIfNeeded(min_height=16, min_width=16, border_mode=cv2.BORDER_CONSTANT),
            A.RandomCrop(height=16, width=16),
            A.HorizontalFlip(p=0.5),
        ]
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_inline_dict_and_saved_file_give_the_same_pipeline(tmp_path, suffix):
    path = tmp_path / f"pipeline{suffix}"
    A.save(_pipeline(), str(path), data_format="yaml" if suffix == ".yaml" else "json")
    inline = A.to_dict(_pipeline())
    from_dict, from_file = build_transform(inline, IGNORE), build_transform(str(path), IGNORE)
    without_top_key = build_transform(inline["transform"], IGNORE)
    assert A.to_dict(from_dict) == A.to_dict(from_file) == A.to_dict(without_top_key)
    image = np.random.default_rng(0).integers(0, 256, (12, 14, 3), dtype=np.uint8)
    mask = np.random.default_rng(1).integers(0, 3, (12, 14), dtype=np.uint8)
    for pipeline in (from_dict, from_file):
        pipeline.set_random_seed(3)
    for _ in range(5):
        a, b = from_dict(image=image, mask=mask), from_file(image=image, mask=mask)
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    assert from_file.transforms[1].fill_mask == IGNORE


def test_none_means_no_augmentation_and_a_single_transform_is_wrapped():
    assert build_transform(None, IGNORE) is None
    wrapped = build_transform(A.HorizontalFlip(p=1.0), IGNORE)
    assert isinstance(wrapped, A.Compose)


def test_bad_transform_specs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="transform file .*missing.yaml does not exist"):
        build_transform(str(tmp_path / "missing.yaml"), IGNORE)
    with pytest.raises(TypeError, match="a transform must be a dict, a file path or an albumentations transform"):
        build_transform(42, IGNORE)


def test_a_transform_without_p_gets_its_class_default_not_one_half():
    spec = {
        "__class_fullname__": "Compose",
        "transforms": [
            {"__class_fullname__": "PadIfNeeded", "min_height": 16, "min_width": 16},
            {"__class_fullname__": "HorizontalFlip"},
        ],
    }
    pipeline = build_transform(spec, IGNORE)
    assert [t.p for t in pipeline.transforms] == [1.0, 0.5]
    with pytest.raises(ValueError, match="unknown albumentations transform 'NoSuchFlip'"):
        build_transform({"__class_fullname__": "NoSuchFlip"}, IGNORE)


def test_the_folder_experiment_pipeline_always_crops_and_pads_with_ignore():
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "folder.yaml").read_text())
    pipeline = build_transform(config["data"]["init_args"]["train_transform"], IGNORE)
    pipeline.set_random_seed(0)
    image, mask = _small_sample()
    for _ in range(10):
        out = pipeline(image=image, mask=mask)
        assert out["image"].shape == (512, 512, 3)
        assert set(np.unique(out["mask"]).tolist()) == {1, IGNORE}
