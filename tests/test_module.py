from functools import partial

import pytest
import torch
from lightning import Trainer
from torch import nn

from lightning_seg.data import SyntheticDataModule
from lightning_seg.losses import CrossEntropyLoss
from lightning_seg.models import SMPNet
from lightning_seg.module import SegmentationModule


def _trainer(tmp_path, **kwargs) -> Trainer:
    defaults = dict(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**(defaults | kwargs))


class OneBatch(SyntheticDataModule):
    """Every split is the same four training images, without augmentation."""

    def build_source(self, split):
        return super().build_source("train")


def test_overfitting_one_batch_drives_loss_down_and_miou_up(tmp_path) -> None:
    torch.manual_seed(0)
    no_augmentation = {"__class_fullname__": "Compose", "transforms": []}
    dm = OneBatch(num_train=4, image_size=64, batch_size=4, rare_probability=1.0, train_transform=no_augmentation)
    model = SegmentationModule(
        net=partial(SMPNet, arch_kwargs={"encoder_depth": 3, "decoder_channels": (64, 32, 16)}),
        num_classes=dm.num_classes,
        class_names=dm.class_names,
        optimizer=partial(torch.optim.Adam, lr=3e-3),
    )
    losses = []
    trainer = _trainer(tmp_path, max_epochs=120, overfit_batches=1, num_sanity_val_steps=0, check_val_every_n_epoch=120)
    original = model.training_step

    def recording_step(batch, batch_idx):
        loss = original(batch, batch_idx)
        losses.append(loss.item())
        return loss

    model.training_step = recording_step
    trainer.fit(model, dm)
    assert losses[-1] < 0.2 * losses[0]
    assert trainer.callback_metrics["val/miou"] > 0.9
    assert model.last_confusion["val"].shape == (5, 5)


def test_logged_keys_use_class_names(tmp_path) -> None:
    dm = SyntheticDataModule(num_train=4, num_val=4, image_size=32, batch_size=4)
    model = SegmentationModule(num_classes=5, class_names=dm.class_names)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    keys = set(trainer.callback_metrics)
    assert {"val/miou", "val/iou/vessel", "val/dice/rare", "val/precision/blob", "val/recall/background"} <= keys
    assert {"train/loss", "train/loss/cross_entropy", "train/weight/cross_entropy", "train/miou"} <= keys


def test_checkpoint_with_other_num_classes_is_refused(tmp_path) -> None:
    dm = SyntheticDataModule(num_train=4, num_val=4, image_size=32, batch_size=4)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(SegmentationModule(num_classes=5), dm)
    path = tmp_path / "five.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(ValueError, match="trained with num_classes=5 but the data has num_classes=3"):
        _trainer(tmp_path).validate(SegmentationModule(num_classes=3), dm, ckpt_path=path)


def test_mask_values_outside_the_classes_are_named() -> None:
    model = SegmentationModule(num_classes=3)
    batch = {"image": torch.randn(1, 3, 32, 32), "mask": torch.full((1, 32, 32), 7), "meta": {"name": ["x.png"]}}
    with pytest.raises(ValueError, match=r"mask values \[7\] \(in \['x.png'\]\) are neither a class in \[0, 3\)"):
        model.model_step(batch, "val")


def test_network_with_wrong_output_channels_is_named() -> None:
    model = SegmentationModule(net=lambda c: nn.Conv2d(3, c + 1, 1), num_classes=3)
    batch = {"image": torch.randn(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8, dtype=torch.long)}
    with pytest.raises(ValueError, match=r"logits of shape \(2, 4, 8, 8\), expected N×C×H×W = \(2, 3, 8, 8\)"):
        model.model_step(batch, "train")


def test_a_plain_loss_is_wrapped_and_bound_to_the_dataset() -> None:
    model = SegmentationModule(loss=CrossEntropyLoss(), num_classes=4, ignore_index=100)
    term = model.loss.terms[0].loss
    assert term.ignore_index == 100 and term.num_classes == 4


def test_an_interrupted_run_leaves_a_checkpoint_that_resumes(tmp_path) -> None:
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    class StopAtStep(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                raise KeyboardInterrupt

    dm = SyntheticDataModule(num_train=16, num_val=4, image_size=32, batch_size=4)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_on_exception=True)
    trainer = _trainer(
        tmp_path,
        max_epochs=2,
        enable_checkpointing=True,
        callbacks=[checkpoints, StopAtStep()],
        num_sanity_val_steps=0,
        limit_val_batches=1,
    )
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into a clean exit after the callbacks ran
        trainer.fit(SegmentationModule(num_classes=5), dm)
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_file() and torch.load(last, weights_only=False)["global_step"] == 3
    resumed = _trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0, limit_val_batches=1)
    resumed.fit(SegmentationModule(num_classes=5), dm, ckpt_path=last)
    assert resumed.global_step == 8  # 2 epochs × 4 batches, the first 3 not repeated
