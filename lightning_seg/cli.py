"""The ``lightning-seg`` command: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import signal
import sys
from argparse import ArgumentError
from collections.abc import Sequence
from typing import Any

import numpy as np
from jsonargparse import Namespace
from lightning import LightningDataModule
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_seg import errors, runs
from lightning_seg.allocator import NO_TRIM_ENV, ReleaseFreedMemory, limit_malloc_arenas
from lightning_seg.boundary_metrics import BOUNDARY_SCORES
from lightning_seg.callbacks.per_class_metrics import PerClassMetrics, describe_classes, zero_iou_classes
from lightning_seg.callbacks.prediction_writer import PredictionWriter
from lightning_seg.data.image_folder import CHECKPOINT_FACTS
from lightning_seg.metrics import SCORES
from lightning_seg.module import SegmentationModule
from lightning_seg.resume import ExactResume
from lightning_seg.signals import GracefulInterrupt, RunInterrupted
from lightning_seg.tracking import prepare_wandb_loggers


def format_scores(
    metrics: dict[str, float],
    stage: str,
    class_names: list[str],
    train_pixels: Sequence[int] | None = None,
    num_worst: int = 10,
    table: str | None = None,
) -> str:
    """The console summary of a stage from logged metrics (``<stage>/miou``, ``<stage>/iou/<name>`` ...).

    The mean IoU, a table of the ``num_worst`` classes of lowest IoU (every class when there are no
    more), and the classes with an IoU of 0 although they have training pixels (``train_pixels``; every
    class with IoU 0 when it is ``None``). ``table`` names where the full per-class table is kept.
    """

    def value(key: str) -> float:
        return float(metrics.get(key, math.nan))

    def cell(key: str) -> str:
        return "   n/a" if math.isnan(value(key)) else f"{value(key):6.3f}"

    iou = np.array([value(f"{stage}/iou/{name}") for name in class_names])
    scored = [k for k in np.argsort(iou, kind="stable") if not math.isnan(iou[k])]
    worst = scored[:num_worst]
    undefined = len(class_names) - len(scored)
    lines = [f"{stage} mIoU: {cell(f'{stage}/miou').strip()} over {len(scored)} classes"]
    if undefined:
        lines[0] += f" ({undefined} neither in the {stage} masks nor predicted)"
    where = f"; every class: {table}" if table else f"; every class: the loggers' {stage}/<score>/<class>"
    title = f"{len(worst)} lowest IoU of {len(class_names)} classes" if len(worst) < len(scored) else "by IoU"
    lines.append(f"{title}{where}")
    width = max(len("class"), *(len(class_names[k]) for k in worst)) if worst else len("class")
    boundary = any(key.startswith(f"{stage}/{s}/") for s in BOUNDARY_SCORES for key in metrics)
    columns = SCORES + (BOUNDARY_SCORES if boundary else ())
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>9}" for s in columns))
    for k in worst:
        name = class_names[k]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(f'{stage}/{s}/{name}'):>9}" for s in columns))
    pixels = None if train_pixels is None else np.asarray(train_pixels)
    dead = zero_iou_classes(iou, pixels)
    if dead:
        despite = "with training pixels" if pixels is not None else "(training pixels not known)"
        lines.append(f"IoU 0 {despite}: {describe_classes(class_names, dead, pixels)}")
    return "\n".join(lines)


class SegmentationCLI(LightningCLI):
    """LightningCLI that links the dataset's facts into the model and prints per-class scores.

    Each invocation writes into its own run directory (:mod:`lightning_seg.runs`), derived once from
    the parsed config before anything is built.
    """

    #: The run of this invocation, derived once before anything is instantiated.
    run_info: runs.Run

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningArgumentParser)
        for key in ("num_classes", "ignore_index", "class_names", "palette", "mean", "std"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="Experiment name: runs go to runs/<run_name>/<time>/ (default: the --config file names joined "
            "by '+'). --trainer.default_root_dir D puts them in D/<time>/ instead.",
        )

    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001 (LightningArgumentParser, ArgsType)
        """Parse, derive the run directory (filling the paths it implies), then validate.

        A config mistake raises :class:`ConfigError` with one line (see :mod:`lightning_seg.errors`).
        """
        argv = sys.argv[1:] if args is None else list(args) if isinstance(args, (list, tuple)) else []
        problem = errors.yaml_problem(errors.config_files_in(argv))
        if problem is not None:
            raise ConfigError(problem)
        try:
            if isinstance(args, (dict, Namespace)):
                config = parser.parse_object(args, _skip_validation=True)
            else:
                config = parser.parse_args(args, _skip_validation=True)
            stage = config.get("subcommand")
            section = config[stage] if stage else config
            self.run_info, self._run_edits = runs.prepare_config(section, stage or "fit", argv or None)
            # Processes a DDP launcher starts re-run this command: they must write into the same run.
            os.environ[runs.RUN_DIR_ENV] = str(self.run_info.directory)
            parser.validate(config)
        except (ArgumentError, TypeError, KeyError) as error:
            if errors.debug():
                raise
            text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
            parsers = [parser, *getattr(self, "_subcommand_parsers", {}).values()]
            options = [option for p in parsers for action in p._actions for option in action.option_strings]
            raise ConfigError(errors.config_error_message(text, options)) from None
        self.config = config

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        runs.configure_trainer(self.trainer, self.run_info)
        if self.subcommand in ("fit", None) and not self.trainer.fast_dev_run:
            # First, so that the handlers are in place before any other callback's setup writes a file.
            self.trainer.callbacks[:0] = [GracefulInterrupt(), ExactResume()]
        callbacks = self.trainer.callbacks
        if os.environ.get(NO_TRIM_ENV) != "1" and not any(isinstance(c, ReleaseFreedMemory) for c in callbacks):
            # Last, so that it trims after the diagnostics have drawn their figures (lightning_seg.allocator).
            callbacks.append(ReleaseFreedMemory())
        config = self.config[self.subcommand] if self.subcommand else self.config
        for callback in self.trainer.callbacks:
            if isinstance(callback, runs.SaveRunConfig):
                callback.config = runs.as_given(config, self._run_edits)
                callback.run = self.run_info

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        prepare_wandb_loggers(loggers if isinstance(loggers, list) else [loggers])
        if self.subcommand == "predict":
            fill_data_from_model(config)

    def before_predict(self) -> None:
        if not any(isinstance(callback, PredictionWriter) for callback in self.trainer.callbacks):
            self.trainer.callbacks.append(PredictionWriter())

    def after_predict(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, PredictionWriter) and callback.folder is not None and self.trainer.is_global_zero:
                print(f"predictions written to {callback.folder}")

    def _print_scores(self, stage: str) -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        if f"{stage}/miou" not in metrics:
            return
        tables = [c.last_table for c in self.trainer.callbacks if isinstance(c, PerClassMetrics) and c.last_table]
        summary = format_scores(
            metrics, stage, self.model.class_names, self._train_pixels(), table=str(tables[0]) if tables else None
        )
        print("\n" + summary)

    def _train_pixels(self) -> Sequence[int] | None:
        """The training pixel count of each class, when the DataModule can tell (``None`` otherwise)."""
        try:
            stats = getattr(self.datamodule, "class_stats", None)
        except (ValueError, FileNotFoundError):  # no training split to count from
            return None
        return getattr(stats, "pixel_counts", None)

    def after_fit(self) -> None:
        self._print_scores("val")

    def after_test(self) -> None:
        self._print_scores("test")

    def after_validate(self) -> None:
        self._print_scores("val")


def options_summary() -> str:
    """The init options of the module, the default network and every DataModule, for ``--help``.

    In subclass mode jsonargparse's own help only names ``--model.help CLASS``; this lists them.
    """
    import lightning_seg.data as datamodules
    from lightning_seg.models import SMPNet

    def describe(cls: type, prefix: str) -> list[str]:
        help_key = prefix.removesuffix(".init_args")
        lines = [f"  {cls.__module__}.{cls.__name__}  (--{help_key}.help {cls.__module__}.{cls.__name__} for details)"]
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            default = "required" if param.default is inspect.Parameter.empty else f"default: {param.default!r}"
            lines.append(f"    --{prefix}.{name}  ({default})")
        return lines

    lines = ["", "Model options (--model.init_args.*):", *describe(SegmentationModule, "model.init_args")]
    lines += ["", "Default network options:", *describe(SMPNet, "model.init_args.net.init_args")]
    lines += ["", "Data options (--data.init_args.*) common to every DataModule:"]
    lines += describe(datamodules.SegmentationDataModule, "data.init_args")
    lines += ["", "Data options of each DataModule:"]
    for name in datamodules.__all__:
        cls = getattr(datamodules, name)
        if isinstance(cls, type) and issubclass(cls, datamodules.SegmentationDataModule):
            if cls is not datamodules.SegmentationDataModule:
                lines += describe(cls, "data.init_args")
    return "\n".join(lines)


class ConfigError(ValueError):
    """A mistake in the command line or the config files, already worded as one line."""


USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, MisconfigurationException)

#: Commands besides LightningCLI's fit/validate/test/predict: ``name -> "module:function"``, where the
#: function takes the remaining arguments and returns the exit status.
EXTRA_COMMANDS: dict[str, str] = {
    "models": "lightning_seg.zoo:main",  # the model zoo with parameter counts
    "check-data": "lightning_seg.check_data:main",
    "export": "lightning_seg.export:main",  # a deployable torch.export / ONNX file from a checkpoint
}


def run_extra_command(name: str, args: list[str]) -> int:
    """Run one of :data:`EXTRA_COMMANDS`; user errors print one line (exit 2) as for the trainer commands."""
    module, function = EXTRA_COMMANDS[name].split(":")
    try:
        return int(getattr(importlib.import_module(module), function)(args) or 0)
    except USER_ERRORS as error:
        if os.environ.get("LIGHTNING_SEG_DEBUG"):
            raise
        print(f"lightning-seg {name}: error: {user_error_message(error)}", file=sys.stderr)
        return 2


def available_accelerators() -> list[str]:
    """The ``--trainer.accelerator`` values that work on this machine."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    gpus = ["gpu", "cuda"] if CUDAAccelerator.is_available() else []
    return ["cpu", *gpus, *(["mps"] if MPSAccelerator.is_available() else [])]


