"""StatusReader against real jug stores: states must equal ``jug status``'s, and never be stale."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jug
import jug.task
import pytest
from conftest import free_port
from jug.backends.file_store import file_based_lock, file_keepalive_based_lock, file_store

from jugnb.backends import _file_reader, _redis_reader, make_reader
from jugnb.errors import StoreError
from jugnb.status.reader import STATES, StatusReader, StatusSnapshot
from jugnb.status.render import status_text

GRAPH = """
from jug import TaskGenerator

@TaskGenerator
def load(i):
    return list(range(i + 2))

@TaskGenerator
def combine(a, b):
    return [a, b]

@TaskGenerator
def summarize(parts, extra=None):
    return [len(parts)]

loads = [load(i) for i in range(6)]
again = load(0)  # the same task twice: jug counts it twice
pairs = [combine(loads[i][0], loads[i + 1]) for i in range(5)]  # a Tasklet argument depends on its base
nested = combine(loads[5][1:][0], {"k": [pairs[4]]})  # a Tasklet of a Tasklet, inside a dict of lists
level3 = summarize(pairs, extra=nested)
level4 = summarize([level3[0]], extra={"t": (level3,)})
"""
MODULE = "stgraph"


# ---------------------------------------------------------------- graphs and jug's own answers


@pytest.fixture(params=["file", "file_keepalive", "dict_store", "redis"])
def jugdir(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A jugdir spec of each store kind (redis: a flushed database on the session's server)."""
    if request.param == "file":
        return str(tmp_path / "jd")
    if request.param == "file_keepalive":
        return f"file_keepalive:{tmp_path / 'jd'}"
    if request.param == "dict_store":
        return "dict_store"
    url: str = request.getfixturevalue("redis_db")
    return url


@pytest.fixture
def load_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Any, list[Any]]]]:
    """``load_graph(jugdir, source=GRAPH)``: write the jugfile in tmp_path, load it in-process (jug.init)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def load(jugdir: str, source: str = GRAPH) -> tuple[Any, list[Any]]:
        (tmp_path / f"{MODULE}.py").write_text(source, encoding="utf-8")
        del jug.task.alltasks[:]
        store, _ = jug.init(f"{MODULE}.py", jugdir, on_error="propagate")
        return store, list(jug.task.alltasks)

    yield load
    sys.modules.pop(MODULE, None)


def jug_state(task: Any) -> str:
    """The state ``jug status`` gives a task (``subcommands/status.py::_status_nocache``, unmemoized)."""
    if task.can_load():
        return "complete"
    if task.can_run():
        if task.is_locked():
            return "failed" if task.is_failed() else "active"
        return "ready"
    return "waiting"


def assert_matches_jug(snapshot: StatusSnapshot, tasks: list[Any]) -> None:
    for t in tasks:
        assert snapshot.state_of(t.hash()) == jug_state(t), t.name
    for name in {t.name for t in tasks}:
        row = next(r for r in snapshot.rows if r.name == name)
        expected = [sum(1 for t in tasks if t.name == name and jug_state(t) == s) for s in STATES]
        assert [getattr(row, s) for s in STATES] == expected, name


def jug_status_output(run: Callable[..., Any], tmp_path: Path, jugdir: str) -> str:
    """Plain ``jug status`` of the graph, in its own process."""
    result = run(
        "python",
        "-c",
        "import sys; from jug.jug import main; sys.exit(main())",
        "status",
        f"{MODULE}.py",
        "--jugdir",
        jugdir,
        cwd=tmp_path,
    )
    assert result.returncode in (0, 1), result.stderr
    return str(result.stdout)


def by_name(tasks: list[Any]) -> dict[str, Any]:
    """The jugfile's named tasks (``tasks`` is the loaded graph, for readability at call sites)."""
    module = sys.modules[MODULE]
    return {
        "loads": module.loads,
        "pairs": module.pairs,
        "nested": module.nested,
        "level3": module.level3,
        "level4": module.level4,
        "again": module.again,
    }


def put(store: Any, task: Any) -> None:
    store.dump([0], task.hash())


def take_lock(store: Any, task: Any) -> bool:
    held = store.getlock(task.hash())
    if isinstance(held, file_keepalive_based_lock):
        # No keepalive monitor process: the lock stays fresh for 30 minutes anyway.
        return bool(file_based_lock.get(held))
    return bool(held.get())


def lock(store: Any, task: Any, *, failed: bool = False) -> None:
    assert take_lock(store, task)
    if failed:
        store.getlock(task.hash()).fail()


