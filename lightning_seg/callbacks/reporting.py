"""Where diagnostics go: every logger the Trainer has, and always files under the run directory.

One figure, table or set of scalars is written once through these helpers, which fan it out to
W&B (images, tables), TensorBoard (figures, markdown tables) and CSV (scalars), and also save it as
PNG / CSV / JSON under ``<run dir>/diagnostics`` (:func:`run_dir`) so that a run without any tracker still keeps every
diagnostic on disk.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from torch import Tensor

from lightning_seg.figures.background import FigureError, figure_drawer
from lightning_seg.figures.encoding import FigureJob, Picture
from lightning_seg.figures.masks import default_palette
from lightning_seg.runs import run_directory

DIAGNOSTICS_DIR = "diagnostics"
#: Seconds the diagnostics wait for the figures in flight when a run stops on an exception.
EXCEPTION_WAIT_SECONDS = 30.0

log = logging.getLogger(__name__)


def run_dir(trainer: Trainer) -> Path:
    """``<run directory>/diagnostics`` of ``trainer`` (:func:`lightning_seg.runs.run_directory`), one per run.

    The CLI gives every run its own directory, shared by every logger, so a rerun never overwrites the
    previous run's files; the same path on every process, with no collective call.
    """
    return run_directory(trainer) / DIAGNOSTICS_DIR


def save_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path


def save_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV (no index) to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def last_confusion(pl_module: LightningModule, stage: str) -> np.ndarray:
    """Return the confusion matrix (``C×C`` int64, rows true) the module stored at the end of ``stage``."""
    stored = getattr(pl_module, "last_confusion", None)
    if not isinstance(stored, Mapping) or stage not in stored:
        raise TypeError(
            f"{type(pl_module).__name__} has no last_confusion[{stage!r}]; the diagnostics callbacks need a "
            "module that stores each epoch's confusion matrix (lightning_seg.module.SegmentationModule)"
        )
    return np.asarray(stored[stage].detach().cpu(), dtype=np.int64)


def log_figure(trainer: Trainer, key: str, path: Path, builder: Callable[..., Figure], *args: Any) -> None:
    """Draw ``builder(*args)``, save it at ``path`` and send it to every image-capable logger under ``key``.

    Drawn in the background process (:mod:`lightning_seg.figures.background`; ``builder`` is a function of
    :mod:`lightning_seg.figures`): the file appears once it is drawn, the loggers receive it at the step
    of this call. The figure is drawn and encoded once: PNG for ``.png``, JPEG for ``.jpg`` (photographs
    such as the gallery's are several times smaller so). W&B receives the file; TensorBoard the same
    encoded bytes (its ``add_image`` would resample and re-encode the pixels).
    """
    loggers, step = list(trainer.loggers), trainer.global_step

    def deliver(picture: Picture) -> None:
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key, [str(path)], step=step)
            elif isinstance(logger, TensorBoardLogger):
                _tensorboard_image(logger, key, picture, step)

    figure_drawer().submit(FigureJob(builder, args, path), deliver)


def _tensorboard_image(logger: TensorBoardLogger, key: str, picture: Picture, step: int) -> None:
    """Write an already encoded PNG/JPEG to TensorBoard's event file as the image summary ``key``."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(
        height=picture.height, width=picture.width, colorspace=3, encoded_image_string=picture.encoded
    )
    logger.experiment._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=key, image=image)]), step)


def log_table(trainer: Trainer, key: str, frame: pd.DataFrame, path: Path) -> Path:
    """Save ``frame`` as CSV at ``path`` and send it as a W&B table / TensorBoard markdown text."""
    save_csv(path, frame)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key, dataframe=frame, step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, _markdown(frame), global_step=trainer.global_step)
    return path


def log_scalars(trainer: Trainer, metrics: Mapping[str, float]) -> None:
    """Send scalars to every logger at the current global step (where ``self.log`` is not allowed)."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)


def log_epoch_metrics(trainer: Trainer, metrics: Mapping[str, float]) -> None:
    """Send epoch-end scalars to every logger in one call, at the step of the module's own epoch-end metrics.

    For many per-class values that nobody monitors: ``LightningModule.log`` costs about 2 ms a key (each
    becomes a metric object in Lightning's result collection, moved between devices one by one), 0.6 s
    for 300 keys. This hands the dict to the Trainer's logger connector, the path logged values take
    to the loggers at the end of an epoch, so the keys reach every logger under the same step and with
    the same ``epoch`` field as the module's (during ``fit`` that step is one less than
    ``trainer.global_step``) and appear in ``trainer.logged_metrics``. They are not in
    ``trainer.callback_metrics``: a checkpoint or early-stopping callback cannot monitor them.
    Call it on rank zero, with values already reduced across processes.
    """
    trainer._logger_connector.log_metrics(dict(metrics))


def class_names(trainer: Trainer, num_classes: int) -> list[str]:
    """The DataModule's class names, else the module's, else ``class_<i>`` (when none has the right length).

    The module's names serve a Trainer given bare dataloaders (no DataModule).
    """
    for owner in (getattr(trainer, "datamodule", None), getattr(trainer, "lightning_module", None)):
        names = list(getattr(owner, "class_names", None) or [])
        if len(names) == num_classes:
            return names
    return [f"class_{i}" for i in range(num_classes)]


def class_colors(trainer: Trainer, num_classes: int) -> np.ndarray:
    """Return the DataModule's palette as ``C×3`` uint8 RGB, or the default palette when it has none."""
    palette = getattr(trainer.datamodule, "palette", None) or []
    if len(palette) != num_classes:
        palette = default_palette(num_classes)
    return np.asarray(palette, dtype=np.uint8).reshape(num_classes, 3)


