"""Tests for biobank.core.audit: what is recorded; edits, deletions and truncation are detected."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_support import WANG, loaded, loaded_template, store, users

from biobank.core import audit
from biobank.core.access import Principal
from biobank.core.errors import AuditIntegrityError
from biobank.core.ids import center_key, pseudonym
from biobank.core.store import Store
from biobank.registry.inventory import get_specimen, move_specimen
from biobank.registry.participants import get_participant, list_participants

__all__ = ["loaded", "loaded_template", "store", "users"]  # fixtures used by the tests below


def _last(store: Store) -> tuple[str, str, str]:
    row = store.con.execute(
        "SELECT user_name, action, target FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return row  # type: ignore[return-value]


def test_record__writes_and_individual_reads_are_audited(
    loaded: Store, users: dict[str, Principal]
) -> None:
    actions = [r[0] for r in loaded.con.execute("SELECT action FROM audit_log").fetchall()]
    assert actions.count("registry.import") == 3
    reg = users["registrar"]
    wang = pseudonym(WANG, center_key(loaded.path))
    get_participant(loaded, reg, wang)
    assert _last(loaded) == ("reg1", "participant.read", wang)
    get_specimen(loaded, users["researcher"], "BB0000001N")
    assert _last(loaded) == ("res1", "specimen.read", "BB0000001N")
    list_participants(loaded, users["researcher"])
    assert _last(loaded)[1] == "participant.list"
    move_specimen(
        loaded,
        reg,
        "BB0000001N",
        freezer="F7",
        rack="R1",
        box="B1",
        position="A1",
        reason="defrost",
    )
    assert _last(loaded) == ("reg1", "specimen.move", "BB0000001N")
    assert audit.verify(loaded.con).entries == len(actions) + 4


def test_verify__intact_log_and_head(loaded: Store) -> None:
    report = audit.verify(loaded.con)
    head = loaded.con.execute("SELECT entry_id, entry_hash, head_mac FROM audit_head").fetchone()
    assert head is not None
    assert (head[0], head[1]) == (report.entries, report.last_hash)
    assert head[2] is not None  # signed with the center key


def test_verify__detects_edited_entry(loaded: Store) -> None:
    loaded.con.execute("UPDATE audit_log SET user_name = 'mallory' WHERE entry_id = 2")
    with pytest.raises(AuditIntegrityError, match="entry 2 was edited"):
        audit.verify(loaded.con)


def test_verify__detects_edited_detail(loaded: Store) -> None:
    loaded.con.execute('UPDATE audit_log SET detail = \'{"kind": "consents"}\' WHERE entry_id = 1')
    with pytest.raises(AuditIntegrityError, match="entry 1 was edited"):
        audit.verify(loaded.con)


def test_verify__detects_deleted_entry(loaded: Store) -> None:
    loaded.con.execute("DELETE FROM audit_log WHERE entry_id = 2")
    with pytest.raises(AuditIntegrityError, match="entry 2 is missing"):
        audit.verify(loaded.con)


def test_verify__detects_truncated_tail(loaded: Store) -> None:
    n = audit.verify(loaded.con).entries
    loaded.con.execute("DELETE FROM audit_log WHERE entry_id = ?", [n])
    with pytest.raises(
        AuditIntegrityError, match=f"ends at entry {n - 1} but its head says entry {n}"
    ):
        audit.verify(loaded.con)


def test_verify__detects_truncation_with_rewritten_head(loaded: Store) -> None:
    n = audit.verify(loaded.con).entries
    loaded.con.execute("DELETE FROM audit_log WHERE entry_id = ?", [n])
    loaded.con.execute(
        "UPDATE audit_head SET entry_id = ?, entry_hash = (SELECT entry_hash FROM audit_log"
        " WHERE entry_id = ?), head_mac = NULL",
        [n - 1, n - 1],
    )
    with pytest.raises(AuditIntegrityError, match="not signed with this center's key"):
        audit.verify(loaded.con)


def test_verify__detects_replaced_tail_entry(loaded: Store) -> None:
    n = audit.verify(loaded.con).entries
    loaded.con.execute("UPDATE audit_log SET entry_hash = repeat('a', 64) WHERE entry_id = ?", [n])
    with pytest.raises(AuditIntegrityError, match=f"entry {n} was edited"):
        audit.verify(loaded.con)


def _forged(entry_id: int, prev: str) -> list[object]:
    return [entry_id, "2024-01-01T00:00:00", "x", "admin", "forged", "t", "{}", prev, "f" * 64]


def test_record__after_tampering_still_chains_on_the_log_and_verify_reports_it(
    loaded: Store, users: dict[str, Principal]
) -> None:
    """The next entry is found from the head; where the log disagrees, from the log itself."""
    reg = users["registrar"]
    n = audit.verify(loaded.con).entries
    # an entry added outside audit.record: the next one follows it (no duplicate id)
    last_hash = loaded.con.execute(
        "SELECT entry_hash FROM audit_log WHERE entry_id = ?", [n]
    ).fetchone()
    assert last_hash is not None
    loaded.con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _forged(n + 1, last_hash[0])
    )
    with loaded.transaction() as con:
        assert audit.record(con, reg, "x.read", "t") == n + 2
    with pytest.raises(AuditIntegrityError, match=f"entry {n + 1} was edited"):
        audit.verify(loaded.con)
    # the tail deleted, the head left: the next entry follows what is left of the log
    loaded.con.execute("DELETE FROM audit_log WHERE entry_id > ?", [n - 1])
    with loaded.transaction() as con:
        assert audit.record(con, reg, "x.read", "t") == n
    with pytest.raises(AuditIntegrityError, match="head file"):
        audit.verify(loaded.con)


def test_record__each_entry_links_to_the_one_before(
    loaded: Store, users: dict[str, Principal]
) -> None:
    with loaded.transaction() as con:
        ids = [audit.record(con, users["registrar"], "x.read", f"t{i}") for i in range(3)]
    for i in range(2):
        with loaded.transaction() as con:
            ids.append(audit.record(con, users["auditor"], "x.read", f"u{i}"))
    assert ids == list(range(ids[0], ids[0] + 5))
    assert audit.verify(loaded.con).entries == ids[-1]


@pytest.mark.slow
def test_cli_audit_verify__exit_1_after_truncation(loaded: Store, tmp_path: Path) -> None:
    n = audit.verify(loaded.con).entries
    loaded.con.execute("DELETE FROM audit_log WHERE entry_id = ?", [n])
    path = loaded.path
    loaded.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biobank",
            "--store",
            str(path),
            "--user",
            "aud1",
            "audit",
            "verify",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "newest 1 entries were deleted" in proc.stderr


# -- the head outside the store ----------------------------------------------------------
def _head_lines(store: Store) -> list[list[str]]:
    path = audit.head_file_path(store.path)
    assert path is not None
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_head_file__follows_every_committed_write(
    loaded: Store, users: dict[str, Principal]
) -> None:
    n = audit.verify(loaded.con).entries
    assert int(_head_lines(loaded)[-1][0]) == n
    wang = pseudonym(WANG, center_key(loaded.path))
    get_participant(loaded, users["registrar"], wang)
    last = _head_lines(loaded)[-1]
    assert int(last[0]) == n + 1
    assert (
        last[1]
        == loaded.con.execute(
            "SELECT entry_hash FROM audit_log WHERE entry_id = ?", [n + 1]
        ).fetchone()[0]
    )
    assert oct(audit.head_file_path(loaded.path).stat().st_mode & 0o777) == "0o600"  # type: ignore[union-attr]


def test_head_file__a_rolled_back_write_does_not_move_it(
    loaded: Store, users: dict[str, Principal]
) -> None:
    before = _head_lines(loaded)
    with pytest.raises(RuntimeError, match="undo"), loaded.transaction() as con:
        audit.record(con, users["registrar"], "test.write", "x")
        raise RuntimeError("undo")
    assert _head_lines(loaded) == before


def _tamper_and_reopen(store: Store, *statements: str) -> Path:
    for sql in statements:
        store.con.execute(sql)
    store.con.execute("CHECKPOINT")
    path = store.path
    store.close()
    return path


def test_head_file__deleting_the_tail_and_audit_head_together_is_detected(loaded: Store) -> None:
    n = audit.verify(loaded.con).entries
    # an insider who also holds the center key deletes the last two entries and moves
    # audit_head back, signed: the log and its head inside the store agree again
    prev = loaded.con.execute(
        "SELECT entry_hash FROM audit_log WHERE entry_id = ?", [n - 2]
    ).fetchone()[0]
    mac = hmac.new(
        center_key(loaded.path), f"{n - 2}:{prev}".encode("ascii"), hashlib.sha256
    ).hexdigest()
    path = _tamper_and_reopen(
        loaded,
        f"DELETE FROM audit_log WHERE entry_id > {n - 2}",
        f"UPDATE audit_head SET entry_id = {n - 2}, entry_hash = '{prev}', head_mac = '{mac}'",
    )
    with pytest.raises(AuditIntegrityError, match="log was truncated or wiped"):
        Store(path)
    with Store(path, check_audit=False) as s, pytest.raises(AuditIntegrityError, match="truncated"):
        audit.verify(s.con)


def test_head_file__wiping_the_log_is_detected(loaded: Store) -> None:
    path = _tamper_and_reopen(
        loaded,
        "DELETE FROM audit_log",
        f"UPDATE audit_head SET entry_id = 0, entry_hash = '{audit.GENESIS}', head_mac = NULL",
    )
    with pytest.raises(AuditIntegrityError, match="has 0 entries but the head file"):
        Store(path, read_only=True)


def test_head_file__a_rewritten_entry_is_detected_at_open(loaded: Store) -> None:
    n = audit.verify(loaded.con).entries
    path = _tamper_and_reopen(
        loaded, f"UPDATE audit_log SET entry_hash = repeat('b', 64) WHERE entry_id = {n}"
    )
    with pytest.raises(AuditIntegrityError, match=f"entry {n} differs from the head file"):
        Store(path)


def test_head_file__a_missing_head_file_is_tampering(loaded: Store) -> None:
    head = audit.head_file_path(loaded.path)
    path = _tamper_and_reopen(loaded)
    assert head is not None
    head.unlink()
    with pytest.raises(AuditIntegrityError, match="is missing although this store has kept one"):
        Store(path)


def test_head_file__an_older_store_gets_one_on_its_first_writable_open(
    loaded: Store, caplog: pytest.LogCaptureFixture
) -> None:
    head = audit.head_file_path(loaded.path)
    n = audit.verify(loaded.con).entries
    path = _tamper_and_reopen(loaded, "UPDATE audit_head SET external_since = NULL")
    assert head is not None
    head.unlink()
    with Store(path, read_only=True):  # a reader only says so
        pass
    assert not head.exists()
    assert "no audit head file yet" in caplog.text
    with Store(path) as s:
        assert s.con.execute("SELECT external_since FROM audit_head").fetchone()[0] is not None
    assert int(head.read_text().split("\t")[0]) == n


def test_head_file__path_follows_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(audit.HEAD_FILE_ENV, raising=False)
    monkeypatch.setenv("BIOBANK_KEY_FILE", str(tmp_path / "keys" / "center.key"))
    assert (
        audit.head_file_path(tmp_path / "s.duckdb") == tmp_path / "keys" / "center.key.audit-head"
    )
    monkeypatch.setenv(audit.HEAD_FILE_ENV, str(tmp_path / "h"))
    assert audit.head_file_path(tmp_path / "s.duckdb") == tmp_path / "h"
