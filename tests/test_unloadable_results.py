"""Stored results that exist but cannot be loaded, on a file store and on redis.

The class: a result whose bytes are truncated, whose compression is damaged, or that pickles a class the
jugfile no longer has. ``value()``, the task browser and ``%jug status`` must name the task, its hash,
where it is stored and the fix, without a raw traceback, and every other result must load as before.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

CELL = """\
%%jugfile --name defs
from jug import TaskGenerator

class {cls}:
    def __init__(self, x):
        self.x = x

@TaskGenerator
def numbers(n):
    return list(range(n))

@TaskGenerator
def point(x):
    return {cls}(x)

@TaskGenerator
def total(xs):
    return sum(xs)

short = numbers(5)
long = numbers(2000)
where = point(3)
fine = total(short)
"""


def run(ip: InteractiveShell, source: str, cell_id: str = "c") -> tuple[Any, str]:
    with capture_output() as out:
        result = ip.run_cell(source, cell_id=cell_id)
    shown = "".join(str(o.data.get("text/plain", "")) for o in out.outputs)
    return result, out.stdout + out.stderr + shown


def hex_of(ip: InteractiveShell, name: str) -> str:
    return str(ip.user_ns[name].hash().decode())


def corrupt_file_store(jugdir: Path, ip: InteractiveShell) -> None:
    truncated = jugdir / hex_of(ip, "long")[:2] / hex_of(ip, "long")[2:]
    truncated.write_bytes(truncated.read_bytes()[:40])
    damaged = jugdir / hex_of(ip, "short")[:2] / hex_of(ip, "short")[2:]
    damaged.write_bytes(b"\x78\x9c" + b"not zlib at all" * 3)


def corrupt_redis(url: str, ip: InteractiveShell) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        key = f"result:{hex_of(ip, 'long')}"
        client.set(key, base64.b64encode(base64.b64decode(client.get(key))[:40]))
        client.set(f"result:{hex_of(ip, 'short')}", base64.b64encode(b"\x78\x9cnot zlib at all"))


def check_class_of_failures(ip: InteractiveShell, location: Callable[[str], str]) -> None:
    """value(), %jug status and the browser on the three kinds of damage; the rest still loads."""
    assert run(ip, CELL.format(cls="Point"), "defs")[0].success
    assert run(ip, "%jug execute --here")[0].success
    # Same task hashes, but the class the stored `where` result pickles is gone.
    assert run(ip, CELL.format(cls="Location"), "defs")[0].success
    cases = {
        "long": "truncated or damaged",
        "short": "truncated or damaged",
        "where": "no longer has (jugfile.Point)",
    }
    for name, why in cases.items():
        result, shown = run(ip, f"value({name})")
        err = result.error_in_exec
        assert isinstance(err, UsageError), shown
        h = hex_of(ip, name)
        for part in (f"jugfile.{'point' if name == 'where' else 'numbers'}", h, location(h), why):
            assert part in str(err), str(err)
        assert f"%jug invalidate --hash {h[:12]}" in str(err)
        assert "Traceback" not in shown
    # Other tasks are unaffected (`fine` was computed from `short` before the damage).
    assert ip.user_ns["value"](ip.user_ns["fine"]) == 10

    shown = run(ip, "%jug status")[1]
    for name in cases:
        assert hex_of(ip, name) in shown and location(hex_of(ip, name)) in shown, shown
    assert "Traceback" not in shown

    browser = ip.run_line_magic("jug", "browse")
    index = next(e.index for e in browser.entries if e.hash == hex_of(ip, "long"))
    browser.listing.value = index
    browser.buttons["value"].click()
    assert hex_of(ip, "long") in browser.message.value and "cannot be loaded" in browser.message.value
    assert browser.output.outputs == ()  # no traceback printed under the browser

    # The fix it gives works: invalidate that task, run again, load.
    shown = run(ip, f"%jug invalidate --hash {hex_of(ip, 'long')[:12]}")[1]
    assert "Invalidated" in shown
    assert run(ip, "%jug execute --here")[0].success
    assert len(ip.user_ns["value"](ip.user_ns["long"])) == 2000
    shown = run(ip, "%jug status")[1]
    assert hex_of(ip, "long") not in shown and hex_of(ip, "short") in shown


def test_file_store(notebook_shell: Callable[[str], InteractiveShell], project: Path) -> None:
    ip = notebook_shell("jugfile")
    jugdir = project / "jugfile.jugdata"

    def location(h: str) -> str:
        return str(jugdir / h[:2] / h[2:])

    assert run(ip, CELL.format(cls="Point"), "defs")[0].success
    assert run(ip, "%jug execute --here")[0].success
    corrupt_file_store(jugdir, ip)
    check_class_of_failures(ip, location)


def test_status_verify_finds_damage_nobody_loaded_yet(
    notebook_shell: Callable[[str], InteractiveShell], project: Path
) -> None:
    ip = notebook_shell("jugfile")
    assert run(ip, CELL.format(cls="Point"), "defs")[0].success
    assert run(ip, "%jug execute --here")[0].success
    corrupt_file_store(project / "jugfile.jugdata", ip)
    assert hex_of(ip, "long") not in run(ip, "%jug status")[1]  # nothing read it yet
    shown = run(ip, "%jug status --verify")[1]
    assert hex_of(ip, "long") in shown and hex_of(ip, "short") in shown and hex_of(ip, "fine") not in shown


def test_redis_store(notebook_shell: Callable[[str], InteractiveShell], redis_pw: Any) -> None:
    url = redis_pw.url()
    ip = notebook_shell("jugfile")
    ip.run_line_magic("config", f"JugMagics.jugdir = {url!r}")
    assert run(ip, CELL.format(cls="Point"), "defs")[0].success
    assert run(ip, "%jug execute --here")[0].success
    corrupt_redis(url, ip)

    def location(h: str) -> str:
        return f"key result:{h}"

    check_class_of_failures(ip, location)
    assert redis_pw.password not in run(ip, "%jug status")[1]


def test_zlib_is_what_jug_writes() -> None:
    # The damaged file above stands for bad compression only if jug's results are zlib streams.
    from jug.backends.encode import encode

    assert zlib.decompress(encode([1, 2]))[:1] == b"P"
    pytest.importorskip("jug")


def test_a_worker_that_cannot_load_a_dependency_points_at_it(
    notebook_shell: Callable[[str], InteractiveShell], project: Path, jug_env: dict[str, str]
) -> None:
    # The damaged result is found by a worker (running `fine`, which needs `short`): status names `short`.
    ip = notebook_shell("jugfile")
    assert run(ip, CELL.format(cls="Point"), "defs")[0].success
    assert run(ip, "%jug execute --here --name numbers")[0].success
    corrupt_file_store(project / "jugfile.jugdata", ip)
    assert run(ip, "%jug execute -j 1 --quiet")[0].success
    waited = run(ip, "%jug wait --timeout 60")[1]
    assert "Failed to load result for task 'jugfile.numbers'" in waited, waited
    shown = run(ip, "%jug status")[1]
    h = hex_of(ip, "short")
    assert f"The result of task jugfile.numbers (hash {h}) cannot be loaded" in shown, shown
    assert f"%jug invalidate --hash {h[:12]}" in shown
