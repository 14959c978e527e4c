"""albumentations is pinned to 2.0.x and importing lightning_seg never triggers its online update check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import albumentations

# Run in a fresh interpreter: records whether albumentations' check_for_updates runs and whether any
# socket connection is attempted, with the network blocked.
PROBE = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, json, os, socket, sys

    calls, connects = [], []

    def refuse(self, address):
        connects.append(str(address))
        raise OSError("network blocked by the test")

    socket.socket.connect = refuse

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "albumentations.check_version":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                module.check_for_updates = lambda: calls.append("check_for_updates")

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Spy())
    exec(sys.argv[1])
    print(json.dumps({"calls": calls, "connects": connects, "env": os.environ.get("NO_ALBUMENTATIONS_UPDATE")}))
    """
)


def _probe(statement: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, statement], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_albumentations_is_pinned_to_2_0():
    major, minor = (int(part) for part in albumentations.__version__.split(".")[:2])
    assert (major, minor) == (2, 0)


def test_importing_lightning_seg_does_not_check_for_updates():
    # Control: the probe sees albumentations' own check when nothing disables it.
    assert _probe("import albumentations")["calls"] == ["check_for_updates"]
    seen = _probe("import lightning_seg, lightning_seg.data")
    assert seen == {"calls": [], "connects": [], "env": "1"}
