"""Cells recovered from a jugfile's text: what workers and jugnb use to name the cell of an import error."""

from __future__ import annotations

import pytest

from jugnb.notebook.cellmap import parse_jugfile
from jugnb.notebook.jugfile import Fragment, assemble


@pytest.mark.parametrize(
    "fragments",
    [
        [Fragment("x = 1")],
        [Fragment("x = 1\n\ny = 2\n", cell_id="a1"), Fragment("", name="empty"), Fragment("z = 3", name="z")],
        [Fragment("# %%jugfile cell 2 · id fake\nw = 1", cell_id="c"), Fragment("v = 2")],
    ],
    ids=["one", "ids-names-empty", "comment-like-line"],
)
def test_recovered_cells_map_every_line_as_the_kernel_does(fragments: list[Fragment]) -> None:
    jugfile = assemble(fragments, "analysis.ipynb")
    recovered = parse_jugfile(jugfile.text)
    assert recovered == jugfile
    lines = jugfile.text.count("\n") + 1
    assert [recovered.describe_line(n) for n in range(1, lines)] == [
        jugfile.describe_line(n) for n in range(1, lines)
    ]


def test_a_file_jugnb_did_not_write_has_no_cells() -> None:
    assert parse_jugfile("x = 1\n") is None
    text = assemble([Fragment("x = 1")], "a.ipynb").text
    assert parse_jugfile(text.replace("x = 1", "x = 1\n# edited by hand", 1) + "\n\n") is None
