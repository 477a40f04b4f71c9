"""Loading VCF/BCF genotypes into the store.

:func:`load_vcf` streams a (bgzipped) VCF or BCF with :mod:`cyvcf2` in chunks of
records, splits multi-allelic records into biallelic variant rows and appends
the *sparse* calls (everything that is not a diploid homozygous-reference call)
through Arrow to a scratch DuckDB database beside the store (one autocommitted
insert per chunk and table, so memory does not grow with the records). After
the last record the rows are checked for duplicate variants and copied into the
store in one transaction: a bad record, a duplicate or a kill leaves the store as
it was (a killed load's scratch file is removed when the store is next opened
for writing). Each load is a *batch*: its samples
and the variants it covered are recorded, so that "no row" means hom-ref only
where the sample's batch covered the variant. The table layout is described in
``biobank/core/schema/020_genotypes.sql`` and ``docs/store.md``.

Speed: when ``bcftools`` is on ``PATH`` the VCF text is parsed by ``bcftools
view -Ou`` in its own process and read by cyvcf2 as an uncompressed BCF stream,
and each chunk's calls are split and inserted by a writer thread while the next
chunk is read. If bcftools is missing or fails, or the file is rejected, the
file is read directly with cyvcf2 (after the rollback), so error messages name
the file's own line numbers. Measured figures: ``docs/store.md``.

The stored encoding (flags, packed bit planes) is :mod:`biobank.genomes.encoding`;
BCSQ parsing :mod:`biobank.genomes.bcsq`; staging and publishing
:mod:`biobank.genomes.staging`; verification :mod:`biobank.genomes.verify`
(:func:`verify_vcf` is re-exported here).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import StoreError, ValidationError
from biobank.core.store import Store, file_checksum
from biobank.genomes import encoding, staging
from biobank.genomes.bcsq import parse_bcsq
from biobank.genomes.encoding import (
    CALL_FIELDS,
    FLAG_FIRST_ALLELE,
    FLAG_HALF_CALL,
    FLAG_HAPLOID,
    FLAG_MISSING,
    FLAG_OTHER_ALT,
    FLAG_PHASED,
    Chunk,
)
from biobank.genomes.records import (
    BcfStream,
    Header,
    add_record,
    check_allele_indices,
    check_alleles,
    check_record,
    iter_records,
    read_header,
)
from biobank.genomes.reference import check_header_contigs, reference_contigs
from biobank.genomes.verify import VerifyReport, verify_vcf
from biobank.registry.inventory import resolve_samples

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CALL_FIELDS",
    "FLAG_FIRST_ALLELE",
    "FLAG_HALF_CALL",
    "FLAG_HAPLOID",
    "FLAG_MISSING",
    "FLAG_OTHER_ALT",
    "FLAG_PHASED",
    "LoadReport",
    "VerifyReport",
    "load_vcf",
    "parse_bcsq",
    "verify_vcf",
]

logger = logging.getLogger(__name__)

# Target number of genotype cells (records x samples) held in memory per chunk.
_CHUNK_CELLS = 8_000_000


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_vcf` did.

    Attributes
    ----------
    source
        The input path.
    batch_id
        The batch of this load (of the earlier load when ``already_loaded``).
    load_id
        The provenance id.
    already_loaded
        The same file (by checksum) was loaded before: nothing was written.
    n_samples, n_records, n_variants, n_new_variants, n_calls, n_packed
        Samples; VCF records; biallelic variant rows; rows new to the store;
        calls stored (not diploid hom-ref: sparse rows plus the calls in packed
        rows); variant rows stored packed (``genotype_packed``).
    seconds
        Wall time of the load.
    """

    source: str
    batch_id: int
    load_id: int
    already_loaded: bool
    n_samples: int = 0
    n_records: int = 0
    n_variants: int = 0
    n_new_variants: int = 0
    n_calls: int = 0
    n_packed: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- loading
def _check_sample_names(path: Path, names: Sequence[str]) -> None:
    """Raise ValidationError if a sample name appears twice in the header."""
    dupes = (
        sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    )
    if dupes:
        raise ValidationError(
            f"sample names appear twice in the header: {', '.join(dupes)}; "
            "each VCF sample column must have a unique name",
            file=path,
            field="#CHROM header",
        )


