"""Reading packed calls (``genotype_packed``): where a sample set's samples sit
in each batch's bit planes, the planes themselves, and het / hom-alt / missing
counts by popcount. The planes are written by :mod:`biobank.genomes.encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import duckdb

__all__ = ["BatchColumns", "batch_columns", "packed_counts", "packed_planes"]


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

    Two scratch arrays are reused for the three counts: fresh 10 MB temporaries
    cost more in page faults than the bit operations themselves.
    """
    word = np.empty_like(lo)
    bits = np.empty(lo.shape, dtype=np.uint8)
    n = np.empty((3, lo.shape[0]), dtype=np.int64)
    for row, (a, b) in enumerate(((lo, mask), (hi, mask), (lo, hi))):
        np.bitwise_and(a, b, out=word)
        if row == 2:  # missing: both bits
            np.bitwise_and(word, mask, out=word)
        np.bitwise_count(word, out=bits)
        n[row] = bits.sum(axis=1, dtype=np.uint32)
    return np.column_stack([n[0] - n[2], n[1] - n[2], n[2]])


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
        member = np.zeros(lo.shape[1] * 64, dtype=bool)
        member[bc.pos] = True
        mask = np.packbits(member, bitorder="little").view("<u8")
        keys_out.append(keys)
        counts_out.append(_masked_popcounts(lo, hi, mask))
    return np.concatenate(keys_out), np.concatenate(counts_out)