def user_error_message(error: Exception) -> str:
    """The message a user needs from an error, unwrapped from jsonargparse's validation report.

    When a class in the config raises while it is built, jsonargparse reports every alternative it tried
    ("Does not validate against any of the Union subtypes ... - <message>"); the innermost message is the
    one our code raised.
    """
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if isinstance(error, ConfigError):
        return text
    reasons = [
        line.strip()[2:]
        for line in text.splitlines()
        if line.strip().startswith("- ")
        and not line.strip()[2:].startswith(("Expected a", "Problem with given class_path", "Not a valid subclass"))
    ]
    return reasons[-1] if reasons else text.strip().splitlines()[0]


def fill_data_from_model(config: Any) -> None:
    """Give an :class:`ImageFolderDataModule` the facts of the model it predicts with (from ``--ckpt_path``).

    Lightning reads the checkpoint's hyperparameters into the model's config (``dict_kwargs``); the
    folder's class names, palette, normalisation and ignore index are taken from there unless given.
    """
    data, model = config.get("data"), config.get("model")
    if data is None or model is None or not str(data.get("class_path", "")).endswith(".ImageFolderDataModule"):
        return
    sources = [model.get("dict_kwargs") or {}, model.get("init_args") or {}]
    for key in CHECKPOINT_FACTS:
        if data.init_args.get(key) is None:
            value = next((source.get(key) for source in sources if source.get(key) is not None), None)
            if value is not None:
                data.init_args[key] = value