def arrange_every_state(store: Any, tasks: list[Any]) -> None:
    """Complete, active, failed, ready and waiting tasks, plus the corner cases of jug's precedence."""
    g = by_name(tasks)
    for t in g["loads"][:4]:
        put(store, t)
    lock(store, g["loads"][4])
    lock(store, g["loads"][5], failed=True)
    lock(store, g["loads"][0], failed=True)  # complete wins over a failed lock
    put(store, g["pairs"][0])
    lock(store, g["pairs"][1])
    # pairs[2] stays ready
    lock(store, g["pairs"][3])  # locked but its dependency loads[4] is missing: waiting, as in jug
    put(store, g["level4"])  # complete even though level3 is missing


# ---------------------------------------------------------------- semantics


def test_every_state_equals_jug(jugdir: str, load_graph: Any) -> None:
    store, tasks = load_graph(jugdir)
    arrange_every_state(store, tasks)
    snapshot = StatusReader(tasks, store).read()
    assert_matches_jug(snapshot, tasks)
    # Every state of jug; "lost" is jugnb's (a lease expired), which this reader without a jugdir never sees.
    assert {snapshot.state_of(t.hash()) for t in tasks} == set(STATES) - {"lost"}
    assert snapshot.total.total == len(tasks) and not snapshot.all_complete


@pytest.mark.parametrize("kind", ["file", "file_keepalive", "redis"])
def test_text_equals_jug_status_output(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    load_graph: Any,
    run: Any,
    jug_environ: dict[str, str],
) -> None:
    jugdir = {"file": str(tmp_path / "jd"), "file_keepalive": f"file_keepalive:{tmp_path / 'jd'}"}.get(kind)
    if jugdir is None:
        jugdir = request.getfixturevalue("redis_db")
    store, tasks = load_graph(jugdir)
    arrange_every_state(store, tasks)
    expected = jug_status_output(run, tmp_path, jugdir)
    # jug's width: COLUMNS, else 80 (its output is a pipe, not a terminal)
    width = int(jug_environ.get("COLUMNS", 80))
    assert status_text(StatusReader(tasks, store).read(), width=width) == expected


def test_other_process_executes_and_invalidates(tmp_path: Path, load_graph: Any, run: Any) -> None:
    jugdir = str(tmp_path / "jd")
    store, tasks = load_graph(jugdir)
    reader = StatusReader(tasks, store)
    assert reader.read().total.complete == 0
    result = run("jug", "execute", f"{MODULE}.py", "--jugdir", jugdir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert reader.read().all_complete
    result = run(
        "jug", "invalidate", f"{MODULE}.py", "--jugdir", jugdir, "--target", f"{MODULE}.combine", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    snapshot = reader.read()
    assert_matches_jug(snapshot, tasks)
    assert status_text(snapshot, width=80) == jug_status_output(run, tmp_path, jugdir)
    assert snapshot.total.complete == 7  # the loads; combine and everything downstream went


def _random_operation(rng: random.Random, store: Any, tasks: list[Any], packable: bool) -> None:
    t = rng.choice(tasks)
    op = rng.choice(["put", "put", "remove", "lock", "fail", "unlock"] + ["pack"] * packable)
    if op == "put":
        put(store, t)
    elif op == "remove":
        store.remove(t.hash())
    elif op == "lock":
        take_lock(store, t)
    elif op == "fail":
        store.getlock(t.hash()).fail()
    elif op == "unlock":
        store.getlock(t.hash()).release()
    else:
        store.update_pack()


@pytest.mark.parametrize("racy_seconds", [_file_reader.RACY_SECONDS, 0.0])
def test_incremental_equals_full_read(
    racy_seconds: float, jugdir: str, load_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 0 s, folder listings are trusted from the second read on: only mtimes reveal changes.
    monkeypatch.setattr(_file_reader, "RACY_SECONDS", racy_seconds)
    store, tasks = load_graph(jugdir)
    reader = StatusReader(tasks, store)
    rng = random.Random(5)
    for _ in range(60):
        # file_keepalive's pack lock starts a monitor process that jug kills without waiting for it.
        _random_operation(rng, store, tasks, packable=type(store) is file_store)
        incremental = reader.read()
        assert incremental == StatusReader(tasks, store).read()
        assert_matches_jug(incremental, tasks)
        assert reader.read() == incremental


def test_packed_results_count_as_complete(tmp_path: Path, load_graph: Any, run: Any) -> None:
    jugdir = str(tmp_path / "jd")
    store, tasks = load_graph(jugdir)
    reader = StatusReader(tasks, store)
    result = run("jug", "execute", f"{MODULE}.py", "--jugdir", jugdir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run("jug", "pack", f"{MODULE}.py", "--jugdir", jugdir, cwd=tmp_path)
    assert result.returncode == 0 and "Packed 14 objects" in result.stdout, result.stdout + result.stderr
    assert not any(
        p.name != "packs" and len(p.name) == 2 and any(p.iterdir()) for p in Path(jugdir).iterdir()
    )
    assert reader.read().all_complete
    assert StatusReader(tasks, jugdir).read().all_complete
    # Invalidating a packed result rewrites the pack; another process does it.
    result = run(
        "jug",
        "invalidate",
        f"{MODULE}.py",
        "--jugdir",
        jugdir,
        "--target",
        f"{MODULE}.summarize",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    snapshot = reader.read()
    assert snapshot.total.ready == 1 and snapshot.total.waiting == 1 and snapshot.total.complete == 13
    assert status_text(snapshot, width=80) == jug_status_output(run, tmp_path, jugdir)


def test_pack_with_unimportable_values(tmp_path: Path) -> None:
    # The pack holds values whose classes the reading process may not import: only keys are needed.
    jugdir = str(tmp_path / "jd")
    store = file_store(jugdir)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from jug.backends.file_store import file_store\n"
        "import private_mod; s = file_store(sys.argv[2]); s.dump(private_mod.Value(), b'ab' + b'0' * 38)\n"
        "print(s.update_pack())"
    )
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "private_mod.py").write_text("class Value:\n    x = 1\n", encoding="utf-8")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "mods"), jugdir], check=True, timeout=60)
    hashes = ["ab" + "0" * 38, "cd" + "0" * 38]
    reader = make_reader(store, hashes, {h: uid for uid, h in enumerate(hashes)})
    assert reader.results().tolist() == [True, False]
    assert "private_mod" not in sys.modules


