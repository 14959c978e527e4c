"""The run directory: one folder per run, derived once and handed to loggers, checkpoints and callbacks.

Layout (``runs/<experiment>/`` unless ``--trainer.default_root_dir`` names another root)::

    runs/quickstart/
      latest -> 20261201-213005             the newest ``fit`` run of this experiment
      20261201-213005/                      one ``fit`` run
        run.json                            experiment, stage, command, W&B run id
        config.yaml                         the full resolved config (reusable with --config)
        checkpoints/                        last.ckpt, the best by the monitored metric, interrupted-*.ckpt
        csv/metrics.csv  tensorboard/  wandb/
        diagnostics/  predictions/
        test-20261201-220000/               a later ``test`` (``validate``, ``predict``) of its checkpoint

The API for everything that writes files:

- :func:`run_directory` ``(trainer) -> Path``: the folder of the current run, the same on every rank
  (it is ``trainer.default_root_dir``, which the CLI sets to the run directory). A Trainer built outside
  the CLI (notebooks, tests) gets its own ``default_root_dir``.
- :func:`derive_run` builds the :class:`Run` once, before anything is instantiated.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_warn

#: Default root of every experiment's runs (relative to the working directory).
RUNS_ROOT = Path("runs")
#: Name of the pointer (a symlink) to the newest ``fit`` run of an experiment.
LATEST = "latest"
#: File in each run directory that records what the run is.
RUN_FILE = "run.json"
#: Folder of a run that holds its checkpoints.
CHECKPOINTS = "checkpoints"
#: Environment variable naming the run directory; set by the CLI for the processes a DDP launcher
#: starts (so every rank writes into the parent's run), or by hand to force a directory.
RUN_DIR_ENV = "LIGHTNING_SEG_RUN_DIR"
#: Config files in a folder of this name only choose the hardware; they do not name the experiment.
TRAINER_CONFIGS = "trainer"
#: ``--ckpt_path`` shorthand for the newest checkpoint of the experiment's latest run.
LAST = "last"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


def run_directory(trainer: Trainer) -> Path:
    """The folder of ``trainer``'s run; every file a run writes goes under it.

    Valid on every rank and at any time after the Trainer exists: it is ``trainer.default_root_dir``,
    which the CLI sets to the derived run directory (the same path on every process, no collective).
    """
    return Path(trainer.default_root_dir)


@dataclass
class Run:
    """One run's identity and folder.

    Attributes:
        directory: the run directory (created).
        experiment: the experiment name (``quickstart``, ``quickstart+weighted_ce``, ``--run_name``).
        root: the folder holding this experiment's runs (its ``latest`` pointer lives there).
        stage: ``fit``, ``validate``, ``test`` or ``predict``.
        resumed: whether this continues an existing run (``fit --ckpt_path`` of one of its checkpoints).
        info: what ``run.json`` holds (``experiment``, ``stage``, ``created``, ``command``, ``wandb_id``).
    """

    directory: Path
    experiment: str
    root: Path
    stage: str
    resumed: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def wandb_id(self) -> str:
        """The W&B run id stored with this run, created (and stored) on first use."""
        if not self.info.get("wandb_id"):
            self.info["wandb_id"] = uuid.uuid4().hex[:8]
            self.save_info()
        return str(self.info["wandb_id"])

    def save_info(self) -> None:
        """Write ``run.json`` (global rank zero only; other ranks read the same run)."""
        if _global_rank() == 0:
            (self.directory / RUN_FILE).write_text(json.dumps(self.info, indent=2) + "\n")


def experiment_name(config_files: Sequence[str | os.PathLike], run_name: str | None = None) -> str:
    """``run_name`` if given, else the config files' stems joined by ``+`` (``default`` without any).

    Example: ``--config experiments/quickstart.yaml --config experiments/losses/weighted_ce.yaml`` →
    ``quickstart+weighted_ce``, so a loss recipe never writes into the plain run's folders. Files in a
    ``trainer/`` folder (``experiments/trainer/ddp.yaml``) say where a run runs and are left out.
    """
    if run_name is not None:
        if not _NAME.match(run_name):
            raise ValueError(
                f"--run_name {run_name!r} must be a folder name: letters, digits and _ . + = - "
                "(no '/'; use --trainer.default_root_dir to choose where runs go)"
            )
        return run_name
    stems: list[str] = []
    for path in config_files:
        if Path(os.fspath(path)).parent.name == TRAINER_CONFIGS:
            continue  # where it runs (GPU, DDP, SLURM) is not what it is
        stem = Path(os.fspath(path)).stem
        if stem not in stems:
            stems.append(stem)
    return "+".join(stems) or "default"


def run_of_checkpoint(ckpt_path: str | os.PathLike) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), or None for another file."""
    folder = Path(ckpt_path).resolve().parent
    if folder.name in (CHECKPOINTS,) and (folder.parent / RUN_FILE).is_file():
        return folder.parent
    if (folder / RUN_FILE).is_file():  # Lightning's SLURM hpc_ckpt_N.ckpt lands in the run directory itself
        return folder
    return None


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The most recently written checkpoint of a run (``last.ckpt``, an interrupt or SLURM checkpoint)."""
    candidates = [*(run_dir / CHECKPOINTS).glob("*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    candidates = [p for p in candidates if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns) if candidates else None


def resolve_checkpoint(ckpt_path: str | None, root: Path) -> str | None:
    """Turn the ``last`` shorthand into the newest checkpoint of ``root/latest``; other values pass through."""
    if ckpt_path != LAST:
        return ckpt_path
    latest = root / LATEST
    if latest.exists():
        run_dir = latest.resolve()
    else:  # where symbolic links cannot be made: the newest fit run by its creation record
        fits = [p.parent for p in root.glob(f"*/{RUN_FILE}") if _read_info(p.parent).get("stage") == "fit"]
        if not fits:
            raise FileNotFoundError(
                f"--ckpt_path last: no run of this experiment yet (nothing in {root}); "
                "train one with `fit` first, or pass a checkpoint file"
            )
        run_dir = max(fits, key=lambda p: (p / RUN_FILE).stat().st_mtime_ns)
    found = newest_checkpoint(run_dir)
    if found is None:
        raise FileNotFoundError(f"--ckpt_path last: the latest run {run_dir} has no checkpoint")
    return str(found)


def cluster_run_id() -> str | None:
    """A name every process of a cluster job agrees on without talking: the SLURM job or torchrun run id.

    Under SLURM the job id (and step) names the run, so a requeued job continues in the same folder
    (where Lightning finds its ``hpc_ckpt_N.ckpt``).
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect():
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
        step = os.environ.get("SLURM_STEP_ID")
        return f"slurm-{job}" + (f".{step}" if step else "")
    torchrun = os.environ.get("TORCHELASTIC_RUN_ID")
    if torchrun and torchrun != "none" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"torchrun-{torchrun}"
    return None


