"""The magics in real Jupyter kernels (jupyter_client and nbclient), end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from conftest import BIN, write_notebook
from kernelutil import Kernel
from nbclient import NotebookClient

from jugnb.notebook.export import export_notebook

pytestmark = pytest.mark.kernel

CELLS = [
    "%load_ext jugnb",
    "%%jugfile\nfrom jug import TaskGenerator, bvalue\n\n@TaskGenerator\ndef double(x):\n    return 2 * x\n\n"
    "xs = [double(i) for i in range(4)]\n",
    "ordinary = 'an ordinary cell'",
    "%%jugfile --name total\n@TaskGenerator\ndef add(values):\n    return sum(values)\n\ntotal = add(xs)\n",
    "%%jugfile\nn = bvalue(total)\nmore = [double(10 + i) for i in range(n)]\n",
]
HASHES = "import json; print(json.dumps(sorted(t.hash().decode() for t in get_tasks())))"


@pytest.fixture
def notebook(project: Path) -> Path:
    return write_notebook(project / "analysis.ipynb", CELLS)


@pytest.fixture
def kernel(project: Path, notebook: Path, jug_env: dict[str, str]) -> Iterator[Kernel]:
    started = Kernel(project, notebook="analysis.ipynb")
    yield started
    started.shutdown()


def run_all(kernel: Kernel, notebook: Path, upto: int | None = None) -> list[str]:
    """Run the code cells (all, or the first ``upto``) as JupyterLab would, with cell ids; return outputs."""
    cells = nbformat.read(notebook, as_version=4).cells[:upto]
    return [kernel.run(c.source, cell_id=c.id).ok().text for c in cells if c.cell_type == "code"]


def kernel_jugfile(project: Path) -> str:
    pointer = project / ".jugnb" / "analysis.current"
    return Path(pointer.read_text().strip()).read_text()


def plain_jug_hashes(project: Path, jugfile: Path) -> list[str]:
    """Task hashes that plain jug computes on ``jugfile`` (its import stops at the same barrier)."""
    code = (
        "import json, sys, jug, jug.task\n"
        f"jug.init({str(jugfile)!r}, 'analysis.jugdata')\n"
        "print(json.dumps(sorted(t.hash().decode() for t in jug.task.alltasks)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_restart_and_run_all_gives_the_exported_jugfile_and_jug_hashes(
    kernel: Kernel, notebook: Path, project: Path, run: object
) -> None:
    outputs = run_all(kernel, notebook)
    assert "stopped at bvalue in %%jugfile cell 3 (id cell-5), line 2: waiting for 5 tasks" in outputs[4]
    exported = export_notebook(notebook).text
    assert kernel_jugfile(project) == exported

    kernel.restart()
    run_all(kernel, notebook)
    assert kernel_jugfile(project) == exported
    subprocess.run([str(BIN / "jugnb"), "export", str(notebook)], check=True, capture_output=True, timeout=60)
    in_kernel = json.loads(kernel.run(HASHES).ok().stdout)
    assert in_kernel == plain_jug_hashes(project, project / "analysis.py")


def test_graph_extends_after_bvalue_clears(kernel: Kernel, notebook: Path, project: Path) -> None:
    run_all(kernel, notebook)
    subprocess.run(
        [str(BIN / "jugnb"), "execute", str(notebook)], check=True, capture_output=True, timeout=120
    )
    result = kernel.run("%jug status").ok()
    assert any("text/html" in d for d in result.data)
    assert (
        kernel.run("print(len(more), value(more))").ok().stdout.strip()
        == "12 [20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42]"
    )


def test_errors_show_cell_and_line_without_traceback(kernel: Kernel, notebook: Path) -> None:
    run_all(kernel, notebook, upto=4)  # stop before the bvalue: later cells would not be imported
    result = kernel.run("%%jugfile\nx = 1\ny = undefined_name\n", cell_id="new-cell")
    # IPython shows a UsageError as one line on stderr, without a traceback.
    assert result.stderr.startswith(
        "UsageError: Importing the jugfile failed at %%jugfile cell 3 (id new-cell), line 3"
    )
    assert "NameError" in result.stderr and "Traceback" not in result.text
    assert kernel.run("print(len(get_tasks()))").ok().stdout.strip() == "5"


def test_nbclient_run_with_named_cells_matches_export(
    project: Path, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [
        "%load_ext jugnb",
        *[c.replace("%%jugfile\n", f"%%jugfile --name c{i}\n", 1) for i, c in enumerate(CELLS[1:])],
    ]
    path = write_notebook(project / "analysis.ipynb", cells)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    )
    monkeypatch.setenv("JPY_SESSION_NAME", "analysis.ipynb")  # what Jupyter Server would set
    client.execute()
    assert kernel_jugfile(project) == export_notebook(path).text