def expand_predict_input(argv: list[str]) -> list[str]:
    """Shorthands of ``predict``: ``--input DIR`` and a checkpoint's own model when no config names one.

    ``--input DIR`` → ``--data lightning_seg.data.ImageFolderDataModule --data.init_args.input DIR``; with
    ``--ckpt_path`` and neither ``--config`` nor ``--model``, ``--model SegmentationModule`` is added (the
    checkpoint's hyperparameters then fill in the rest, as LightningCLI does for ``--ckpt_path``).
    """
    if argv[:1] != ["predict"]:
        return argv
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--input" or item.startswith("--input="):
            folder = item.split("=", 1)[1] if "=" in item else next(items, "")
            out += ["--data", "lightning_seg.data.ImageFolderDataModule", f"--data.init_args.input={folder}"]
        else:
            out.append(item)
    names = {item.split("=", 1)[0] for item in out}
    if "--ckpt_path" in names and not names & {"--config", "-c", "--model"}:
        out += ["--model", "lightning_seg.module.SegmentationModule"]
    return out


def main(args: list[str] | None = None, run: bool = True) -> SegmentationCLI:
    """Entry point of ``lightning-seg``; tests call it in-process with an argument list.

    Errors in the user's config or data are printed as one line (exit status 2); set
    ``LIGHTNING_SEG_DEBUG=1`` to see the full traceback instead.
    """
    limit_malloc_arenas()  # a long fit's resident memory stays flat (lightning_seg.allocator)
    argv = expand_predict_input(list(sys.argv[1:] if args is None else args))
    if argv[:1] and argv[0] in EXTRA_COMMANDS:
        raise SystemExit(run_extra_command(argv[0], list(argv[1:])))
    inherited_run_dir = os.environ.get(runs.RUN_DIR_ENV)
    try:
        return SegmentationCLI(
            SegmentationModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_callback=runs.SaveRunConfig,
            parser_kwargs={"exit_on_error": False},
            args=argv,
            run=run,
        )
    except RunInterrupted as stop:
        print(f"lightning-seg: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    except SIGTERMException:  # Lightning's own SIGTERM handling (under SLURM) exits with status 0
        raise SystemExit(128 + signal.SIGTERM) from None
    except SystemExit as done:
        if done.code in (0, None) and ("--help" in argv or "-h" in argv) and argv[:1] != ["--help"]:
            print(options_summary())
        raise
    except USER_ERRORS as error:
        if os.environ.get("LIGHTNING_SEG_DEBUG"):
            raise
        message = user_error_message(error)
        if isinstance(error, MisconfigurationException) and re.search("accelerator|backend", message, re.I):
            here = ", ".join(available_accelerators())
            message = f"--trainer.accelerator: {message} Available on this machine: {here}"
        print(f"lightning-seg: error: {message}", file=sys.stderr)
        print("(set LIGHTNING_SEG_DEBUG=1 to see the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if inherited_run_dir is None:
            os.environ.pop(runs.RUN_DIR_ENV, None)


def entry_point() -> None:
    """The ``lightning-seg`` console script (returns nothing, so the exit status is 0 on success)."""
    main()


if __name__ == "__main__":
    entry_point()
