"""Run the notebooks of ``notebooks/`` headless, top to bottom, with their parameters overridden.

``make notebooks-run`` and the tests use this one runner. Each notebook has one code cell tagged
``parameters`` (papermill's convention) holding plain assignments; :func:`run_notebook` executes the
code cells in order in one namespace, the way a kernel runs them, and applies the overrides right
after that cell, so a test can run a notebook at a small size without editing it::

    python -m lightning_seg.notebooks notebooks/*.ipynb            # as written
    python -m lightning_seg.notebooks --set EPOCHS=1 notebooks/01_quickstart.ipynb
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"


def load_notebook(path: Path) -> dict[str, Any]:
    """Read an nbformat-4 notebook."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    if notebook.get("nbformat") != 4:
        raise ValueError(f"{path}: not an nbformat 4 notebook (nbformat={notebook.get('nbformat')!r})")
    return notebook


def code_cells(notebook: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """``(source, is_parameters_cell)`` of every code cell, in order."""
    return [
        ("".join(cell["source"]), PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]


def parameter_names(source: str) -> list[str]:
    """The names a parameters cell assigns (plain ``NAME = value`` statements only)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


@contextmanager
def working_directory(path: Path):  # noqa: ANN201 (a context manager)
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_notebook(path: Path, parameters: Mapping[str, Any] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Execute the code cells of ``path`` in one namespace and return it.

    Args:
        path: the notebook.
        parameters: values replacing those of the cell tagged ``parameters``; a name that cell does not
            assign is an error (a misspelt parameter would otherwise be ignored).
        cwd: the working directory while the cells run (default: the notebook's folder, where JupyterLab
            starts its kernels).
    """
    path = Path(path).resolve()
    cells = code_cells(load_notebook(path))
    tagged = [source for source, is_parameters in cells if is_parameters]
    if len(tagged) != 1:
        raise ValueError(f"{path.name}: expected one code cell tagged '{PARAMETERS_TAG}', found {len(tagged)}")
    unknown = sorted(set(parameters or {}) - set(parameter_names(tagged[0])))
    if unknown:
        raise ValueError(f"{path.name}: no parameters {unknown}; its parameters are {parameter_names(tagged[0])}")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with working_directory(cwd or path.parent):
        for index, (source, is_parameters) in enumerate(cells):
            exec(compile(source, f"{path.name}[code cell {index}]", "exec"), namespace)  # noqa: S102
            if is_parameters:
                namespace.update(parameters or {})
    return namespace


def _assignment(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    if not name.isidentifier() or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (a Python literal), got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main(argv: list[str] | None = None) -> int:
    """Run notebooks headless; exit status 1 if any fails."""
    parser = argparse.ArgumentParser(prog="python -m lightning_seg.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--set", dest="parameters", action="append", type=_assignment, default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "agg")
    failed = 0
    for notebook in args.notebooks:
        start = time.perf_counter()
        try:
            names = {
                name
                for source, tagged in code_cells(load_notebook(notebook))
                if tagged
                for name in parameter_names(source)
            }
            run_notebook(notebook, {name: value for name, value in args.parameters if name in names})
        except Exception as error:  # noqa: BLE001 (report every notebook, then fail)
            failed += 1
            print(f"{notebook}: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        else:
            print(f"{notebook}: ran in {time.perf_counter() - start:.0f} s")
        finally:
            import matplotlib.pyplot as plt

            plt.close("all")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
