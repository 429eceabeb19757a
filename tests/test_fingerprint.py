"""Fingerprints of task code, on graphs built in-process from %%jugfile fragments with real jug."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import JUGFILES, read_cells
from test_records import redis_url  # noqa: F401 - the real redis-server fixture, shared

from jugnb.backends.redis import RedisFingerprintBlobs
from jugnb.backends.spec import resolve_jugdir
from jugnb.errors import StoreError
from jugnb.notebook.jugfile import Fragment
from jugnb.notebook.project import Project
from jugnb.session.kernel import NotebookSession
from jugnb.session.loader import LoadedGraph
from jugnb.staleness.fingerprint import (
    Fingerprint,
    FingerprintStore,
    TaskFingerprinter,
    fingerprints,
)

MODULE = "fpnb"

DEFS = '''
from jug import TaskGenerator
from math import sqrt

SCALE = 3
OFFSET = 1


def helper(x):
    """Scale x."""
    return sqrt(x) * SCALE


@TaskGenerator
def double(x):
    return 2 * helper(x)


@TaskGenerator
def other(x):
    return x + OFFSET
'''
USES = """
xs = [double(i) for i in range(3)]
ys = [other(i) for i in range(2)]
"""


class Notebook:
    """A notebook's kernel side: %%jugfile fragments loaded through NotebookSession on a file jugdir."""

    def __init__(self, folder: Path) -> None:
        project = Project(folder, MODULE, f"{MODULE}.ipynb")
        self.jugdir = resolve_jugdir(f"{MODULE}.jugdata", jugfile=project.export_path, base=folder)
        self.session = NotebookSession(project, self.jugdir)
        self.graph: LoadedGraph | None = None

    def load(self, *cells: str) -> LoadedGraph:
        fragments = [Fragment(textwrap.dedent(c), name=f"c{n}") for n, c in enumerate(cells, start=1)]
        self.graph = self.session.load(fragments)
        return self.graph

    @property
    def tasks(self) -> tuple[Any, ...]:
        assert self.graph is not None
        return self.graph.tasks

    def fingerprinter(self) -> TaskFingerprinter:
        assert self.graph is not None
        return TaskFingerprinter(self.graph.jugfile.text, self.graph.namespace)

    def by_hash(self) -> dict[str, Fingerprint]:
        return self.fingerprinter().for_tasks(self.tasks)

    def digests(self, *cells: str) -> dict[str, str]:
        """Load ``cells``; digest per task hash."""
        self.load(*cells)
        return {h: fp.digest for h, fp in self.by_hash().items()}

    def run_all(self) -> None:
        """Compute every task in definition order (a dependency is always defined before its users)."""
        for task in self.tasks:
            if not task.can_load():
                task.run()


