"""Tests for biobank.core.audit: what is recorded; edits, deletions and truncation are detected."""

from __future__ import annotations

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