def derive_run(
    stage: str,
    config_files: Sequence[str | os.PathLike],
    run_name: str | None = None,
    root_dir: str | os.PathLike | None = None,
    ckpt_path: str | None = None,
    fast_dev_run: bool = False,
    command: Sequence[str] | None = None,
) -> Run:
    """Find or create the directory of this run; called once per process before anything is built.

    - ``fit --ckpt_path <a checkpoint of a run>`` continues that run in its directory;
    - ``validate``/``test``/``predict`` of a run's checkpoint write into ``<that run>/<stage>-<time>/``;
    - otherwise a new ``<root>/<time>/`` (``<stage>-<time>`` for the other stages), where ``root`` is
      ``root_dir`` or ``runs/<experiment>``; never an existing folder (a suffix ``-1``, ``-2`` ... is
      added, created atomically, so concurrent runs never share a file).
    Processes started by a DDP launcher read the parent's directory from :data:`RUN_DIR_ENV`; processes of
    a SLURM or torchrun job agree through the job id (:func:`cluster_run_id`).

    Args:
        stage: the CLI subcommand.
        config_files: the ``--config`` files, in order (they name the experiment).
        run_name: an explicit experiment name (``--run_name``).
        root_dir: ``--trainer.default_root_dir``: the folder that holds the runs instead of ``runs/<experiment>``.
        ckpt_path: ``--ckpt_path`` (``last`` is resolved by :func:`resolve_checkpoint` before this).
        fast_dev_run: a smoke test: a new ``fast_dev_run-<time>`` folder, never ``latest``, never a resumed run.
        command: the command line, recorded in ``run.json`` (default ``sys.argv``).
    """
    experiment = experiment_name(config_files, run_name)
    root = experiment_root(experiment, root_dir)
    owner = run_of_checkpoint(ckpt_path) if ckpt_path else None
    forced = os.environ.get(RUN_DIR_ENV)
    shared = cluster_run_id()
    parent = owner if owner is not None else root
    prefix = "fast_dev_run-" if fast_dev_run else ("" if stage == "fit" else f"{stage}-")
    if forced:
        directory = Path(forced)
    elif stage == "fit" and owner is not None and not fast_dev_run:
        directory = owner
    elif shared is not None:
        directory = parent / f"{prefix}{shared}"
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        raise ValueError(
            "this process was started by an external launcher (WORLD_SIZE="
            f"{os.environ['WORLD_SIZE']}) without a job id every process can agree on: pass torchrun "
            f"--rdzv-id NAME (or --standalone), or set {RUN_DIR_ENV} to one folder for all processes"
        )
    else:
        directory = _new_directory(parent, prefix + time.strftime("%Y%m%d-%H%M%S"))
    resumed = (directory / RUN_FILE).is_file()
    directory.mkdir(parents=True, exist_ok=True)
    run = Run(directory, experiment, root, stage, resumed=resumed, info=_read_info(directory))
    if forced:  # a process started by a launcher: the parent has recorded the run
        return run
    info = run.info
    info.setdefault("experiment", experiment)
    info.setdefault("stage", stage)
    info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    info.setdefault("command", ["lightning-seg", *(sys.argv[1:] if command is None else command)])
    if ckpt_path:
        info.setdefault("checkpoints_loaded", []).append(str(Path(ckpt_path).resolve()))
    run.save_info()
    return run


