"""jugnb.notebook.jugfile: cell splitting and checks, assembly, line mapping, module names, safe writing;
errors."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from jugnb.backends import spec as spec_module
from jugnb.errors import CellError, ForeignFileError, JugnbError, NotebookError
from jugnb.notebook.jugfile import (
    GENERATED_MARK,
    Fragment,
    assemble,
    atomic_write,
    check_fragment,
    is_generated,
    module_name_for,
    parse_cell_options,
    split_cell,
    write_jugfile,
)


@pytest.mark.parametrize(
    ("stem", "module"),
    [
        ("grid_search", "grid_search"),
        ("my analysis-v2", "my_analysis_v2"),
        ("2024 results", "_2024_results"),
        ("class", "class_"),
        ("lambda", "lambda_"),
        ("a..b  c", "a_b_c"),
        ("-draft-", "draft"),
        ("---", "jugfile"),
    ],
)
def test_module_name_for(stem: str, module: str) -> None:
    assert module_name_for(stem) == module
    assert module.isidentifier()


# split_cell


def test_split_cell_plain_code_is_not_a_jugfile_cell() -> None:
    assert split_cell("x = 1\nprint(x)", where="cell 1") is None


@pytest.mark.parametrize("source", ["", "\n\n", "# only a comment\n# and another", "%%time\nx = 1"])
def test_split_cell_other_cells_are_not_jugfile_cells(source: str) -> None:
    assert split_cell(source, where="cell 1") is None


def test_split_cell_removes_the_magic_line() -> None:
    assert split_cell("%%jugfile\nx = 1\ny = 2", where="cell 1") == ("", "x = 1\ny = 2")


def test_split_cell_returns_the_magic_arguments() -> None:
    assert split_cell("%%jugfile --name prep -q\nx = 1", where="cell 1") == ("--name prep -q", "x = 1")


def test_split_cell_needs_the_exact_magic_name() -> None:
    assert split_cell("%%jugfile2\nx = 1", where="cell 1") is None


def test_split_cell_accepts_leading_blank_lines() -> None:
    # IPython drops leading blank lines and then runs the cell magic, so export must agree with the kernel.
    assert split_cell("\n  \n%%jugfile\nx = 1", where="cell 1") == ("", "x = 1")


def test_split_cell_refuses_a_comment_before_the_magic() -> None:
    with pytest.raises(CellError, match="must be the first line") as info:
        split_cell("# set up the tasks\n%%jugfile\nx = 1", where="nb.ipynb, cell 4")
    assert "nb.ipynb, cell 4" in str(info.value)
    assert "line 2" in str(info.value)
    assert info.value.line == 2


def test_split_cell_ignores_the_magic_inside_ordinary_code() -> None:
    # e.g. a cell that writes a notebook: its string holds a %%jugfile line, but the cell is plain code.
    assert split_cell('src = """\n%%jugfile\nx = 1\n"""', where="cell 1") is None


# %%jugfile options


def test_parse_cell_options_defaults() -> None:
    options = parse_cell_options("")
    assert options.name is None
    assert options.quiet is False


def test_parse_cell_options_name_and_quiet() -> None:
    options = parse_cell_options("--name 'prep step' -q")
    assert options.name == "prep step"
    assert options.quiet is True


@pytest.mark.parametrize("args", ["--bogus", "positional", "--name", "--name 'unclosed"])
def test_parse_cell_options_rejects_bad_arguments(args: str) -> None:
    with pytest.raises(ValueError):
        parse_cell_options(args)


# check_fragment: IPython syntax and syntax errors, located in the cell


@pytest.mark.parametrize(
    ("body", "line", "code"),
    [
        ("import os\n%time os.getcwd()", 3, "%time os.getcwd()"),
        ("!ls", 2, "!ls"),
        ("import os\n\nx = !ls", 4, "x = !ls"),
        ("files = %sx ls", 2, "files = %sx ls"),
        ("def f():\n    !ls", 3, "!ls"),
        ("x = 1\n%%time\ny = 2", 3, "%%time"),
    ],
)
def test_check_fragment_refuses_ipython_syntax(body: str, line: int, code: str) -> None:
    with pytest.raises(CellError, match="IPython syntax") as info:
        check_fragment(Fragment(body, cell_id="abc", index=7), 2)
    message = str(info.value)
    assert message.startswith(f"cell 7 (%%jugfile cell 2, id abc), line {line}: `{code}`")
    assert "plain jug cannot run" in message
    assert info.value.line == line


def test_check_fragment_locates_syntax_errors_in_the_cell() -> None:
    body = "import os\n\ndef f(:\n    pass"
    with pytest.raises(CellError, match="syntax error") as info:
        check_fragment(Fragment(body, index=3), 1)
    # Line 4 of the cell: the %%jugfile line is line 1.
    assert str(info.value).startswith("cell 3 (%%jugfile cell 1), line 4: syntax error")
    assert "def f(:" in str(info.value)
    assert info.value.line == 4


def test_check_fragment_accepts_plain_python() -> None:
    check_fragment(Fragment("import os\n\n\ndef f():\n    return os.sep\n"), 1)


# assemble


def _fragments() -> list[Fragment]:
    return [
        Fragment(
            "from jug import TaskGenerator\n\n\n@TaskGenerator\ndef f(x):\n    return x\n", "id-a", "prep"
        ),
        Fragment("", "id-b"),
        Fragment("a = f(1)\nb = f(2)\n\n\n", None, None),
    ]


def test_assemble_header_marks_the_file_as_generated() -> None:
    text = assemble(_fragments(), "my analysis.ipynb").text
    first, second = text.splitlines()[:2]
    assert first.startswith(GENERATED_MARK)
    assert "from my analysis.ipynb" in first
    assert "Do not edit this file" in second


def test_assemble_names_each_cell_in_a_comment_in_order() -> None:
    text = assemble(_fragments(), "nb.ipynb").text
    comments = [line for line in text.splitlines() if line.startswith("# %%jugfile cell")]
    assert comments == [
        "# %%jugfile cell 1 · name prep",
        "# %%jugfile cell 2 · id id-b",
        "# %%jugfile cell 3",
    ]
    assert text.index("def f(x)") < text.index("a = f(1)")


def test_assemble_text_is_the_bodies_without_magic_lines() -> None:
    jugfile = assemble(_fragments(), "nb.ipynb")
    assert "%%jugfile\n" not in jugfile.text
    assert jugfile.text.endswith("a = f(1)\nb = f(2)\n")
    compile(jugfile.text, "nb.py", "exec")


def test_assemble_is_deterministic() -> None:
    assert assemble(_fragments(), "nb.ipynb") == assemble(_fragments(), "nb.ipynb")


def test_assemble_maps_jugfile_lines_back_to_cells() -> None:
    jugfile = assemble(_fragments(), "nb.ipynb")
    lines = jugfile.text.splitlines()
    # Cell lines count the %%jugfile line as line 1, so a body's first line is cell line 2.
    assert jugfile.locate(lines.index("def f(x):") + 1) == (1, 6)
    assert jugfile.locate(lines.index("b = f(2)") + 1) == (3, 3)
    assert jugfile.locate(1) is None
    assert jugfile.locate(lines.index("# %%jugfile cell 3") + 1) is None
    assert jugfile.describe_line(lines.index("b = f(2)") + 1) == "%%jugfile cell 3, line 3"


def test_assemble_checks_every_fragment() -> None:
    fragments = [Fragment("x = 1"), Fragment("y = 2\n%time y", cell_id="c2", index=5)]
    with pytest.raises(CellError, match=r"^cell 5 \(%%jugfile cell 2, id c2\), line 3: `%time y`"):
        assemble(fragments, "nb.ipynb")


def test_assemble_refuses_a_future_import_after_other_code() -> None:
    fragments = [Fragment("x = 1"), Fragment("from __future__ import annotations", index=4)]
    with pytest.raises(CellError, match="cell 4 .*once the %%jugfile cells are joined"):
        assemble(fragments, "nb.ipynb")


def test_fragment_describe_without_a_notebook_index() -> None:
    assert Fragment("", cell_id="xyz", name="prep").describe(2) == "%%jugfile cell 2 (--name prep, id xyz)"
    assert Fragment("").describe(1) == "%%jugfile cell 1"


def test_fragment_key_prefers_the_name() -> None:
    assert Fragment("", cell_id="xyz", name="prep").key == "prep"
    assert Fragment("", cell_id="xyz").key == "xyz"


# writing


def test_write_jugfile_writes_and_reports_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "out" / "nb.py"
    text = f"{GENERATED_MARK} from nb.ipynb\nx = 1\n"
    assert write_jugfile(path, text) is True
    assert path.read_text(encoding="utf-8") == text
    assert write_jugfile(path, text) is False
    assert write_jugfile(path, text + "y = 2\n") is True
    assert path.read_text(encoding="utf-8").endswith("y = 2\n")


def test_write_jugfile_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "nb.py"
    path.write_text("# my own hand-written jugfile\n", encoding="utf-8")
    with pytest.raises(ForeignFileError, match="not generated by jugnb.*--force") as info:
        write_jugfile(path, f"{GENERATED_MARK}\n")
    assert info.value.path == str(path)
    assert path.read_text(encoding="utf-8") == "# my own hand-written jugfile\n"


def test_write_jugfile_force_replaces_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "nb.py"
    path.write_text("# my own\n", encoding="utf-8")
    assert write_jugfile(path, f"{GENERATED_MARK}\n", force=True) is True
    assert is_generated(path)


def test_is_generated(tmp_path: Path) -> None:
    assert not is_generated(tmp_path / "missing.py")
    (tmp_path / "a.py").write_text(f"x = 1\n{GENERATED_MARK}\n", encoding="utf-8")
    assert not is_generated(tmp_path / "a.py")
    (tmp_path / "b.py").write_text(f"{GENERATED_MARK} from b.ipynb\n", encoding="utf-8")
    assert is_generated(tmp_path / "b.py")


def test_atomic_write_gives_the_umask_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # mkstemp alone would leave the file 0600: unreadable for the group, unlike any file the user writes.
    spec_module._umask.cache_clear()
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.py", "x = 1\n")
    finally:
        os.umask(old)
        spec_module._umask.cache_clear()
    assert stat.S_IMODE((tmp_path / "f.py").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.py"]


# errors


@pytest.mark.parametrize("cls", [JugnbError, CellError, NotebookError])
def test_errors_pickle_with_their_location(cls: type[JugnbError]) -> None:
    err = cls("nb.ipynb, cell 2, line 3: bad", path="nb.ipynb", cell="cell 2", line=3)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert (str(copy), copy.path, copy.cell, copy.line) == (str(err), "nb.ipynb", "cell 2", 3)
