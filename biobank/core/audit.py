"""Append-only, hash-chained audit log of every write and every individual-level read.

Each entry's hash is ``sha256(prev_hash + canonical JSON of the entry)``; the
first entry's ``prev_hash`` is 64 zeros. :func:`verify` recomputes the chain
and reports the first entry that was edited, inserted or deleted.

Deleting the newest entries leaves a valid (shorter) chain, so the head of the
chain (last entry id and hash) is also kept in table ``audit_head``, updated in
the same transaction as each entry and signed with an HMAC of the center key
(:func:`biobank.core.ids.center_key`, kept outside the database). :func:`verify`
compares the log's end with the head and, when the key is available, checks the
signature: a truncated tail, or a head rewritten without the key, is reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from biobank.core.access import Principal
from biobank.core.errors import AuditIntegrityError, ConfigError

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


def _store_key(con: duckdb.DuckDBPyConnection) -> bytes | None:
    """Return the center key of the store behind ``con``, or ``None`` if there is none."""
    from biobank.core.ids import center_key

    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    path = row[0] if row else None
    try:
        return center_key(path) if path else center_key(None)
    except ConfigError:
        return None


def _head_mac(key: bytes, entry_id: int, entry_hash: str) -> str:
    return hmac.new(key, f"{entry_id}:{entry_hash}".encode("ascii"), hashlib.sha256).hexdigest()


def _update_head(con: duckdb.DuckDBPyConnection, entry_id: int, entry_hash: str) -> None:
    """Move the signed head of the chain to the new entry (if the store has ``audit_head``)."""
    try:
        has_head = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'audit_head'"
            " AND database_name = current_database()"
        ).fetchone()
    except duckdb.Error:  # pragma: no cover - catalog functions always exist
        return
    if not has_head or has_head[0] == 0:
        return
    key = _store_key(con)
    mac = _head_mac(key, entry_id, entry_hash) if key is not None else None
    con.execute(
        "UPDATE audit_head SET entry_id = ?, entry_hash = ?, head_mac = ? WHERE id = 1",
        [entry_id, entry_hash, mac],
    )


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
    _update_head(con, entry_id, h)
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
    _verify_head(con, n, prev)
    return VerifyReport(entries=n, last_hash=prev)


def _verify_head(con: duckdb.DuckDBPyConnection, entries: int, last_hash: str) -> None:
    """Compare the end of the log with the signed head in ``audit_head``."""
    try:
        head = con.execute(
            "SELECT entry_id, entry_hash, head_mac FROM audit_head WHERE id = 1"
        ).fetchone()
    except duckdb.CatalogException:
        return  # a store from before the head was kept
    if head is None:
        raise AuditIntegrityError("the audit head record is missing: it was deleted")
    head_id, head_hash, head_mac = int(head[0]), str(head[1]), head[2]
    if head_id > entries:
        raise AuditIntegrityError(
            f"the audit log ends at entry {entries} but its head says entry {head_id}: "
            f"the newest {head_id - entries} entries were deleted"
        )
    if head_id != entries or head_hash != last_hash:
        raise AuditIntegrityError(
            f"the audit head (entry {head_id}) does not match the end of the log "
            f"(entry {entries}): entries were added or replaced outside audit.record"
        )
    key = _store_key(con)
    if key is None or entries == 0:
        return
    if head_mac is None or not hmac.compare_digest(
        str(head_mac), _head_mac(key, head_id, head_hash)
    ):
        raise AuditIntegrityError(
            f"the audit head (entry {head_id}) is not signed with this center's key: "
            "it was rewritten, probably to hide deleted entries"
        )