def open_notebook(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notebook]:
    """A :class:`Notebook` in ``folder`` (the working directory); its module is forgotten afterwards."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", list(sys.path))  # jug.init inserts the working directory
    yield Notebook(folder)
    sys.modules.pop(MODULE, None)


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notebook]:
    yield from open_notebook(tmp_path, monkeypatch)


def names(notebook: Notebook, digests: dict[str, str], other: dict[str, str]) -> set[str]:
    """Names of the tasks whose digest differs between two loads (same hashes)."""
    assert digests.keys() == other.keys()
    by_hash = {t.hash().decode(): t.name for t in notebook.tasks}
    return {by_hash[h] for h in digests if digests[h] != other[h]}


COSMETIC = [
    DEFS.replace("return 2 * helper(x)", "return 2*helper( x )  # twice"),
    DEFS.replace('"""Scale x."""', '"""Scale x by SCALE (a new docstring)."""'),
    DEFS.replace('    """Scale x."""\n', ""),
    DEFS.replace("def helper(x):", "# the helper\n\n\ndef helper(x):"),
    DEFS.replace("return sqrt(x) * SCALE", "return (\n        sqrt(x)\n        * SCALE\n    )"),
    DEFS.replace("SCALE = 3", "SCALE = (3)  # three"),
]


COSMETIC_IDS = ["comment", "docstring", "no-docstring", "blank", "wrap", "parens"]


@pytest.mark.parametrize("edited", COSMETIC, ids=COSMETIC_IDS)
def test_cosmetic_edits_keep_every_fingerprint(notebook: Notebook, edited: str) -> None:
    assert notebook.digests(DEFS, USES) == notebook.digests(edited, USES)


def test_moving_code_between_cells_keeps_fingerprints(notebook: Notebook) -> None:
    helper_def = DEFS[DEFS.index("def helper") : DEFS.index("@TaskGenerator")]
    moved = DEFS.replace(helper_def, "")
    assert notebook.digests(DEFS, USES) == notebook.digests(moved, helper_def + USES)


def test_changed_helper_changes_its_callers_only(notebook: Notebook) -> None:
    before = notebook.digests(DEFS, USES)
    after = notebook.digests(DEFS.replace("sqrt(x) * SCALE", "sqrt(x) * SCALE + 1"), USES)
    assert names(notebook, before, after) == {f"{MODULE}.double"}


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (("SCALE = 3", "SCALE = 4"), "double"),
        (("OFFSET = 1", "OFFSET = 2"), "other"),
        (("from math import sqrt", "from cmath import sqrt"), "double"),
        (("x + OFFSET", "x - OFFSET"), "other"),
    ],
)
def test_constants_and_imports_count_for_their_readers(
    notebook: Notebook, edit: tuple[str, str], changed: str
) -> None:
    before = notebook.digests(DEFS, USES)
    after = notebook.digests(DEFS.replace(*edit), USES)
    assert names(notebook, before, after) == {f"{MODULE}.{changed}"}


def test_unrelated_edits_change_nothing(notebook: Notebook) -> None:
    before = notebook.digests(DEFS, USES)
    extra = "\ndef unused(x):\n    return x - 1\n\nLIMIT = 10\nimport os\n"
    after = notebook.digests(DEFS.replace("from math import sqrt", "from math import sqrt, pi") + extra, USES)
    assert before == after


def test_derived_constant_follows_what_it_reads(notebook: Notebook) -> None:
    defs = DEFS.replace("SCALE = 3", "BASE = 3\nSCALE = 2 * BASE")
    before = notebook.digests(defs, USES)
    after = notebook.digests(defs.replace("BASE = 3", "BASE = 5"), USES)
    assert names(notebook, before, after) == {f"{MODULE}.double"}


def test_source_and_parts_show_the_code_and_its_dependencies(notebook: Notebook) -> None:
    graph = notebook.load(DEFS, USES)
    fp = fingerprints(graph.jugfile.text, graph.namespace)[f"{MODULE}.double"]
    assert fp.parts == ("sqrt", "SCALE", "double", "helper")
    assert fp.source == textwrap.dedent(
        """\
        from math import sqrt

        SCALE = 3

        def double(x):
            return 2 * helper(x)

        def helper(x):
            return sqrt(x) * SCALE
        """
    )
    assert fp == Fingerprint.of(fp.source, fp.parts) and len(fp.digest) == 40


def test_by_name_and_by_task_agree(notebook: Notebook) -> None:
    graph = notebook.load(DEFS, USES)
    named = fingerprints(graph.jugfile.text, graph.namespace)
    assert set(named) == {f"{MODULE}.{n}" for n in ("double", "helper", "other")}
    for task in graph.tasks:
        assert notebook.fingerprinter()(task) == named[task.name]


def test_jug_decorators_do_not_count(notebook: Notebook) -> None:
    plain = "from jug import Task\n\ndef f(x):\n    return x + 1\n\nts = [Task(f, i) for i in range(2)]\n"
    decorated = (
        "from jug import TaskGenerator, Task\n\n@TaskGenerator\ndef f(x):\n    return x + 1\n\n"
        "ts = [f(i) for i in range(2)]\n"
    )
    assert notebook.digests(plain) == notebook.digests(decorated)


def test_return_tuple_and_library_tasks(notebook: Notebook) -> None:
    graph = notebook.load(
        """
        from jug import Task, TaskGenerator
        from jug.task import return_tuple

        @return_tuple(2)
        @TaskGenerator
        def split(x):
            return x, -x

        a, b = split(3)
        biggest = Task(max, [1, 2])
        """
    )
    fps = {t.name: notebook.fingerprinter()(t) for t in graph.tasks}
    assert fps[f"{MODULE}.split"].source == "def split(x):\n    return (x, -x)\n"
    assert fps["builtins.max"] == Fingerprint.of("", ())


MAPREDUCE = """
import jug.mapreduce

