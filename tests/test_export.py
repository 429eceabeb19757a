"""jugnb.notebook.export and jugnb.notebook.project: a notebook file -> its jugfile, module name and paths."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from conftest import TIMEOUT, write_notebook

from jugnb.errors import CellError, ModuleNameError, NoJugfileCellsError, NotebookError
from jugnb.notebook.export import export_notebook, read_notebook
from jugnb.notebook.jugfile import GENERATED_MARK
from jugnb.notebook.project import Project

MakeNotebook = Callable[..., Path]
Cells = Callable[[str], list[tuple[str, str]]]


@pytest.fixture
def simple(make_notebook: MakeNotebook, cells: Cells) -> Path:
    return make_notebook(cells("simple"), name="my analysis-v2.ipynb")


# export rules


def test_header_names_the_notebook(simple: Path) -> None:
    first = export_notebook(simple).text.splitlines()[0]
    assert first == f"{GENERATED_MARK} from my analysis-v2.ipynb: its %%jugfile cells, in order."


def test_one_comment_per_jugfile_cell_with_ordinal_name_and_id(simple: Path) -> None:
    text = export_notebook(simple).text
    comments = [line for line in text.splitlines() if line.startswith("# %%jugfile")]
    # Notebook cells 2 and 5 are the %%jugfile cells; the ordinal counts %%jugfile cells only.
    assert comments == ["# %%jugfile cell 1 · name prep", "# %%jugfile cell 2 · id cell-5"]


def test_magic_lines_are_parsed_not_copied(simple: Path) -> None:
    text = export_notebook(simple).text
    assert "%%jugfile --name" not in text
    assert not [line for line in text.splitlines() if line.startswith("%")]


def test_only_code_cells_with_the_magic_are_exported(simple: Path) -> None:
    jugfile = export_notebook(simple)
    assert "an ordinary cell" not in jugfile.text
    assert "raw_cells_are_skipped" not in jugfile.text
    assert "Doubling numbers" not in jugfile.text
    assert [f.index for f in jugfile.fragments] == [2, 5]


def test_cells_in_notebook_order(make_notebook: MakeNotebook) -> None:
    path = make_notebook(
        ["%%jugfile\nfirst = 1", "x = 0", "%%jugfile\nsecond = first + 1", "%%jugfile\nthird = 3"]
    )
    text = export_notebook(path).text
    assert text.index("first = 1") < text.index("second = first + 1") < text.index("third = 3")


def test_exported_text_is_the_cell_bodies(simple: Path) -> None:
    text = export_notebook(simple).text
    assert "\n\n# %%jugfile cell 1 · name prep\nfrom jug import TaskGenerator\n\n\n@TaskGenerator\n" in text
    assert text.endswith(
        "\n\n# %%jugfile cell 2 · id cell-5\ndoubled = [double(i) for i in range(5)]\ntotal = add(doubled)\n"
    )
    compile(text, "my_analysis_v2.py", "exec")


def test_leading_blank_lines_before_the_magic_are_accepted(make_notebook: MakeNotebook) -> None:
    path = make_notebook(["\n\n%%jugfile\nx = 1"])
    assert export_notebook(path).text.endswith("# %%jugfile cell 1 · id cell-1\nx = 1\n")


def test_cell_without_id_gets_a_comment_without_id(make_notebook: MakeNotebook) -> None:
    path = make_notebook(["%%jugfile\nx = 1"], ids=False)
    assert "# %%jugfile cell 1\nx = 1\n" in export_notebook(path).text


def test_export_is_deterministic_for_notebooks_without_ids(make_notebook: MakeNotebook) -> None:
    # nbformat invents random ids for cells without one; they must not reach the jugfile.
    path = make_notebook(["%%jugfile\nx = 1"], ids=False)
    assert export_notebook(path).text == export_notebook(path).text


def test_v45_notebook_missing_ids_exports_without_them(project: Path) -> None:
    cell = {
        "cell_type": "code",
        "source": "%%jugfile\nx = 1",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }
    data = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = project / "noid.ipynb"
    path.write_text(json.dumps(data), encoding="utf-8")
    # No MissingIDFieldWarning either: the test session turns warnings into errors.
    text = export_notebook(path).text
    assert "# %%jugfile cell 1\nx = 1\n" in text
    assert text == export_notebook(path).text


def test_v4_notebook_is_read_without_importing_nbformat(project: Path) -> None:
    # Importing nbformat costs a second or more where jsonschema's format checkers are installed.
    code = (
        "import sys; from pathlib import Path; from jugnb.notebook.export import export_notebook; "
        "text = export_notebook(Path(sys.argv[1])).text; "
        "assert 'nbformat' not in sys.modules, 'nbformat imported'; print(text, end='')"
    )
    path = write_notebook(project / "analysis.ipynb", ["x = 0", "%%jugfile\nx = 1\ny = 2"])
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == export_notebook(path).text
    assert result.stdout.endswith("# %%jugfile cell 1 · id cell-2\nx = 1\ny = 2\n")


# old nbformat versions


def _write_v3(path: Path, sources: list[str]) -> Path:
    v3 = nbformat.v3
    worksheet = v3.new_worksheet(cells=[v3.new_code_cell(input=source) for source in sources])
    path.write_text(nbformat.writes(v3.new_notebook(worksheets=[worksheet]), version=3), encoding="utf-8")
    return path


def test_v3_notebook_is_converted(project: Path) -> None:
    path = _write_v3(
        project / "old.ipynb", ["import os", "%%jugfile\nfrom jug import Task\nt = Task(sum, [1, 2])"]
    )
    assert json.loads(path.read_text(encoding="utf-8"))["nbformat"] == 3
    jugfile = export_notebook(path)
    assert jugfile.text.endswith("# %%jugfile cell 1\nfrom jug import Task\nt = Task(sum, [1, 2])\n")
    assert [f.index for f in jugfile.fragments] == [2]


def test_v3_notebook_exports_the_same_text_every_time(project: Path) -> None:
    path = _write_v3(project / "old.ipynb", ["%%jugfile\nx = 1"])
    assert export_notebook(path).text == export_notebook(path).text
    assert read_notebook(path).cells[0].get("id") is None


# bad input


def test_missing_notebook(project: Path) -> None:
    with pytest.raises(NotebookError, match="no such notebook"):
        export_notebook(project / "missing.ipynb")


def test_invalid_json(project: Path) -> None:
    path = project / "broken.ipynb"
    path.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(NotebookError, match=r"broken.ipynb: not valid notebook JSON \(line 1"):
        export_notebook(path)


@pytest.mark.parametrize(
    "content",
    ["[]", "{}", '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', '{"nbformat": 99, "cells": []}'],
)
def test_json_that_is_not_a_notebook(project: Path, content: str) -> None:
    path = project / "odd.ipynb"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NotebookError, match="odd.ipynb: not a valid Jupyter notebook"):
        export_notebook(path)


def test_damaged_cell_source(project: Path) -> None:
    cell = {"cell_type": "code", "source": 5, "metadata": {}, "outputs": [], "execution_count": None}
    path = project / "damaged.ipynb"
    path.write_text(
        json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 2}), "utf-8"
    )
    with pytest.raises(NotebookError, match="damaged.ipynb, cell 1: its source is not text"):
        export_notebook(path)


def test_not_utf8(project: Path) -> None:
    path = project / "latin.ipynb"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(NotebookError, match="cannot read the notebook"):
        export_notebook(path)


def test_no_jugfile_cells(make_notebook: MakeNotebook) -> None:
    path = make_notebook(["x = 1", ("markdown", "%%jugfile\nnot code")])
    with pytest.raises(NoJugfileCellsError, match="has no %%jugfile cells.*first"):
        export_notebook(path)


@pytest.mark.parametrize(
    ("source", "line", "code"),
    [
        ("%%jugfile\nimport os\n%time os.getcwd()", 3, "%time os.getcwd()"),
        ("%%jugfile\n!ls", 2, "!ls"),
        ("%%jugfile\nx = 1\nfiles = !ls", 3, "files = !ls"),
    ],
)
def test_ipython_syntax_names_notebook_cell_and_line(
    make_notebook: MakeNotebook, source: str, line: int, code: str
) -> None:
    path = make_notebook(["x = 1", "%%jugfile\nok = 1", source])
    with pytest.raises(CellError) as info:
        export_notebook(path)
    message = str(info.value)
    assert message.startswith(f"analysis.ipynb, cell 3 (%%jugfile cell 2, id cell-3), line {line}: `{code}`")
    assert "plain jug cannot run" in message
    assert info.value.path == str(path)
    assert info.value.line == line


def test_syntax_error_names_the_line_in_the_cell_not_in_the_jugfile(make_notebook: MakeNotebook) -> None:
    long_cell = "%%jugfile\n" + "\n".join(f"a{i} = {i}" for i in range(20))
    path = make_notebook([long_cell, "%%jugfile\nimport os\n\ndef f(:\n    pass"])
    with pytest.raises(CellError, match="syntax error") as info:
        export_notebook(path)
    assert str(info.value).startswith(
        "analysis.ipynb, cell 2 (%%jugfile cell 2, id cell-2), line 4: syntax error"
    )
    assert "def f(:" in str(info.value)
    assert info.value.line == 4


def test_comment_before_the_magic(make_notebook: MakeNotebook) -> None:
    path = make_notebook(["x = 1", "# the tasks\n%%jugfile\ny = 2"])
    with pytest.raises(CellError, match="must be the first line") as info:
        export_notebook(path)
    assert str(info.value).startswith("analysis.ipynb, cell 2: `%%jugfile` must be the first line")


def test_two_cells_with_the_same_name(make_notebook: MakeNotebook) -> None:
    # The kernel replaces a cell's fragment by the next cell run with the same --name: export must not differ.
    path = make_notebook(["%%jugfile --name prep\nx = 1", "y = 0", "%%jugfile --name prep\nx = 2"])
    with pytest.raises(CellError, match="analysis.ipynb, cell 3: cells 1 and 3 are both `--name prep`"):
        export_notebook(path)


def test_bad_magic_arguments(make_notebook: MakeNotebook) -> None:
    path = make_notebook(["%%jugfile --bogus\nx = 1"])
    with pytest.raises(CellError, match=r"cell 1, line 1: bad %%jugfile arguments `--bogus`"):
        export_notebook(path)


# project: module name and paths


def test_project_paths(project: Path, make_notebook: MakeNotebook) -> None:
    notebook = make_notebook(["%%jugfile\nx = 1"], name="my analysis-v2.ipynb")
    p = Project.for_notebook(notebook)
    assert p.module == "my_analysis_v2"
    assert p.export_path == project / "my_analysis_v2.py"
    assert p.default_jugdir == project / "my_analysis_v2.jugdata"
    assert p.state_dir == project / ".jugnb"
    assert Project.for_notebook(notebook, "other").export_path == project / "other.py"


@pytest.mark.parametrize(
    ("stem", "origin"), [("json", "the standard library"), ("numpy", "numpy"), ("sys", "built in")]
)
def test_project_refuses_a_module_name_that_shadows_an_importable_module(
    project: Path, stem: str, origin: str
) -> None:
    with pytest.raises(ModuleNameError, match=f"would shadow the importable module `{stem}`") as info:
        Project.for_notebook(project / f"{stem}.ipynb")
    assert origin in str(info.value)
    assert "--name OTHER_NAME" in str(info.value)


def test_project_names_the_flag_to_choose_another_module(project: Path) -> None:
    with pytest.raises(ModuleNameError, match="--module OTHER_NAME"):
        Project.for_notebook(project / "json.ipynb", flag="--module")


@pytest.mark.parametrize("name", ["my module", "my.module", "9lives", "-draft", "a--"])
def test_project_refuses_an_invalid_module_name(project: Path, name: str) -> None:
    # Hyphenated identifiers (`my-module`) are valid: jug names a jugfile's module after its file.
    with pytest.raises(ModuleNameError, match=f"`{name}` is not a valid module name"):
        Project.for_notebook(project / "nb.ipynb", name)


def test_project_ignores_its_own_exported_module(project: Path) -> None:
    # The exported <module>.py beside the notebook is not a module that the name would shadow.
    (project / "analysis.py").write_text("x = 1\n", encoding="utf-8")
    assert Project.for_notebook(project / "analysis.ipynb").module == "analysis"


def test_snapshot_is_content_addressed_and_immutable(project: Path) -> None:
    p = Project.for_notebook(project / "analysis.ipynb")
    first = p.snapshot("x = 1\n")
    assert first.name == "analysis.py"
    assert first.parent.parent == project / ".jugnb" / "jugfiles"
    assert first.read_text(encoding="utf-8") == "x = 1\n"
    assert p.snapshot("x = 1\n") == first
    second = p.snapshot("x = 2\n")
    assert second != first
    assert first.read_text(encoding="utf-8") == "x = 1\n"


def test_state_dir_ignores_itself_in_git(project: Path) -> None:
    state = Project.for_notebook(project / "analysis.ipynb").ensure_state_dir()
    assert (state / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"
