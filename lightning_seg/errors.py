"""One line for a config mistake: the key, the value, what was expected, and the closest valid names.

jsonargparse reports a bad value inside a subclass (``model.init_args.net.init_args...``) as a tree of
every Union alternative it tried; this turns that tree, and argparse's ``unrecognized arguments``, into
the one line a user needs. ``LIGHTNING_SEG_DEBUG=1`` keeps the full report.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

_STRUCTURE = (
    "Parser key",
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Problem with given class_path",
    "Not a valid subclass",
    "Subclass types expect",
    "a class path (str)",
    "a dict with",
    "a dict without",
)


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean X?`` for the closest of ``choices`` (empty when none is close)."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(close)}?" if close else ""


def yaml_problem(config_files: Sequence[str]) -> str | None:
    """``<file>, line L, column C: <problem>`` for the first config file that is not valid YAML, or None."""
    for name in config_files:
        path = Path(name)
        if not path.is_file():
            return f"config file {name} does not exist"
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            return f"{name}{where}: YAML syntax error: {problem}"
    return None


def config_files_in(args: Sequence[str]) -> list[str]:
    """The values of ``--config X`` / ``--config=X`` in a command line."""
    found = []
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            found.append(args[index + 1])
        elif arg.startswith("--config="):
            found.append(arg.split("=", 1)[1])
    return found


def config_error_message(text: str, known_options: Iterable[str] = ()) -> str:
    """One line from a jsonargparse/argparse error report.

    Args:
        text: the parser's message (``unrecognized arguments: ...`` or a ``Parser key`` tree).
        known_options: the parser's option strings, for close matches of an unknown ``--key``.
    """
    text = text.strip()
    if text.startswith("unrecognized arguments:"):
        unknown = [a.split("=", 1)[0] for a in text.split(":", 1)[1].split() if a.startswith("--")]
        options = list(known_options)
        hints = "".join(suggest(key, options) for key in unknown)
        return f"{text}.{hints}" if hints else text
    if text.startswith("Problems parsing config"):
        return " ".join(line.strip() for line in text.splitlines())
    lines = text.splitlines()
    keys = [m.group(1) for line in lines if (m := re.search(r'Parser key "([^"]+)"', line))]
    class_paths = [m.group(1) for line in lines if (m := re.search(r"given class_path '([^']+)'", line))]
    reasons = [
        line.strip().removeprefix("- ").strip()
        for line in lines
        if line.strip() and not line.strip().removeprefix("- ").startswith(_STRUCTURE)
    ]
    if not reasons:
        return lines[0]
    reason = reasons[-1]
    key = ".init_args.".join(keys)
    missing = re.search(r"module '([\w.]+)' has no attribute '(\w+)'", reason)
    if missing:
        module, name = missing.groups()
        choices = [n for n in dir(importlib.import_module(module)) if not n.startswith("_")]
        return f"{key}: {module} has no class {name!r}.{suggest(name, choices)}"
    option = re.search(r"Option '(\w+)' is not accepted", reason) or re.search(r"Key '(\w+)' is not expected", reason)
    if option and class_paths:
        name = option.group(1)
        params = _parameters(class_paths[-1])
        return (
            f"{key}.init_args.{name}: {class_paths[-1]} has no argument {name!r}.{suggest(name, params)}"
            f" Valid: {', '.join(params)}"
        )
    expected = re.search(r"Expected a (.+?)\. Got value: (.+)$", reason)
    if expected:
        kind = re.sub(r"<class '([\w.]+)'>", r"\1", expected.group(1))
        return f"{key}: expected {kind}, got {expected.group(2)!r}"
    return f"{key}: {reason}" if key else reason


def _parameters(class_path: str) -> list[str]:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    parameters = inspect.signature(cls.__init__).parameters.items()
    return [p for p, v in parameters if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]


def debug() -> bool:
    """Whether ``LIGHTNING_SEG_DEBUG`` asks for full reports instead of one line."""
    return bool(os.environ.get("LIGHTNING_SEG_DEBUG"))
