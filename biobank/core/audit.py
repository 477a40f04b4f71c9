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

An insider who can write the store could still delete the tail of the log
*and* ``audit_head`` together, or wipe both. So the head also leaves the store:
after every committed transaction that added entries, :func:`publish_head`
appends ``entry_id, entry_hash, head_mac`` to an append-only **head file**
beside the center key (:func:`head_file_path`; the service account owns it,
not the people who can open the database) and, where the machine has a syslog
socket (journald), logs the same line there. :func:`check_head_file` runs at
every open of a store and in :func:`verify`: the log must reach the entry the
file names, with the same hash. A log that is shorter (truncated, wiped) or
different there (rewritten) is reported, and so is a head file that is missing
once it was established (``audit_head.external_since``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from biobank.core.access import Principal
from biobank.core.errors import AuditIntegrityError, ConfigError

__all__ = [
    "GENESIS",
    "HEAD_FILE_ENV",
    "VerifyReport",
    "check_head_file",
    "head_file_path",
    "publish_head",
    "record",
    "record_refusal",
    "verify",
]

logger = logging.getLogger(__name__)

GENESIS = "0" * 64

#: Environment variable naming the audit head file (default: beside the center key).
HEAD_FILE_ENV = "BIOBANK_AUDIT_HEAD"


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


def _store_path(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return str(row[0]) if row and row[0] else None


#: Connections known to have table ``audit_head``, with their store's path. Catalog
#: look-ups cost milliseconds, once per entry before; a table is not dropped, so a
#: connection found to have it is asked once (one that has not is asked again).
_HEADED: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, str | None] = (
    weakref.WeakKeyDictionary()
)


def _has_head(con: duckdb.DuckDBPyConnection) -> tuple[bool, str | None]:
    """Whether the store behind ``con`` has ``audit_head``, and the store's path."""
    if con in _HEADED:
        return True, _HEADED[con]
    try:
        row = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'audit_head'"
            " AND database_name = current_database()"
        ).fetchone()
    except duckdb.Error:  # pragma: no cover - catalog functions always exist
        return False, None
    if not row or row[0] == 0:
        return False, None
    path = _store_path(con)
    _HEADED[con] = path
    return True, path


