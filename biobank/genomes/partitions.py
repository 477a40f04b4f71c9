"""The partitioned genotype store: calls in Parquet files, DuckDB as the catalog.

In a partitioned store the calls (sparse ``genotype_call`` rows and packed
``genotype_packed`` bit planes) live in zstd Parquet files under
``<store>.parts/``, one file per kind, batch, contig and region chunk::

    <store>.parts/batch=1/contig=chr1/region=1-5000000/calls-<token>.parquet

The DuckDB file keeps everything else (registry, batches, samples, variants,
which batch covered which variant) and the catalog of the files,
``genotype_partition`` (``biobank/core/schema/150_partitions.sql``): each file's
region, row count, size and SHA-256. ``genotype_call`` and ``genotype_packed``
are then *views* over the files the catalog lists, so every reader (queries,
statistics, ``verify``) runs unchanged on either layout.

Atomicity: a file is written under a temporary name and renamed into place,
and becomes part of the store only when the transaction that lists it in the
catalog (and redefines the views) commits. A killed or failed load leaves at
most unlisted files, which :func:`verify_partitions` reports and
:func:`compact` removes. Loads into the partitioned layout:
:mod:`biobank.genomes.regions`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import StoreError, ValidationError
from biobank.core.store import Store

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CALL_COLUMNS",
    "PACKED_COLUMNS",
    "CompactReport",
    "PartitionCheck",
    "PartitionFile",
    "compact",
    "is_partitioned",
    "make_partitioned",
    "partition_files",
    "parts_root",
    "refresh_views",
    "verify_partitions",
    "write_partition",
]

logger = logging.getLogger(__name__)

#: columns (and DuckDB types) of the two call tables, as in the schema
CALL_COLUMNS = {
    "variant_key": "INTEGER",
    "sample_key": "INTEGER",
    "dosage": "UTINYINT",
    "flags": "UTINYINT",
    "dp": "USMALLINT",
    "gq": "UTINYINT",
}
PACKED_COLUMNS = {
    "batch_id": "INTEGER",
    "variant_key": "INTEGER",
    "lo": "UBIGINT[]",
    "hi": "UBIGINT[]",
}
_KIND_VIEW = {
    "calls": ("genotype_call", CALL_COLUMNS),
    "packed": ("genotype_packed", PACKED_COLUMNS),
}


def parts_root(store_path: Path) -> Path:
    """The directory holding a store's partition files (``<store>.parts`` beside it)."""
    return store_path.with_name(store_path.name + ".parts")


def is_partitioned(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's calls are in Parquet partitions (``genotype_call`` is a view)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'genotype_call'"
        " AND schema_name = 'main' AND NOT temporary"
    ).fetchone()
    return bool(row and row[0])


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _safe(text: str) -> str:
    """A contig name as a path component (anything but [A-Za-z0-9._-] percent-encoded)."""
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", text)


def _view_sql(name: str, columns: dict[str, str], files: list[Path]) -> str:
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items())
    if not files:
        empty = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {empty} WHERE false"
    listed = ", ".join(_quote(f) for f in files)
    return f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM read_parquet([{listed}])"