def test_keepalive_dead_locks_follow_jug(tmp_path: Path, load_graph: Any) -> None:
    jugdir = tmp_path / "jd"
    store, tasks = load_graph(f"file_keepalive:{jugdir}")
    g = by_name(tasks)
    for t in g["loads"][:4]:
        put(store, t)
    now = time.time()
    ages = {0: 0, 1: _file_reader.KEEPALIVE_TIMEOUT - 60, 2: _file_reader.KEEPALIVE_TIMEOUT + 60}
    for i, age in ages.items():
        t = g["pairs"][i]
        assert file_based_lock(str(jugdir), t.hash()).get()  # a lock as a (now dead) worker left it
        os.utime(jugdir / "locks" / f"{t.hash().decode()}.lock", (now - age, now - age))
    snapshot = StatusReader(tasks, store).read()
    assert [snapshot.state_of(g["pairs"][i].hash()) for i in ages] == ["active", "active", "failed"]
    for i in ages:
        assert file_keepalive_based_lock(str(jugdir), g["pairs"][i].hash()).is_failed() == (i == 2)
    assert_matches_jug(snapshot, tasks)


def test_folder_mtime_changes_on_create_rename_remove(tmp_path: Path) -> None:
    # The incremental file reader relies on this (on local filesystems; see _store_readers).
    store = file_store(str(tmp_path / "jd"))
    name = b"ab" + b"1" * 38
    store.dump(1, b"ab" + b"0" * 38)
    folder = tmp_path / "jd" / "ab"
    keys = [_file_reader._stat_key(str(folder))]
    for change in (lambda: store.dump(2, name), lambda: store.dump(3, name), lambda: store.remove(name)):
        time.sleep(0.01)
        change()
        keys.append(_file_reader._stat_key(str(folder)))
    assert len(set(keys)) == len(keys)


def test_unchanged_folders_are_not_listed_again(
    tmp_path: Path, load_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_file_reader, "RACY_SECONDS", 0.0)
    calls: list[str] = []
    listdir = _file_reader._listdir
    monkeypatch.setattr(_file_reader, "_listdir", lambda path: calls.append(path) or listdir(path))
    store, tasks = load_graph(str(tmp_path / "jd"))
    for t in tasks[:3]:
        put(store, t)
    reader = StatusReader(tasks, store)
    reader.read()
    reader.read()  # verifies the listings
    calls.clear()
    assert reader.read().total.complete == 4  # `again` is loads[0] once more
    assert calls == []
    put(store, tasks[5])
    assert reader.read().total.complete == 5
    assert calls == [os.path.join(store.jugdir, tasks[5].hash().decode()[:2])]


