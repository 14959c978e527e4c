"""Written predictions have each input's own size, whatever else is in the batch (issue 13, item 1)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from lightning import Trainer
from PIL import Image
from torch import nn

from lightning_seg.callbacks import PredictionWriter
from lightning_seg.data import DRIVEDataModule, SampleSource, SegmentationDataModule
from lightning_seg.module import SegmentationModule
from tests.data.data_fixtures import make_drive

CLASSES = ("a", "b", "c")
#: Mixed sizes in one batch: the largest is neither the first nor as high as it is wide.
SIZES = [(20, 30), (33, 17), (25, 25), (8, 40)]


class ConvNet(nn.Module):
    """A tiny fully convolutional net with 3×3 context (so zero padding would change border pixels)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


class ArraySource(SampleSource):
    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        return self.images[index], None, f"img{index}"


class ArrayDataModule(SegmentationDataModule):
    class_names = CLASSES
    palette = ((10, 20, 30), (200, 0, 0), (0, 200, 0))

    def __init__(self, images: list[np.ndarray], **kwargs) -> None:
        self.images = images
        super().__init__(**kwargs)

    def build_source(self, split: str) -> SampleSource | None:
        return ArraySource(self.images) if split == "predict" else None


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in SIZES]


def _predict(datamodule: SegmentationDataModule, out: Path) -> dict[str, np.ndarray]:
    module = SegmentationModule(net=ConvNet, num_classes=datamodule.num_classes, class_names=datamodule.class_names)
    writer = PredictionWriter(output_dir=out)
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out.parent,
    )
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    assert writer.folder is not None
    return {p.stem: np.asarray(Image.open(p)) for p in sorted(writer.folder.glob("*.png"))}


def test_mixed_size_batch_gives_each_image_its_size_and_its_own_prediction(tmp_path: Path) -> None:
    images = _images()
    batched = _predict(ArrayDataModule(images, batch_size=4), tmp_path / "batched")
    alone = _predict(ArrayDataModule(images, batch_size=1), tmp_path / "alone")
    assert sorted(batched) == [f"img{i}" for i in range(4)]
    net, dm = ConvNet(3).eval(), ArrayDataModule(images)
    dm.setup("predict")
    for index, size in enumerate(SIZES):
        assert batched[f"img{index}"].shape == size
        np.testing.assert_array_equal(batched[f"img{index}"], alone[f"img{index}"])
        with torch.no_grad():  # oracle: the network on this image alone
            expected = net(dm.datasets["predict"][index]["image"][None]).argmax(1)[0].numpy()
        np.testing.assert_array_equal(batched[f"img{index}"], expected)


def test_predictions_are_resized_back_when_the_predict_transform_resizes(tmp_path: Path) -> None:
    datamodule = ArrayDataModule(_images(), batch_size=4, predict_transform=A.Compose([A.Resize(16, 16)]))
    written = _predict(datamodule, tmp_path / "resized")
    assert [written[f"img{i}"].shape for i in range(4)] == SIZES


def test_drive_predictions_outside_the_field_of_view_are_ignore_index(tmp_path: Path) -> None:
    make_drive(tmp_path / "DRIVE", test_manual=False)
    datamodule = DRIVEDataModule(tmp_path / "DRIVE", batch_size=2)
    written = _predict(datamodule, tmp_path / "pred")
    for name, pred in written.items():
        fov = np.asarray(Image.open(tmp_path / f"DRIVE/test/mask/{name}_test_mask.gif").convert("L")) > 127
        assert pred.shape == fov.shape
        assert (pred[~fov] == 255).all() and (pred[fov] != 255).all()


@pytest.mark.parametrize("existing", [0, 2])
def test_a_new_prediction_run_never_overwrites_an_earlier_one(tmp_path: Path, existing: int) -> None:
    base = tmp_path / "predictions"
    for number in range(existing):
        folder = base if number == 0 else tmp_path / f"predictions_{number}"
        folder.mkdir()
        (folder / "img0.png").write_bytes(b"earlier run")
    written = _predict(ArrayDataModule(_images()[:1]), base)
    newest = base if existing == 0 else tmp_path / f"predictions_{existing}"
    assert written["img0"].shape == SIZES[0] and (newest / "img0.png").is_file()
    for number in range(existing):
        folder = base if number == 0 else tmp_path / f"predictions_{number}"
        assert (folder / "img0.png").read_bytes() == b"earlier run"
