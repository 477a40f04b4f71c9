"""The DuckDB store: opening, schema migrations, the one writer path and provenance.

All writes go through :meth:`Store.transaction`, so a failed load leaves nothing
behind (DuckDB rolls the whole transaction back, also when the process is killed
before ``COMMIT``). A long load prepares its rows in a scratch database beside
the store (:meth:`Store.scratch`) and publishes them in one short transaction;
a scratch file left by a killed process is removed the next time the store is
opened for writing. The schema is a numbered series of SQL files in
``biobank/core/schema/`` (``NNN_name.sql``), applied in order and recorded in
``schema_migrations``; a module that needs tables adds a file, never edits an
applied one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from biobank.core import _malloc, audit
from biobank.core.errors import StoreError

__all__ = ["DEFAULT_STORE", "Store", "file_checksum"]

logger = logging.getLogger(__name__)

DEFAULT_STORE = "biobank.duckdb"

#: DuckDB block size (bytes) of a store file created by :class:`Store`; an existing
#: file keeps the one it was created with. DuckDB's default (256 KiB) gives every
#: table and every key index at least one block of its own, so a store's fixed part
#: is a few MB even when it holds little: at 3,000 x 45,000 a partitioned store's
#: catalog was 7.1 MB with 256 KiB blocks and is 2.5 MB with 32 KiB ones (the
#: single-file store 17.3 -> 13.2 MB), queries as fast (docs/store.md).
NEW_STORE_BLOCK_SIZE = 32_768


def _migrations() -> list[tuple[int, str, str]]:
    """Return ``(version, name, sql)`` for every schema file, in version order."""
    out = []
    for entry in resources.files("biobank.core.schema").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        head = name.split("_", 1)[0]
        if not head.isdigit():
            raise StoreError(f"schema file {name} must start with a number, e.g. 010_registry.sql")
        out.append((int(head), name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two schema files share a version number: {versions}")
    return out


def file_checksum(path: str | Path, *, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file's bytes.

    Parameters
    ----------
    path
        The file.
    algorithm
        A :mod:`hashlib` algorithm name.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Store:
    """A biobank store in one DuckDB file.

    Parameters
    ----------
    path
        The DuckDB file.
    read_only
        Open without write access (several readers may share the file).
    migrate
        Apply pending schema migrations on open (not with ``read_only``).
    check_audit
        Check the audit log against its head outside the store
        (:func:`biobank.core.audit.check_head_file`); only ``biobank audit
        verify`` opens without it, to report what is wrong.
    create
        Create (and migrate) the file if it is missing. With ``False`` a missing
        file is an error and nothing is written: the ``biobank`` command and
        :func:`biobank.open` open stores this way, so that a mistyped path never
        leaves an empty store behind (only ``biobank init`` creates one). Ignored
        with ``read_only``, which never creates.

    Raises
    ------
    StoreError
        If the file is missing (with ``read_only`` or ``create=False``), cannot
        be opened (locked by another writer, not a DuckDB file) or its schema is
        newer than this version of the package knows.

    Examples
    --------
    >>> import tempfile, os
    >>> with Store(os.path.join(tempfile.mkdtemp(), "s.duckdb")) as store:
    ...     store.schema_version() > 0
    True
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        migrate: bool = True,
        check_audit: bool = True,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if (read_only or not create) and not self.path.exists():
            raise StoreError(
                f"store {self.path} does not exist: create it with "
                f"'biobank init {shlex.quote(str(self.path))}' "
                "or point --store / BIOBANK_STORE at an existing store"
            )
        _malloc.tune()  # reuse freed buffers between queries (see biobank.core._malloc)
        try:
            config: dict[str, str | bool | int | float | list[str]] = {}
            if not read_only and not self.path.exists():
                config["default_block_size"] = str(NEW_STORE_BLOCK_SIZE)
            self.con = duckdb.connect(str(self.path), read_only=read_only, config=config)
            # files named relative to the store (the partitioned store's Parquet
            # files, biobank.genomes.partitions) are found beside it, wherever it moved
            here = str(self.path.resolve().parent).replace("'", "''")
            self.con.execute(f"SET GLOBAL file_search_path = '{here}'")
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._in_transaction = False
        #: the audit entry the head file outside the store ends at (see biobank.core.audit)
        self._head_written = -1
        if not read_only:
            self._remove_stale_scratch()
        if migrate and not read_only:
            self.migrate()
        else:
            self._check_version()
        if check_audit:
            try:
                self._head_written = audit.check_head_file(self.con, establish=not read_only)
            except BaseException:
                self.con.close()
                raise

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------
    def schema_version(self) -> int:
        """Return the highest applied migration version (0 for an empty file)."""
        try:
            row = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except duckdb.CatalogException:
            return 0
        return int(row[0]) if row and row[0] is not None else 0

    def _check_version(self) -> None:
        known = max((v for v, _, _ in _migrations()), default=0)
        have = self.schema_version()
        if have > known:
            raise StoreError(
                f"store {self.path} has schema version {have}, newer than this biobank "
                f"package knows ({known}): upgrade the package"
            )

    def migrate(self) -> list[str]:
        """Apply pending migrations, each in its own transaction.

        Returns
        -------
        list of str
            Names of the migrations applied now.
        """
        self._check_version()
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        have = self.schema_version()
        applied = []
        for version, name, sql in _migrations():
            if version <= have:
                continue
            logger.info("applying schema migration %s", name)
            with self.transaction() as con:
                try:
                    con.execute(sql)
                except duckdb.Error as exc:
                    raise StoreError(f"schema migration {name} failed: {exc}") from exc
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                    [
                        version,
                        name,
                        hashlib.sha256(sql.encode()).hexdigest(),
                        dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    ],
                )
            applied.append(name)
        return applied

    # -- writing -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block of writes as one transaction: all of it is written or none.

        Nested use joins the outer transaction.

        Yields
        ------
        duckdb.DuckDBPyConnection
            The connection to write through.

        Raises
        ------
        StoreError
            If the store was opened read-only.
        """
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        if self._in_transaction:
            yield self.con
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                raise StoreError(f"could not commit to {self.path}: {exc}") from exc
            self._in_transaction = False
            self._head_written = audit.publish_head(self.con, written=self._head_written)
        finally:
            self._in_transaction = False

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this store."""
        return self._in_transaction

    # -- scratch databases ---------------------------------------------------
    def _remove_stale_scratch(self) -> None:
        """Delete scratch files of processes that ended without removing them (killed)."""
        import socket

        name = re.escape(self.path.name)
        pattern = re.compile(rf"\.{name}\.scratch-(\d+)-[0-9a-f]+\.duckdb(\.wal)?")
        # region-load workers name their host: on a shared file system only the
        # files of this host's dead processes are stale
        host = re.escape(socket.gethostname())
        region = re.compile(rf"\.{name}\.region-{host}-(\d+)-[0-9a-f]+\.duckdb(\.wal)?")
        for f in self.path.parent.glob(f".{self.path.name}.*-*.duckdb*"):
            m = pattern.fullmatch(f.name) or region.fullmatch(f.name)
            if m is None:
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or _process_alive(pid):
                continue  # possibly in use (another Store of this process, or a live one)
            logger.info("removing %s, left by a load that did not finish", f)
            f.unlink(missing_ok=True)

    @contextmanager
    def scratch(self) -> Iterator[str]:
        """Attach a new, empty scratch database beside the store; drop it afterwards.

        Writes to it are committed one statement at a time (outside
        :meth:`transaction`), so DuckDB keeps none of them in memory: a load
        prepares its rows there, then copies them into the store in one
        transaction. The file (``.<store>.scratch-<pid>-<token>.duckdb``) is
        deleted on exit, and by the next read-write open of the store if the
        process was killed.

        Yields
        ------
        str
            The database alias to qualify table names with (``alias.table``).

        Raises
        ------
        StoreError
            If the store is read-only or a transaction is open (a transaction
            cannot write to two databases).
        """
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        if self._in_transaction:
            raise StoreError("a scratch database cannot be used inside Store.transaction()")
        token = secrets.token_hex(6)
        path = self.path.parent / f".{self.path.name}.scratch-{os.getpid()}-{token}.duckdb"
        alias = f"scratch_{token}"
        try:
            quoted = str(path).replace("'", "''")
            self.con.execute(f"ATTACH '{quoted}' AS {alias}")
        except duckdb.Error as exc:
            raise StoreError(f"cannot create the scratch database {path}: {exc}") from exc
        try:
            yield alias
        finally:
            try:
                self.con.execute(f"DETACH {alias}")
            finally:
                for f in (path, path.with_name(path.name + ".wal")):
                    f.unlink(missing_ok=True)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Return a new cursor for reading (shares the database, not the transaction)."""
        return self.con.cursor()

    # -- provenance ----------------------------------------------------------
    def record_provenance(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        kind: str,
        source: str,
        checksum: str,
        parameters: dict[str, Any] | None = None,
        tool_version: str | None = None,
        user: str | None = None,
    ) -> int:
        """Record one load (VCF, clinical tables, registry CSV) in ``provenance``.

        Parameters
        ----------
        con
            The connection of the enclosing transaction.
        kind
            What was loaded, e.g. ``"vcf"``, ``"clinical"``, ``"registry-csv"``.
        source
            The input path as given.
        checksum
            SHA-256 of the input (see :func:`file_checksum`).
        parameters
            Options of the load, stored as JSON.
        tool_version
            Version of the tool or library that read the input.
        user
            Who ran the load.

        Returns
        -------
        int
            The new provenance id.
        """
        from biobank.__about__ import __version__

        row = con.execute(
            "INSERT INTO provenance (load_id, kind, source, checksum, parameters, tool_version,"
            " biobank_version, user_name, loaded_at)"
            " VALUES (nextval('provenance_seq'), ?, ?, ?, ?, ?, ?, ?, ?) RETURNING load_id",
            [
                kind,
                source,
                checksum,
                json.dumps(parameters or {}, sort_keys=True, default=str),
                tool_version,
                __version__,
                user or os.environ.get("BIOBANK_USER") or os.environ.get("USER", "unknown"),
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ],
        ).fetchone()
        assert row is not None
        return int(row[0])

    def find_load(self, *, kind: str, checksum: str) -> int | None:
        """Return the id of an earlier load of the same input, if any (for idempotent loads)."""
        row = self.con.execute(
            "SELECT load_id FROM provenance WHERE kind = ? AND checksum = ?"
            " ORDER BY load_id LIMIT 1",
            [kind, checksum],
        ).fetchone()
        return int(row[0]) if row else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