def double(x):
    return 2 * x

def add(a, b):
    return a + b

def inc(x):
    return x + 1

total = jug.mapreduce.mapreduce(add, double, list(range(8)), map_step=2, reduce_step=2)
mapped = jug.mapreduce.map(inc, list(range(4)), map_step=2)
"""


def test_mapreduce_follows_mapper_and_reducer_arguments(notebook: Notebook) -> None:
    before = notebook.digests(MAPREDUCE)
    assert {t.name for t in notebook.tasks} == {
        "jug.mapreduce._jug_map_reduce",
        "jug.mapreduce._jug_reduce",
        "jug.mapreduce._jug_map",
    }
    mapper = notebook.digests(MAPREDUCE.replace("2 * x", "3 * x"))
    assert names(notebook, before, mapper) == {"jug.mapreduce._jug_map_reduce"}
    reducer = notebook.digests(MAPREDUCE.replace("a + b", "b + a"))
    assert names(notebook, before, reducer) == {"jug.mapreduce._jug_map_reduce", "jug.mapreduce._jug_reduce"}
    inc = notebook.digests(MAPREDUCE.replace("x + 1", "x + 2"))
    assert names(notebook, before, inc) == {"jug.mapreduce._jug_map"}


TASKLETS = """
from jug import Task, Tasklet

def make(n):
    return list(range(n))

def helper(r):
    return r * 2

def plus1(x):
    return x + 1

def add(a, b):
    return a + b

base = Task(make, 4)
via_named = Task(add, Tasklet(base, plus1), base[0])
lam = Task(add, Tasklet(base, lambda r: helper(r[1])), 1); oth = Task(add, Tasklet(base, lambda s: s), 2)
"""


def test_tasklet_functions_count_for_the_task_using_them(notebook: Notebook) -> None:
    before = notebook.digests(TASKLETS)
    labels = ["base", "named", "lam", "other"]
    parts = {
        label: notebook.fingerprinter()(t).parts for label, t in zip(labels, notebook.tasks, strict=True)
    }
    assert parts == {
        "base": ("make",),
        "named": ("add", "plus1"),
        "lam": ("<lambda>", "add", "helper"),  # the other lambda on the same line is told apart
        "other": ("<lambda>", "add"),
    }
    after = notebook.digests(TASKLETS.replace("r * 2", "r * 3").replace("x + 1", "x + 2"))
    changed = {h for h in before if before[h] != after[h]}
    assert changed == {notebook.tasks[1].hash().decode(), notebook.tasks[2].hash().decode()}


METHODS = """
from jug import Task

class Model:
    def __init__(self, k):
        self.k = k

    def fit(self, x):
        return self.scale(x) + self.k

    def scale(self, x):
        return 2 * x

def apply(model, x):
    return model.fit(x)

fitted = Task(Model(1).fit, 3)
applied = Task(apply, Model(2), 4)
"""


def test_methods_count_their_whole_class_and_instances_their_class(notebook: Notebook) -> None:
    before = notebook.digests(METHODS)
    assert [t.name for t in notebook.tasks] == [f"{MODULE}.fit", f"{MODULE}.apply"]
    after = notebook.digests(METHODS.replace("2 * x", "3 * x"))
    assert names(notebook, before, after) == {f"{MODULE}.fit", f"{MODULE}.apply"}
    graph = notebook.graph
    assert graph is not None
    assert fingerprints(graph.jugfile.text, graph.namespace)[f"{MODULE}.fit"].parts == ("Model",)


COMPOUND = """
from jug import TaskGenerator
from jug.compound import CompoundTaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