def refresh_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)define ``genotype_call`` and ``genotype_packed`` over the catalog's files.

    Run inside the transaction that changes ``genotype_partition``, so that the
    views and the catalog change together. ``root`` is the store's parts
    directory (:func:`parts_root`); the views name the files relative to the
    store's directory.
    """
    rows = con.execute(
        "SELECT kind, path FROM genotype_partition"
        " ORDER BY batch_id, contig, region_start, partition_id"
    ).fetchall()
    for kind, (view, columns) in _KIND_VIEW.items():
        # relative to the store's directory (DuckDB's file_search_path, set by
        # Store): a store moved or copied with its parts directory still reads
        files = [Path(root.name) / str(p) for k, p in rows if k == kind]
        con.execute(_view_sql(view, columns, files))


def make_partitioned(store: Store, principal: Principal) -> int:
    """Turn a single-file store into a partitioned one; return the partition files written.

    The calls already stored are written out as Parquet partitions (one per
    kind, batch and contig), then the call tables are replaced by views over
    them, in one transaction. Nothing to do if the store is partitioned.

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    StoreError
        If inside a transaction or a file cannot be written (the store is left as it was).
    """
    require(principal, Permission.LOAD_DATA)
    con = store.con
    if is_partitioned(con):
        return 0
    if store.in_transaction:
        raise StoreError("make_partitioned commits its own transaction")
    root = parts_root(store.path)
    written: list[PartitionFile] = []
    try:
        with store.transaction():
            partition_calls(store, principal, written)
    except BaseException:
        for part in written:
            (root / part.path).unlink(missing_ok=True)
        raise
    return len(written)


def partition_calls(store: Store, principal: Principal, written: list[PartitionFile]) -> None:
    """:func:`make_partitioned` inside the caller's transaction.

    Each file is added to ``written`` as soon as it is written (for the caller
    to remove them if the transaction fails). With no calls stored, only the
    tables become views (nothing is recorded).
    """
    con = store.con
    root = parts_root(store.path)
    groups = con.execute(
        "SELECT b.batch_id, v.contig, min(v.position), max(v.position)"
        " FROM batch_variant b JOIN variant v USING (variant_key)"
        " GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    load_id = 0
    if groups:
        load_id = store.record_provenance(
            con, kind="partition", source=str(store.path), checksum="", user=principal.user
        )
    in_contig = "variant_key IN (SELECT variant_key FROM variant WHERE contig = ?)"
    calls = (
        "SELECT c.* FROM genotype_call c JOIN genotype_sample s USING (sample_key)"
        f" WHERE s.batch_id = ? AND c.{in_contig} ORDER BY c.variant_key, c.sample_key"
    )
    packed = (
        f"SELECT * FROM genotype_packed WHERE batch_id = ? AND {in_contig} ORDER BY variant_key"
    )
    n_before = len(written)
    for batch_id, contig, start, end in groups:
        for kind, sql in (("calls", calls), ("packed", packed)):
            part = write_partition(
                con, root, sql, [batch_id, contig],
                kind=kind, batch_id=batch_id, contig=contig, start=start, end=end,
            )  # fmt: skip
            if part is not None:
                written.append(part)
                part.register(con, load_id)
    con.execute("DROP TABLE genotype_call")
    con.execute("DROP TABLE genotype_packed")
    refresh_views(con, root)  # genotype_call_all reads the views by name
    if groups:
        audit.record(
            con, principal, "genotype.partition", str(store.path),
            {"files": len(written) - n_before},
        )  # fmt: skip


@dataclass
class PartitionFile:
    """One Parquet file written for the catalog (not yet listed until :meth:`register`)."""

    path: str  # relative to the parts root
    kind: str
    batch_id: int
    contig: str
    start: int
    end: int
    n_rows: int
    n_bytes: int
    checksum: str

    def register(self, con: duckdb.DuckDBPyConnection, load_id: int) -> int:
        """List the file in ``genotype_partition`` (inside the caller's transaction)."""
        row = con.execute(
            "INSERT INTO genotype_partition SELECT coalesce(max(partition_id), 0) + 1,"
            " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM genotype_partition RETURNING partition_id",
            [
                self.batch_id,
                self.contig,
                self.start,
                self.end,
                self.kind,
                self.path,
                self.n_rows,
                self.n_bytes,
                self.checksum,
                load_id,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ],
        ).fetchone()
        assert row is not None
        return int(row[0])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


#: Parquet writer options by kind, beyond zstd and the row group size. Sparse calls
#: are sorted by (variant_key, sample_key): without a dictionary (a 1-byte limit),
#: format V2 writes their integers as DELTA_BINARY_PACKED, small steps that zstd
#: packs well (the calls files 22 % smaller at 10,000 samples, 8 % at 3,000;
#: docs/store.md). The packed planes are random bits: V2 made them 37 % larger.
_WRITER_OPTIONS = {
    "calls": ", PARQUET_VERSION V2, DICTIONARY_SIZE_LIMIT 1",
    "packed": "",
}


def write_partition(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    select_sql: str,
    params: list[Any],
    *,
    kind: str,
    batch_id: int,
    contig: str,
    start: int,
    end: int,
) -> PartitionFile | None:
    """Write the rows of ``select_sql`` as a new partition file; ``None`` if there are none.

    The file is written under a temporary name, flushed to disk and renamed
    into place (a new name: never over an existing file); it is part of the
    store only once :meth:`PartitionFile.register` commits.
    """
    rel = Path(f"batch={batch_id}", f"contig={_safe(contig)}", f"region={start}-{end}")
    directory = root / rel
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{secrets.token_hex(8)}.parquet"
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    try:
        con.execute(
            f"COPY ({select_sql}) TO {_quote(tmp)}"
            f" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880{_WRITER_OPTIONS[kind]})",
            params,
        )
        n_rows = int(
            con.execute(f"SELECT count(*) FROM read_parquet({_quote(tmp)})").fetchone()[0]  # type: ignore[index]
        )
        if n_rows == 0:
            tmp.unlink()
            return None
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
        logger.debug("wrote partition file %s (%d rows)", rel / name, n_rows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    final = directory / name
    return PartitionFile(
        path=str(rel / name),
        kind=kind,
        batch_id=int(batch_id),
        contig=str(contig),
        start=int(start),
        end=int(end),
        n_rows=n_rows,
        n_bytes=final.stat().st_size,
        checksum=_sha256(final),
    )


# --------------------------------------------------------------------------- verify
@dataclass
class PartitionCheck:
    """What :func:`verify_partitions` found."""

    n_partitions: int = 0
    n_rows: int = 0
    n_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # files not in the catalog

    @property
    def ok(self) -> bool:
        """No listed file is missing, changed or of the wrong row count."""
        return not self.problems


def partition_files(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """The catalog rows: ``(partition_id, kind, batch_id, contig, start, end, path, n_rows,
    n_bytes, checksum)`` in layout order."""
    return con.execute(
        "SELECT partition_id, kind, batch_id, contig, region_start, region_end, path, n_rows,"
        " n_bytes, checksum FROM genotype_partition"
        " ORDER BY batch_id, contig, region_start, kind, partition_id"
    ).fetchall()


def verify_partitions(store: Store) -> PartitionCheck:
    """Check every listed partition file: present, its SHA-256 and its row count.

    Also checks that each packed file's rows belong to its batch and each file's
    variants to its contig and region, and lists files under the parts
    directory that the catalog does not list (left by a killed load).
    """
    con = store.con
    root = parts_root(store.path)
    out = PartitionCheck()
    listed = set()
    for pid, kind, batch_id, contig, start, end, rel, n_rows, n_bytes, checksum in partition_files(
        con
    ):
        out.n_partitions += 1
        out.n_rows += int(n_rows)
        out.n_bytes += int(n_bytes)
        listed.add(str(rel))
        path = root / str(rel)
        where = f"partition {pid} ({rel})"
        if not path.is_file():
            out.problems.append(f"{where}: the file is missing")
            continue
        if _sha256(path) != checksum:
            out.problems.append(f"{where}: the file changed (SHA-256 differs from the catalog)")
            continue
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE v.contig IS DISTINCT FROM ?"
            " OR v.position NOT BETWEEN ? AND ?)"
            f" FROM read_parquet({_quote(path)}) f LEFT JOIN variant v USING (variant_key)",
            [contig, start, end],
        ).fetchone()
        assert row is not None
        if int(row[0]) != int(n_rows):
            out.problems.append(f"{where}: {row[0]} rows, the catalog lists {n_rows}")
        if int(row[1]):
            out.problems.append(
                f"{where}: {row[1]} rows are of variants outside {contig}:{start}-{end}"
            )
        if kind == "packed":
            bad = con.execute(
                f"SELECT count(*) FROM read_parquet({_quote(path)}) WHERE batch_id <> ?",
                [batch_id],
            ).fetchone()
            if bad and int(bad[0]):
                out.problems.append(f"{where}: {bad[0]} rows of another batch")
    if root.is_dir():
        for f in sorted(root.rglob("*.parquet*")):
            rel = str(f.relative_to(root))
            if rel not in listed:
                out.unlisted.append(rel)
    return out


# --------------------------------------------------------------------------- compact
@dataclass(frozen=True)
class CompactReport:
    """What :func:`compact` did: files merged into how many, and unlisted files removed."""

    merged: int
    written: int
    removed_unlisted: int


def compact(store: Store, principal: Principal, *, min_rows: int = 1_000_000) -> CompactReport:
    """Merge small partition files of the same batch, contig and kind, atomically.

    Files with fewer than ``min_rows`` rows of one (batch, contig, kind) are
    merged, in region order, into one file covering their regions; the
    catalog and the views switch to it in one transaction, and the old files
    are deleted after the commit. Files not listed in the catalog are removed.

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    StoreError
        If the store is not partitioned or a transaction is open.
    """
    require(principal, Permission.LOAD_DATA)
    con = store.con
    if not is_partitioned(con):
        raise StoreError(
            f"store {store.path} is not partitioned: nothing to compact "
            "('biobank store partition' makes it partitioned)"
        )
    if store.in_transaction:
        raise StoreError("compact commits its own transaction")
    root = parts_root(store.path)
    check = verify_partitions(store)
    if not check.ok:
        raise ValidationError(
            "the partitions do not verify, compact refuses to merge them: "
            + "; ".join(check.problems[:5])
        )
    groups: dict[tuple[int, str, str], list[tuple[Any, ...]]] = {}
    for row in partition_files(con):
        if int(row[7]) < min_rows:
            groups.setdefault((int(row[2]), str(row[3]), str(row[1])), []).append(row)
    merged, written, old_files = 0, 0, []
    new_files: list[PartitionFile] = []
    try:
        with store.transaction():
            load_id = store.record_provenance(
                con, kind="compact", source=str(store.path), checksum="", user=principal.user
            )
            for (batch_id, contig, kind), rows in groups.items():
                if len(rows) < 2:
                    continue
                files = ", ".join(_quote(root / str(r[6])) for r in rows)
                order = "variant_key" if kind == "packed" else "variant_key, sample_key"
                # the table's columns only: not the batch=/contig=/region= of the
                # paths, which read_parquet would add as columns by default
                cols = ", ".join(_KIND_VIEW[kind][1])
                part = write_partition(
                    con,
                    root,
                    f"SELECT {cols} FROM read_parquet([{files}], hive_partitioning = false)"
                    f" ORDER BY {order}",
                    [],
                    kind=kind,
                    batch_id=batch_id,
                    contig=contig,
                    start=min(int(r[4]) for r in rows),
                    end=max(int(r[5]) for r in rows),
                )
                assert part is not None
                new_files.append(part)
                ids = [int(r[0]) for r in rows]
                con.execute(
                    "DELETE FROM genotype_partition WHERE list_contains(?, partition_id)", [ids]
                )
                part.register(con, load_id)
                merged += len(rows)
                written += 1
                old_files += [root / str(r[6]) for r in rows]
            refresh_views(con, root)
            audit.record(
                con,
                principal,
                "genotype.compact",
                str(store.path),
                {"merged": merged, "written": written},
            )
    except BaseException:
        for part in new_files:
            (root / part.path).unlink(missing_ok=True)
        raise
    for f in old_files:
        f.unlink(missing_ok=True)
    removed = 0
    for rel in check.unlisted:
        (root / rel).unlink(missing_ok=True)
        removed += 1
    for d in sorted(root.rglob("*"), reverse=True) if root.is_dir() else []:
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return CompactReport(merged=merged, written=written, removed_unlisted=removed)
