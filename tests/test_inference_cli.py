"""Predicting a folder the model never saw from a checkpoint alone, through the ``lightning-seg`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_seg.cli import expand_predict_input, main
from lightning_seg.data.image_folder import ImageFolderDataModule, facts_from_checkpoint
from lightning_seg.data.synthetic import CLASS_NAMES, PALETTE
from lightning_seg.module import SegmentationModule

from .conftest import QUICKSTART, REPO, TINY_DATA

PREDICT = REPO / "experiments" / "predict.yaml"
MEAN, STD = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]
SMALL_NET = '--model.init_args.net.init_args.arch_kwargs={"encoder_depth": 3, "decoder_channels": [16, 16, 16]}'


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickstart checkpoint trained for two steps with a non-default normalisation."""
    folder = tmp_path_factory.mktemp("train")
    args = [
        "fit",
        "--config",
        str(QUICKSTART),
        *TINY_DATA,
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",
        "--trainer.callbacks=[]",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={folder}",
        f"--data.init_args.mean={MEAN}",
        f"--data.init_args.std={STD}",
        SMALL_NET,
    ]
    main(args)
    path = next(folder.rglob("*.ckpt"))
    return path


def _write_folder(root: Path) -> dict[str, tuple[int, int]]:
    """Images in sub-folders, of odd sizes and formats; returns name → expected (height, width)."""
    rng = np.random.default_rng(3)
    expected = {}
    for name, size in {"a/scan": (37, 29), "a/b/deep": (20, 51), "top": (64, 40)}.items():
        path = root / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        expected[name] = size
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30 high × 44 wide, displayed rotated by 90°: 44 high × 30 wide
    Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(root / "phone.jpg", exif=exif)
    expected["phone"] = (44, 30)
    (root / "notes.txt").write_text("not an image")
    return expected


def _oracle(checkpoint: Path, path: Path) -> np.ndarray:
    """The checkpoint's network on the image, normalised by hand with the training mean/std."""
    module = SegmentationModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    tensor = torch.from_numpy((image - MEAN) / STD).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        return module(tensor)["logits"].argmax(1)[0].numpy()


def test_predict_a_new_folder_from_the_checkpoint_alone(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    images = tmp_path / "my images"
    expected = _write_folder(images)
    monkeypatch.chdir(tmp_path)
    cli = main(["predict", "--ckpt_path", str(checkpoint), "--input", str(images)])
    folder = next(cb.folder for cb in cli.trainer.callbacks if hasattr(cb, "folder"))
    written = {p.relative_to(folder).with_suffix("").as_posix(): p for p in folder.rglob("*.png")}
    assert sorted(written) == sorted(expected)
    for name, path in written.items():
        mask = Image.open(path)
        assert mask.mode == "P" and (mask.height, mask.width) == expected[name], name
        assert mask.getpalette()[: 3 * len(PALETTE)] == [c for colour in PALETTE for c in colour]
    for name in ("a/scan", "top"):  # PNGs: compare with the network run by hand
        np.testing.assert_array_equal(
            np.asarray(Image.open(written[name])), _oracle(checkpoint, images / f"{name}.png")
        )

    # Again with experiments/predict.yaml (overlays, probabilities) and windows, an option the checkpoint
    # does not impose: a fresh folder, the first one kept.
    again = main(
        [
            "predict",
            "--config",
            str(PREDICT),
            "--ckpt_path",
            str(checkpoint),
            "--input",
            str(images),
            "--trainer.callbacks.init_args.probabilities=png",
            "--model.init_args.sliding_window.size=16",
        ]
    )
    assert again.model.inferer.sliding_window.size == (16, 16)
    second = next(cb.folder for cb in again.trainer.callbacks if hasattr(cb, "folder"))
    assert second != folder and all(p.is_file() for p in written.values())
    for name, size in expected.items():
        assert np.asarray(Image.open(second / f"{name}_overlay.png")).shape == (*size, 3)
        probs = np.stack([np.asarray(Image.open(second / f"{name}_prob_{c}.png")) for c in CLASS_NAMES])
        assert probs.dtype == np.uint16 and probs.shape == (len(CLASS_NAMES), *size)
        np.testing.assert_allclose(probs.astype(float).sum(0), 65535, atol=len(CLASS_NAMES))


def test_the_checkpoint_carries_what_prediction_needs(checkpoint: Path, tmp_path: Path) -> None:
    facts = facts_from_checkpoint(checkpoint)
    assert list(facts["class_names"]) == list(CLASS_NAMES)
    assert [list(c) for c in facts["palette"]] == [list(c) for c in PALETTE]
    assert list(facts["mean"]) == MEAN and list(facts["std"]) == STD and facts["ignore_index"] == 255
    (tmp_path / "x.png").write_bytes(b"")
    datamodule = ImageFolderDataModule(tmp_path, **facts)
    assert datamodule.num_classes == len(CLASS_NAMES) and datamodule.mean == tuple(MEAN)


def test_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataModule(tmp_path / "missing", class_names=["a", "b"], mean=MEAN, std=STD)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataModule(tmp_path / "empty", class_names=["a", "b"], mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="needs the model's class_names, mean, std"):
        ImageFolderDataModule(tmp_path)
    for suffix in (".png", ".jpg"):
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / f"same{suffix}")
    with pytest.raises(ValueError, match="would both be predicted as 'same.png'"):
        ImageFolderDataModule(tmp_path, class_names=["a", "b"], mean=MEAN, std=STD)


def test_input_shorthand_expands_only_for_predict() -> None:
    data = ["--data", "lightning_seg.data.ImageFolderDataModule", "--data.init_args.input=d"]
    model = ["--model", "lightning_seg.module.SegmentationModule"]
    assert expand_predict_input(["predict", "--input", "d", "--ckpt_path", "c"]) == [
        "predict",
        *data,
        "--ckpt_path",
        "c",
        *model,
    ]
    assert expand_predict_input(["predict", "--input=d", "--config", "x.yaml"]) == [
        "predict",
        *data,
        "--config",
        "x.yaml",
    ]
    assert expand_predict_input(["fit", "--input", "d"]) == ["fit", "--input", "d"]