@CompoundTaskGenerator
def twice(x):
    return double(double(x))

@TaskGenerator
def unrelated(x):
    return x

result = twice(4)
alone = unrelated(1)
"""


def test_compound_task_keeps_its_fingerprint_once_computed(notebook: Notebook) -> None:
    notebook.load(COMPOUND)
    compound = next(t for t in notebook.tasks if t.name == "jug.compound.compound_task_execute")
    before = notebook.by_hash()[compound.hash().decode()]
    notebook.run_all()
    notebook.load(COMPOUND)  # now jug returns the stored compound task: Task(twice, 4), same hash
    loaded = next(t for t in notebook.tasks if t.hash() == compound.hash())
    assert loaded.name == f"{MODULE}.twice"
    assert notebook.by_hash()[compound.hash().decode()] == before
    assert before.parts == ("twice", "double")
    edited = notebook.digests(COMPOUND.replace("return double(double(x))", "return double(x)"))
    assert edited[compound.hash().decode()] != before.digest


def test_fingerprints_need_no_execution_and_ignore_missing_names() -> None:
    text = "def f(x):\n    return g(x) + UNKNOWN\n\ndef g(x):\n    raise SystemExit(1)\n"
    fps = fingerprints(text, {"__name__": "m"})
    assert fps["m.f"].parts == ("f", "g")


def test_file_store_keeps_sources_beside_the_records(tmp_path: Path) -> None:
    jugdir = tmp_path / "nb.jugdata"
    fp = Fingerprint.of("def f(x):\n    return x\n", ("f",))
    store = FingerprintStore.for_jugdir(f"file_keepalive:{jugdir}")
    assert store.load(fp.digest) is None
    store.save(fp)
    path = tmp_path / "nb.jugdata.jugnb" / "fingerprints" / f"{fp.digest}.py"
    assert path.read_text() == "# parts: f\ndef f(x):\n    return x\n"
    assert FingerprintStore.for_jugdir(str(jugdir)).load(fp.digest) == fp
    empty = Fingerprint.of("", ())
    store.save(empty)
    assert store.load(empty.digest) == empty
    path.write_text("# parts: f\ndef f(x):\n    return 2 * x\n")  # damaged: does not match its digest
    assert FingerprintStore.for_jugdir(str(jugdir)).load(fp.digest) is None
    assert store.load("../../etc/passwd") is None


def test_dict_store_has_no_fingerprint_store() -> None:
    with pytest.raises(StoreError, match="shared store"):
        FingerprintStore.for_jugdir("dict_store")


def test_redis_store_round_trip(redis_url: str) -> None:  # noqa: F811
    store = FingerprintStore.for_jugdir(redis_url)
    assert isinstance(store.blobs, RedisFingerprintBlobs) and "s3cret" not in repr(store)
    fp = Fingerprint.of("x = 1\n", ("x",))
    store.save(fp)
    store.save(fp)
    other = FingerprintStore.for_jugdir(redis_url)
    assert other.load(fp.digest) == fp and other.load("0" * 40) is None
    store.close()
    other.close()


@pytest.mark.parametrize("sample", sorted(p.stem for p in JUGFILES.glob("*.cells")))
def test_every_sample_notebook_fingerprints_every_task(notebook: Notebook, sample: str) -> None:
    cells = [src.split("\n", 1)[1] for _, src in read_cells(sample) if src.startswith("%%jugfile")]
    notebook.load(*cells)
    found = notebook.by_hash()
    assert set(found) == {t.hash().decode() for t in notebook.tasks}
    assert all(len(fp.digest) == 40 for fp in found.values())
