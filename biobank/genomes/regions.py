"""Region-parallel loads into the partitioned store (:mod:`biobank.genomes.partitions`).

A load is split in two steps:

1. :func:`stage_region` reads one region chunk of an indexed VCF/BCF (every
   record whose POS is in the region; or a whole unindexed file) into a
   scratch DuckDB file of its own, with the loader of :mod:`biobank.genomes.load`
   (same checks, same encoding, memory bounded by the chunk). It does not open
   the store, so any number of workers (processes on one machine, or Snakemake
   jobs on a cluster) stage regions at once.
2. :func:`publish` takes the store's write lock and, in ONE transaction, gives
   the staged variants their store keys, plans the batch (a new batch, or the
   batch of the same samples staged earlier), writes the calls as Parquet
   partition files (temporary name, then rename) and lists them in the
   catalog. A failure or a kill leaves nothing visible; a region loaded before
   (same file by SHA-256, same region) is skipped, so a re-run finishes a load
   without duplicating anything.

:func:`load_regions` runs both on the cores of one machine (N workers: the
parent and N - 1 worker processes of :mod:`biobank.genomes.workers`, started
first and importing only what staging needs; all regions of the file are
published in one transaction);
:func:`load_region` is the per-region job of the Snakemake workflow (it waits
for the store's lock held by another job's publish).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from biobank.core.access import Permission, Principal, require
from biobank.core.errors import StoreError, ValidationError
from biobank.core.store import Store, file_checksum
from biobank.genomes import staging
from biobank.genomes.load import (
    _CHUNK_CELLS,
    LoadReport,
    _check_sample_names,
    _Counts,
    _cyvcf2_version,
    _stage_records,
    _Writer,
    record_load,
)
from biobank.genomes.partitions import (
    PartitionFile,
    is_partitioned,
    partition_calls,
    parts_root,
    refresh_views,
    write_partition,
)
from biobank.genomes.records import read_header
from biobank.genomes.reference import check_staged
from biobank.genomes.region_chunks import CHUNK_BP, MAX_POS, Region, plan_regions, read_bed
from biobank.genomes.workers import StageWorker, stage_shared
from biobank.registry.inventory import resolve_samples

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CHUNK_BP",
    "MAX_POS",
    "Region",
    "StagedRegion",
    "load_region",
    "load_regions",
    "open_store_waiting",
    "plan_regions",
    "publish",
    "read_bed",
    "stage_region",
]

logger = logging.getLogger(__name__)


def _table_ddl() -> str:
    """The CREATE TABLE statements of the tables a load stages (from the schema files)."""
    parts = []
    for name in ("020_genotypes.sql", "050_packed_calls.sql"):
        sql = resources.files("biobank.core.schema").joinpath(name).read_text(encoding="utf-8")
        for table in staging.STAGED_TABLES:
            m = re.search(rf"CREATE TABLE {table} \(.*?\n\);", sql, re.DOTALL)
            if m:
                parts.append(m.group())
    return "\n".join(parts)


def scratch_path(store_path: Path) -> Path:
    """A new scratch file beside the store, named by host and process.

    Opening the store for writing removes such files of this host's processes
    that ended (killed workers); those of other hosts (cluster jobs on a shared
    file system) are left alone.
    """
    import socket

    name = f".{store_path.name}.region-{socket.gethostname()}-{os.getpid()}-"
    return store_path.parent / f"{name}{secrets.token_hex(6)}.duckdb"


@dataclass
class StagedRegion:
    """One region staged by :func:`stage_region`, ready for :func:`publish`."""

    source: Path
    region: Region | None  # None: the whole (unindexed) file
    scratch: Path
    checksum: str  # of the input file
    names: list[str]
    info_fields: list[str]
    call_fields: list[str]
    n_records: int = 0
    n_variants: int = 0
    n_calls: int = 0
    n_packed: int = 0
    seconds: float = 0.0
    contig_lengths: dict[str, int | None] = field(default_factory=dict)  # of the header

    @property
    def key(self) -> str:
        """What makes a region load unique: the file's SHA-256 and the region."""
        return f"{self.checksum}:{self.region or '*'}"

    def discard(self) -> None:
        """Delete the scratch file."""
        for f in (self.scratch, self.scratch.with_name(self.scratch.name + ".wal")):
            f.unlink(missing_ok=True)


