"""Reading packed calls (``genotype_packed``): where a sample set's samples sit
in each batch's bit planes, the planes themselves, and het / hom-alt / missing
counts by popcount. The planes are written by :mod:`biobank.genomes.encoding`.

In a partitioned store (:mod:`biobank.genomes.partitions`) the counts over all
of a batch's packed rows read the batch's Parquet files, as the catalog lists
them, with pyarrow instead of through the view: DuckDB unnests the list columns
row by row (at 30,000 samples 150 ms against 60 ms for the same planes), and the
read runs in a thread beside the caller's DuckDB query
(:func:`packed_counts_later`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "BatchColumns",
    "batch_columns",
    "packed_counts",
    "packed_counts_later",
    "packed_planes",
]


@dataclass
class BatchColumns:
    """Where a sample set's samples sit in one batch's packed bit planes."""

    n_batch: int  # samples in the batch (bits per plane)
    pos: np.ndarray  # (m,) positions in the batch's sample_key order
    cols: np.ndarray  # (m,) columns of those samples in the set (sample_key order)
    keys: np.ndarray  # (m,) their sample keys


def batch_columns(con: duckdb.DuckDBPyConnection, sample_tbl: str) -> dict[int, BatchColumns]:
    """Per batch of ``sample_tbl``: its samples' keys, bit positions and set columns.

    The one description of a sample set's layout that the readers share: the
    set's columns are its samples in ``sample_key`` order.
    """
    rows = con.execute(
        "SELECT s.sample_key, s.batch_id, g.pos, b.n_samples FROM"
        f" (SELECT sample_key, batch_id, row_number() OVER (ORDER BY sample_key) - 1 AS col"
        f"  FROM {sample_tbl}) s"
        " JOIN genotype_sample_position g USING (sample_key, batch_id)"
        " JOIN genotype_batch b USING (batch_id) ORDER BY s.col"
    ).fetchnumpy()
    skey = np.asarray(rows["sample_key"], dtype=np.int64)
    batch = np.asarray(rows["batch_id"], dtype=np.int64)
    pos = np.asarray(rows["pos"], dtype=np.int64)
    size = np.asarray(rows["n_samples"], dtype=np.int64)
    cols = np.arange(len(batch))
    return {
        int(b): BatchColumns(
            int(size[batch == b][0]), pos[batch == b], cols[batch == b], skey[batch == b]
        )
        for b in np.unique(batch)
    }


def _words(column: Any, n: int, n_words: int) -> np.ndarray:
    """(n, n_words) uint64 array of an Arrow ``list<uint64>`` column of equal-length lists."""
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    if len(flat) != n * n_words:
        raise ValueError(f"packed planes are not {n_words} words each")
    return np.asarray(flat, dtype="<u8").reshape(n, n_words)


def packed_planes(
    con: duckdb.DuckDBPyConnection,
    batch_id: int,
    n_batch: int,
    where: str = "TRUE",
    params: Sequence[Any] = (),
    *,
    unnest: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed rows of one batch: variant keys and the ``lo``/``hi`` planes (v, words) uint64.

    Rows come back in variant-key order; bit ``i % 64`` of word ``i // 64`` is
    the batch's ``i``-th sample (see ``biobank/core/schema/050_packed_calls.sql``).

    ``where`` is SQL on ``p`` (``genotype_packed``), e.g. a variant-key range.
    The words are exported unnested (flat columns, about twice as fast as list
    columns) unless ``unnest`` is false or they do not come out row by row;
    then the list columns are read.
    """
    n_words = (n_batch + 63) // 64
    sql = f"FROM genotype_packed p WHERE p.batch_id = ? AND ({where})"
    planes = None
    if unnest:
        flat = con.execute(
            f"SELECT p.variant_key, unnest(p.lo) AS lo, unnest(p.hi) AS hi {sql}",
            [batch_id, *params],
        ).to_arrow_table()
        vk = flat.column("variant_key").to_numpy().reshape(-1, n_words)
        if (vk == vk[:, :1]).all():  # each row's words came out together (insertion order)
            planes = (
                vk[:, 0].astype(np.int64),
                *(
                    np.asarray(flat.column(c).to_numpy(), dtype="<u8").reshape(-1, n_words)
                    for c in ("lo", "hi")
                ),
            )
    if planes is None:
        table = con.execute(
            f"SELECT p.variant_key, p.lo, p.hi {sql}", [batch_id, *params]
        ).to_arrow_table()
        keys = table.column("variant_key").to_numpy().astype(np.int64)
        planes = (keys, *(_words(table.column(c), len(keys), n_words) for c in ("lo", "hi")))
    keys, lo, hi = planes
    if len(keys) > 1 and (np.diff(keys) < 0).any():
        order = np.argsort(keys, kind="stable")
        keys, lo, hi = keys[order], lo[order], hi[order]
    return keys, lo, hi