def _markdown(frame: pd.DataFrame) -> str:
    """Render ``frame`` as a markdown table (floats with 4 decimals) for TensorBoard's text tab."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def check_positive(**values: object) -> None:
    """Raise a ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class DiagnosticCallback(Callback):
    """Base of the diagnostics callbacks: the output folder, the epoch schedule and the rank-zero rule.

    Args:
        every_n_epochs: run on validation epochs whose 1-based number is a multiple of this.
    """

    #: sub-folder of ``<run dir>/diagnostics`` for this callback's files.
    folder: str = ""

    def __init__(self, every_n_epochs: int = 1) -> None:
        check_positive(every_n_epochs=every_n_epochs)
        self.every_n_epochs = every_n_epochs
        self.history: list[dict[str, Any]] = []
        self._root: Path | None = None
        # (file, rows, columns) of the history this instance last wrote, to append the next epoch's rows.
        self._history_written: tuple[Path, int, tuple[str, ...]] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._root = run_dir(trainer)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Every figure of the stage on disk and in the loggers before Lightning closes them.
        figure_drawer().collect(until=0)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Lightning calls no teardown after an exception; keep the figures drawn so far, and never let a
        # figure's failure hide the exception that stopped the run.
        try:
            figure_drawer().collect(until=0, timeout=EXCEPTION_WAIT_SECONDS)
        except FigureError as error:
            log.warning("%s", error)

    @property
    def out_dir(self) -> Path:
        """``<run dir>/diagnostics/<folder>``, known once the Trainer has called ``setup``."""
        if self._root is None:
            raise RuntimeError(f"{type(self).__name__} has no output directory before Trainer.setup")
        return self._root / self.folder

    def is_due(self, trainer: Trainer) -> bool:
        """Whether this validation epoch is one to report on (never during the sanity check)."""
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def record(self, epoch: int, frame: pd.DataFrame) -> pd.DataFrame:
        """Store ``frame``'s rows under ``epoch`` in :attr:`history` (replacing earlier ones); return all."""
        self.history = [row for row in self.history if row["epoch"] != epoch]
        self.history += [{"epoch": epoch, **row} for row in frame.to_dict(orient="records")]
        return pd.DataFrame(self.history)

    def save_history(self, epoch: int, frame: pd.DataFrame) -> pd.DataFrame:
        """:meth:`record` ``frame`` and write the whole history to ``<out dir>/history.csv``; return it.

        In the usual case, a new epoch after the rows this instance wrote last, only the new rows are
        appended, so an epoch costs its own rows rather than every earlier epoch's again (0.12 s an
        epoch at 150 classes after 100 epochs); otherwise (an epoch validated again, a resumed run,
        other columns) the file is written whole. Either way it holds the same text.
        """
        path = self.out_dir / "history.csv"
        before = len(self.history)
        history = self.record(epoch, frame)
        columns = tuple(history.columns)
        appends = len(history) == before + len(frame) and self._history_written == (path, before, columns)
        if appends and path.is_file():
            history.iloc[before:].to_csv(path, mode="a", header=False, index=False)
        else:
            save_csv(path, history)
        self._history_written = (path, len(history), columns)
        return history

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self._history_written = None  # the file no longer matches this history: write it whole next time

    @staticmethod
    def epoch_tag(trainer: Trainer) -> str:
        return f"epoch_{trainer.current_epoch:03d}"


class BatchDiagnostic(DiagnosticCallback, ABC):
    """A diagnostic that reads every validation batch's outputs on the epochs it reports on."""

    def collects(self, trainer: Trainer) -> bool:
        """Whether to read this batch (by default on every process, on the epochs that are due)."""
        return self.is_due(trainer)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.collects(trainer):
            self.collect(trainer, outputs, batch)

    @abstractmethod
    def collect(self, trainer: Trainer, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        """Read one validation batch and its step outputs (``logits``, ``preds``, ``target``)."""
