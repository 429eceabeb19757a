"""Binder can build the repository and run every example notebook, with widgets.

repo2docker installs ``binder/requirements.txt`` (from the repository's root), installs ``binder/apt.txt``
with apt, and runs ``binder/postBuild``. These tests check, without network access, that the requirements
install jugnb from this repository, that they (with jugnb's own dependencies and the extras they ask for)
provide every top-level module that the notebooks' code cells import, ``%%jugfile`` cells included, and
that JupyterLab gets the widget manager. The README's Binder link opens the quickstart notebook.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: A requirement line that installs the repository itself: ``.``, ``./``, ``-e .``, ``.[examples]``, ...
_REPOSITORY = re.compile(r"^(?:-e\s+|--editable\s+)?\.\/?(?:\[(?P<extras>[\w,\s-]+)\])?$")


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0])


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [
        line.split(" #")[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]


def repository_extras() -> set[str] | None:
    """The extras of the requirement line that installs this repository, or ``None`` if there is none."""
    for line in requirement_lines():
        match = _REPOSITORY.match(line)
        if match:
            return {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
    return None


def jugnb_distributions(extras: set[str]) -> set[str]:
    """Distributions that installing jugnb with ``extras`` brings: its dependencies and those of the extras.

    Read from jugnb's installed metadata (``pip install -e .`` writes it from ``pyproject.toml``).
    """
    names, todo, seen = set(), list(extras), set()
    requirements = [_split_marker(r) for r in importlib.metadata.requires("jugnb") or []]
    names.update(requirement_name(r) for r, extra in requirements if extra is None)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement, of in requirements:
            if of != extra:
                continue
            if requirement_name(requirement) == "jugnb":  # jugnb[redis,examples] inside an extra
                todo += re.findall(r"[\w-]+", requirement.partition("[")[2])
            else:
                names.add(requirement_name(requirement))
    return names


def _split_marker(requirement: str) -> tuple[str, str | None]:
    """``("scikit-learn>=1.3", "examples")`` from ``'scikit-learn>=1.3; extra == "examples"'``."""
    spec, _, marker = requirement.partition(";")
    extra = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", marker)
    return spec.strip(), (extra.group(1) if extra else None)


def provided_distributions() -> set[str]:
    extras = repository_extras() or set()
    others = {requirement_name(line) for line in requirement_lines() if not _REPOSITORY.match(line)}
    return {"jugnb"} | jugnb_distributions(extras) | others


def code_sources(notebook: Path) -> Iterator[tuple[str, str]]:
    """``(where, python source)`` of every code cell, IPython syntax turned into Python, cell magics' bodies
    (``%%jugfile``, and ``run_cell_magic("jugfile", ...)`` calls written out) included."""
    transformer = TransformerManager()
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] != "code":
            continue
        where = f"{notebook.name}, cell {number}"
        pending = [transformer.transform_cell("".join(cell["source"]))]
        while pending:
            source = pending.pop()
            yield where, source
            for node in ast.walk(ast.parse(source, filename=where)):
                is_cell_magic = (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "run_cell_magic"
                )
                if is_cell_magic and len(node.args) == 3 and isinstance(node.args[2], ast.Constant):
                    pending.append(str(node.args[2].value))


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def notebook_imports() -> dict[str, set[str]]:
    """Top-level module -> the cells that import it, over every example notebook."""
    found: dict[str, set[str]] = {}
    for notebook in NOTEBOOKS:
        for where, source in code_sources(notebook):
            for module in imported_modules(source):
                found.setdefault(module, set()).add(where)
    return found


def test_requirements_install_jugnb_from_the_repository() -> None:
    extras = repository_extras()
    assert extras is not None, (
        "binder/requirements.txt must install jugnb from this repository (a line `.`, `-e .` or "
        "`.[examples]`), not from PyPI, so that Binder runs the code of the commit it was launched from"
    )
    assert not any(
        requirement_name(line) == "jugnb" for line in requirement_lines() if not _REPOSITORY.match(line)
    )


def test_requirements_provide_every_module_the_notebooks_import() -> None:
    imports = notebook_imports()
    assert {"jug", "matplotlib", "sklearn"} <= set(imports), "the notebooks' imports were not found"
    by_module = importlib.metadata.packages_distributions()
    provided = provided_distributions()
    missing = []
    for module, cells in sorted(imports.items()):
        if module in sys.stdlib_module_names or module == "jugnb":
            continue
        distributions = {normalize(d) for d in by_module.get(module, [])}
        if not distributions:
            missing.append(
                f"{module} (not installed here, so its distribution is unknown; {sorted(cells)[0]})"
            )
        elif not distributions & provided:
            missing.append(f"{module} from {'/'.join(sorted(distributions))} ({sorted(cells)[0]})")
    assert not missing, f"binder/requirements.txt does not install: {missing}"


def test_the_checks_see_jugfile_cells() -> None:
    """Imports inside ``%%jugfile`` cells (and in jugfile code passed to run_cell_magic) count."""
    imports = notebook_imports()
    assert any("grid_search" in where for where in imports["sklearn"])  # only %%jugfile cells import it
    assert any("barriers" in where for where in imports["tokenize"])


def test_jupyterlab_gets_widgets() -> None:
    provided = provided_distributions()
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= provided
    post_build = BINDER / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    subprocess.run(["bash", "-n", str(post_build)], check=True, timeout=30)
    assert "@jupyter-widgets/jupyterlab-manager" in post_build.read_text(encoding="utf-8")


def test_apt_packages_are_names() -> None:
    for line in (BINDER / "apt.txt").read_text(encoding="utf-8").splitlines():
        package = line.partition("#")[0].strip()
        assert not package or re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", package), line


@pytest.mark.parametrize("path", ["README.md", "docs/guide.md"])
def test_binder_link_opens_the_quickstart(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    assert "lab/tree/notebooks/quickstart.ipynb" in text
    assert (ROOT / "notebooks" / "quickstart.ipynb").is_file()