def _line_of(path: Path, contig: str, pos: int) -> int | None:
    """Line number of the first record ``contig:pos`` of a text VCF (for error messages)."""
    import gzip

    if path.suffix == ".bcf":
        return None
    head = f"{contig}\t{pos}\t"
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rt", encoding="utf-8", errors="replace") as fh:
            for i, text in enumerate(fh, start=1):
                if text.startswith(head):
                    return i
    except (OSError, EOFError):
        return None
    return None


def _region_records(vcf: Any, region: Region) -> Iterator[tuple[int | None, Any]]:
    """The records of ``region`` whose POS is in it (an index query also returns overlaps)."""
    for rec in vcf(str(region)):
        if region.start <= rec.POS:
            yield None, rec


def stage_region(
    path: str | Path,
    region: Region | None,
    *,
    scratch: Path,
    info_fields: Sequence[str] = (),
    call_fields: Sequence[str] = (),
    pack: bool = True,
    chunk_records: int | None = None,
    checksum: str | None = None,
    db_threads: int | None = None,
) -> StagedRegion:
    """Read one region (or, with ``None``, a whole file) into the scratch file ``scratch``.

    The variants get local keys 1, 2 ... (in file order) and the samples their
    column + 1; :func:`publish` maps them to the store's keys.

    Raises
    ------
    ValidationError
        A bad file or record (the message names the file, line where it can be
        found, ``contig:pos`` and field); the scratch file is removed.
    """
    import cyvcf2
    import duckdb

    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"VCF file {path} does not exist", file=path)
    checksum = checksum or file_checksum(path)
    try:
        vcf = cyvcf2.VCF(str(path), lazy=True)
    except Exception as exc:  # cyvcf2 raises plain Exceptions for unreadable input
        raise ValidationError(f"cannot open {path} as VCF/BCF: {exc}", file=path) from exc
    staged = StagedRegion(path, region, scratch, checksum, [], list(info_fields), list(call_fields))
    # one of several workers: DuckDB's own threads would only compete with the others
    con = duckdb.connect(str(scratch), config={"threads": db_threads} if db_threads else {})
    try:
        header = read_header(vcf, path, info_fields, call_fields)
        staged.names = names = header.names
        staged.contig_lengths = dict(header.contig_lengths)
        _check_sample_names(path, names)
        ddl = _table_ddl()
        con.execute(ddl)
        con.execute("CREATE SCHEMA stage")
        con.execute("SET schema = 'stage'")
        con.execute(ddl)
        con.execute("SET schema = 'main'")
        plan = staging.Plan(0, np.arange(1, len(names) + 1, dtype=np.int32), True, (1, 1, 1))
        counts = _Counts()
        writer = _Writer(con, "stage", plan, header, counts, pack=pack)
        records = None if region is None else _region_records(vcf, region)
        per_chunk = chunk_records or max(1, min(20_000, _CHUNK_CELLS // len(names)))
        try:
            _stage_records(
                vcf,
                path,
                header,
                list(info_fields),
                plan=plan,
                stage="stage",
                writer=writer,
                per_chunk=per_chunk,
                progress=False,
                end_of_input=None,
                records=records,
            )
        except ValidationError as exc:
            if exc.line is not None or region is None:
                raise
            m = re.match(r"record (\S+):(\d+)", exc.problem.message)
            line = _line_of(path, m.group(1), int(m.group(2))) if m else None
            raise ValidationError(
                exc.problem.message, file=path, line=line, field=exc.field, value=exc.value
            ) from exc
        staging.check_no_duplicates(con, "stage", path, 0, extends=False)
        staged.n_records, staged.n_variants = counts.records, counts.variants
        staged.n_calls, staged.n_packed = counts.calls, counts.packed
    except BaseException:
        con.close()
        vcf.close()
        staged.discard()
        raise
    con.close()
    vcf.close()
    staged.seconds = time.perf_counter() - t0
    return staged


# --------------------------------------------------------------------------- publishing
@dataclass
class _Published:
    files: list[PartitionFile] = field(default_factory=list)


def _map_keys(
    con: duckdb.DuckDBPyConnection, alias: str, path: Path, batch_id: int, extends: bool
) -> tuple[int | None, int]:
    """Map the staged variants to store keys in temp table ``_region_keys``.

    Returns the offset from local to store keys when every variant is new
    (the keys are then ``local + offset``, in the same order), else ``None``;
    and the number of new variants.
    """
    row = con.execute("SELECT coalesce(max(variant_key), 0) + 1 FROM variant").fetchone()
    assert row is not None
    next_key = int(row[0])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _region_keys AS"
        " SELECT s.variant_key AS local_key, coalesce(v.variant_key, ? - 1 + row_number() OVER"
        " (PARTITION BY v.variant_key IS NULL ORDER BY s.variant_key)) AS variant_key,"
        " v.variant_key IS NULL AS is_new"
        f" FROM {alias}.stage.variant s LEFT JOIN variant v"
        " ON v.contig = s.contig AND v.position = s.position AND v.ref = s.ref AND v.alt = s.alt",
        [next_key],
    )
    if extends:
        dup = con.execute(
            "SELECT v.contig, v.position, v.ref, v.alt FROM _region_keys k"
            " JOIN batch_variant b ON b.variant_key = k.variant_key AND b.batch_id = ?"
            " JOIN variant v ON v.variant_key = k.variant_key LIMIT 1",
            [batch_id],
        ).fetchone()
        if dup is not None:
            staging._duplicate_variant(path, dup)
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_new),"
        " count(*) FILTER (WHERE variant_key <> local_key + ? - 1) FROM _region_keys",
        [next_key],
    ).fetchone()
    assert row is not None
    n, n_new, shifted = (int(x) for x in row)
    offset = next_key - 1 if n == n_new and shifted == 0 else None
    con.execute(
        "INSERT INTO variant SELECT k.variant_key, s.contig, s.position, s.ref, s.alt,"
        " s.allele_index, s.n_alt_alleles, s.variant_id, s.qual, s.filter, s.gene,"
        " s.consequence, s.bcsq, s.info"
        f" FROM {alias}.stage.variant s JOIN _region_keys k ON k.local_key = s.variant_key"
        " WHERE k.is_new ORDER BY k.variant_key"
    )
    con.execute(
        "INSERT INTO batch_variant SELECT ?, k.variant_key"
        f" FROM {alias}.stage.batch_variant b JOIN _region_keys k ON k.local_key = b.variant_key"
        " ORDER BY k.variant_key",
        [batch_id],
    )
    return offset, n_new