def experiment_root(experiment: str, root_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding an experiment's runs: ``root_dir`` when given, else ``runs/<experiment>``."""
    return Path(root_dir) if root_dir is not None else RUNS_ROOT / experiment


def point_latest(root: Path, directory: Path) -> None:
    """Make ``root/latest`` a relative symlink to ``directory``, replaced atomically (no-op where links fail)."""
    link = root / LATEST
    temporary = root / f".{LATEST}.{os.getpid()}.{threading.get_ident()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(os.path.relpath(directory, root), target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)


def _new_directory(parent: Path, name: str) -> Path:
    """Create ``parent/name`` (or ``name-1``, ``name-2``, ... if taken) atomically and return it."""
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(10_000):
        candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new run directory under {parent}")


def _read_info(directory: Path) -> dict[str, Any]:
    path = directory / RUN_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it records the run, repair or delete it") from None


def _global_rank() -> int:
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0 if RUN_DIR_ENV not in os.environ else int(os.environ.get("LOCAL_RANK", "0"))


# ----- handing the run directory to the CLI's loggers, checkpoints and config file -----
def prepare_config(config: Namespace, stage: str, command: Sequence[str] | None = None) -> tuple[Run, list[Edit]]:
    """Derive the run from a parsed LightningCLI config and point the config's paths into it.

    Sets ``trainer.default_root_dir`` to the run directory, fills every logger's unset ``save_dir``
    (CSV and TensorBoard without a ``version_N`` level, W&B with the run's stored id), resolves
    ``--ckpt_path last`` (and checks the checkpoint file) and records the experiment name in ``run_name``.

    Returns:
        The run, and the derived edits: :func:`as_given` undoes them on a copy for ``config.yaml``, so
        that the saved config starts a new run of the same experiment instead of writing into this one.
    """
    trainer = config.trainer
    fast_dev_run = bool(trainer.get("fast_dev_run"))
    files = [str(path) for path in (config.get("config") or [])]
    experiment = experiment_name(files, config.get("run_name"))
    root_dir = trainer.get("default_root_dir")
    ckpt_path = None
    if "ckpt_path" in config:
        ckpt_path = resolve_checkpoint(config.ckpt_path, experiment_root(experiment, root_dir))
        if ckpt_path is not None and ckpt_path not in ("best", "hpc", "registry"):
            check_checkpoint(ckpt_path)
        config.ckpt_path = ckpt_path
    config.run_name = experiment
    run = derive_run(stage, files, experiment, root_dir, ckpt_path, fast_dev_run, command)
    edits: list[Edit] = [(("trainer", "default_root_dir"), root_dir)]
    trainer.default_root_dir = str(run.directory)
    logger = trainer.get("logger")
    for index, entry in enumerate(logger if isinstance(logger, list) else [logger]):
        if isinstance(entry, Namespace) and entry.get("class_path"):
            path = ("trainer", "logger", *((index,) if isinstance(logger, list) else ()), "init_args")
            edits += [((*path, key), value) for key, value in configure_logger(entry, run).items()]
    return run, edits


#: A derived config value: its path (keys and list indices) and the value it replaced.
Edit = tuple[tuple[Any, ...], Any]


def as_given(config: Namespace, edits: list[Edit]) -> Namespace:
    """A copy of ``config`` with the derived values of :func:`prepare_config` put back as they were."""
    copy = config.clone()
    for path, value in edits:
        node: Any = copy
        for key in path[:-1]:
            node = node[key]
        if path[-1] == "resume":  # not an argument of the logger's own signature: drop it
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return copy


def configure_logger(entry: Namespace, run: Run) -> dict[str, Any]:
    """Point one logger's config (``class_path`` + ``init_args``) into the run directory, unless set.

    Returns:
        The ``init_args`` keys changed and their previous values.
    """
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    cls = _import(entry.class_path)
    if entry.get("init_args") is None:
        entry.init_args = Namespace()
    args = entry.init_args
    changed: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        changed[key] = args.get(key)
        args[key] = value

    own_folder = args.get("save_dir") is None or (issubclass(cls, WandbLogger) and args.save_dir == ".")
    if own_folder:  # a save_dir the user wrote is kept as it is ("." is WandbLogger's own default)
        put("save_dir", str(run.directory))
        if issubclass(cls, (CSVLogger, TensorBoardLogger)) and args.get("version") is None:
            put("version", "")  # <run>/<name>/ directly: the run directory is already one per run
    if issubclass(cls, WandbLogger) and args.get("id") is None and args.get("version") is None:
        put("id", run.wandb_id())
        if run.resumed:
            put("resume", "allow")
    return changed


def configure_trainer(trainer: Trainer, run: Run) -> None:
    """Give every ModelCheckpoint without a ``dirpath`` ``<run>/checkpoints``; none for ``fast_dev_run``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    if trainer.fast_dev_run:
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        return
    # Other stages save nothing: pointing them at the loaded checkpoint's folder keeps its state valid.
    loaded = run.info.get("checkpoints_loaded")
    folder = run.directory / CHECKPOINTS if run.stage == "fit" or not loaded else Path(loaded[-1]).parent
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = os.path.realpath(folder)
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.save_on_exception:
            # Its name would carry the last measured score for weights trained further since (or 0 before
            # any validation); the CLI's interrupt checkpoint (interrupted-epochE-stepS.ckpt) replaces it.
            callback.save_on_exception = False
            rank_zero_warn(
                "ModelCheckpoint(save_on_exception=True) with a monitored metric would name a checkpoint "
                f"with a stale {callback.monitor}; turned off: interrupts save interrupted-epochE-stepS.ckpt"
            )


def check_checkpoint(ckpt_path: str | os.PathLike) -> None:
    """Raise one clear error if ``ckpt_path`` is missing, or truncated or corrupt (every member's CRC is read)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (--ckpt_path expects a .ckpt file or 'last')")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(
            f"checkpoint {path} is not a readable checkpoint ({error}; truncated or not written by "
            "Lightning's save_checkpoint)"
        ) from None
    if broken is not None:
        raise ValueError(f"checkpoint {path} is corrupt (member {broken!r} fails its CRC check)")


class SaveRunConfig(SaveConfigCallback):
    """Save the resolved config as ``<run>/config.yaml`` (never over an earlier one) and upload it to W&B.

    On a resumed run the first config stays; the resumed one is ``config-1.yaml`` (``-2`` ...). When a new
    ``fit`` run starts (not before: a config that fails to build never becomes ``latest``), it points
    ``<root>/latest`` at it.
    """

    #: The run being saved; the CLI sets it.
    run: Run | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero and stage == "fit" and self.run is not None and not self.run.resumed:
            point_latest(self.run.root, self.run.directory)
        if trainer.is_global_zero:
            folder = run_directory(trainer)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self.config_filename
            for attempt in range(1, 10_000):
                if not path.exists():
                    break
                path = folder / f"{Path(self.config_filename).stem}-{attempt}{Path(self.config_filename).suffix}"
            # Unchecked: the paths the run directory implies are left unset (``save_dir: null``), as given.
            self.parser.save(
                self.config, str(path), skip_none=False, skip_check=True, overwrite=False, multifile=self.multifile
            )
            self.saved_path = path
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # As ``files/<run folder>/config.yaml``: W&B's own files/config.yaml holds the hyperparameters.
                folder = self.saved_path.parent
                logger.experiment.save(str(self.saved_path), base_path=str(folder.parent), policy="now")


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)
