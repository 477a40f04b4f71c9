"""Staging a VCF load: where its rows go, the scratch tables, duplicate checks
and publishing into the store.

A load prepares every row in a scratch DuckDB database beside the store (one
autocommitted insert per chunk and table, so memory does not grow with the
records), then :func:`publish` copies them into the store inside the load's
transaction. :class:`Plan` decides the batch and the keys before reading and
checks, before publishing, that no other load changed the store meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import polars as pl

from biobank.core.errors import ConflictError, ValidationError
from biobank.core.store import Store

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "STAGED_TABLES",
    "Plan",
    "assign_keys",
    "check_no_duplicates",
    "plan_batch",
    "publish",
]


def _next(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    row = con.execute(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


#: the tables a load prepares in its scratch database, in publishing order
STAGED_TABLES = ("variant", "batch_variant", "genotype_packed", "genotype_call")


@dataclass
class Plan:
    """Where a load's rows go: decided before reading, checked again before publishing."""

    batch_id: int
    sample_keys: np.ndarray
    new_batch: bool
    snapshot: tuple[int, int, int]

    @property
    def first_variant_key(self) -> int:
        """The key the load's first new variant gets."""
        return self.snapshot[2]

    @staticmethod
    def _snapshot(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
        return (
            _next(con, "genotype_batch", "batch_id"),
            _next(con, "genotype_sample", "sample_key"),
            _next(con, "variant", "variant_key"),
        )

    @classmethod
    def of(
        cls,
        con: duckdb.DuckDBPyConnection,
        batch_id: int | None,
        sample_keys: np.ndarray | None,
        n: int,
    ) -> Plan:
        """Extend the batch of ``sample_keys``, or plan a new batch of ``n`` samples."""
        snap = cls._snapshot(con)
        if batch_id is not None and sample_keys is not None:
            return cls(batch_id, sample_keys, False, snap)
        keys = np.arange(snap[1], snap[1] + n, dtype=np.int32)
        return cls(snap[0], keys, True, snap)

    def check_unchanged(self, store: Store, path: Path, checksum: str) -> None:
        """Raise ConflictError if another load changed the store since :meth:`of`."""
        loaded = store.find_load(kind="vcf", checksum=checksum) is not None
        if loaded or self._snapshot(store.con) != self.snapshot:
            raise ConflictError(
                f"{path}: the store changed while the file was read (another load finished "
                "meanwhile); nothing was written: run the load again"
            )

    def write_batch(
        self, con: duckdb.DuckDBPyConnection, names: Sequence[str], participants: Sequence[str]
    ) -> None:
        """Record a new batch and its samples (nothing to do when extending one)."""
        if not self.new_batch:
            return
        n = len(names)
        con.execute(
            "INSERT INTO genotype_batch VALUES (?, ?, ?)",
            [self.batch_id, n, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )
        samples_tbl = pl.DataFrame(
            {
                "sample_key": self.sample_keys,
                "sample_id": pl.Series(list(names), dtype=pl.String),
                "participant_id": pl.Series(list(participants), dtype=pl.String),
                "batch_id": np.full(n, self.batch_id, dtype=np.int32),
                "vcf_column": np.arange(n, dtype=np.int32),
            }
        )
        con.register("_samples_tbl", samples_tbl)
        con.execute("INSERT INTO genotype_sample SELECT * FROM _samples_tbl")
        con.unregister("_samples_tbl")


def publish(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    """Copy a load's prepared rows from the scratch database into the store.

    One ``INSERT ... SELECT`` per table, inside the load's transaction: DuckDB
    writes such bulk inserts out as it goes, so memory does not follow the
    number of rows (rows added by many small inserts in one transaction would
    be partly held until the commit).
    """
    for table in STAGED_TABLES:
        con.execute(f"INSERT INTO {table} SELECT * FROM {stage}.{table}")


def check_no_duplicates(
    con: duckdb.DuckDBPyConnection, stage: str, path: Path, batch_id: int, extends: bool
) -> None:
    """Raise ValidationError if a staged variant appears twice for the batch's samples.

    Twice in one chunk is caught by :func:`assign_keys`; here: in two chunks
    (the same key staged twice), or in a file loaded before for the same
    samples. Both compare integer keys only.
    """
    row = con.execute(
        f"SELECT variant_key FROM {stage}.batch_variant"
        " GROUP BY variant_key HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if row is None and extends:
        row = con.execute(
            f"SELECT s.variant_key FROM {stage}.batch_variant s"
            " SEMI JOIN (SELECT variant_key FROM batch_variant WHERE batch_id = ?) b"
            " USING (variant_key) LIMIT 1",
            [batch_id],
        ).fetchone()
    if row is None:
        return
    dup = con.execute(
        f"SELECT contig, position, ref, alt FROM (FROM variant UNION ALL FROM {stage}.variant)"
        " WHERE variant_key = ? LIMIT 1",
        [row[0]],
    ).fetchone()
    assert dup is not None
    _duplicate_variant(path, dup)


def _duplicate_variant(path: Path, dup: Sequence[Any]) -> NoReturn:
    raise ValidationError(
        f"variant {dup[0]}:{dup[1]} {dup[2]}>{dup[3]} appears twice for these samples "
        "(twice in this file, or also in a file loaded before for the same samples); "
        "merge duplicate records (bcftools norm -d exact) before loading",
        file=path,
    )


def assign_keys(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    meta: list[tuple[Any, ...]],
    batch_id: int,
    stage: str,
    next_key: int,
) -> tuple[np.ndarray, int]:
    """Stage the chunk's new variants; return the key of each row and how many were new.

    A variant already in the store, or staged by an earlier chunk of this
    load, keeps its key; new ones get the next free keys (from ``next_key``)
    in file order.
    """
    table = pl.DataFrame(
        meta,
        schema={
            "row_no": pl.Int32,
            "contig": pl.String,
            "position": pl.Int32,
            "ref": pl.String,
            "alt": pl.String,
            "allele_index": pl.UInt8,
            "n_alt_alleles": pl.UInt8,
            "variant_id": pl.String,
            "qual": pl.Float32,
            "filter": pl.String,
            "gene": pl.String,
            "consequence": pl.String,
            "bcsq": pl.String,
            "info": pl.String,
        },
        orient="row",
    )
    twice = table.select("contig", "position", "ref", "alt").is_duplicated()
    if twice.any():
        _duplicate_variant(path, table.filter(twice).row(0)[1:5])
    con.register("_chunk_variant", table)
    keys_tbl = con.execute(
        "WITH m AS (SELECT c.row_no, coalesce(v.variant_key, s.variant_key) AS variant_key"
        " FROM _chunk_variant c"
        " LEFT JOIN variant v ON v.contig = c.contig AND v.position = c.position"
        " AND v.ref = c.ref AND v.alt = c.alt"
        f" LEFT JOIN {stage}.variant s ON s.contig = c.contig AND s.position = c.position"
        " AND s.ref = c.ref AND s.alt = c.alt)"
        " SELECT m.row_no, coalesce(m.variant_key, ? - 1 + row_number() OVER"
        " (PARTITION BY m.variant_key IS NULL ORDER BY m.row_no)) AS variant_key,"
        " m.variant_key IS NULL AS is_new FROM m ORDER BY m.row_no",
        [next_key],
    ).pl()
    keys = keys_tbl["variant_key"].to_numpy().astype(np.int64)
    is_new = keys_tbl["is_new"].to_numpy().astype(bool)
    new_tbl = pl.DataFrame(
        {
            "row_no": np.flatnonzero(is_new).astype(np.int32),
            "variant_key": keys[is_new].astype(np.int32),
        }
    )
    con.register("_new_keys", new_tbl)
    con.execute(
        f"INSERT INTO {stage}.variant SELECT k.variant_key, c.contig, c.position, c.ref, c.alt,"
        " c.allele_index, c.n_alt_alleles, c.variant_id, c.qual, c.filter, c.gene,"
        " c.consequence, c.bcsq, c.info FROM _new_keys k JOIN _chunk_variant c USING (row_no)"
        " ORDER BY k.variant_key"
    )
    con.unregister("_chunk_variant")
    con.unregister("_new_keys")
    bv = pl.DataFrame(
        {
            "batch_id": np.full(len(keys), batch_id, dtype=np.int32),
            "variant_key": keys.astype(np.int32),
        }
    )
    con.register("_bv_tbl", bv)
    con.execute(f"INSERT INTO {stage}.batch_variant SELECT * FROM _bv_tbl")
    con.unregister("_bv_tbl")
    return keys, int(is_new.sum())


def plan_batch(con: duckdb.DuckDBPyConnection, path: Path, names: Sequence[str]) -> Plan:
    """Plan the batch of a file with samples ``names`` (registered, each named once).

    A new batch, unless the file holds exactly the samples of an earlier
    batch (e.g. another chromosome): then that batch is extended.

    Raises
    ------
    ConflictError
        If some of the samples were loaded before, but not exactly one
        earlier batch's samples.
    """
    names_df = pl.DataFrame(
        {"sample_id": pl.Series(list(names), dtype=pl.String), "col": np.arange(len(names))}
    )
    con.register("_vcf_names", names_df)
    try:
        loaded = con.execute(
            "SELECT g.sample_id, g.sample_key, g.batch_id, b.n_samples,"
            " (SELECT string_agg(l.source, ', ') FROM genotype_load l"
            " WHERE l.batch_id = g.batch_id)"
            " FROM genotype_sample g JOIN genotype_batch b USING (batch_id)"
            " JOIN _vcf_names n USING (sample_id) ORDER BY n.col"
        ).fetchall()
    finally:
        con.unregister("_vcf_names")
    n = len(names)
    if not loaded:
        return Plan.of(con, None, None, n)
    batches = {int(r[2]) for r in loaded}
    if len(loaded) == n and len(batches) == 1 and int(loaded[0][3]) == n:
        # exactly the samples of one batch (e.g. another chromosome): extend that batch
        keys = np.array([r[1] for r in loaded], dtype=np.int32)
        return Plan.of(con, int(loaded[0][2]), keys, n)
    shown = ", ".join(f"{r[0]} (from {r[4]})" for r in loaded[:20])
    raise ConflictError(
        f"{path}: {len(loaded)} of its {n} sample(s) were already loaded from another "
        f"file: {shown}; a file must hold only new samples, or exactly the samples of one "
        "earlier batch (to add variants, e.g. another chromosome): remove the loaded samples "
        "(bcftools view -s ^NAME) or load the new ones from a separate file"
    )