def _write_files(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    alias: str,
    staged: StagedRegion,
    batch_id: int,
    sample_offset: int,
    offset: int | None,
    out: list[PartitionFile],
    perm: np.ndarray | None = None,
) -> None:
    """Write the staged calls as one calls and one packed file per contig (added to ``out``
    as soon as each is written, so that a failure can remove them).

    ``perm``: the batch position of each file column when the file's columns are
    in another order than the batch's (then ``_region_samples`` maps the sample
    keys and the packed planes' bits are moved); ``None``: the same order.
    """
    packed_from = f"{alias}.stage.genotype_packed"
    if perm is not None:
        _register_permuted_planes(con, packed_from, perm)
        packed_from = "_region_packed"
    sk = f"x.sample_key + {sample_offset}"
    sample_join = ""
    if perm is not None:
        sk, sample_join = "m.sample_key", " JOIN _region_samples m ON m.local_key = x.sample_key"
    groups = con.execute(
        "SELECT contig, min(variant_key), max(variant_key), count(*), min(position),"
        f" max(position) FROM {alias}.stage.variant GROUP BY contig ORDER BY min(variant_key)"
    ).fetchall()
    for contig, k0, k1, n, p0, p1 in groups:
        contiguous = int(k1) - int(k0) + 1 == int(n)
        where = "x.variant_key BETWEEN ? AND ?"
        params: list[Any] = [k0, k1]
        if not contiguous:
            where = (
                f"x.variant_key IN (SELECT variant_key FROM {alias}.stage.variant WHERE contig = ?)"
            )
            params = [contig]
        if offset is not None:
            vk, join, order = f"x.variant_key + {offset}", "", ""
        else:
            vk, join, order = (
                "k.variant_key",
                " JOIN _region_keys k ON k.local_key = x.variant_key",
                "",
            )
        if offset is None or not contiguous or perm is not None:
            order = " ORDER BY 1"
        calls = (
            f"SELECT CAST({vk} AS INTEGER) AS variant_key, CAST({sk} AS INTEGER) AS sample_key,"
            f" x.dosage, x.flags, x.dp, x.gq FROM {alias}.stage.genotype_call x{join}"
            f"{sample_join} WHERE {where}{order}"
        )
        packed = (
            f"SELECT CAST(? AS INTEGER) AS batch_id, CAST({vk} AS INTEGER) AS variant_key,"
            f" x.lo, x.hi FROM {packed_from} x{join} WHERE {where}"
            + (" ORDER BY 2" if order else "")
        )
        region = staged.region
        start, end = (region.start, region.end) if region else (int(p0), int(p1))
        for kind, sql, ps in (("calls", calls, params), ("packed", packed, [batch_id, *params])):
            part = write_partition(
                con,
                root,
                sql,
                ps,
                kind=kind,
                batch_id=batch_id,
                contig=str(contig),
                start=start,
                end=end,
            )
            if part is not None:
                out.append(part)


