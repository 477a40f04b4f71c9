"""Append-only, hash-chained audit log of every write and every individual-level read.

Each entry's hash is ``sha256(prev_hash + canonical JSON of the entry)``; the
first entry's ``prev_hash`` is 64 zeros. :func:`verify` recomputes the chain
and reports the first entry that was edited, inserted or deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from biobank.access import Principal
from biobank.errors import AuditIntegrityError

__all__ = ["GENESIS", "VerifyReport", "record", "verify"]

GENESIS = "0" * 64


def _entry_hash(
    prev_hash: str,
    entry_id: int,
    logged_at: str,
    user: str,
    role: str,
    action: str,
    target: str,
    detail: str,
) -> str:
    payload = json.dumps(
        [entry_id, logged_at, user, role, action, target, json.loads(detail)],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def record(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one entry; call it inside the transaction of the write it records.

    Parameters
    ----------
    con
        Connection (of the enclosing transaction, for writes).
    principal
        Who acted.
    action
        Dotted verb, e.g. ``"specimen.move"`` or ``"genotype.read"``.
    target
        What was touched.
    detail
        Why and with which parameters (JSON-serialisable).

    Returns
    -------
    int
        The new entry id.
    """
    last = con.execute(
        "SELECT entry_id, entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    entry_id = 1 if last is None else int(last[0]) + 1
    prev = GENESIS if last is None else str(last[1])
    logged_at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    detail_json = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str)
    h = _entry_hash(
        prev,
        entry_id,
        logged_at,
        principal.user,
        principal.role.value,
        action,
        target,
        detail_json,
    )
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            entry_id,
            logged_at,
            principal.user,
            principal.role.value,
            action,
            target,
            detail_json,
            prev,
            h,
        ],
    )
    return entry_id


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: how many entries were checked."""

    entries: int
    last_hash: str


def verify(con: duckdb.DuckDBPyConnection) -> VerifyReport:
    """Recompute the hash chain over the whole log.

    Raises
    ------
    AuditIntegrityError
        Naming the first entry whose id, link or hash does not match.
    """
    prev = GENESIS
    n = 0
    rows = con.execute(
        "SELECT entry_id, strftime(logged_at, '%Y-%m-%dT%H:%M:%S.%f'), user_name, role, action,"
        " target, CAST(detail AS VARCHAR), prev_hash, entry_hash FROM audit_log ORDER BY entry_id"
    ).fetchall()
    for expected_id, row in enumerate(rows, start=1):
        entry_id, logged_at, user, role, action, target, detail, prev_hash, entry_hash = row
        if entry_id != expected_id:
            raise AuditIntegrityError(
                f"audit log entry {expected_id} is missing (next is {entry_id}): "
                "entries were deleted"
            )
        if prev_hash != prev:
            raise AuditIntegrityError(
                f"audit log entry {entry_id} does not link to entry {entry_id - 1}: "
                "the chain was cut or an entry replaced"
            )
        if _entry_hash(prev, entry_id, logged_at, user, role, action, target, detail) != entry_hash:
            raise AuditIntegrityError(f"audit log entry {entry_id} was edited after it was written")
        prev = entry_hash
        n += 1
    return VerifyReport(entries=n, last_hash=prev)
