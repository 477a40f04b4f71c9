"""Tests for biobank.core.store: migrations, the all-or-nothing writer path, provenance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from biobank.core.errors import StoreError
from biobank.core.store import NEW_STORE_BLOCK_SIZE, Store, _migrations, file_checksum


def test_store__new_file_is_migrated_to_latest(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert store.schema_version() == max(v for v, _, _ in _migrations())
        names = {r[0] for r in store.con.execute("SELECT name FROM schema_migrations").fetchall()}
    assert "001_core" in names


def test_store__reopen_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    with Store(path) as store:
        assert store.migrate() == []


def _block_size(store: Store) -> int:
    row = store.con.execute("PRAGMA database_size").fetchone()
    assert row is not None
    return int(row[2])


def test_store__new_file_has_the_store_block_size_and_an_old_file_keeps_its_own(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "new.duckdb") as store:
        assert _block_size(store) == NEW_STORE_BLOCK_SIZE
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()  # DuckDB's own default block size
    default = duckdb.connect().execute("SELECT current_setting('default_block_size')").fetchone()
    assert default is not None
    with Store(old) as store:
        assert _block_size(store) == int(default[0])
        assert store.schema_version() == max(v for v, _, _ in _migrations())
    with Store(old, read_only=True) as store:
        assert _block_size(store) == int(default[0])


def test_transaction__error_rolls_back_everything(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(RuntimeError, match="boom"), store.transaction() as con:
            store.record_provenance(con, kind="vcf", source="a.vcf", checksum="x")
            raise RuntimeError("boom")
        assert store.con.execute("SELECT count(*) FROM provenance").fetchone() == (0,)


def test_transaction__nested_joins_outer(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(ValueError, match="inner"), store.transaction() as con:
            store.record_provenance(con, kind="vcf", source="a", checksum="1")
            with store.transaction() as inner:
                store.record_provenance(inner, kind="vcf", source="b", checksum="2")
                raise ValueError("inner")
        assert store.con.execute("SELECT count(*) FROM provenance").fetchone() == (0,)


def test_provenance__find_load_by_checksum(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    with Store(tmp_path / "s.duckdb") as store:
        assert store.find_load(kind="vcf", checksum=file_checksum(src)) is None
        with store.transaction() as con:
            load_id = store.record_provenance(
                con, kind="vcf", source=str(src), checksum=file_checksum(src), parameters={"a": 1}
            )
        assert store.find_load(kind="vcf", checksum=file_checksum(src)) == load_id
        assert store.find_load(kind="clinical", checksum=file_checksum(src)) is None


def test_file_checksum__matches_sha256sum(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 5000)
    expected = subprocess.run(
        ["sha256sum", str(src)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert file_checksum(src) == expected


def test_store__read_only_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    with (
        Store(path, read_only=True) as store,
        pytest.raises(StoreError, match="read-only"),
        store.transaction(),
    ):
        pass


def test_store__read_only_missing_file_names_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="biobank init"):
        Store(tmp_path / "absent.duckdb", read_only=True)


def test_store__create_false_refuses_missing_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.duckdb"
    named = re.escape(str(path))
    with pytest.raises(
        StoreError, match=rf"^store {named} does not exist: .*'biobank init {named}'"
    ):
        Store(path, create=False)
    assert list(tmp_path.iterdir()) == []


def test_store__create_false_opens_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path, create=True).close()
    with Store(path, create=False) as store:
        assert store.schema_version() > 0


def test_store__newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future', 'x', now())")
    con.close()
    with pytest.raises(StoreError, match="newer than this biobank"):
        Store(path)


def test_store__not_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        Store(path)


def test_transaction__killed_process_leaves_store_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    code = f"""
import os, signal
from biobank.core.store import Store
store = Store({str(path)!r})
with store.transaction() as con:
    for i in range(200):
        store.record_provenance(con, kind="vcf", source=str(i), checksum=str(i))
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    with Store(path) as store:
        assert store.con.execute("SELECT count(*) FROM provenance").fetchone() == (0,)


_FAULTS_CODE = """
import ctypes, resource, sys
from biobank.core.store import Store

Store(sys.argv[1]).close()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 48 * 1024 * 1024  # above glibc's largest automatic mmap threshold (32 MiB)

def faults_of_fresh_buffer():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buf = libc.malloc(size)
    ctypes.memset(buf, 1, size)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    libc.free(buf)
    return after - before

faults_of_fresh_buffer()
print(faults_of_fresh_buffer())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
@pytest.mark.parametrize(("setting", "reused"), [("", True), ("off", False)])
def test_store__open_keeps_freed_buffers_for_reuse(
    tmp_path: Path, setting: str, reused: bool
) -> None:
    """A second 48 MiB malloc reuses the first one's pages, unless tuning is off."""
    env = {**os.environ, "BIOBANK_MALLOC_TUNING": setting}
    proc = subprocess.run(
        [sys.executable, "-c", _FAULTS_CODE, str(tmp_path / "s.duckdb")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    faults = int(proc.stdout.strip())
    pages = 48 * 1024 * 1024 // 4096
    if reused:
        assert faults < pages // 10
    else:
        assert faults >= pages // 2


def test_scratch__attached_then_removed_and_refused_in_a_transaction(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        with store.scratch() as alias:
            store.con.execute(f"CREATE TABLE {alias}.t AS SELECT range AS i FROM range(5)")
            row = store.con.execute(f"SELECT sum(i) FROM {alias}.t").fetchone()
            assert row == (10,)
            (path,) = tmp_path.glob(".s.duckdb.scratch-*.duckdb")
        assert not path.exists()
        names = [
            r[0]
            for r in store.con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        ]
        assert alias not in names
        with (
            store.transaction(),
            pytest.raises(StoreError, match=r"inside Store\.transaction"),
            store.scratch(),
        ):
            pass
    with (
        Store(tmp_path / "s.duckdb", read_only=True) as ro,
        pytest.raises(StoreError, match="read-only"),
        ro.scratch(),
    ):
        pass


def test_store__open_removes_scratch_left_by_dead_processes_only(tmp_path: Path) -> None:
    Store(tmp_path / "s.duckdb").close()
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now
    left = [
        tmp_path / f".s.duckdb.scratch-{dead.pid}-0a1b2c.duckdb",
        tmp_path / f".s.duckdb.scratch-{dead.pid}-0a1b2c.duckdb.wal",
    ]
    live = [
        tmp_path / f".s.duckdb.scratch-{os.getpid()}-0a1b2d.duckdb",  # this process
        tmp_path / f".s.duckdb.scratch-{os.getppid()}-0a1b2e.duckdb",  # a live one
        tmp_path / f".other.duckdb.scratch-{dead.pid}-0a1b2f.duckdb",  # another store's
    ]
    for f in left + live:
        f.write_bytes(b"x")
    with Store(tmp_path / "s.duckdb", read_only=True):
        assert all(f.exists() for f in left)  # a reader never deletes
    with Store(tmp_path / "s.duckdb"):
        assert not any(f.exists() for f in left)
        assert all(f.exists() for f in live)
