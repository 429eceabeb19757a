"""Read a ``.ipynb`` and turn its ``%%jugfile`` cells into a :class:`~jugnb.notebook.jugfile.Jugfile`.

Pure (reads, never writes); shared by ``jugnb export``, every ``jugnb <subcommand>`` and the tests.

nbformat is imported only to convert notebooks older than version 4: importing it imports jsonschema and,
where jupyter_events installed them, its format checkers, which cost a second or more per process (twice
for each ``jugnb SUBCOMMAND``). A version 4 notebook is read as the JSON it is, which is what nbformat
would return for it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CellError, NoJugfileCellsError, NotebookError
from .jugfile import Fragment, Jugfile, assemble, parse_cell_options, split_cell

_NO_CELLS = (
    "{path} has no %%jugfile cells, so it defines no jugfile. Start a code cell with `%%jugfile` (its first "
    "line) for the cells that define tasks; other cells stay ordinary notebook cells."
)


def read_notebook(path: Path) -> Any:
    """Read a notebook as nbformat version 4, converting older versions.

    Parameters
    ----------
    path : Path
        The ``.ipynb`` file.

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    NotebookError
        If the file is missing or unreadable, is not JSON, or is not a valid notebook.
    """
    raw, data = _read_json(path)
    return _convert(path, raw, data)


def _read_json(path: Path) -> tuple[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such notebook. Check the path.", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookError(f"{path}: cannot read the notebook ({err}).", path=str(path)) from None
    try:
        return raw, json.loads(raw)
    except json.JSONDecodeError as err:
        msg = (
            f"{path}: not valid notebook JSON (line {err.lineno}, column {err.colno}: {err.msg}). "
            "Was the file saved completely? Open it in Jupyter or restore it from a checkpoint."
        )
        raise NotebookError(msg, path=str(path), line=err.lineno) from None


def _convert(path: Path, raw: str, data: Any) -> Any:
    import nbformat
    from nbformat.warnings import MissingIDFieldWarning

    try:
        with warnings.catch_warnings():
            # Handled below: nbformat would invent the missing ids, and warn about them.
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            notebook = nbformat.reads(raw, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as err:  # nbformat raises several types for malformed notebooks
        msg = f"{path}: not a valid Jupyter notebook ({type(err).__name__}: {err})."
        raise NotebookError(msg, path=str(path)) from None
    _drop_invented_ids(notebook, data)
    return notebook


def _v4_cells(data: Any) -> list[Mapping[str, Any]] | None:
    """Return the cells of a version 4 notebook as nbformat would read them; ``None`` if nbformat must."""
    if not (isinstance(data, dict) and data.get("nbformat") == 4 and isinstance(data.get("cells"), list)):
        return None
    if not all(isinstance(cell, dict) for cell in data["cells"]):
        return None
    cells = []
    for cell in data["cells"]:
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            cell = {**cell, "source": "".join(source)}  # nbformat's multi-line strings
        cells.append(cell)
    return cells


def _drop_invented_ids(notebook: Any, data: Any) -> None:
    """Remove the random cell ids nbformat adds when upgrading a notebook (v3, or v4 without ids).

    They change on every read, so keeping them would make the same notebook export to a different jugfile
    each time (a new snapshot per command, never "unchanged"), and differ from what the kernel sees.
    """
    raw_cells = data.get("cells") if isinstance(data, dict) and data.get("nbformat") == 4 else None
    if not isinstance(raw_cells, list) or len(raw_cells) != len(notebook.cells):
        raw_cells = [{}] * len(notebook.cells)
    for raw, cell in zip(raw_cells, notebook.cells, strict=True):
        if not (isinstance(raw, dict) and "id" in raw):
            cell.pop("id", None)


def notebook_fragments(notebook: Mapping[str, Any], path: Path) -> list[Fragment]:
    """Return the ``%%jugfile`` cells of a notebook (nbformat 4, or its JSON), in order, as fragments.

    Raises
    ------
    CellError
        If a cell has ``%%jugfile`` after a comment, or bad arguments on its ``%%jugfile`` line.
    NoJugfileCellsError
        If no cell is a ``%%jugfile`` cell.
    """
    fragments: list[Fragment] = []
    for index, cell in enumerate(notebook["cells"], start=1):
        if cell.get("cell_type") != "code":
            continue
        where = f"{path.name}, cell {index}"
        source = cell.get("source", "")
        if not isinstance(source, str):
            msg = f"{where}: its source is not text but {type(source).__name__}: the notebook is damaged."
            raise NotebookError(msg, path=str(path), cell=where)
        split = split_cell(source, where=where)
        if split is None:
            continue
        magic_args, body = split
        try:
            options = parse_cell_options(magic_args)
        except ValueError as err:
            msg = f"{where}, line 1: bad %%jugfile arguments `{magic_args}`: {err}."
            raise CellError(msg, path=str(path), cell=where, line=1) from None
        fragment = Fragment(body, cell_id=cell.get("id"), name=options.name, index=index)
        _check_unique_key(fragment, fragments, path)
        fragments.append(fragment)
    if not fragments:
        raise NoJugfileCellsError(_NO_CELLS.format(path=path), path=str(path))
    return fragments


def _check_unique_key(fragment: Fragment, earlier: list[Fragment], path: Path) -> None:
    """Refuse a second cell with the same key: in the kernel it would replace the first, not follow it."""
    twin = next((f for f in earlier if fragment.key is not None and f.key == fragment.key), None)
    if twin is None:
        return
    label = f"--name {fragment.name}" if fragment.name is not None else f"id {fragment.cell_id}"
    where = f"{path.name}, cell {fragment.index}"
    msg = (
        f"{where}: cells {twin.index} and {fragment.index} are both `{label}`. In the kernel the one run "
        "last replaces the other, so the notebook would define different tasks there than in its export. "
        "Give each %%jugfile cell its own --name."
    )
    raise CellError(msg, path=str(path), cell=where, line=1)


def export_notebook(path: Path) -> Jugfile:
    """Read ``path`` and assemble its jugfile.

    Raises
    ------
    NotebookError, NoJugfileCellsError, CellError
        As described in :func:`read_notebook`, :func:`notebook_fragments` and
        :func:`jugnb.notebook.jugfile.assemble`; cell errors name the notebook file.
    """
    raw, data = _read_json(path)
    cells = _v4_cells(data)
    notebook = {"cells": cells} if cells is not None else _convert(path, raw, data)
    fragments = notebook_fragments(notebook, path)
    try:
        return assemble(fragments, path.name)
    except CellError as err:
        raise CellError(f"{path.name}, {err}", path=str(path), cell=err.cell, line=err.line) from None