def load_vcf(
    store: Store,
    path: str | Path,
    *,
    principal: Principal,
    info_fields: Sequence[str] = (),
    call_fields: Sequence[str] = (),
    chunk_records: int | None = None,
    progress: bool = False,
    threads: int = 1,
    pack: bool = True,
    workers: int = 1,
    partitioned: bool = False,
) -> LoadReport:
    """Load a VCF/BCF (plain or bgzipped) as one batch of samples, all or nothing.

    Parameters
    ----------
    store
        The store to write to.
    path
        The VCF or BCF file. Its sample names must be registered sequencing
        samples (table ``sequencing_sample``).
    principal
        Who loads (needs ``LOAD_DATA``); recorded in provenance and the audit log.
    info_fields
        INFO fields to keep per variant (stored in ``variant.info`` as JSON;
        ``Number=A`` fields are split per ALT allele).
    call_fields
        FORMAT fields to keep per stored call: any of ``"DP"``, ``"GQ"``.
    chunk_records
        Records per chunk (default: about 8 million genotypes per chunk); memory
        use is bounded by the chunk, not the file.
    progress
        Show a progress bar with the rate in variants per second.
    threads
        Threads for reading: bgzip decompression threads for htslib (with the
        bcftools stream, ``threads - 1`` extra bcftools threads; the stream
        always runs in its own process).
    pack
        Store variants with many plain calls as bit planes (``genotype_packed``,
        see :func:`biobank.genomes.encoding.pack_calls`) instead of one
        ``genotype_call`` row per call.
        Never done when ``call_fields`` are kept. ``False`` keeps every call
        sparse (the layout of stores loaded before packing existed).
    workers
        Processes reading region chunks of an indexed file at once (a
        partitioned load, see :func:`biobank.genomes.regions.load_regions`).
    partitioned
        Write the calls as Parquet partitions (:mod:`biobank.genomes.partitions`);
        always so in a store that is partitioned already, with ``workers > 1``,
        and when ``BIOBANK_STORE_LAYOUT=partitioned`` is set (a center's default).

    Returns
    -------
    LoadReport
        What was loaded; ``already_loaded`` if the same file (by checksum)
        was loaded before, in which case nothing is written.

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    ValidationError
        If the file cannot be read, names unregistered samples, asks for an
        INFO/FORMAT field the header does not define, or has a bad record (the
        message names the line and ``contig:pos``); nothing is written.
    ConflictError
        If a sample was already loaded from another file, or another load
        changed the store while this file was read (nothing is written: run
        it again).
    StoreError
        If called inside :meth:`Store.transaction` (a load commits its own), or
        the scratch database beside the store cannot be created.
    """
    import duckdb

    require(principal, Permission.LOAD_DATA)
    path = Path(path)
    import os

    from biobank.genomes.partitions import is_partitioned

    partitioned = partitioned or os.environ.get("BIOBANK_STORE_LAYOUT") == "partitioned"
    try:
        if partitioned or workers > 1 or is_partitioned(store.con):
            from biobank.genomes.regions import load_regions

            return load_regions(
                store,
                path,
                principal=principal,
                workers=workers,
                info_fields=info_fields,
                call_fields=call_fields,
                pack=pack,
            )
        return _load_file(
            store,
            path,
            principal=principal,
            info_fields=info_fields,
            call_fields=call_fields,
            chunk_records=chunk_records,
            progress=progress,
            threads=threads,
            pack=pack,
        )
    except duckdb.Error as exc:
        raise StoreError(
            f"loading {path} failed in DuckDB ({type(exc).__name__}: {exc}); nothing was "
            "written to the store. Out of memory: raise DuckDB's memory_limit or load with "
            f"smaller chunks (chunk_records). Disk full: free space in {store.path.parent} "
            "(the load prepares its rows in a scratch file there)."
        ) from exc