def _masked_popcounts(lo: np.ndarray, hi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(v, 3) het, hom-alt and missing counts of the ``mask`` samples in planes (v, words).

    Blocks of rows (about 256 kB of words) go through the three counts while they
    are in the cache, with two scratch arrays reused: fresh full-size
    temporaries cost more in page faults than the bit operations themselves.
    """
    v, w = lo.shape
    rows = max(1, 32768 // max(w, 1))
    word = np.empty((min(rows, v), w), dtype=lo.dtype)
    bits = np.empty(word.shape, dtype=np.uint8)
    n = np.empty((3, v), dtype=np.int64)
    for start in range(0, v, rows):
        end = min(v, start + rows)
        a, b = lo[start:end], hi[start:end]
        wd, bt = word[: end - start], bits[: end - start]
        for row, (x, y) in enumerate(((a, mask), (b, mask), (a, b))):
            np.bitwise_and(x, y, out=wd)
            if row == 2:  # missing: both bits
                np.bitwise_and(wd, mask, out=wd)
            np.bitwise_count(wd, out=bt)
            n[row, start:end] = bt.sum(axis=1, dtype=np.uint32)
    return np.column_stack([n[0] - n[2], n[1] - n[2], n[2]])


def _batch_mask(bc: BatchColumns, n_words: int) -> np.ndarray:
    member = np.zeros(n_words * 64, dtype=bool)
    member[bc.pos] = True
    return np.packbits(member, bitorder="little").view("<u8")


def packed_files(con: duckdb.DuckDBPyConnection, batch_id: int) -> list[Path] | None:
    """The Parquet files holding a batch's packed rows, or ``None`` if the store is not
    partitioned (its planes are in the ``genotype_packed`` table).

    Paths as the views name them: under the store's parts directory, beside the
    store (DuckDB's ``file_search_path``, set by :class:`~biobank.core.store.Store`).
    """
    from biobank.genomes.partitions import is_partitioned, parts_root

    if not is_partitioned(con):
        return None
    row = con.execute(
        "SELECT d.path, current_setting('file_search_path') FROM duckdb_databases() d"
        " WHERE d.database_name = current_database()"
    ).fetchone()
    if row is None or not row[0] or not row[1] or "," in str(row[1]):
        return None  # not the store's own connection: read through the view
    root = Path(str(row[1])) / parts_root(Path(str(row[0]))).name
    paths = con.execute(
        "SELECT path FROM genotype_partition WHERE kind = 'packed' AND batch_id = ?"
        " ORDER BY contig, region_start, partition_id",
        [batch_id],
    ).fetchall()
    return [root / str(p) for (p,) in paths]


def _file_planes(
    files: list[Path], batch_id: int, n_batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`packed_planes` of every row of a batch, read from its Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_words = (n_batch + 63) // 64
    if not files:
        empty = np.zeros((0, n_words), dtype="<u8")
        return np.zeros(0, dtype=np.int64), empty, empty.copy()
    tables = [
        pq.read_table(f, columns=["batch_id", "variant_key", "lo", "hi"], use_threads=False)
        for f in files
    ]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if (table.column("batch_id").to_numpy() != batch_id).any():
        raise ValueError(f"a packed file of batch {batch_id} holds rows of another batch")
    keys = table.column("variant_key").to_numpy().astype(np.int64)
    lo, hi = (_words(table.column(c), len(keys), n_words) for c in ("lo", "hi"))
    if len(keys) > 1 and (np.diff(keys) < 0).any():
        order = np.argsort(keys, kind="stable")
        keys, lo, hi = keys[order], lo[order], hi[order]
    return keys, lo, hi


def packed_counts_later(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    where: str = "TRUE",
    params: Sequence[Any] = (),
    *,
    layout: dict[int, BatchColumns] | None = None,
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Start :func:`packed_counts`; the returned function waits for it and returns its result.

    In a partitioned store, counts over all packed rows (``where`` ``"TRUE"``) read the
    files in a background thread (pyarrow and numpy release the GIL), so the caller may
    run its own query on ``con`` meanwhile; the thread does not use ``con``. Otherwise
    the counts run through DuckDB when the returned function is called.
    """
    if layout is None:
        layout = batch_columns(con, sample_tbl)
    files = {b: packed_files(con, b) for b in layout} if where == "TRUE" else {}
    if not files or any(f is None for f in files.values()):
        return lambda: packed_counts(con, sample_tbl, where, params, layout=layout)
    from concurrent.futures import ThreadPoolExecutor

    def run() -> tuple[np.ndarray, np.ndarray]:
        keys_out = [np.zeros(0, dtype=np.int64)]
        counts_out = [np.zeros((0, 3), dtype=np.int64)]
        for batch_id, bc in layout.items():
            keys, lo, hi = _file_planes(files[batch_id] or [], batch_id, bc.n_batch)
            if len(keys):
                keys_out.append(keys)
                counts_out.append(_masked_popcounts(lo, hi, _batch_mask(bc, lo.shape[1])))
        return np.concatenate(keys_out), np.concatenate(counts_out)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="packed")
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future.result


def packed_counts(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    where: str = "TRUE",
    params: Sequence[Any] = (),
    *,
    layout: dict[int, BatchColumns] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Het, hom-alt and missing counts of the set's samples over packed rows, by popcount.

    Parameters
    ----------
    con
        The store connection.
    sample_tbl
        A table made by :func:`biobank.genomes.reader.sample_table`.
    where, params
        SQL condition on ``p`` (``genotype_packed``) selecting variants.
    layout
        The set's :func:`batch_columns`, if the caller has it already.

    Returns
    -------
    tuple of numpy.ndarray
        Variant keys (v,) and counts (v, 3): het, hom-alt, missing. A variant
        packed in several batches of the set has a row per batch.
    """
    keys_out, counts_out = [np.zeros(0, dtype=np.int64)], [np.zeros((0, 3), dtype=np.int64)]
    if layout is None:
        layout = batch_columns(con, sample_tbl)
    for batch_id, bc in layout.items():
        keys, lo, hi = packed_planes(con, batch_id, bc.n_batch, where, params)
        if not len(keys):
            continue
        keys_out.append(keys)
        counts_out.append(_masked_popcounts(lo, hi, _batch_mask(bc, lo.shape[1])))
    return np.concatenate(keys_out), np.concatenate(counts_out)
