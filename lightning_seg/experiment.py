"""Build in Python exactly what a YAML config describes, with the CLI's own parser and links.

A notebook calls :func:`from_config` with the same files and overrides it would give ``lightning-seg``
and gets the DataModule, the module and the Trainer the CLI would build — nothing is declared twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning import LightningDataModule, Trainer

from lightning_seg.module import SegmentationModule


@dataclass(frozen=True)
class Experiment:
    """What a config builds; unpacks as ``datamodule, module, trainer = from_config(...)``."""

    datamodule: LightningDataModule
    module: SegmentationModule
    trainer: Trainer
    #: The parsed, resolved configuration (a jsonargparse namespace, as ``--print_config`` shows it).
    config: Any

    def __iter__(self) -> Iterator[Any]:
        return iter((self.datamodule, self.module, self.trainer))


def from_config(*configs: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Parse ``configs`` (later files overlay earlier ones) and ``overrides`` as ``lightning-seg fit`` would.

    Args:
        configs: YAML files, e.g. ``"experiments/quickstart.yaml"``, ``"experiments/losses/lovasz.yaml"``.
        overrides: command-line style overrides, e.g. ``["--trainer.max_epochs=2"]``.

    Returns:
        The instantiated DataModule, SegmentationModule and Trainer, and the resolved config. Mistakes in
        the config are reported as by the CLI: one line on stderr and ``SystemExit(2)``.
    """
    from lightning_seg.cli import main  # the CLI imports the module, which must not import the CLI back

    if not configs:
        raise ValueError("from_config needs at least one config file, e.g. 'experiments/quickstart.yaml'")
    args = [arg for config in configs for arg in ("--config", str(config))] + list(overrides)
    cli = main(args, run=False)
    return Experiment(cli.datamodule, cli.model, cli.trainer, cli.config)