def _load_file(
    store: Store,
    path: Path,
    *,
    principal: Principal,
    info_fields: Sequence[str],
    call_fields: Sequence[str],
    chunk_records: int | None,
    progress: bool,
    threads: int,
    pack: bool,
) -> LoadReport:
    import cyvcf2

    if not path.is_file():
        raise ValidationError(f"VCF file {path} does not exist", file=path)
    bad = [f for f in call_fields if f not in CALL_FIELDS]
    if bad:
        raise ValidationError(
            f"call field(s) {', '.join(bad)} cannot be stored: "
            f"choose from {', '.join(CALL_FIELDS)}",
            field="call_fields",
        )
    if store.in_transaction:
        raise StoreError(
            "load_vcf commits its own transaction: call it outside Store.transaction()"
        )
    t0 = time.perf_counter()
    checksum = file_checksum(path)
    earlier = store.find_load(kind="vcf", checksum=checksum)
    if earlier is not None:
        row = store.con.execute(
            "SELECT batch_id FROM genotype_load WHERE load_id = ?", [earlier]
        ).fetchone()
        logger.info("%s was already loaded (load %d): nothing to do", path, earlier)
        return LoadReport(
            source=str(path),
            batch_id=int(row[0]) if row else 0,
            load_id=earlier,
            already_loaded=True,
        )
    stream = BcfStream.open(path, threads)
    if stream is not None:
        try:
            return _load(
                store,
                stream.vcf,
                path,
                checksum=checksum,
                principal=principal,
                info_fields=list(info_fields),
                call_fields=list(call_fields),
                chunk_records=chunk_records,
                progress=progress,
                pack=pack,
                t0=t0,
                end_of_input=stream.finish,
            )
        except ValidationError as exc:
            # Nothing was written (the scratch database is gone). Read the file
            # directly to report the problem with its exact line and field.
            logger.debug("bcftools stream of %s failed (%s): reading it directly", path, exc)
        finally:
            stream.close()
    try:
        vcf = cyvcf2.VCF(str(path), threads=threads, lazy=True)
    except (OSError, Exception) as exc:
        raise ValidationError(
            f"cannot open {path} as VCF/BCF: {exc}; is it a (bgzipped) VCF or a BCF?", file=path
        ) from exc
    try:
        return _load(
            store,
            vcf,
            path,
            checksum=checksum,
            principal=principal,
            info_fields=list(info_fields),
            call_fields=list(call_fields),
            chunk_records=chunk_records,
            progress=progress,
            pack=pack,
            t0=t0,
        )
    finally:
        vcf.close()


@dataclass
class _Counts:
    """Running totals of a load."""

    records: int = 0
    variants: int = 0
    new: int = 0
    calls: int = 0
    packed: int = 0


class _Writer:
    """Splits, packs and inserts each chunk's calls into the scratch tables.

    The calls of a chunk are written by a writer thread while the next chunk
    is read (DuckDB and most numpy work release the GIL); the connection is
    only ever used by one thread at a time (:meth:`wait` before using it).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        stage: str,
        plan: staging.Plan,
        header: Header,
        counts: _Counts,
        *,
        pack: bool,
    ) -> None:
        self.con, self.stage, self.counts = con, stage, counts
        self.batch_id, self.sample_keys = plan.batch_id, plan.sample_keys
        self.n = n = len(header.names)
        self.want_dp, self.want_gq = header.want_dp, header.want_gq
        # position of each sample key in the batch's sample_key order (packed bits)
        batch_keys = np.sort(self.sample_keys)
        self.pack_pos = np.full(int(batch_keys[-1]) + 1 if n else 1, -1, dtype=np.int64)
        self.pack_pos[batch_keys] = np.arange(n)
        self.do_pack = pack and not (header.want_dp or header.want_gq)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-vcf")
        self.pending: list[Future[tuple[int, int]]] = []

    def write_calls(self, chunk: Chunk, keys: np.ndarray) -> tuple[int, int]:
        """Insert a chunk's calls (sparse rows and packed planes); return calls and packed rows."""
        import pyarrow as pa

        con, stage, n = self.con, self.stage, self.n
        stored = encoding.not_hom_ref(chunk)
        direct, n_calls = None, 0
        if self.do_pack:  # plain biallelic records straight from the GT array
            direct, n_calls = encoding.pack_records(
                chunk, stored, keys, self.pack_pos[self.sample_keys], n
            )
        table = encoding.split_chunk(
            chunk, keys, self.sample_keys, self.want_dp, self.want_gq, stored
        )
        n_calls, n_packed = n_calls + table.height, 0
        if self.do_pack:
            table, packed = encoding.pack_calls(table, self.pack_pos, n)
            if direct is not None:
                packed = direct if packed is None else pa.concat_tables([direct, packed])
                packed = packed.sort_by("variant_key")
            if packed is not None:
                n_packed = packed.num_rows
                con.register("_packed_tbl", packed)
                con.execute(
                    f"INSERT INTO {stage}.genotype_packed"
                    " SELECT ?, variant_key, lo, hi FROM _packed_tbl",
                    [self.batch_id],
                )
                con.unregister("_packed_tbl")
        con.register("_calls_tbl", table)
        con.execute(
            f"INSERT INTO {stage}.genotype_call ({', '.join(table.columns)})"
            f" SELECT {', '.join(table.columns)} FROM _calls_tbl"
        )
        con.unregister("_calls_tbl")
        return n_calls, n_packed

    def submit(self, chunk: Chunk, keys: np.ndarray) -> None:
        """Write the chunk's calls in the writer thread."""
        self.pending.append(self.executor.submit(self.write_calls, chunk, keys))

    def wait(self) -> None:
        """Wait for the writer (raising its error); add up what it wrote."""
        while self.pending:
            n_calls, n_packed = self.pending.pop().result()
            self.counts.calls += n_calls
            self.counts.packed += n_packed

    def close(self) -> None:
        """Stop the writer thread, never leaving it using the connection."""
        for fut in self.pending:
            if not fut.cancel():
                fut.exception()
        self.executor.shutdown(wait=True)