def _register_permuted_planes(
    con: duckdb.DuckDBPyConnection, staged_packed: str, perm: np.ndarray
) -> None:
    """Register ``_region_packed``: the staged planes with bit ``c`` moved to ``perm[c]``."""
    import pyarrow as pa

    from biobank.genomes.encoding import word_lists

    n = len(perm)
    n_words = (n + 63) // 64
    table = con.execute(
        f"SELECT variant_key, lo, hi FROM {staged_packed} ORDER BY variant_key"
    ).to_arrow_table()
    columns: dict[str, Any] = {"variant_key": table.column("variant_key")}
    for name in ("lo", "hi"):
        flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        words = np.asarray(flat, dtype="<u8").reshape(table.num_rows, n_words)
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :n]
        moved = np.zeros((table.num_rows, n_words * 64), dtype=bool)
        moved[:, perm] = bits.astype(bool)
        columns[name] = word_lists(moved, n_words)
    con.register("_region_packed", pa.table(columns))


def _publish_one(
    store: Store,
    alias: str,
    staged: StagedRegion,
    principal: Principal,
    root: Path,
    written: list[PartitionFile],
) -> LoadReport:
    con = store.con
    path = staged.source
    participant_of = resolve_samples(con, staged.names)
    plan = staging.plan_batch(con, path, staged.names)
    keys = plan.sample_keys.astype(np.int64)
    perm = None  # the file's columns in another order than the batch's samples
    if len(keys) > 1 and not (np.diff(keys) == 1).all():
        perm = np.argsort(np.argsort(keys))  # batch position of each column
        con.register(
            "_region_samples",
            pa.table({"local_key": np.arange(1, len(keys) + 1), "sample_key": keys}),
        )
    offset, n_new = _map_keys(con, alias, path, plan.batch_id, extends=not plan.new_batch)
    load_id = store.record_provenance(
        con,
        kind="vcf-region",
        source=str(path),
        checksum=staged.key,
        parameters={
            "region": str(staged.region or "*"),
            "info_fields": staged.info_fields,
            "call_fields": staged.call_fields,
        },
        tool_version=f"cyvcf2 {_cyvcf2_version()}",
        user=principal.user,
    )
    plan.write_batch(con, staged.names, [participant_of[s] for s in staged.names])
    files: list[PartitionFile] = []
    try:
        _write_files(con, root, alias, staged, plan.batch_id, int(keys[0]) - 1, offset, files, perm)
    finally:
        written += files
    for part in files:
        part.register(con, load_id)
    record_load(
        con,
        principal,
        load_id=load_id,
        batch_id=plan.batch_id,
        source=str(path),
        checksum=staged.checksum,
        samples=len(staged.names),
        counts=(staged.n_records, staged.n_variants, staged.n_calls, staged.n_packed),
        extra={"region": str(staged.region or "*"), "partition_files": len(files)},
    )
    report = LoadReport(
        source=str(path),
        batch_id=plan.batch_id,
        load_id=load_id,
        already_loaded=False,
        n_samples=len(staged.names),
        n_records=staged.n_records,
        n_variants=staged.n_variants,
        n_new_variants=n_new,
        n_calls=staged.n_calls,
        n_packed=staged.n_packed,
        seconds=staged.seconds,
    )
    return report


