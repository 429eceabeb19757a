from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jugnb.backends.file import FileRecordLines
from jugnb.backends.redis import RedisRecordLines
from jugnb.errors import StoreError
from jugnb.status.records import RecordLog, TaskRecord


def records_folder(jugdir: str) -> Path:
    from jugnb.backends import select

    return select(jugdir).companion_folder("records")


def file_log(folder: Path) -> RecordLog:
    return RecordLog(FileRecordLines(folder))


def record(hash_: str = "a" * 40, status: str = "ok", start: float = 100.0, **kw: object) -> TaskRecord:
    fields = dict(
        name="nb.f",
        hash=hash_,
        status=status,
        start=start,
        end=start + 1,
        duration=1.0,
        worker="p.0",
        host="h",
        pid=123,
    )
    fields.update(kw)
    return TaskRecord(**fields)  # type: ignore[arg-type]


def test_record_json_round_trip_ignores_unknown_keys() -> None:
    import json

    r = record(status="failed", exc_type="ValueError", traceback="Traceback...", fingerprint=None)
    data = json.loads(r.to_json())
    data["added_by_a_newer_version"] = 1
    assert TaskRecord.from_dict(data) == r
    assert r.failed and not record().failed


def test_records_live_beside_the_jugdir(tmp_path: Path) -> None:
    jugdir = tmp_path / "nb.jugdata"
    assert records_folder(str(jugdir)) == tmp_path / "nb.jugdata.jugnb" / "records"
    assert records_folder(str(jugdir) + "/") == records_folder(str(jugdir))
    log = RecordLog.for_jugdir(f"file_keepalive:{jugdir}")
    assert isinstance(log.lines, FileRecordLines) and log.lines.folder == records_folder(str(jugdir))


def test_dict_store_has_no_records() -> None:
    with pytest.raises(StoreError, match="shared store"):
        RecordLog.for_jugdir("dict_store")


def test_read_new_is_incremental_across_writers(tmp_path: Path) -> None:
    jugdir = str(tmp_path / "j")
    writer_a, writer_b, reader = (RecordLog.for_jugdir(jugdir) for _ in range(3))
    writer_a.append(record("1" * 40, start=1))
    writer_b.append(record("2" * 40, start=2, worker="p.1", pid=456))
    assert [r.hash[0] for r in reader.read_new()] == ["1", "2"]
    assert reader.read_new() == []
    writer_a.append(record("1" * 40, status="failed", start=5))
    (new,) = reader.read_new()
    assert new.status == "failed"
    latest = reader.latest_by_hash()
    assert latest["1" * 40].status == "failed" and latest["2" * 40].status == "ok"
    # One file per worker process.
    assert len(list(records_folder(jugdir).glob("*.jsonl"))) == 2
    for log in (writer_a, writer_b):
        log.close()


def test_half_written_line_is_read_once_complete(tmp_path: Path) -> None:
    log = file_log(tmp_path / "records")
    log.append(record("1" * 40))
    path = FileRecordLines(tmp_path / "records").path_for("p.0@h-123")
    line = record("2" * 40).to_json()
    with open(path, "a") as handle:
        handle.write(line[:20])
    reader = file_log(tmp_path / "records")
    assert [r.hash[0] for r in reader.read_new()] == ["1"]
    with open(path, "a") as handle:
        handle.write(line[20:] + "\n")
    assert [r.hash[0] for r in reader.read_new()] == ["2"]
    log.close()


def test_damaged_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "x.jsonl").write_text("{not json\n" + record().to_json() + "\n")
    assert len(file_log(folder).read_new()) == 1
    assert "damaged record" in caplog.text


def test_jug_cleanup_and_invalidate_keep_the_records(tmp_path: Path) -> None:
    """jug's cleanup deletes every non-result file inside the jugdir: the records are not inside."""
    from jug.backends.file_store import file_store

    jugdir = tmp_path / "nb.jugdata"
    store = file_store(str(jugdir))
    store.dump(1, "b" * 40)
    log = RecordLog.for_jugdir(str(jugdir))
    log.append(record("b" * 40))
    (jugdir / "stray").write_text("jug cleanup deletes files like this one")
    store.cleanup([], keeplocks=False)
    store.remove_locks()
    store.remove("b" * 40)
    assert not (jugdir / "stray").exists()
    assert list(RecordLog.for_jugdir(str(jugdir)).latest_by_hash()) == ["b" * 40]
    log.close()


@pytest.fixture
def redis_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no", "--requirepass", "s3cret"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://:s3cret@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_records_stream_incrementally_and_hide_the_password(redis_url: str) -> None:
    writer, reader = RecordLog.for_jugdir(redis_url), RecordLog.for_jugdir(redis_url)
    assert isinstance(writer.lines, RedisRecordLines)
    assert "s3cret" not in repr(writer)
    writer.append(record("1" * 40, start=1))
    writer.append(record("2" * 40, start=2))
    assert [r.hash[0] for r in reader.read_new()] == ["1", "2"]
    assert reader.read_new() == []
    writer.append(record("1" * 40, status="failed", start=3))
    assert reader.latest_by_hash()["1" * 40].status == "failed"
    assert all("s3cret" not in r.to_json() for r in reader.latest_by_hash().values())
    writer.close()
    reader.close()