class _NoProgress:
    """The progress bar's methods, doing nothing (a load without progress imports no rich)."""

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, advance: float) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def _progress_bar() -> Any:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(show_speed=True),
        TextColumn("variants/s"),
        TimeElapsedColumn(),
        transient=False,
    )


def _stage_records(
    vcf: Any,
    path: Path,
    header: Header,
    info_fields: list[str],
    *,
    plan: staging.Plan,
    stage: str,
    writer: _Writer,
    per_chunk: int,
    progress: bool,
    end_of_input: Callable[[], None] | None,
    records: Iterator[tuple[int | None, Any]] | None = None,
) -> None:
    """Read every record, chunk by chunk, into the scratch tables (keys, variants, calls).

    ``records`` yields ``(line, record)`` (default: every record of ``vcf``,
    :func:`~biobank.genomes.records.iter_records`); a region load passes the
    records of its region, without line numbers.
    """
    con, counts, n = writer.con, writer.counts, len(header.names)
    bar = _progress_bar() if progress else _NoProgress()
    task = bar.add_task(f"loading {path.name}", total=None)
    bar.start()

    def flush(chunk: Chunk) -> None:
        check_allele_indices(chunk, path)
        writer.wait()
        if not chunk.meta:
            return
        keys, n_new = staging.assign_keys(
            con, path, chunk.meta, plan.batch_id, stage, plan.first_variant_key + counts.new
        )
        writer.submit(chunk, keys)
        counts.variants += len(chunk.meta)
        counts.new += n_new
        bar.update(task, advance=len(chunk.meta))
        logger.debug(
            "loaded chunk: %d records, %d variant rows so far", counts.records, counts.variants
        )

    def new_chunk() -> Chunk:
        return Chunk(
            gt=np.empty((per_chunk, n, 2), dtype=np.int32),
            dp=np.empty((per_chunk, n), dtype=np.int64) if header.want_dp else None,
            gq=np.empty((per_chunk, n), dtype=np.int64) if header.want_gq else None,
        )

    chunk = new_chunk()
    try:
        if records is None:
            records = iter_records(vcf, path, header.lines)
        for line, rec in records:
            check_record(rec, path, line)
            check_alleles(rec, path, line, header)
            add_record(chunk, rec, path, line, header, info_fields)
            counts.records += 1
            if chunk.n == per_chunk:
                flush(chunk)
                chunk = new_chunk()
        flush(chunk)
        writer.wait()
        if end_of_input is not None:
            end_of_input()
    finally:
        writer.close()
        bar.stop()


def _commit(
    store: Store,
    stage: str,
    plan: staging.Plan,
    path: Path,
    *,
    checksum: str,
    principal: Principal,
    participants: Sequence[str],
    header: Header,
    info_fields: list[str],
    call_fields: list[str],
    counts: _Counts,
    kind: str,
    tool: str,
) -> int:
    """Publish the staged rows with the batch, provenance and audit entry; return the load id."""
    with store.transaction() as con:
        plan.check_unchanged(store, path, checksum)
        load_id = store.record_provenance(
            con,
            kind=kind,
            source=str(path),
            checksum=checksum,
            parameters={"info_fields": info_fields, "call_fields": call_fields},
            tool_version=tool,
            user=principal.user,
        )
        plan.write_batch(con, header.names, participants)
        staging.publish(con, stage)
        record_load(
            con,
            principal,
            load_id=load_id,
            batch_id=plan.batch_id,
            source=str(path),
            checksum=checksum,
            samples=len(header.names),
            counts=(counts.records, counts.variants, counts.calls, counts.packed),
        )
    return load_id