def publish(
    store: Store,
    staged: Iterable[StagedRegion],
    *,
    principal: Principal,
    complete: str | None = None,
) -> list[LoadReport]:
    """Publish staged regions into the store in one transaction (all or nothing).

    Regions loaded before (same file and region) are skipped (reported as
    ``already_loaded``). The store is made partitioned first if it holds no
    calls yet. ``complete``: the SHA-256 of a file whose every region is now
    loaded (recorded as a load of the whole file: loading it again is a
    no-op). The scratch files are removed afterwards, whatever happens.

    ``staged`` may be an iterator that stages as it goes (:func:`load_regions`
    with workers): each region is published as soon as it comes, in the
    transaction, so that publishing overlaps the staging of the later ones; an
    error it raises rolls the transaction back like any other.

    Raises
    ------
    AccessDenied, ValidationError, ConflictError, StoreError
        Nothing is written: the new partition files are removed, the catalog
        is as it was.
    """
    require(principal, Permission.LOAD_DATA)
    con = store.con
    root = parts_root(store.path)
    reports: list[LoadReport] = []
    written: list[PartitionFile] = []
    aliases: list[str] = []
    seen: list[StagedRegion] = []
    try:
        with store.transaction():
            if not is_partitioned(con):
                partition_calls(store, principal, written)
            for i, st in enumerate(staged):
                seen.append(st)
                alias = f"staged_{secrets.token_hex(4)}_{i}"
                con.execute(
                    f"ATTACH '{str(st.scratch).replace(chr(39), chr(39) * 2)}' AS {alias}"
                    " (READ_ONLY)"
                )
                aliases.append(alias)
                check_staged(con, [(alias, st.source, st.contig_lengths)], _line_of)
                earlier = store.find_load(kind="vcf-region", checksum=st.key)
                if earlier is not None:
                    reports.append(LoadReport(str(st.source), 0, earlier, already_loaded=True))
                    continue
                reports.append(_publish_one(store, alias, st, principal, root, written))
            if complete is not None and seen:
                store.record_provenance(
                    con,
                    kind="vcf",
                    source=str(seen[0].source),
                    checksum=complete,
                    parameters={"regions": len(seen)},
                    user=principal.user,
                )
            refresh_views(con, root)
    except BaseException:
        for part in written:
            (root / part.path).unlink(missing_ok=True)
        raise
    finally:
        for alias in aliases:  # after the transaction (a rollback undoes its ATTACHes)
            con.execute(f"DETACH DATABASE IF EXISTS {alias}")
        for st in seen:
            st.discard()
        if isinstance(staged, Generator):
            staged.close()  # a failure: stop staging, discard what was still to come
    return reports


