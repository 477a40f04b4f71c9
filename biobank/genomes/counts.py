"""Genotype and allele counts per variant in a sample set (no tests on them).

Sparse calls are grouped in SQL, packed ones counted by popcount
(:func:`biobank.genomes.packed.packed_counts`). The frequency bounds of a
:class:`~biobank.genomes.filters.VariantFilter` are applied with these counts,
both by the readers (:func:`biobank.genomes.reader.variant_keys`) and by
:mod:`biobank.stats.frequencies`, which adds Hardy-Weinberg tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.genomes.filters import VariantFilter, rename_variant_columns
from biobank.genomes.packed import batch_columns, packed_counts_later

if TYPE_CHECKING:
    import duckdb

__all__ = ["allele_counts_in", "within_frequency_bounds"]


def _frequency_counts(
    con: duckdb.DuckDBPyConnection, sample_tbl: str, variant_filter: VariantFilter
) -> pl.DataFrame:
    """Per-variant coverage and call counts of a sample set (before derived columns).

    Sparse calls are grouped in SQL, packed ones counted by popcount
    (:func:`biobank.genomes.packed.packed_counts_later`); both are integer arrays indexed
    by variant key, added in numpy and joined to the variant columns.
    """
    where, meta_params = variant_filter.where("v")
    params = meta_params
    in_v = f" AND variant_key IN (SELECT v.variant_key FROM variant v WHERE {where})"
    if where == "TRUE":  # without a variant filter, skip the semi-join (it doubles the time)
        in_v, params = "", []
    meta = con.execute(  # stored in key order: sorting here only if not is cheaper
        "SELECT v.variant_key, v.contig, v.position, v.ref, v.alt, v.variant_id, v.gene,"
        f" v.consequence FROM variant v WHERE {where}",
        meta_params,
    ).pl()
    if not meta["variant_key"].is_sorted():
        meta = meta.sort("variant_key")
    at = meta["variant_key"].to_numpy().astype(np.int64)
    size = int(at.max()) + 1 if len(at) else 1
    counts = np.zeros((6, size), dtype=np.int64)  # covered, missing, het, hom-alt, hap ref/alt
    # covered: the set's samples in each batch that covered the variant
    layout = batch_columns(con, sample_tbl)
    n_in_batch = np.zeros(max(layout, default=0) + 1, dtype=np.int64)
    for batch_id, bc in layout.items():
        n_in_batch[batch_id] = len(bc.cols)
    # the packed planes are counted beside the sparse count below (a thread reading
    # the partition files, in a partitioned store)
    packed = packed_counts_later(
        con,
        sample_tbl,
        *(("TRUE", []) if not in_v else (f"p.variant_key < ?{in_v}", [size, *params])),
        layout=layout,
    )
    cov = con.execute(
        "SELECT variant_key, batch_id FROM batch_variant"
        f" WHERE variant_key < ? AND batch_id < ?{in_v}",
        [size, len(n_in_batch), *params],
    ).fetchnumpy()
    np.add.at(
        counts[0],
        np.asarray(cov["variant_key"], dtype=np.int64),
        n_in_batch[np.asarray(cov["batch_id"], dtype=np.int64)],
    )
    # one grouped count per (variant, flags, dosage), then code = (flags & 3) * 4
    # + dosage (missing/haploid bits): cheaper than five filtered counts over
    # every call, and grouping on the stored columns (not an expression) lets
    # DuckDB use their value ranges
    cc = con.execute(
        "SELECT variant_key, flags, dosage, count(*) AS n"
        f" FROM genotype_call JOIN {sample_tbl} USING (sample_key)"
        f" WHERE variant_key < ?{in_v} GROUP BY ALL",
        [size, *params],
    ).fetchnumpy()
    vk, flags, dosage, n = (
        np.asarray(cc[c], dtype=np.int64) for c in ("variant_key", "flags", "dosage", "n")
    )
    code = (flags & 3) * 4 + dosage
    for row, sel in enumerate(
        ((code & 4) == 4, code == 1, code == 2, code == 8, code == 9), start=1
    ):
        np.add.at(counts[row], vk[sel], n[sel])
    pkey, pn = packed()
    for row, col in ((1, 2), (2, 0), (3, 1)):  # missing, het, hom-alt
        np.add.at(counts[row], pkey, pn[:, col])
    names = ["n_covered", "n_missing_rows", "n_het", "n_hom_alt", "n_hap_ref", "n_hap_alt"]
    return meta.with_columns(pl.Series(name, counts[i, at]) for i, name in enumerate(names))


def allele_counts_in(
    con: duckdb.DuckDBPyConnection, sample_tbl: str, variant_filter: VariantFilter
) -> pl.DataFrame:
    """Genotype and allele counts, ALT frequency and call rate per variant of a sample table.

    The columns of :func:`biobank.stats.frequencies.allele_frequencies` without
    ``variant_hwe_p_value``, for a table made by
    :func:`biobank.genomes.reader.sample_table`. Frequency bounds of
    ``variant_filter`` are not applied here (:func:`within_frequency_bounds`).
    """
    n_row = con.execute(f"SELECT count(*) FROM {sample_tbl}").fetchone()
    n_samples = int(n_row[0]) if n_row else 0
    df = _frequency_counts(con, sample_tbl, variant_filter)
    called = pl.col("n_covered") - pl.col("n_missing_rows")
    hap = pl.col("n_hap_ref") + pl.col("n_hap_alt")
    df = df.with_columns(
        pl.lit(n_samples, dtype=pl.Int64).alias("variant_n_samples"),
        called.alias("variant_n_called"),
    ).with_columns(
        (pl.col("variant_n_samples") - pl.col("variant_n_called")).alias("variant_n_missing"),
        (pl.col("variant_n_called") / pl.col("variant_n_samples")).alias("variant_call_rate"),
        (pl.col("variant_n_called") - pl.col("n_het") - pl.col("n_hom_alt") - hap).alias(
            "variant_n_hom_ref"
        ),
        pl.col("n_het").alias("variant_n_het"),
        pl.col("n_hom_alt").alias("variant_n_hom_alt"),
        pl.col("n_hap_ref").alias("variant_n_haploid_ref"),
        pl.col("n_hap_alt").alias("variant_n_haploid_alt"),
        (2 * (pl.col("variant_n_called") - hap) + hap).alias("variant_allele_total"),
        (pl.col("n_het") + 2 * pl.col("n_hom_alt") + pl.col("n_hap_alt")).alias(
            "variant_alt_allele_count"
        ),
    )
    df = df.with_columns(
        (
            pl.when(pl.col("variant_allele_total") > 0)
            .then(pl.col("variant_alt_allele_count") / pl.col("variant_allele_total"))
            .otherwise(None)
        ).alias("variant_alt_allele_frequency")
    )
    df = df.drop("n_covered", "n_missing_rows", "n_het", "n_hom_alt", "n_hap_ref", "n_hap_alt")
    return rename_variant_columns(df)


def within_frequency_bounds(df: pl.DataFrame, variant_filter: VariantFilter) -> pl.DataFrame:
    """The rows of ``df`` whose ``variant_alt_allele_frequency`` is within the filter's bounds.

    Inclusive bounds; a variant without a frequency (no called allele) is
    outside any bound.
    """
    if variant_filter.min_frequency is not None:
        f = df["variant_alt_allele_frequency"]
        df = df.filter((f >= variant_filter.min_frequency).fill_null(False))
    if variant_filter.max_frequency is not None:
        f = df["variant_alt_allele_frequency"]
        df = df.filter((f <= variant_filter.max_frequency).fill_null(False))
    return df
