"""``lightning-seg check-data``: one pass over every split, a table of what it found, exit 0 or 2."""

from __future__ import annotations

import data_fixtures as fx
import numpy as np
import pytest
import yaml

from lightning_seg.cli import main


def _config(tmp_path, root, **init_args) -> str:
    config = {
        "trainer": {"max_epochs": 1},  # the rest of a training config is ignored
        "data": {
            "class_path": "lightning_seg.data.FolderDataModule",
            "init_args": {"root": str(root), "class_names": list(fx.FOLDER_CLASSES), "num_workers": 0, **init_args},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["check-data", *args])
    captured = capsys.readouterr()
    return done.value.code, captured.out + captured.err


def test_a_clean_folder_reports_counts_sizes_and_frequencies(tmp_path, capsys):
    expected = fx.make_folder(tmp_path / "data")
    code, out = _run(["--config", _config(tmp_path, tmp_path / "data")], capsys)
    assert code == 0, out
    assert "no problems found" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["train"], ["val"])}
    assert rows["train"][1] == "4" and rows["val"][1] == "2"
    assert "36×44 … 40×48 (2 sizes)" in out
    masks = list(expected["train"].values())
    labelled = sum(m.size for m in masks)
    share_a = 100 * sum(int((m == 1).sum()) for m in masks) / labelled
    (line,) = [row for row in out.splitlines() if row.startswith("a ")]
    assert float(line.split()[1]) == pytest.approx(share_a, abs=1e-3)
    assert int(line.split()[2]) == sum(bool((m == 1).any()) for m in masks)


def test_every_problem_is_listed_and_the_exit_status_is_2(tmp_path, capsys):
    root = tmp_path / "data"
    fx.make_folder(root)
    truncated = root / "images/train/train_00.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    labels = np.asarray(fx.random_labels((36, 44), [0, 1, 7], seed=1))
    fx.write_label(root / "masks/train/train_01.png", labels)  # 7 is not a class
    fx.write_label(root / "masks/train/train_02.png", np.zeros((8, 8), dtype=np.uint8))  # wrong size
    fx.write_image(root / "images/val/train_03.jpg", (40, 48), seed=3)  # a training image also in val
    fx.write_label(root / "masks/val/train_03.png", np.zeros((40, 48), dtype=np.uint8))
    fx.write_image(root / "images/test/test_00.png", (40, 48), seed=4)  # two files named test_00
    code, out = _run(["--config", _config(tmp_path, root)], capsys)
    assert code == 2
    problems = [line for line in out.splitlines() if line.startswith(("train ", "val ", "test "))]
    assert any("unreadable" in p and "train_00.jpg" in p and "truncated" in p for p in problems), out
    assert any("mask values" in p and "train_01.png" in p and "[7]" in p for p in problems), out
    assert any("size mismatch" in p and "train_02" in p for p in problems), out
    assert any("duplicate name" in p and "train and val: train_03" in p for p in problems), out
    assert any("duplicate name" in p and "test_00.jpg and test_00.png" in p for p in problems), out
    assert "5 problems found" in out


def test_binary_masks_stored_as_the_ignore_value_are_reported(tmp_path, capsys):
    root = tmp_path / "data"
    for i in range(2):
        fx.write_image(root / "images/train" / f"s{i}.png", (16, 16), seed=i)
        fx.write_label(root / "masks/train" / f"s{i}.png", np.where(np.eye(16) > 0, 255, 0))
    code, out = _run(["--config", _config(tmp_path, root, class_names=["bg", "a", "b"])], capsys)
    assert code == 2 and "hold only class 0 and the ignore value 255" in out


def test_config_errors_are_one_line(tmp_path, capsys):
    code, out = _run(["--config", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and out.strip().count("\n") == 0 and "missing.yaml does not exist" in out
