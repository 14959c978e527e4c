"""Every diagnostics callback from YAML through the real CLI: files on disk, TensorBoard and offline W&B."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from lightning_seg.cli import main

CLASSES = ["background", "blob", "small_object", "vessel", "rare"]
CALLBACKS = [
    {"class_path": "lightning_seg.callbacks.ClassDistribution", "init_args": {"beta": 0.99}},
    {"class_path": "lightning_seg.callbacks.PerClassMetrics", "init_args": {"warn_after_epochs": 1}},
    {"class_path": "lightning_seg.callbacks.ConfusionMatrix"},
    {"class_path": "lightning_seg.callbacks.PredictionGallery", "init_args": {"num_rare": 2, "num_worst": 2}},
    {"class_path": "lightning_seg.callbacks.LossBreakdown"},
]
TINY_DATA = [
    "--data.init_args.num_train=8",
    "--data.init_args.num_val=4",
    "--data.init_args.image_size=32",
    "--data.init_args.batch_size=2",
    "--data.init_args.num_workers=0",
    "--trainer.limit_train_batches=2",
]


def write_config(root: Path, loggers: list[dict]) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "default_root_dir": str(root),
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "logger": loggers,
            "callbacks": CALLBACKS,
        },
        "model": {
            "class_path": "lightning_seg.module.SegmentationModule",
            "init_args": {
                "net": {
                    "class_path": "lightning_seg.models.SMPNet",
                    "init_args": {"encoder_name": "resnet18"},
                }
            },
        },
        "data": {"class_path": "lightning_seg.data.SyntheticDataModule"},
    }
    path = root / "diagnostics.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_writes_every_artifact_matching_the_logged_metrics(tmp_path: Path) -> None:
    loggers = [
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"name": "csv"}},
        {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"name": "tb"}},
    ]
    config = write_config(tmp_path, loggers)
    main(["fit", "--config", str(config), *TINY_DATA, "--trainer.max_epochs=2"])
    (run,) = (path.parent for path in tmp_path.glob("*/run.json") if not path.parent.is_symlink())
    out = run / "diagnostics"
    figures = sorted(p.relative_to(out).as_posix() for p in [*out.rglob("*.png"), *out.rglob("*.jpg")])
    assert figures == [
        "class_distribution/class_distribution.png",
        "confusion_matrix/val_epoch_000.png",
        "confusion_matrix/val_epoch_001.png",
        "gallery/rare_epoch_000.jpg",
        "gallery/rare_epoch_001.jpg",
        "gallery/worst_epoch_000.jpg",
        "gallery/worst_epoch_001.jpg",
        "loss_breakdown/epoch_000.png",
        "loss_breakdown/epoch_001.png",
        "per_class_metrics/curves.png",
    ]
    for name in figures:
        with Image.open(out / name) as picture:
            picture.load()
            assert picture.format == ("JPEG" if name.endswith(".jpg") else "PNG")
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    logged = pd.read_csv(run / "csv" / "metrics.csv")
    val_rows = logged.dropna(subset=["val/miou"]).reset_index(drop=True)
    assert val_rows["epoch"].tolist() == [0, 1]

    # PerClassMetrics reports exactly what the module logged.
    history = pd.read_csv(out / "per_class_metrics" / "history.csv")
    for epoch in (0, 1):
        rows = history[history["epoch"] == epoch].set_index("class")
        for score in ("iou", "dice", "precision", "recall"):
            for name in CLASSES:
                np.testing.assert_allclose(
                    rows.loc[name, score],
                    val_rows.loc[epoch, f"val/{score}/{name}"],
                    rtol=1e-6,
                    equal_nan=True,
                    err_msg=f"{score}/{name}",
                )

    # The confusion-matrix counts add up to the validation pixels (4 images of 32×32, nothing ignored).
    confusion = pd.read_csv(out / "confusion_matrix" / "val_epoch_001.csv", index_col="true")
    assert confusion.index.tolist() == CLASSES and int(confusion.to_numpy().sum()) == 4 * 32 * 32
    np.testing.assert_array_equal(confusion.to_numpy().sum(1), history[history["epoch"] == 1]["support"])

    # LossBreakdown's shares went to every logger, CSV included (in a row of their own at the step of
    # the val metrics), and sum to 1.
    shares = pd.read_csv(out / "loss_breakdown" / "history.csv")
    share_rows = logged.dropna(subset=[f"val/loss_share/{CLASSES[0]}"]).reset_index(drop=True)
    assert share_rows["step"].tolist() == val_rows["step"].tolist()
    assert share_rows["epoch"].tolist() == [0, 1]
    for epoch in (0, 1):
        rows = shares[shares["epoch"] == epoch].set_index("class")
        assert rows["ce_share"].sum() == pytest.approx(1.0)
        for name in CLASSES:
            assert share_rows.loc[epoch, f"val/loss_share/{name}"] == pytest.approx(
                rows.loc[name, "ce_share"], rel=1e-5
            )

    # ClassDistribution: the imbalance ratio logged equals the one saved, and matches the saved counts.
    report = json.loads((out / "class_distribution" / "class_distribution.json").read_text())
    counts = [row["pixel_count"] for row in report["classes"]]
    assert report["imbalance_ratio"] == pytest.approx(max(counts) / min(c for c in counts if c > 0))
    assert logged["data/imbalance_ratio"].dropna().iloc[0] == pytest.approx(report["imbalance_ratio"])

    # The gallery shows the validation sample with the most 'rare' pixels first.
    selection = json.loads((out / "gallery" / "selection.json").read_text())
    first = selection["samples"][0]
    assert first["pixels"][4] == max(s["pixels"][4] for s in selection["samples"]) > 0
    assert json.loads((out / "gallery" / "epoch_001.json").read_text())["rare"][0]["name"] == first["name"]

    # TensorBoard (the quickstart's offline tracker) received every figure, decodable, and the tables.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        str(run / "tb"), size_guidance={"images": 0, "tensors": 0}
    ).Reload()
    figure_tags = {
        "diagnostics/confusion_matrix/val": 2,
        "diagnostics/gallery/rare": 2,
        "diagnostics/gallery/worst": 2,
        "diagnostics/per_class_curves": 2,
        "diagnostics/loss_breakdown": 2,
        "diagnostics/class_distribution": 1,
    }
    assert set(figure_tags) <= set(events.Tags()["images"])
    for tag, count in figure_tags.items():
        shown = events.Images(tag)
        assert len(shown) == count, tag
        with Image.open(io.BytesIO(shown[-1].encoded_image_string)) as picture:
            picture.load()
            assert picture.size == (shown[-1].width, shown[-1].height), tag
    miou_steps = [event.step for event in events.Scalars("val/miou")]
    for name in CLASSES:
        for kind in ("loss_share", "grad_share"):
            assert [event.step for event in events.Scalars(f"val/{kind}/{name}")] == miou_steps, (kind, name)
    texts = {"diagnostics/per_class_metrics/text_summary", "diagnostics/class_distribution/text_summary"}
    assert texts <= set(events.Tags()["tensors"])
    table = events.Tensors("diagnostics/per_class_metrics/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| class | support | iou |") and all(f"| {name} |" in table for name in CLASSES)
    quickstart = yaml.safe_load((Path(__file__).parents[2] / "experiments" / "quickstart.yaml").read_text())
    assert "lightning.pytorch.loggers.TensorBoardLogger" in [lg["class_path"] for lg in quickstart["trainer"]["logger"]]


def test_offline_wandb_run_holds_the_images_masks_and_tables(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = [
        {
            "class_path": "lightning.pytorch.loggers.WandbLogger",
            "init_args": {"project": "diagnostics-test", "offline": True},
        }
    ]
    config = write_config(tmp_path, loggers)
    import wandb

    logged: list[dict] = []
    original_log = wandb.sdk.wandb_run.Run.log

    def recording_log(run: object, data: dict, *args: object, **kwargs: object) -> object:
        logged.append(dict(data))
        return original_log(run, data, *args, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", recording_log)
    for _ in range(2):  # a rerun keeps the first run's diagnostics files
        main(["fit", "--config", str(config), *TINY_DATA, "--trainer.max_epochs=1"])
        wandb.finish()
    # LossBreakdown's shares reach W&B at the trainer/global_step of the module's val metrics.
    val_steps = [data["trainer/global_step"] for data in logged if "val/miou" in data]
    keys = [f"val/{kind}/{name}" for kind in ("loss_share", "grad_share") for name in CLASSES]
    share_logs = [data for data in logged if keys[0] in data]
    assert len(val_steps) == 2 and [data["trainer/global_step"] for data in share_logs] == val_steps
    assert all(set(keys) <= set(data) for data in share_logs)
    run_dirs = sorted(tmp_path.glob("*/wandb/offline-run-*"))
    run_ids = {path.name.rsplit("-", 1)[1] for path in run_dirs}
    assert len(run_ids) == 2
    histories = tmp_path.glob("*/diagnostics/per_class_metrics/history.csv")
    assert {json.loads((p.parents[2] / "run.json").read_text())["wandb_id"] for p in histories} == run_ids
    run_dir = run_dirs[-1]
    media = run_dir / "files" / "media"
    pictures = [*(media / "images").rglob("*.png"), *(media / "images").rglob("*.jpg")]
    images = {p.relative_to(media / "images").as_posix() for p in pictures}
    for key in (
        "diagnostics/confusion_matrix/val",
        "diagnostics/gallery/rare",
        "diagnostics/gallery/worst",
        "diagnostics/per_class_curves",
        "diagnostics/loss_breakdown",
        "diagnostics/class_distribution",
    ):
        assert any(name.startswith(key + "_") for name in images), key
    # Interactive masks: one ground-truth and one prediction mask file per gallery sample (2 rare + 2 worst).
    masks = [p for p in images if p.startswith("mask/")]
    assert len(masks) == 2 * (2 + 2)
    tables = sorted((media / "table").rglob("*.table.json"))
    keys = {t.relative_to(media / "table").as_posix().rsplit("_", 2)[0] for t in tables}
    assert {"diagnostics/per_class_metrics", "diagnostics/class_distribution"} <= keys
    # The full matrix as W&B's confusion-matrix panel: one row per non-zero cell, every val pixel counted.
    (matrix,) = [t for t in tables if "confusion_matrix/val_table" in t.as_posix()]
    cells = json.loads(matrix.read_text())
    assert cells["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert sum(row[2] for row in cells["data"]) == 4 * 32 * 32
    table = json.loads(next(t for t in tables if "per_class_metrics" in t.as_posix()).read_text())
    assert table["columns"] == ["class", "support", "iou", "dice", "precision", "recall"]
    assert [row[0] for row in table["data"]] == CLASSES
    assert all(math.isfinite(row[1]) for row in table["data"])