def open_store_waiting(path: Path, *, timeout: float = 600.0) -> Store:
    """Open a store for writing, waiting while another process holds its lock.

    Raises
    ------
    StoreError
        If the store cannot be opened, or is still locked after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return Store(path, create=False)
        except StoreError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _first_load(store: Store, checksum: str) -> tuple[int, int]:
    """Batch and first load id of a file's loads (``(0, 0)`` if none)."""
    row = store.con.execute(
        "SELECT batch_id, load_id FROM genotype_load WHERE checksum = ? ORDER BY load_id LIMIT 1",
        [checksum],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _total(path: Path, reports: Sequence[LoadReport], t0: float) -> LoadReport:
    """One report for the regions of a load (``already_loaded`` if none was new)."""
    new = [r for r in reports if not r.already_loaded]
    if not new:
        earlier = next((r.load_id for r in reports), 0)
        return LoadReport(str(path), 0, earlier, already_loaded=True)
    return LoadReport(
        source=str(path),
        batch_id=new[0].batch_id,
        load_id=new[-1].load_id,
        already_loaded=False,
        n_samples=new[0].n_samples,
        n_records=sum(r.n_records for r in new),
        n_variants=sum(r.n_variants for r in new),
        n_new_variants=sum(r.n_new_variants for r in new),
        n_calls=sum(r.n_calls for r in new),
        n_packed=sum(r.n_packed for r in new),
        seconds=time.perf_counter() - t0,
    )


def load_region(
    store_path: Path,
    path: str | Path,
    regions: Sequence[Region],
    *,
    principal: Principal,
    info_fields: Sequence[str] = (),
    call_fields: Sequence[str] = (),
    pack: bool = True,
    timeout: float = 600.0,
) -> LoadReport:
    """Stage some regions without the store, then publish them together (one Snakemake job).

    The store is opened only to publish, waiting up to ``timeout`` seconds
    while another job publishes. Regions loaded before are skipped.
    """
    require(principal, Permission.LOAD_DATA)
    t0 = time.perf_counter()
    path = Path(path)
    checksum = file_checksum(path) if path.is_file() else None
    staged: list[StagedRegion] = []
    try:
        for region in regions:
            staged.append(
                stage_region(
                    path,
                    region,
                    scratch=scratch_path(store_path),
                    info_fields=info_fields,
                    call_fields=call_fields,
                    pack=pack,
                    checksum=checksum,
                )
            )
        store = open_store_waiting(store_path, timeout=timeout)
    except BaseException:
        for st in staged:
            st.discard()
        raise
    with store:
        return _total(path, publish(store, staged, principal=principal), t0)


def stage_job(args: tuple[Any, ...]) -> StagedRegion:
    """Run :func:`stage_region` on a job tuple (what a worker process is sent)."""
    path, region, scratch, info_fields, call_fields, pack, checksum, db_threads = args
    return stage_region(
        path,
        region,
        scratch=scratch,
        info_fields=info_fields,
        call_fields=call_fields,
        pack=pack,
        checksum=checksum,
        db_threads=db_threads,
    )


def load_regions(
    store: Store,
    path: str | Path,
    *,
    principal: Principal,
    regions: Sequence[Region] | None = None,
    workers: int = 1,
    info_fields: Sequence[str] = (),
    call_fields: Sequence[str] = (),
    pack: bool = True,
) -> LoadReport:
    """Load a file as partitions: its regions staged by ``workers`` processes, one publish.

    ``regions``: default :func:`plan_regions` for an indexed file, else the
    whole file as one. Regions loaded before are skipped; all the others are
    published in one transaction (all or nothing).

    Returns
    -------
    LoadReport
        The totals (``already_loaded`` if every region was loaded before).
    """
    require(principal, Permission.LOAD_DATA)
    if store.in_transaction:
        raise StoreError("a load commits its own transaction: call it outside Store.transaction()")
    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"VCF file {path} does not exist", file=path)
    # the worker processes start first: their imports overlap the checks below
    procs = [StageWorker() for _ in range(workers - 1)]
    ok = False
    try:
        report = _load_planned(
            store, path, principal, regions, procs, info_fields, call_fields, pack, t0
        )
        ok = True
    finally:
        for proc in procs:
            proc.close(kill=not ok)
    return report


def _load_planned(
    store: Store,
    path: Path,
    principal: Principal,
    regions: Sequence[Region] | None,
    procs: list[StageWorker],
    info_fields: Sequence[str],
    call_fields: Sequence[str],
    pack: bool,
    t0: float,
) -> LoadReport:
    """The body of :func:`load_regions` once its worker processes are starting."""
    checksum = file_checksum(path)
    earlier = store.find_load(kind="vcf", checksum=checksum)
    if earlier is not None:  # loaded as a whole: report its (first) load
        batch_id, first = _first_load(store, checksum)
        return LoadReport(str(path), batch_id, first or earlier, already_loaded=True)
    complete = checksum if regions is None else None
    if regions is None:
        try:
            regions = plan_regions(path)
        except ValidationError:
            regions = None
    todo: list[Region | None] = list(regions) if regions is not None else [None]
    todo = [
        r
        for r in todo
        if store.find_load(kind="vcf-region", checksum=f"{checksum}:{r or '*'}") is None
    ]
    if not todo:
        return LoadReport(str(path), 0, 0, already_loaded=True)
    jobs = [
        (
            path,
            r,
            scratch_path(store.path),
            list(info_fields),
            list(call_fields),
            pack,
            checksum,
            1 if procs else None,
        )
        for r in todo
    ]
    done: list[StagedRegion] = []
    try:
        if not procs or len(jobs) == 1:
            for job in jobs:
                done.append(stage_job(job))
            staged: Iterable[StagedRegion] = done
        else:  # published as they come, in order, while the workers stage the rest
            staged = stage_shared(jobs, procs[: len(jobs) - 1], stage_job)
        published = publish(store, staged, principal=principal, complete=complete)
    except BaseException:
        for st in done:
            st.discard()
        for job in jobs:  # what finished staging after the failure
            for f in (Path(job[2]), Path(f"{job[2]}.wal")):
                f.unlink(missing_ok=True)
        raise
    return _total(path, published, t0)