def _chain_end(con: duckdb.DuckDBPyConnection, has_head: bool) -> tuple[int, str] | None:
    """The newest entry of the log as ``(entry_id, entry_hash)``, ``None`` when it is empty.

    The head moves with every entry in the same transaction, so the newest entry
    is the head's, found with one look-up of the primary key that also shows that
    no entry follows it. When the log does not agree with the head (an entry
    deleted, replaced or added outside :func:`record`: :func:`verify` reports it)
    the log's own last entry is taken, as a scan finds it.
    """
    if has_head:
        head = con.execute("SELECT entry_id, entry_hash FROM audit_head WHERE id = 1").fetchone()
        if head is not None and int(head[0]) > 0:
            rows = con.execute(
                "SELECT entry_id, entry_hash FROM audit_log WHERE entry_id IN (?, ?)",
                [int(head[0]), int(head[0]) + 1],
            ).fetchall()
            if len(rows) == 1 and (int(rows[0][0]), str(rows[0][1])) == (int(head[0]), head[1]):
                return int(head[0]), str(head[1])
    last = con.execute(
        "SELECT entry_id, entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    return None if last is None else (int(last[0]), str(last[1]))


def _store_key(con: duckdb.DuckDBPyConnection) -> bytes | None:
    """Return the center key of the store behind ``con``, or ``None`` if there is none."""
    from biobank.core.ids import center_key

    path = _store_path(con)
    try:
        return center_key(path) if path else center_key(None)
    except ConfigError:
        return None


def _head_mac(key: bytes, entry_id: int, entry_hash: str) -> str:
    return hmac.new(key, f"{entry_id}:{entry_hash}".encode("ascii"), hashlib.sha256).hexdigest()


def _update_head(
    con: duckdb.DuckDBPyConnection, entry_id: int, entry_hash: str, path: str | None
) -> None:
    """Move the signed head of the chain to the new entry (the store has ``audit_head``)."""
    from biobank.core.ids import center_key

    try:
        key: bytes | None = center_key(path) if path else center_key(None)
    except ConfigError:
        key = None
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
    return _append_entry(con, principal.user, principal.role.value, action, target, detail)


def record_refusal(
    con: duckdb.DuckDBPyConnection,
    *,
    user: str,
    role: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append an entry for a refused attempt, whose actor may be no biobank user.

    Parameters
    ----------
    con
        Connection (autocommitted: the refused action wrote nothing).
    user
        Who tried: a biobank user, or ``os:<login>`` for an unmapped login.
    role
        Their role, or ``none``.
    action
        ``access.refused`` or a more specific dotted verb.
    target
        What was tried (the command, the route).
    detail
        The reason and the client (address, login).

    Returns
    -------
    int
        The new entry id.
    """
    return _append_entry(con, user, role, action, target, detail)


def _append_entry(
    con: duckdb.DuckDBPyConnection,
    user: str,
    role: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None,
) -> int:
    has_head, path = _has_head(con)
    last = _chain_end(con, has_head)
    entry_id = 1 if last is None else last[0] + 1
    prev = GENESIS if last is None else last[1]
    logged_at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    detail_json = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str)
    h = _entry_hash(prev, entry_id, logged_at, user, role, action, target, detail_json)
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            entry_id,
            logged_at,
            user,
            role,
            action,
            target,
            detail_json,
            prev,
            h,
        ],
    )
    if has_head:
        _update_head(con, entry_id, h, path)
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
    check_head_file(con)
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


# --------------------------------------------------------------------------- head file
def head_file_path(store_path: str | Path | None) -> Path | None:
    """Return where the audit head of the store at ``store_path`` is kept outside it.

    ``BIOBANK_AUDIT_HEAD`` if set; else ``<key file>.audit-head`` when the
    center key comes from ``BIOBANK_KEY_FILE``; else ``<store>.audit-head``
    beside the store's ``<store>.key``. ``None`` for an in-memory store.
    """
    from biobank.core.ids import KEY_FILE_ENV

    if os.environ.get(HEAD_FILE_ENV):
        return Path(os.environ[HEAD_FILE_ENV])
    if not store_path or str(store_path) == ":memory:":
        return None
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV] + ".audit-head")
    return Path(str(store_path) + ".audit-head")


def _last_line(path: Path) -> tuple[int, str] | None:
    """Return ``(entry_id, entry_hash)`` of the head file's last line, ``None`` if empty."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        lines = fh.read().decode("ascii", errors="replace").strip().splitlines()
    if not lines:
        return None
    fields = lines[-1].split("\t")
    try:
        return int(fields[0]), fields[1]
    except (IndexError, ValueError) as exc:
        raise AuditIntegrityError(
            f"the audit head file {path} ends in a line that is not 'entry_id<TAB>hash': "
            "it was edited"
        ) from exc


def _head_row(con: duckdb.DuckDBPyConnection) -> tuple[int, str, str | None, Any] | None:
    try:
        row = con.execute(
            "SELECT entry_id, entry_hash, head_mac, external_since FROM audit_head WHERE id = 1"
        ).fetchone()
    except duckdb.Error:  # a store from before the head (or its file) was kept
        return None
    if row is None:
        raise AuditIntegrityError("the audit head record is missing: it was deleted")
    return int(row[0]), str(row[1]), row[2], row[3]


def _append(path: Path, entry_id: int, entry_hash: str, mac: str | None) -> None:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    line = f"{entry_id}\t{entry_hash}\t{mac or '-'}\t{now}\n".encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write with O_APPEND: whole lines, in commit order
    finally:
        os.close(fd)
    _to_syslog(path, entry_id, entry_hash)


def _to_syslog(path: Path, entry_id: int, entry_hash: str) -> None:
    if not os.path.exists("/dev/log"):
        return
    import syslog

    syslog.openlog("biobank-audit", 0, syslog.LOG_AUTH)
    syslog.syslog(syslog.LOG_INFO, f"head {path}: entry {entry_id} hash {entry_hash}")


def publish_head(con: duckdb.DuckDBPyConnection, *, written: int | None = None) -> int:
    """Append the store's audit head to the head file if it moved; call after a commit.

    Parameters
    ----------
    con
        The store's connection, outside any transaction.
    written
        The entry id last appended by this process (saves reading the file).

    Returns
    -------
    int
        The entry id the head file now ends at (``-1`` when the store keeps no
        head, or its head file is not established yet: :func:`check_head_file`).
    """
    head = _head_row(con)
    path = head_file_path(_store_path(con))
    if head is None or path is None or head[3] is None:  # not established yet
        return -1
    entry_id, entry_hash, mac, _ = head
    if written is None:
        last = _last_line(path) if path.exists() else None
        written = -1 if last is None else last[0]
    if entry_id > written:
        _append(path, entry_id, entry_hash, mac)
    return max(entry_id, written)


def check_head_file(con: duckdb.DuckDBPyConnection, *, establish: bool = False) -> int:
    """Check the log against the head kept outside the store.

    Parameters
    ----------
    con
        The store's connection.
    establish
        For a store whose head file was never written (made before this
        check existed): write it now from the current head and record when.
        Needs a writable store; without it such a store is only logged.

    Returns
    -------
    int
        The entry id the head file ends at (``-1`` when there is none to check).

    Raises
    ------
    AuditIntegrityError
        If the log is shorter than the head file says (its tail was deleted
        or it was wiped), differs from it at that entry (rewritten), or the
        head file is missing although it was established.
    """
    head = _head_row(con)
    path = head_file_path(_store_path(con))
    if head is None or path is None:
        return -1
    entry_id, entry_hash, mac, since = head
    if not path.exists():
        if since is not None:
            raise AuditIntegrityError(
                f"the audit head file {path} is missing although this store has kept one since "
                f"{since}: it was deleted (tampering); restore it from backup"
            )
        if not establish:
            logger.warning("store has no audit head file yet (%s); a writer will create it", path)
            return -1
        _append(path, entry_id, entry_hash, mac)
        con.execute("UPDATE audit_head SET external_since = now()::TIMESTAMP WHERE id = 1")
        logger.info("audit head file %s established at entry %d", path, entry_id)
        return entry_id
    last = _last_line(path)
    if last is None:
        raise AuditIntegrityError(f"the audit head file {path} is empty: it was truncated")
    if since is None and establish:
        con.execute("UPDATE audit_head SET external_since = now()::TIMESTAMP WHERE id = 1")
    file_id, file_hash = last
    if file_id == 0:
        return 0
    row = con.execute("SELECT entry_hash FROM audit_log WHERE entry_id = ?", [file_id]).fetchone()
    if row is None:
        n = con.execute("SELECT count(*) FROM audit_log").fetchone()
        raise AuditIntegrityError(
            f"the audit log has {n[0] if n else 0} entries but the head file {path} says "
            f"entry {file_id} was written: the log was truncated or wiped"
        )
    if str(row[0]) != file_hash:
        raise AuditIntegrityError(
            f"audit log entry {file_id} differs from the head file {path}: the log was rewritten"
        )
    return file_id
