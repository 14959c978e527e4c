"""ClassDistribution: frequencies, imbalance ratio and class weights against values worked out here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lightning_seg.callbacks import ClassDistribution
from lightning_seg.callbacks.class_distribution import distribution_table, imbalance_ratio
from lightning_seg.data.stats import ClassStats

NAMES = ["background", "road", "car", "rare"]


def test_frequencies_and_imbalance_ratio_of_crafted_masks(train_stats: ClassStats) -> None:
    # Counted by hand from conftest.train_masks: 63 labelled pixels, one ignored.
    frame = distribution_table(train_stats, NAMES, beta=0.99)
    assert frame["pixel_count"].tolist() == [36, 22, 4, 1]
    assert frame["image_count"].tolist() == [3, 2, 2, 1]
    np.testing.assert_allclose(frame["pixel_frequency"], np.array([36, 22, 4, 1]) / 63)
    np.testing.assert_allclose(frame["image_frequency"], np.array([3, 2, 2, 1]) / 4)
    assert imbalance_ratio(train_stats) == pytest.approx(36.0)


def test_imbalance_ratio_skips_absent_classes_and_rejects_empty_stats() -> None:
    assert imbalance_ratio(ClassStats((50, 0, 5), (2, 0, 1), 2, (60, 0, 30))) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no labelled pixel"):
        imbalance_ratio(ClassStats((0, 0), (0, 0), 3, (0, 0)))


def test_every_weighting_scheme_matches_its_formula(crafted_train_masks: list[np.ndarray]) -> None:
    # The ignored pixel is relabelled as background, so every image has 16 labelled pixels.
    masks = [np.where(m == 255, 0, m) for m in crafted_train_masks]
    stats = ClassStats.from_masks(masks, 4, 255)
    beta = 0.9
    pixels = np.array([37, 22, 4, 1], dtype=float)
    assert stats.pixel_counts == (37, 22, 4, 1)
    p = pixels / pixels.sum()
    # Eigen & Fergus: f_c = pixels of c / pixels of the images that contain c; weight median(f) / f_c.
    images_with = [[m for m in masks if (m == c).any()] for c in range(4)]
    f = pixels / np.array([sum(m.size for m in group) for group in images_with])
    effective = (1 - beta) / (1 - beta**pixels)
    expected = {
        "inverse": 1 / p,
        "median": np.median(f) / f,
        "enet": 1 / np.log(1.02 + p),
        "effective": effective * 4 / effective.sum(),
    }
    frame = distribution_table(stats, NAMES, beta)
    assert sorted(c.removeprefix("weight_") for c in frame.columns if c.startswith("weight_")) == sorted(
        expected
    )
    for scheme, weights in expected.items():
        np.testing.assert_allclose(frame[f"weight_{scheme}"], weights, rtol=1e-12, err_msg=scheme)
    # The rarest class gets the largest weight under every scheme.
    assert all(frame[f"weight_{s}"].idxmax() == 3 for s in expected)


def test_callback_writes_table_json_and_figure(make_trainer, datamodule, train_stats, tmp_path) -> None:
    callback = ClassDistribution(beta=0.99)
    trainer = make_trainer(datamodule)
    callback.setup(trainer, None, "fit")
    callback.on_fit_start(trainer, None)
    callback.teardown(trainer, None, "fit")  # the figure is drawn in the background: on disk by teardown
    folder = tmp_path / "diagnostics" / "class_distribution"
    written = pd.read_csv(folder / "class_distribution.csv")
    expected = distribution_table(train_stats, NAMES, 0.99)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    report = json.loads((folder / "class_distribution.json").read_text())
    assert report["imbalance_ratio"] == pytest.approx(36.0)
    assert report["num_images"] == 4 and report["absent_classes"] == [] and report["beta"] == 0.99
    assert [row["class"] for row in report["classes"]] == NAMES
    assert report["classes"][3]["weight_inverse"] == pytest.approx(63.0)
    assert (folder / "class_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_callback_rejects_bad_arguments_and_datamodules(make_trainer) -> None:
    with pytest.raises(ValueError, match="beta"):
        ClassDistribution(beta=1.0)
    callback = ClassDistribution()
    trainer = make_trainer(object())
    callback.setup(trainer, None, "fit")
    with pytest.raises(TypeError, match="class_stats"):
        callback.on_fit_start(trainer, None)
