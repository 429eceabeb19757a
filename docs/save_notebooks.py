"""Run the example notebooks from an empty state and save their outputs, so that readers see them on GitHub.

::

    python docs/save_notebooks.py                  # every notebook in notebooks/
    python docs/save_notebooks.py quickstart       # only notebooks/quickstart.ipynb

``pytest`` runs the same notebooks under nbval and compares the outputs of the cells tagged
``nbval-check-output`` with the saved ones (after ``tests/nbval_sanitize.cfg``); cells tagged
``nbval-ignore-output`` (the live panel, anything that depends on what an earlier run left in the jugdir)
are only run. When a change in jugnb changes what such a cell prints, run this script and commit the
notebooks.

The notebooks run in a copy of ``notebooks/`` and ``examples/`` under the system's temporary folder (always
the same path, so that paths in the saved outputs do not change from one save to the next), where no
results exist yet: the same state as a fresh clone in CI. Live widgets cannot be saved usefully (their state
is large and a reader without the kernel sees "model not found"), so the widget views are dropped and each
widget's own static HTML fallback, which jugnb's panels provide, is kept.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widgets(notebook: Any) -> None:
    """Drop widget views and saved widget state, keeping the text and HTML fallbacks of each output."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if set(data) <= {"text/plain"}:
                    continue  # only the widget's repr (``TaskBrowser(children=...)``) is left
            elif "jugnb-static-fallback" in str(data.get("text/html", "")):
                continue  # the panel's fallback output: the panel's own static HTML is kept above
            kept.append(output)
        cell.outputs = kept


def run(name: str, workdir: Path, timeout: int) -> float:
    """Execute ``notebooks/<name>.ipynb`` in ``workdir`` and save it with its outputs; return the seconds."""
    source = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir / "notebooks")}},
        record_timing=False,
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    strip_widgets(notebook)
    nbformat.validate(notebook)
    nbformat.write(notebook, source)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run and save the notebooks named in ``argv`` (default: all); return the exit code."""
    parser = argparse.ArgumentParser(description="Run the example notebooks and save their outputs.")
    parser.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    names = args.names or sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    workdir = Path(tempfile.gettempdir()) / "jugnb-notebooks"
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(NOTEBOOKS, workdir / "notebooks", ignore=shutil.ignore_patterns("*.jugdata*", ".jugnb"))
    if (ROOT / "examples").is_dir():
        shutil.copytree(ROOT / "examples", workdir / "examples")
    for name in names:
        print(f"{name}: {run(name, workdir, args.timeout):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
