"""The notebooks in notebooks/ are valid, output-free nbformat 4 files whose code runs top to bottom.

Jupyter is not a test dependency: each notebook's code cells are executed in order, in one fresh
namespace, the way a kernel would run them (figures on the ``agg`` backend).
"""

from __future__ import annotations

import ast
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lightning_seg.cli import main  # noqa: E402
from lightning_seg.losses import WEIGHTING_SCHEMES, compute_class_weights  # noqa: E402

from .conftest import QUICKSTART, TINY_DATA  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


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


def code_cells(notebook: dict[str, Any]) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def run_notebook(name: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the code cells of ``name`` in order in one namespace, from ``workdir/notebooks``."""
    cells = code_cells(load_notebook(name))
    for index, source in enumerate(cells):
        tree = ast.parse(source)
        defined = [
            type(node).__name__
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        assert not defined, f"{name} cell {index} defines {defined}: logic belongs in lightning_seg, not a notebook"
    # JupyterLab starts in notebooks/; a fake one under workdir keeps every relative path inside it.
    (workdir / "notebooks").mkdir()
    monkeypatch.chdir(workdir / "notebooks")
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setattr(tempfile, "tempdir", str(workdir))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        for index, source in enumerate(cells):
            exec(compile(source, f"{name}[code cell {index}]", "exec"), namespace)  # noqa: S102
    finally:
        plt.close("all")
    return namespace


def test_quickstart_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ns = run_notebook("01_quickstart.ipynb", tmp_path, monkeypatch)
    dm, model, stats = ns["dm"], ns["model"], ns["stats"]

    # Class frequencies: a distribution, equal to counting the training masks directly.
    masks = np.stack(list(dm.datasets["train"].source.masks()))
    counts = np.bincount(masks.ravel(), minlength=dm.num_classes)
    frequencies = ns["class_frequencies"]["pixel_frequency"].to_numpy()
    assert frequencies.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(frequencies, counts / counts.sum())
    assert list(ns["class_frequencies"].index) == list(dm.class_names)

    # The median-weighted cross-entropy received the training statistics when fitting started.
    np.testing.assert_allclose(
        model.loss.terms[0].loss.weight.numpy(), compute_class_weights(stats, "median"), rtol=1e-6
    )

    # The printed mIoU is the class mean of IoU = TP / (TP + FP + FN) of the last validation confusion matrix.
    confusion = model.last_confusion["val"].double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    expected_miou = torch.nanmean(torch.where(union > 0, tp / union, torch.nan)).item()
    assert math.isfinite(ns["val_miou"]) and 0.0 <= ns["val_miou"] <= 1.0
    assert ns["val_miou"] == pytest.approx(expected_miou, abs=1e-5)

    printed = capsys.readouterr().out
    assert f"val mIoU: {ns['val_miou']:.3f}" in printed
    assert all(name in printed for name in dm.class_names)
    assert "no CLI run found" in printed

    # Every training step was logged with its terms (5 batches, log_every_n_steps=1).
    history = ns["loss_history"]
    assert len(history) == 5 and np.isfinite(history.to_numpy()).all()

    assert isinstance(ns["sample_figure"], Figure) and len(ns["sample_figure"].axes) == 3
    assert isinstance(ns["prediction_figure"], Figure)
    assert ns["preds"].shape == ns["batch"]["mask"].shape
    assert torch.equal(ns["restored_preds"], ns["preds"])
    assert (tmp_path / "notebooks").is_dir() and any(tmp_path.glob("lightning_seg_quickstart_*/notebook.ckpt"))


def test_quickstart_notebook_loads_a_cli_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With a CLI run in ``runs/quickstart`` next to notebooks/, the last cell validates its checkpoint."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    short_fit = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *short_fit])
    assert (tmp_path / "runs/quickstart/latest/checkpoints/last.ckpt").is_file()
    capsys.readouterr()

    ns = run_notebook("01_quickstart.ipynb", tmp_path, monkeypatch)
    printed = capsys.readouterr().out
    assert "no CLI run found" not in printed
    assert ns["trained"].class_names == list(ns["dm"].class_names)
    trained_miou = ns["trained_metrics"]["val/miou"]
    assert math.isfinite(trained_miou) and f"val mIoU: {trained_miou:.3f}" in printed


def test_losses_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run_notebook("02_losses.ipynb", tmp_path, monkeypatch)
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
