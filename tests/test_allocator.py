"""The CLI caps glibc's malloc arenas unless the user chose a cap (soak: flat resident memory)."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from lightning_seg import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None, reason="glibc")
def test_the_arena_cap_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.limit_malloc_arenas() is True


def test_a_cap_chosen_in_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    calls = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: calls.append(name))
    assert allocator.limit_malloc_arenas() is False and calls == []


def test_the_cli_sets_it_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_seg import cli

    calls = []
    monkeypatch.setattr(cli, "limit_malloc_arenas", lambda: calls.append(True))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == [True]
