"""Under DDP the class statistics are computed once, by rank zero, and every process gets the same ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ddp_class_counts import DATA, FAILURE

from lightning_seg.data.stats import class_counts
from lightning_seg.data.synthetic import SyntheticDataModule

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_class_counts.py")


def run_ddp(out: Path, mode: str) -> subprocess.CompletedProcess:
    """Run the 2-process fit; a process still waiting after the timeout fails the test (and is killed)."""
    env = os.environ | {"PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "LIGHTNING_SEG_CACHE": str(out / "cache")}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), mode], cwd=out, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("a process of the DDP run was still waiting after 300 s")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def counted_here() -> np.ndarray:
    """The oracle: every training mask of the same data counted in this process, one at a time."""
    data = SyntheticDataModule(**DATA)
    masks = data.build_source("train").masks()
    return np.stack([class_counts(mask, data.num_classes, data.ignore_index) for mask in masks])


@pytest.mark.slow
@pytest.mark.parametrize("first_reader", ["module", "datamodule"])
def test_rank_zero_computes_the_class_counts_and_every_rank_gets_them(tmp_path: Path, first_reader: str) -> None:
    done = run_ddp(tmp_path, first_reader)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "computed-rank0.txt").read_text() == "computed\n"  # once
    assert not (tmp_path / "computed-rank1.txt").exists()
    expected = counted_here()
    assert expected.shape == (6, 6) and expected[:, :-1].sum() == 6 * 32 * 32
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"counts-rank{rank}.npy"), expected)


@pytest.mark.slow
def test_a_failed_scan_on_rank_zero_stops_every_rank_with_its_message(tmp_path: Path) -> None:
    done = run_ddp(tmp_path, "fail")
    assert done.returncode != 0
    assert done.stderr.count(f"ValueError: {FAILURE}") == 2, done.stderr[-3000:]  # rank 0's and rank 1's
    assert not (tmp_path / "computed-rank1.txt").exists()
