"""The LightningModule: a network, a loss and metrics, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable, ReduceLROnPlateau
from torch import Tensor, nn

from lightning_seg.boundary_metrics import BoundaryMetrics
from lightning_seg.callbacks.nan_guard import NonFiniteGuard
from lightning_seg.inference import Inferer, SlidingWindow, TestTimeAugmentation, resize_region
from lightning_seg.losses import CrossEntropyLoss, LossOutput, SegmentationLoss
from lightning_seg.losses.composite import as_composite, bind_losses
from lightning_seg.metrics import SegmentationMetrics, class_map
from lightning_seg.models import SMPNet

STAGES = ("train", "val", "test")
INFERENCE_STAGES = ("val", "test", "predict")
#: Options a checkpoint does not keep: the command that evaluates chooses how to infer.
RUN_TIME_OPTIONS = ("sliding_window", "tta", "inference_stages")


class SegmentationModule(LightningModule):
    """Semantic segmentation with any network and any (composite, scheduled) loss.

    ``num_classes``, ``ignore_index`` and ``class_names`` come from the DataModule (the CLI links them);
    the network and the loss arrive as objects, so changing either is a YAML edit, never a code edit.

    Args:
        net: a callable that builds the network from ``num_classes`` (in YAML: a ``class_path`` whose
            first argument is ``num_classes``, e.g. :class:`~lightning_seg.models.SMPNet`); the network
            returns logits or a dict with ``logits`` and named auxiliary outputs. Default: SMPNet
            (U-Net, ResNet-18, random init).
        loss: any loss module called as ``loss(logits, mask)``, or a
            :class:`~lightning_seg.losses.CompositeLoss`. Default: cross-entropy with ``ignore_index``.
        num_classes: number of classes.
        ignore_index: mask value excluded from losses and metrics.
        class_names: names used in logged keys (``val/iou/<name>``).
        optimizer: a callable building the optimizer from the parameters. Default: AdamW, lr 1e-3.
        lr_scheduler: a callable building a scheduler from the optimizer; ``None`` for none.
        scheduler_interval: step the scheduler every ``epoch`` or every ``step``.
        monitor: the metric a ReduceLROnPlateau scheduler watches.
        compile: compile the network with ``torch.compile``.
        palette: one RGB colour per class, for written predictions (linked from the DataModule).
        mean: the input normalisation mean (linked from the DataModule); with ``palette`` and
            ``class_names`` it travels in the checkpoint, so predicting a folder needs no training data.
        std: the input normalisation std.
        sliding_window: evaluate in overlapping windows (see :class:`~lightning_seg.inference.SlidingWindow`).
        tta: test-time augmentation (see :class:`~lightning_seg.inference.TestTimeAugmentation`).
        inference_stages: the stages (of ``val``, ``test``, ``predict``) that use ``sliding_window`` and
            ``tta``; ``val`` covers both ``validate`` and the validation during ``fit``. These three are
            not saved in checkpoints: give them to the command that evaluates.
        boundary_stages: the stages (``val``, ``test``) that also score boundary F1, boundary IoU and
            HD95 per class (:mod:`lightning_seg.boundary_metrics`; CPU distance transforms, so ``test``
            only by default).
        boundary_tolerance: distance in pixels within which boundaries match (boundary F1 / IoU).
        nan_guard: stop at the first non-finite training loss or term, saving that batch and a checkpoint
            (:class:`~lightning_seg.callbacks.NonFiniteGuard`, added unless the Trainer already has one).
    """

    def __init__(
        self,
        net: Callable[[int], nn.Module] | None = None,
        loss: nn.Module | None = None,
        num_classes: int = 2,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/loss",
        compile: bool = False,
        palette: Sequence[Sequence[int]] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        sliding_window: SlidingWindow | None = None,
        tta: TestTimeAugmentation | None = None,
        inference_stages: Sequence[str] = INFERENCE_STAGES,
        boundary_stages: Sequence[str] = ("test",),
        boundary_tolerance: float = 2,
        nan_guard: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=list(RUN_TIME_OPTIONS))
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (binary tasks use 2 classes), got {num_classes}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got '{scheduler_interval}'")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(
                f"got {len(self.class_names)} class names {self.class_names} for num_classes={num_classes}"
            )
        unknown = sorted(set(inference_stages) - set(INFERENCE_STAGES))
        if unknown:
            raise ValueError(f"inference_stages {unknown} are not among {list(INFERENCE_STAGES)}")
        self.palette = [tuple(int(v) for v in colour) for colour in palette] if palette else None
        self.mean, self.std = (tuple(mean) if mean else None), (tuple(std) if std else None)
        self.inferer = Inferer(sliding_window, tta)
        self.inference_stages = tuple(inference_stages)
        unknown = sorted(set(boundary_stages) - {"val", "test"})
        if unknown:
            raise ValueError(f"boundary_stages {unknown} are not among ['val', 'test']")
        self.boundary_stages = tuple(boundary_stages)
        # self.val_boundary, self.test_boundary where asked for.
        for stage in self.boundary_stages:
            metric = BoundaryMetrics(num_classes, ignore_index, self.class_names, boundary_tolerance)
            setattr(self, f"{stage}_boundary", metric)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.net = self.build_net(net)
        self.loss = self.build_loss(loss)
        # One confusion-matrix metric per stage: self.train_metrics, self.val_metrics, self.test_metrics.
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", self.build_metrics())
        #: The confusion matrix of the last finished validation/test epoch (rows true, columns predicted).
        self.last_confusion: dict[str, Tensor] = {}
        self._checked_stages: set[str] = set()

    # ----- the three parts; override one to change it -----
    def build_net(self, net: Callable[[int], nn.Module] | None) -> nn.Module:
        return (net or SMPNet)(self.num_classes)

    def build_loss(self, loss: nn.Module | None) -> nn.Module:
        composite = as_composite(loss if loss is not None else CrossEntropyLoss())
        bind_losses(composite, self.num_classes, self.ignore_index)
        return composite

    def build_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes, self.ignore_index, self.class_names)

    def stage_metrics(self, stage: str) -> SegmentationMetrics:
        """The metric of ``stage`` (``train``, ``val`` or ``test``)."""
        return getattr(self, f"{stage}_metrics")

    # ----- forward and the shared step -----
    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Run the network; always returns a dict with at least ``logits`` (``N×C×H×W``)."""
        out = self.net(image)
        return out if isinstance(out, dict) else {"logits": out}

    def logits(self, image: Tensor) -> Tensor:
        """The network's logits alone (what sliding windows and test-time augmentation forward)."""
        return self(image)["logits"]

    def infers(self, stage: str) -> bool:
        """Whether ``stage`` evaluates through sliding windows or test-time augmentation."""
        return self.inferer.active and stage in self.inference_stages

    def model_step(self, batch: dict[str, Any], stage: str) -> tuple[LossOutput, dict[str, Tensor], Tensor]:
        """Forward, loss and metric update for one batch; returns (loss, outputs, predictions).

        In a stage that :meth:`infers`, the outputs are the inferred logits alone (on the image's device),
        so a loss term reading an auxiliary output fails there with a message naming it.
        """
        if stage not in self._checked_stages:
            self._check_batch(batch, stage)
        image = batch["image"]
        if self.infers(stage):
            outputs = {"logits": self.inferer(self.logits, image).to(image.device)}
        else:
            outputs = self(image)
        if stage not in self._checked_stages:
            self._check_outputs(outputs, batch["mask"])
            self._checked_stages.add(stage)
        loss = self.loss(outputs, batch)
        preds = class_map(outputs["logits"])
        self.stage_metrics(stage).update(preds, batch["mask"])
        if stage in self.boundary_stages:
            getattr(self, f"{stage}_boundary").update(preds, batch["mask"])
        return loss, outputs, preds

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.loss.set_progress(self.current_epoch, self.global_step)
        loss, _, _ = self.model_step(batch, "train")
        size = batch["image"].shape[0]
        self.log("train/loss", loss.total, prog_bar=True, batch_size=size)
        self.log_dict({f"train/loss/{k}": v.detach() for k, v in loss.terms.items()}, batch_size=size)
        self.log_dict({f"train/weight/{k}": float(v) for k, v in loss.weights.items()}, batch_size=size)
        return loss.total

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Tensor]:
        loss, outputs, preds = self.model_step(batch, stage)
        size = batch["image"].shape[0]
        self.log(f"{stage}/loss", loss.total, prog_bar=stage == "val", batch_size=size)
        self.log_dict({f"{stage}/loss/{k}": v for k, v in loss.terms.items()}, batch_size=size)
        return {"loss": loss.total, "logits": outputs["logits"], "preds": preds, "target": batch["mask"]}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Each image's logits and predicted classes at the size the image had on disk.

        Every image is inferred at its own size (never with another image's padding) and brought back
        to its original size (``meta["original_size"]``, recorded by the dataset before any transform).
        Pixels the dataset ignores by definition (``batch["ignored"]``) are predicted as ``ignore_index``.

        Returns:
            ``logits``: list of ``C×h_i×w_i`` float; ``preds``: list of ``h_i×w_i`` int64; ``names``.
        """
        meta = batch.get("meta", {})
        inferer = self.inferer if self.infers("predict") else Inferer()
        logits = inferer.per_image(self.logits, batch["image"], meta.get("size"), meta.get("original_size"))
        preds = [class_map(item[None])[0] for item in logits]
        if "ignored" in batch:
            for index, pred in enumerate(preds):
                height, width = meta["size"][index].tolist() if "size" in meta else batch["ignored"].shape[-2:]
                region = resize_region(batch["ignored"][index, :height, :width], pred.shape)
                pred[region.to(pred.device)] = self.ignore_index
        names = list(meta.get("name", [f"batch{batch_idx:05d}_{i}" for i in range(len(preds))]))
        return {"logits": logits, "preds": preds, "names": names}

    # ----- epoch ends: one confusion matrix per stage -> every score -----
    def _log_epoch_scores(self, stage: str) -> None:
        metric = self.stage_metrics(stage)
        scores = metric.compute_scores()
        self.last_confusion[stage] = metric.compute().detach().cpu().clone()
        self.log(f"{stage}/miou", scores.pop("miou"), prog_bar=stage == "val")
        self.log_dict({f"{stage}/{k}": v for k, v in scores.items()})
        metric.reset()
        if stage in self.boundary_stages:
            boundary = getattr(self, f"{stage}_boundary")
            self.log_dict({f"{stage}/{k}": v for k, v in boundary.compute_scores().items()})
            boundary.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_scores("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_scores("test")

    # ----- wiring with the DataModule and the Trainer -----
    def setup(self, stage: str) -> None:
        """Ask the DataModule for the extra targets the loss reads and hand class statistics to the loss."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        needed = self.loss.required_targets
        if needed and stage != "predict":
            if not hasattr(datamodule, "request_targets"):
                raise ValueError(
                    f"the loss reads batch entries {sorted(needed)}, which only a "
                    "lightning_seg SegmentationDataModule can compute; got datamodule "
                    f"{type(datamodule).__name__}"
                )
            datamodule.request_targets(needed)
        if stage == "fit" and hasattr(datamodule, "class_stats"):
            stats = datamodule.class_stats
            for module in self.loss.modules():
                if isinstance(module, SegmentationLoss):
                    module.bind_class_stats(stats)

    def configure_model(self) -> None:
        if self.hparams.get("compile") and not isinstance(self.net, torch._dynamo.eval_frame.OptimizedModule):
            self.net = torch.compile(self.net)

    def configure_callbacks(self) -> list[Callback]:
        has_guard = self._trainer is not None and any(isinstance(c, NonFiniteGuard) for c in self.trainer.callbacks)
        return [NonFiniteGuard()] if self.hparams.get("nan_guard", True) and not has_guard else []

    def on_train_start(self) -> None:
        # The sanity check must not leak into the first epoch's validation scores.
        self.val_metrics.reset()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("num_classes")
        if saved is not None and saved != self.num_classes:
            raise ValueError(
                f"the checkpoint was trained with num_classes={saved} but the data has "
                f"num_classes={self.num_classes}; use a checkpoint trained on this dataset"
            )

    def configure_optimizers(self) -> Any:
        optimizer = (
            self.optimizer_factory(self.parameters())
            if self.optimizer_factory is not None
            else torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-4)
        )
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.hparams.scheduler_interval}
        if isinstance(scheduler, (ReduceLROnPlateau, torch.optim.lr_scheduler.ReduceLROnPlateau)):
            config["monitor"] = self.hparams.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    # ----- boundary checks (first batch of each stage) -----
    def _check_batch(self, batch: dict[str, Any], stage: str) -> None:
        missing = [k for k in ("image", "mask") if k not in batch]
        if missing:
            raise ValueError(
                f"{stage} batches must be dicts with 'image' and 'mask'; missing {missing} in {sorted(batch)}"
            )
        image, mask = batch["image"], batch["mask"]
        if image.ndim != 4 or not image.is_floating_point():
            raise ValueError(f"{stage} images must be float N×C×H×W, got {image.dtype} {tuple(image.shape)}")
        if mask.ndim != 3 or mask.dtype != torch.int64:
            raise ValueError(f"{stage} masks must be int64 N×H×W, got {mask.dtype} {tuple(mask.shape)}")
        if mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"{stage} image {tuple(image.shape)} and mask {tuple(mask.shape)} sizes differ")
        labels = set(mask.unique().tolist()) - {self.ignore_index}
        bad = sorted(v for v in labels if not 0 <= v < self.num_classes)
        if bad:
            names = batch.get("meta", {}).get("name", [])
            raise ValueError(
                f"{stage} mask values {bad} (in {list(names)[:4]}) are neither a class in "
                f"[0, {self.num_classes}) nor ignore_index={self.ignore_index}"
            )

    def _check_outputs(self, outputs: dict[str, Tensor], mask: Tensor) -> None:
        logits = outputs.get("logits")
        if logits is None:
            raise ValueError(f"the network must return logits or a dict with 'logits', got keys {sorted(outputs)}")
        expected = (mask.shape[0], self.num_classes, *mask.shape[-2:])
        if tuple(logits.shape) != expected:
            raise ValueError(
                f"the network returned logits of shape {tuple(logits.shape)}, expected N×C×H×W = {expected}"
            )
