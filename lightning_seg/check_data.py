"""``lightning-seg check-data --config X.yaml``: read every sample of every split once, before a long job.

Reports, per split, the number of samples, their sizes and class frequencies, and every problem found:
files that cannot be read (damaged, truncated), masks with values the dataset does not define, images
and masks of different sizes, two files with one name, and names shared between the training split
and an evaluation split. The exit status is 0 when nothing is wrong and 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch.utils.data import DataLoader, Dataset

from lightning_seg.data.base import SampleSource, SegmentationDataModule
from lightning_seg.data.stats import class_counts

SPLITS = ("train", "val", "test")


@dataclass
class SplitReport:
    """What the scan of one split found."""

    samples: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)
    counts: np.ndarray | None = None  # (C+1,): pixels per class, then ignored pixels
    images_with: np.ndarray | None = None  # (C,): samples containing each class
    names: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)


class _Checked(Dataset):
    """Loads each sample of a source and returns what the report needs, or the reason it failed."""

    def __init__(self, source: SampleSource, num_classes: int, ignore_index: int) -> None:
        self.source, self.num_classes, self.ignore_index = source, num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            image, mask, name = self.source.load(index)
            counts = None if mask is None else class_counts(mask, self.num_classes, self.ignore_index)
        except Exception as error:  # every failure is a finding of the report, never a crash
            return {"error": problem_kind(str(error)), "message": f"{self.source.describe(index)}: {error}"}
        return {"error": None, "name": name, "size": tuple(image.shape[:2]), "counts": counts}


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item


def problem_kind(message: str) -> str:
    """A short label for a load failure, from the message the loaders raise."""
    if "cannot read" in message or "truncated" in message:
        return "unreadable"
    if " but its mask " in message or "field-of-view mask" in message:
        return "size mismatch"
    if "mask" in message and ("value" in message or "colour" in message or "holds only" in message):
        return "mask values"
    return "other"


def scan_split(datamodule: SegmentationDataModule, split: str) -> SplitReport | None:
    """Read every sample of ``split``; ``None`` if the DataModule has no such split."""
    report = SplitReport()
    try:
        source = datamodule.build_source(split)
    except (ValueError, FileNotFoundError) as error:
        kind = "duplicate name" if "share the name" in str(error) else "listing"
        report.problems.append((kind, str(error)))
        return report
    if source is None:
        return None
    num_classes = datamodule.num_classes
    loader = DataLoader(
        _Checked(source, num_classes, datamodule.ignore_index),
        batch_size=None,
        num_workers=datamodule.num_workers,
        collate_fn=_as_is,
    )
    report.counts = np.zeros(num_classes + 1, dtype=np.int64)
    report.images_with = np.zeros(num_classes, dtype=np.int64)
    for item in loader:
        report.samples += 1
        if item["error"] is not None:
            report.problems.append((item["error"], item["message"]))
            continue
        report.names.append(item["name"])
        report.sizes.append(item["size"])
        if item["counts"] is not None:
            report.counts += item["counts"]
            report.images_with += item["counts"][:num_classes] > 0
    return report


def shared_names(reports: dict[str, SplitReport]) -> list[tuple[str, str]]:
    """Names of the training split that an evaluation split also holds (a leak between them)."""
    if "train" not in reports:
        return []
    train = set(reports["train"].names)
    problems = []
    for split, report in reports.items():
        if split != "train":
            both = sorted(train.intersection(report.names))
            if both:
                shown = ", ".join(both[:5]) + (" ..." if len(both) > 5 else "")
                problems.append(("duplicate name", f"{len(both)} names are in both train and {split}: {shown}"))
    return problems


def ignored_foreground(datamodule: SegmentationDataModule, train: SplitReport) -> list[tuple[str, str]]:
    """The training masks hold only class 0 and the ignore value: most likely a foreground stored as it."""
    counts = train.counts
    if counts is None or datamodule.num_classes < 2 or not counts[-1] or counts[1:-1].any():
        return []
    ignore = datamodule.ignore_index
    return [("mask values", f"the masks hold only class 0 and the ignore value {ignore}: if {ignore} marks a "
             f"foreground class, set mask_values (e.g. {{0: 0, {ignore}: 1}}) or mask_format: binary")]  # fmt: skip


def _size_range(sizes: Sequence[tuple[int, int]]) -> str:
    if not sizes:
        return "-"
    heights, widths = [s[0] for s in sizes], [s[1] for s in sizes]
    low, high = f"{min(heights)}×{min(widths)}", f"{max(heights)}×{max(widths)}"
    distinct = len(set(sizes))
    return low if distinct == 1 else f"{low} … {high} ({distinct} sizes)"


def format_report(datamodule: SegmentationDataModule, reports: dict[str, SplitReport]) -> str:
    """The tables printed by ``check-data``: splits, class frequencies, problems."""
    lines = [f"{'split':<6} {'samples':>8}  {'sizes (h×w)':<32} {'problems':>8}"]
    for split, report in reports.items():
        lines.append(f"{split:<6} {report.samples:>8}  {_size_range(report.sizes):<32} {len(report.problems):>8}")
    names = list(datamodule.class_names)
    width = max(len("class"), *(len(n) for n in names), len("(ignored)"))
    counted = {s: r for s, r in reports.items() if r.counts is not None and r.counts.sum() > 0}
    if counted:
        lines += [
            "",
            f"{'class':<{width}}  " + "  ".join(f"{s + ' pixels %':>14} {s + ' samples':>13}" for s in counted),
        ]
        for k, name in enumerate([*names, "(ignored)"]):
            cells = []
            for report in counted.values():
                share = 100.0 * report.counts[k] / report.counts.sum()
                samples = str(int(report.images_with[k])) if k < len(names) else ""
                cells.append(f"{share:>14.3f} {samples:>13}")
            lines.append(f"{name:<{width}}  " + "  ".join(cells))
        absent = [n for k, n in enumerate(names) if "train" in counted and counted["train"].counts[k] == 0]
        if absent:
            lines += ["", f"warning: classes without any training pixel: {', '.join(absent)}"]
    problems = [(split, kind, message) for split, report in reports.items() for kind, message in report.problems]
    if problems:
        lines += ["", f"{'split':<6} {'problem':<15} detail"]
        lines += [f"{split:<6} {kind:<15} {message}" for split, kind, message in problems]
    return "\n".join(lines)


def build_datamodule(config: Path, overrides: Sequence[str]) -> SegmentationDataModule:
    """The DataModule of a training config's ``data`` section, with ``--data.*`` overrides applied."""
    from jsonargparse import ArgumentParser
    from lightning import LightningDataModule

    if not config.is_file():
        raise FileNotFoundError(f"config file {config} does not exist")
    section = (yaml.safe_load(config.read_text()) or {}).get("data")
    if not section:
        raise ValueError(f"{config} has no 'data' section")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    parsed = parser.parse_args(["--data", json.dumps(section), *overrides])
    datamodule = parser.instantiate_classes(parsed).data
    if not isinstance(datamodule, SegmentationDataModule):
        raise TypeError(f"check-data needs a lightning_seg DataModule, got {type(datamodule).__name__}")
    return datamodule


def main(args: list[str]) -> int:
    """Run ``check-data``; returns the exit status (0: no problem found, 2: problems)."""
    parser = argparse.ArgumentParser(
        prog="lightning-seg check-data",
        description="Read every sample of every split once and report counts, sizes, class frequencies and problems.",
    )
    parser.add_argument("--config", required=True, type=Path, help="a training config (its data section is used)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    known, overrides = parser.parse_known_args(args)
    unknown = [o for o in overrides if o.startswith("-") and not o.startswith("--data")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)} (only --data.* overrides are accepted)")
    datamodule = build_datamodule(known.config, overrides)
    print(f"check-data: {type(datamodule).__name__} at {getattr(datamodule, 'root', '(generated)')}")
    reports = {}
    for split in known.splits:
        report = scan_split(datamodule, split)
        if report is not None:
            reports[split] = report
    if "train" in reports:
        reports["train"].problems.extend(shared_names(reports) + ignored_foreground(datamodule, reports["train"]))
    print(format_report(datamodule, reports))
    total = sum(len(r.problems) for r in reports.values())
    print(f"\n{'no problems found' if total == 0 else f'{total} problems found'}")
    return 0 if total == 0 else 2
