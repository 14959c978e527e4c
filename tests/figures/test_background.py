"""Figures drawn in the background process: the same files and pictures as inline, errors, a lost worker."""

from __future__ import annotations

import logging
import os
import pkgutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import lightning_seg.figures
from lightning_seg.figures import background
from lightning_seg.figures.background import FigureDrawer, FigureError, background_requested
from lightning_seg.figures.confusion_matrix import confusion_figure
from lightning_seg.figures.encoding import FigureJob, Picture, draw

CONFUSION = np.array([[5, 1, 0], [2, 6, 1], [0, 0, 9]])


def job(path: Path, *args: object) -> FigureJob:
    return FigureJob(confusion_figure, args or (CONFUSION, ["road", "car", "pedestrian"], "t"), path)


@pytest.fixture
def drawer() -> Iterator[FigureDrawer]:
    drawer = FigureDrawer(background=True)
    yield drawer
    drawer.close()


def test_background_writes_the_same_file_and_delivers_the_same_picture_as_inline(drawer, tmp_path) -> None:
    delivered: list[Picture] = []
    for name in ("a.png", "b.jpg"):
        drawer.submit(job(tmp_path / "background" / name), delivered.append)
    drawer.collect(until=0)
    assert drawer.pending == 0 and drawer._process is not None  # drawn by the worker, not here
    for name, picture in zip(("a.png", "b.jpg"), delivered, strict=True):
        inline = draw(job(tmp_path / "inline" / name))
        assert (tmp_path / "background" / name).read_bytes() == inline.encoded == picture.encoded
        assert (picture.width, picture.height) == (inline.width, inline.height)


def test_a_failing_builder_raises_with_its_traceback_and_the_worker_goes_on(drawer, tmp_path) -> None:
    bad = job(tmp_path / "bad.png", "not a matrix", ["road"], "t")
    drawer.submit(bad, lambda picture: pytest.fail("a failed figure must not be delivered"))
    with pytest.raises(FigureError, match=r"bad\.png failed in the figure process(.|\n)*AttributeError: 'str'"):
        drawer.collect(until=0)
    delivered: list[Picture] = []
    drawer.submit(job(tmp_path / "good.png"), delivered.append)
    drawer.collect(until=0)
    assert len(delivered) == 1 and (tmp_path / "good.png").is_file() and drawer.background


def test_a_lost_worker_falls_back_to_drawing_here_without_losing_a_figure(drawer, tmp_path, caplog) -> None:
    delivered: list[Picture] = []
    drawer.submit(job(tmp_path / "first.png"), delivered.append)
    drawer.collect(until=0)
    drawer._process.kill()  # e.g. killed by the out-of-memory killer
    drawer._process.wait()
    with caplog.at_level(logging.WARNING, logger=background.__name__):
        drawer.submit(job(tmp_path / "second.png"), delivered.append)
        drawer.collect(until=0)
        drawer.submit(job(tmp_path / "third.png"), delivered.append)
    assert len(delivered) == 3 and all((tmp_path / f"{n}.png").is_file() for n in ("first", "second", "third"))
    assert not drawer.background and drawer.pending == 0
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "figure process stopped" in warning and "in the training process from now on" in warning


def test_the_worker_survives_ctrl_c_so_that_an_interrupted_run_keeps_its_figures(drawer, tmp_path) -> None:
    delivered: list[Picture] = []
    drawer.submit(job(tmp_path / "before.png"), delivered.append)
    drawer.collect(until=0)
    os.kill(drawer._process.pid, signal.SIGINT)  # what a terminal sends to the whole process group
    drawer.submit(job(tmp_path / "after.png"), delivered.append)
    drawer.collect(until=0)
    assert len(delivered) == 2 and drawer.background and drawer._process.poll() is None


def test_relative_paths_are_those_of_the_submitting_process(drawer, tmp_path, monkeypatch) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    drawer.submit(job(Path("one.png")), lambda picture: None)  # the worker starts here
    monkeypatch.chdir(tmp_path / "second")
    drawer.submit(job(Path("two.png")), lambda picture: None)
    drawer.collect(until=0)
    assert (tmp_path / "first" / "one.png").is_file() and (tmp_path / "second" / "two.png").is_file()


def test_figures_waiting_are_bounded(drawer, tmp_path) -> None:
    delivered: list[Picture] = []
    for i in range(background.MAX_PENDING + 4):
        drawer.submit(job(tmp_path / f"{i}.png"), delivered.append)
        assert drawer.pending <= background.MAX_PENDING
    drawer.collect(until=0)
    assert len(delivered) == background.MAX_PENDING + 4


def test_inline_mode_draws_in_this_process(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(background.MODE_VARIABLE, "inline")
    drawer = FigureDrawer()
    delivered: list[Picture] = []
    drawer.submit(job(tmp_path / "a.png"), delivered.append)
    assert len(delivered) == 1 and drawer._process is None and (tmp_path / "a.png").is_file()
    monkeypatch.setenv(background.MODE_VARIABLE, "threads")
    with pytest.raises(ValueError, match=r"LIGHTNING_SEG_FIGURES='threads': expected one of background, inline"):
        background_requested()


def test_no_figure_module_imports_torch() -> None:
    """The worker imports the builders by name: torch there would cost seconds and ~1 GB per run."""
    names = [f"lightning_seg.figures.{m.name}" for m in pkgutil.iter_modules(lightning_seg.figures.__path__)]
    assert "lightning_seg.figures.worker" in names
    loaded = "sorted(m for m in ('torch', 'lightning') if m in sys.modules)"
    code = f"import sys; import {', '.join(names)}; print({loaded})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_the_worker_draws_at_the_lowest_priority(drawer, tmp_path) -> None:
    """Training keeps the CPU it needs: the worker only gets what training leaves idle."""
    drawer.submit(job(tmp_path / "a.png"), lambda picture: None)
    drawer.collect(until=0)
    assert os.getpriority(os.PRIO_PROCESS, drawer._process.pid) == 19