def test_racy_folder_is_listed_until_verified(
    tmp_path: Path, load_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A coarse clock: the folder's stat never changes. Within RACY_SECONDS the reader lists it anyway.
    monkeypatch.setattr(_file_reader, "_stat_key", lambda path: (1, 2, 3, 4))
    store, tasks = load_graph(str(tmp_path / "jd"))
    reader = StatusReader(tasks, store)
    assert reader.read().total.complete == 0
    put(store, tasks[0])
    assert reader.read().state_of(tasks[0].hash()) == "complete"


def test_memoize_store_is_unwrapped(tmp_path: Path, load_graph: Any) -> None:
    from jug.backends import memoize_store

    store, tasks = load_graph(str(tmp_path / "jd"))
    reader = StatusReader(tasks, memoize_store(store, list_base=True))  # what in-process `jug status` leaves
    put(store, tasks[0])
    assert reader.read().state_of(tasks[0].hash()) == "complete"


def test_other_store_types_are_asked_per_task(tmp_path: Path, load_graph: Any) -> None:
    class CustomStore(file_store):
        pass

    store, tasks = load_graph(str(tmp_path / "jd"))
    arrange_every_state(store, tasks)
    reader = StatusReader(tasks, CustomStore(store.jugdir))
    assert reader.store == "CustomStore"
    assert_matches_jug(reader.read(), tasks)


def test_dependencies_outside_the_task_list(tmp_path: Path, load_graph: Any) -> None:
    store, tasks = load_graph(str(tmp_path / "jd"))
    arrange_every_state(store, tasks)
    listed = [t for t in tasks if t.name != f"{MODULE}.load"]
    snapshot = StatusReader(listed, store).read()
    assert_matches_jug(snapshot, listed)
    assert [r.name for r in snapshot.rows] == [f"{MODULE}.combine", f"{MODULE}.summarize"]
    with pytest.raises(KeyError, match="no task with hash"):
        snapshot.state_of(tasks[0].hash())


def test_snapshot_helpers(tmp_path: Path, load_graph: Any) -> None:
    store, tasks = load_graph(str(tmp_path / "jd"))
    arrange_every_state(store, tasks)
    snapshot = StatusReader(tasks, store).read()
    g = by_name(tasks)
    assert snapshot.hashes("failed") == (g["loads"][5].hash().decode(),)
    assert snapshot.hashes("ready") == (g["pairs"][2].hash().decode(),)
    assert snapshot.state_of(g["pairs"][1].hash().decode()) == "active"
    assert snapshot.store == str(tmp_path / "jd")
    assert abs(snapshot.taken_at - time.time()) < 60
    with pytest.raises(ValueError, match="use one of failed, waiting"):
        snapshot.hashes("done")


def test_empty_graph_and_missing_jugdir(tmp_path: Path) -> None:
    snapshot = StatusReader([], str(tmp_path / "nowhere")).read()
    assert snapshot.rows == () and snapshot.all_complete


def test_redis_description_and_errors(redis_db: str, load_graph: Any) -> None:
    store, tasks = load_graph(redis_db)
    reader = StatusReader(tasks, store)
    assert reader.store == redis_db.rstrip("/") + "/0"
    port = free_port()  # nothing listens there
    store.redis = type(store.redis)(host="127.0.0.1", port=port, password="s3cret-pw")
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as info:
        StatusReader(tasks, store).read()
    assert "s3cret-pw" not in str(info.value)


def test_redis_crowded_database_uses_exists(redis_db: str, load_graph: Any) -> None:
    import redis

    store, tasks = load_graph(redis_db)
    arrange_every_state(store, tasks)
    with redis.Redis.from_url(redis_db) as client:
        client.mset({f"other:{i}": b"x" for i in range(5 * _redis_reader._REDIS_BATCH)})
    assert_matches_jug(StatusReader(tasks, store).read(), tasks)


def test_keepalive_timeout_is_jugs(tmp_path: Path) -> None:
    lock = file_keepalive_based_lock(str(tmp_path), "h")
    assert file_based_lock.get(lock)  # no monitor process
    for age, failed in (
        (_file_reader.KEEPALIVE_TIMEOUT - 5, False),
        (_file_reader.KEEPALIVE_TIMEOUT + 5, True),
    ):
        when = time.time() - age
        os.utime(lock.fullname, (when, when))
        assert lock.is_failed() is failed


def test_relative_jugdir_survives_a_change_of_directory(
    tmp_path: Path, load_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, tasks = load_graph("jd")  # relative, as jug allows
    reader = StatusReader(tasks, store)
    put(store, tasks[0])
    monkeypatch.chdir(tmp_path.parent)
    assert reader.read().state_of(tasks[0].hash()) == "complete"
    assert reader.store == "jd"


def test_concurrent_reads_agree(tmp_path: Path, load_graph: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store, tasks = load_graph(str(tmp_path / "jd"))
    arrange_every_state(store, tasks)
    reader = StatusReader(tasks, store)
    with ThreadPoolExecutor(4) as pool:
        snapshots = list(pool.map(lambda _: reader.read(), range(40)))
    assert all(s == snapshots[0] for s in snapshots)
    assert_matches_jug(snapshots[0], tasks)


def test_core_imports_neither_ipython_nor_ipywidgets() -> None:
    code = (
        "import sys, jugnb.status.reader, jugnb.status.render, jugnb.backends.readers\n"
        "bad = [m for m in ('IPython', 'ipywidgets') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
