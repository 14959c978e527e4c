"""The notebooks in notebooks/ are valid, output-free nbformat 4 files whose code runs top to bottom.

They run through :mod:`lightning_seg.notebooks`, the runner ``make notebooks-run`` uses: code cells in
order in one namespace, as a kernel runs them, with the cell tagged ``parameters`` overridden by small
values, from a copy of the repository layout (``notebooks/`` next to ``experiments/``) in a temporary
folder, so every relative path a notebook writes stays inside it.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from lightning_seg import notebooks as runner  # noqa: E402
from lightning_seg.cli import main  # noqa: E402
from lightning_seg.losses import WEIGHTING_SCHEMES, compute_class_weights  # noqa: E402

from .conftest import QUICKSTART, REPO, TINY_DATA  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TINY_TRAINING = {"EPOCHS": 1, "IMAGE_SIZE": 32, "NUM_TRAIN": 8, "NUM_VAL": 4}


def load_notebook(name: str) -> dict[str, Any]:
    """Read a notebook and check the nbformat 4.5 structure a Jupyter front end relies on."""
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 5
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    cells = notebook["cells"]
    assert isinstance(cells, list) and cells
    ids = [cell["id"] for cell in cells]
    assert len(set(ids)) == len(ids) and all(CELL_ID.match(i) for i in ids)
    assert {cell["cell_type"] for cell in cells} == {"markdown", "code"}
    for cell in cells:
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list) and all(isinstance(line, str) for line in cell["source"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    return notebook


def run_notebook(name: str, workdir: Path, **parameters: Any) -> dict[str, Any]:
    """Check ``name``'s structure, then execute it from ``workdir/notebooks`` with ``parameters``."""
    for index, (source, _) in enumerate(runner.code_cells(load_notebook(name))):
        defined = [
            type(node).__name__
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        assert not defined, f"{name} cell {index} defines {defined}: logic belongs in lightning_seg, not a notebook"
    (workdir / "notebooks").mkdir(exist_ok=True)
    if not (workdir / "experiments").exists():
        (workdir / "experiments").symlink_to(REPO / "experiments")
    try:
        return runner.run_notebook(NOTEBOOKS / name, parameters, cwd=workdir / "notebooks")
    finally:
        plt.close("all")


def test_every_notebook_has_a_parameters_cell_and_a_readme_entry() -> None:
    readme = (NOTEBOOKS / "README.md").read_text() + (REPO / "README.md").read_text()
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names[:4] == ["01_quickstart.ipynb", "02_losses.ipynb", "03_your_data.ipynb", "04_compare_runs.ipynb"]
    for name in names:
        tagged = [source for source, is_parameters in runner.code_cells(load_notebook(name)) if is_parameters]
        assert len(tagged) == 1 and runner.parameter_names(tagged[0]), name
        assert name in readme, f"{name} is not linked from a README"


def test_runner_refuses_unknown_parameters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no parameters \['EPOCS'\]"):
        runner.run_notebook(NOTEBOOKS / "02_losses.ipynb", {"EPOCS": 1}, cwd=tmp_path)


def test_quickstart_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    ns = run_notebook("01_quickstart.ipynb", tmp_path, **TINY_TRAINING)
    dm, model, stats = ns["datamodule"], ns["model"], ns["stats"]
    assert dm.sizes["train"] == 8 and ns["trainer"].max_epochs == 1

    # Class frequencies: a distribution, equal to counting the training masks directly.
    masks = np.stack(list(dm.datasets["train"].source.masks()))
    counts = np.bincount(masks.ravel(), minlength=dm.num_classes)
    frequencies = ns["class_frequencies"]["pixel_frequency"].to_numpy()
    assert frequencies.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(frequencies, counts / counts.sum())
    assert list(ns["class_frequencies"].index) == list(dm.class_names)
    for scheme in WEIGHTING_SCHEMES:
        np.testing.assert_allclose(ns["suggested_weights"][f"weight: {scheme}"], compute_class_weights(stats, scheme))

    # The weighted_ce recipe (weight: auto = median) received the training statistics when fitting started.
    np.testing.assert_allclose(
        model.loss.terms[0].loss.weight.numpy(), compute_class_weights(stats, "median"), rtol=1e-6
    )

    # The printed mIoU is the class mean of IoU = TP / (TP + FP + FN) of the last validation confusion matrix.
    confusion = model.last_confusion["val"].double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    expected_miou = torch.nanmean(torch.where(union > 0, tp / union, torch.nan)).item()
    assert math.isfinite(ns["val_miou"]) and ns["val_miou"] == pytest.approx(expected_miou, abs=1e-5)
    printed = capsys.readouterr().out
    assert f"{ns['val_miou']:.3f}" in printed
    assert "no CLI run found" in printed

    # The run went where the config says, inside the fake repository, with its checkpoint and metrics.
    run = (tmp_path / "notebooks" / ns["run_directory"](ns["trainer"])).resolve()
    assert (tmp_path / "notebooks" / "runs" / "quickstart+weighted_ce").resolve() in run.parents
    assert (tmp_path / "notebooks" / ns["checkpoint"]).is_file()
    assert (tmp_path / "notebooks" / ns["metrics_csv"]).resolve().is_relative_to(run)
    assert len(ns["loss_history"]) >= 1 and np.isfinite(ns["loss_history"].to_numpy()).all()

    assert isinstance(ns["sample_figure"], Figure) and len(ns["sample_figure"].axes) == 3
    assert isinstance(ns["prediction_figure"], Figure)
    assert ns["preds"].shape == ns["batch"]["mask"].shape
    assert torch.equal(ns["restored_preds"], ns["preds"])


def test_quickstart_notebook_loads_a_cli_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With a CLI run of the quickstart in the repository, the last cell validates its checkpoint."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    short_fit = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *short_fit])
    assert (tmp_path / "runs/quickstart/latest/checkpoints/last.ckpt").is_file()
    capsys.readouterr()

    ns = run_notebook("01_quickstart.ipynb", tmp_path, **TINY_TRAINING)
    printed = capsys.readouterr().out
    assert "no CLI run found" not in printed
    assert ns["trained"].class_names == list(ns["datamodule"].class_names)
    trained_miou = ns["trained_metrics"]["val/miou"]
    assert math.isfinite(trained_miou) and f"{trained_miou:.3f}" in printed


def test_losses_notebook(tmp_path: Path) -> None:
    ns = run_notebook("02_losses.ipynb", tmp_path)
    dm, batch, table = ns["dm"], ns["batch"], ns["loss_table"]
    freq = ns["stats"].pixel_frequency

    assert batch["dist_map"].shape == (4, dm.num_classes, 64, 64)
    # The blob map drawn in the notebook against the paper's formula evaluated with scipy.
    blob = (batch["mask"][ns["shown"]] == dm.class_names.index("blob")).numpy()
    expected_map = distance_transform_edt(~blob) * ~blob - (distance_transform_edt(blob) - 1) * blob
    np.testing.assert_allclose(ns["sample_map"][dm.class_names.index("blob")], expected_map, atol=1e-4)
    # float32 maps from two calls may differ in the last bit (OpenCV threading)
    np.testing.assert_allclose(ns["sample_map"], batch["dist_map"][ns["shown"]].numpy(), rtol=0, atol=1e-5)
    assert list(table.columns) == ["correct", "misses rare", "misses vessel", "all background", "random"]
    assert len(table) == 8 and np.isfinite(table.to_numpy()).all()
    # Cross-entropy against torch's own on the random logits.
    expected_ce = F.cross_entropy(ns["scenarios"]["random"], batch["mask"], ignore_index=dm.ignore_index)
    assert table.loc["ce", "random"] == pytest.approx(expected_ce.item(), rel=1e-5)
    # Every loss but the boundary loss (blind to objects 1–3 px wide) prefers the correct prediction.
    others = table.drop(index="boundary")
    assert (others["correct"] < others["misses rare"]).all()
    assert (others["correct"] < others["all background"]).all()
    # Class weighting makes missing the rare class costlier than plain cross-entropy does.
    increase = ns["increase"]
    assert increase.loc["ce_median_weights", "misses rare"] > 10 * increase.loc["ce", "misses rare"]

    # Rebalance follows the boundary-loss paper: w_GDL = max(0.1, 1 − 0.01·e), w_B = 0.01·(e + 1).
    weights = ns["weights_over_epochs"]
    epochs = np.arange(121)
    np.testing.assert_allclose(weights["gdl"].to_numpy(), np.maximum(0.1, 1 - 0.01 * epochs))
    np.testing.assert_allclose(weights["boundary"].to_numpy(), 0.01 * (epochs + 1))
    output = ns["output"]  # the composite at epoch 99
    assert output.weights == pytest.approx({"gdl": 0.1, "boundary": 1.0})
    expected_total = 0.1 * output.terms["gdl"] + 1.0 * output.terms["boundary"]
    assert output.total.item() == pytest.approx(expected_total.item(), rel=1e-6)

    weights_by_scheme = ns["class_weights"]
    assert list(weights_by_scheme.columns) == list(WEIGHTING_SCHEMES)
    assert np.isfinite(weights_by_scheme.to_numpy()).all() and (weights_by_scheme.to_numpy() > 0).all()
    np.testing.assert_allclose(weights_by_scheme["inverse"].to_numpy(), 1.0 / freq)
    np.testing.assert_allclose(weights_by_scheme["enet"].to_numpy(), 1.0 / np.log(1.02 + freq))

    # Gradient shares: each loss's per-pixel gradient sizes split over the classes' pixels.
    share = ns["gradient_share"]
    np.testing.assert_allclose(share.sum(axis=1).to_numpy(), 1.0, rtol=1e-5)
    pixel_share = share.loc["(pixel share)"]
    labelled = batch["mask"] != dm.ignore_index
    assert pixel_share["rare"] == pytest.approx(float((batch["mask"] == rare_index(dm)).sum() / labelled.sum()))
    assert share.loc["ce_median_weights", "rare"] > 10 * pixel_share["rare"]
    assert share.loc["lovasz_softmax", "rare"] > 10 * pixel_share["rare"]


def rare_index(dm: Any) -> int:
    return list(dm.class_names).index("rare")


def test_compare_runs_notebook_trains_two_recipes_when_none_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    ns = run_notebook(
        "04_compare_runs.ipynb", tmp_path, RUNS_DIR=str(tmp_path / "no_runs"), EPOCHS=1, IMAGE_SIZE=32, NUM_TRAIN=8
    )
    table, runs = ns["table"], ns["runs"]
    assert len(runs) == 2 and list(table.columns) == list(runs)
    assert [label.split("/")[0] for label in runs] == ["ce", "weighted_ce"]
    assert sorted(table.index[:-1]) == sorted(ns["datamodule"].class_names) and table.index[-1] == "mean"
    for label, metrics_csv in runs.items():
        # Oracle: the last non-empty val/iou/<class> of each run's metrics.csv, read independently.
        logged = pd.read_csv(metrics_csv)
        for name in ns["datamodule"].class_names:
            column = logged[f"val/iou/{name}"].dropna()
            assert table.loc[name, label] == pytest.approx(float(column.iloc[-1]))
        assert table.loc["mean", label] == pytest.approx(table[label].drop("mean").mean())
    assert isinstance(ns["comparison_figure"], Figure)
    assert list(ns["difference"].index) == sorted(ns["difference"].index, key=ns["difference"].get)


def test_your_data_notebook_binary_masks_check_train_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("LIGHTNING_SEG_CACHE", str(tmp_path / "cache"))
    ns = run_notebook("03_your_data.ipynb", tmp_path, NUM_DEMO_IMAGES=12, IMAGE_SIZE=48, EPOCHS=1)
    data_dir = ns["data_dir"]
    assert len(list((data_dir / "images").glob("*.jpg"))) == 12 and len(list((data_dir / "masks").glob("*.png"))) == 12

    # 0/255 masks read as index masks: refused in one line that says what to set.
    assert ns["index_error"] is not None and "mask_format: binary" in ns["index_error"]
    assert "\n" not in ns["index_error"]

    # Read as binary: the vessel pixels of the masks on disk (255) are class 1, counted independently.
    stats = ns["stats"]
    stored = np.concatenate([np.asarray(Image.open(p)).ravel() for p in sorted((data_dir / "masks").glob("*.png"))])
    assert set(np.unique(stored)) <= {0, 255}
    assert 0 < stats.pixel_frequency[1] < 0.5

    # The data check found every sample and nothing wrong.
    report = ns["reports"]
    assert report["train"].samples + report["val"].samples == 12 and not report["train"].problems

    # Trained, then predicted three unseen images at their own size (48 + 17 px), as palette PNGs.
    assert 0 <= ns["val_miou"] <= 1
    assert [path.name for path in ns["written"]] == ["new_0.png", "new_1.png", "new_2.png"]
    assert ns["prediction_image"].size == (65, 65) and ns["prediction_image"].mode == "P"
    assert ns["diagnostics"], "the run wrote no diagnostics"