def record_load(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    *,
    load_id: int,
    batch_id: int,
    source: str,
    checksum: str,
    samples: int,
    counts: tuple[int, int, int, int],
    extra: dict[str, object] | None = None,
) -> None:
    """Write a load's ``genotype_load`` row and its ``genotype.load`` audit entry.

    ``counts`` are (records, variants, calls, packed variants); ``extra`` adds
    fields to the audit entry (a region load's region and partition files).
    """
    records, variants, calls, packed = counts
    con.execute(
        "INSERT INTO genotype_load VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            load_id,
            batch_id,
            source,
            checksum,
            records,
            variants,
            calls,
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
        ],
    )
    details: dict[str, object] = {
        "batch_id": batch_id,
        "load_id": load_id,
        "checksum": checksum,
        "samples": samples,
        "records": records,
        "variants": variants,
        "calls": calls,
        "packed_variants": packed,
    }
    audit.record(con, principal, "genotype.load", source, {**details, **(extra or {})})


def _load(
    store: Store,
    vcf: Any,
    path: Path,
    *,
    checksum: str,
    principal: Principal,
    info_fields: list[str],
    call_fields: list[str],
    chunk_records: int | None,
    progress: bool,
    pack: bool,
    t0: float,
    end_of_input: Callable[[], None] | None = None,
    source: tuple[Header, Iterator[tuple[int | None, Any]], str, str] | None = None,
) -> LoadReport:
    # source: (header, records, provenance kind, tool) of a non-VCF input (arrays)
    reference = reference_contigs(store.con)
    if source is None:
        header = read_header(vcf, path, info_fields, call_fields, reference=reference)
    else:
        header = replace(source[0], reference=reference)
        if reference is not None:
            check_header_contigs(path, header.contig_lengths, reference)
    names = header.names
    n = len(names)
    per_chunk = chunk_records or max(1, min(20_000, _CHUNK_CELLS // n))
    counts = _Counts()

    # Phase 1: every row is prepared in a scratch database, one autocommitted
    # statement at a time, so memory stays flat however long the file (rows
    # appended inside one open transaction are partly held until it ends).
    # Phase 2 copies them into the store in one transaction (staging.publish).
    con = store.con
    with store.scratch() as stage:
        _check_sample_names(path, names)
        participant_of = resolve_samples(con, names)
        participants = [participant_of[s] for s in names]
        plan = staging.plan_batch(con, path, names)
        for table in staging.STAGED_TABLES:
            con.execute(f"CREATE TABLE {stage}.{table} AS SELECT * FROM {table} LIMIT 0")
        if not plan.new_batch:
            logger.info("%s has the samples of batch %d: adding its variants", path, plan.batch_id)
        writer = _Writer(con, stage, plan, header, counts, pack=pack)
        _stage_records(
            vcf,
            path,
            header,
            info_fields,
            plan=plan,
            stage=stage,
            writer=writer,
            per_chunk=per_chunk,
            progress=progress,
            end_of_input=end_of_input,
            records=None if source is None else source[1],
        )
        if counts.records == 0:
            raise ValidationError("the VCF has no records: there is nothing to load", file=path)
        staging.check_no_duplicates(con, stage, path, plan.batch_id, extends=not plan.new_batch)
        load_id = _commit(
            store,
            stage,
            plan,
            path,
            checksum=checksum,
            principal=principal,
            participants=participants,
            header=header,
            info_fields=info_fields,
            call_fields=call_fields,
            counts=counts,
            kind="vcf" if source is None else source[2],
            tool=f"cyvcf2 {_cyvcf2_version()}" if source is None else source[3],
        )
    seconds = time.perf_counter() - t0
    logger.info(
        "loaded %s: %d samples, %d records, %d variant rows (%d new), %d calls in %.1f s",
        path,
        n,
        counts.records,
        counts.variants,
        counts.new,
        counts.calls,
        seconds,
    )
    return LoadReport(
        source=str(path),
        batch_id=plan.batch_id,
        load_id=load_id,
        already_loaded=False,
        n_samples=n,
        n_records=counts.records,
        n_variants=counts.variants,
        n_new_variants=counts.new,
        n_calls=counts.calls,
        n_packed=counts.packed,
        seconds=seconds,
    )


def _cyvcf2_version() -> str:
    import cyvcf2

    return str(getattr(cyvcf2, "__version__", "unknown"))
