"""Apache Spark on the partitioned store: the same Parquet files, Spark SQL views.

Where a center outgrows one machine, Spark reads the partition files that
DuckDB reads (:mod:`biobank.genomes.partitions`); the catalog (samples,
batches, variants, coverage and the list of files) comes from the DuckDB
file. :func:`register_views` defines, in a :class:`pyspark.sql.SparkSession`,
temporary views with the names and columns of the store's tables:

* ``genotype_call``: the sparse calls (Parquet);
* ``genotype_packed``: the packed bit planes (Parquet; Spark reads Parquet's
  unsigned 64-bit words as ``decimal(20,0)``, the view turns them back into
  ``bigint`` with the same bits);
* ``variant``, ``batch_variant``, ``genotype_batch``, ``genotype_sample_position``
  (copied from the catalog; a few bytes a variant).

:func:`allele_counts` counts genotypes and alleles per variant in a sample set
with Spark SQL alone, by the rules of :func:`biobank.genomes.counts.allele_counts_in`
(haploid calls count one allele, a batch that did not cover a variant leaves
its samples missing there). Recipe and cluster settings: ``docs/store.md``.

PySpark is imported only here, and only when called; a session is the
caller's (:func:`local_session` makes a small local one).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core.errors import StoreError
from biobank.genomes.partitions import is_partitioned, partition_files, parts_root

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from biobank.core.store import Store

__all__ = ["COUNT_COLUMNS", "allele_counts", "local_session", "register_views"]

#: the columns :func:`allele_counts` returns
COUNT_COLUMNS = [
    "variant_key",
    "n_called",
    "n_het",
    "n_hom_alt",
    "n_haploid_ref",
    "n_haploid_alt",
    "allele_total",
    "alt_allele_count",
    "alt_allele_frequency",
]


def local_session(*, cores: int = 2, memory: str = "1g") -> SparkSession:
    """A local Spark session (``local[cores]``, driver memory ``memory``, no web UI)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("biobank")
        .config("spark.driver.memory", memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def _catalog_frame(spark: SparkSession, store: Store, sql: str) -> Any:
    table = store.con.execute(sql).to_arrow_table()
    return spark.createDataFrame(table.to_pandas())


#: Parquet UINT64 words (read as decimal(20,0)) back to bigint with the same 64 bits
_UNSIGNED = (
    "transform({c}, x -> CAST(IF(x >= 9223372036854775808BD,"
    " x - 18446744073709551616BD, x) AS BIGINT))"
)


def register_views(spark: SparkSession, store: Store) -> None:
    """Define the store's views in ``spark`` (temporary views, replaced if defined).

    Raises
    ------
    StoreError
        If the store is not partitioned (a single-file store's calls are inside
        the DuckDB file, which Spark cannot read).
    """
    if not is_partitioned(store.con):
        raise StoreError(
            f"store {store.path} is single-file: Spark reads partitioned stores only "
            "(biobank store partition)"
        )
    root = parts_root(store.path).resolve()
    rows = partition_files(store.con)
    from pyspark.sql.types import (
        ArrayType,
        DecimalType,
        IntegerType,
        ShortType,
        StructField,
        StructType,
    )

    schemas = {
        "calls": StructType(
            [
                StructField("variant_key", IntegerType()),
                StructField("sample_key", IntegerType()),
                StructField("dosage", ShortType()),
                StructField("flags", ShortType()),
                StructField("dp", IntegerType()),
                StructField("gq", ShortType()),
            ]
        ),
        "packed": StructType(
            [
                StructField("batch_id", IntegerType()),
                StructField("variant_key", IntegerType()),
                StructField("lo", ArrayType(DecimalType(20, 0))),
                StructField("hi", ArrayType(DecimalType(20, 0))),
            ]
        ),
    }
    for kind, view in (("calls", "genotype_call"), ("packed", "genotype_packed_raw")):
        files = [str(root / str(r[6])) for r in rows if r[1] == kind]
        frame = spark.read.parquet(*files) if files else spark.createDataFrame([], schemas[kind])
        frame.createOrReplaceTempView(view)
    spark.sql(
        "SELECT batch_id, variant_key, "
        + _UNSIGNED.format(c="lo")
        + " AS lo, "
        + _UNSIGNED.format(c="hi")
        + " AS hi FROM genotype_packed_raw"
    ).createOrReplaceTempView("genotype_packed")
    for view, sql in (
        (
            "variant",
            "SELECT variant_key, contig, position, ref, alt,"
            " CAST(allele_index AS INTEGER) AS allele_index,"
            " CAST(n_alt_alleles AS INTEGER) AS n_alt_alleles, variant_id FROM variant",
        ),
        ("batch_variant", "SELECT batch_id, variant_key FROM batch_variant"),
        ("genotype_batch", "SELECT batch_id, n_samples FROM genotype_batch"),
        (
            "genotype_sample_position",
            "SELECT batch_id, sample_key, CAST(pos AS INTEGER) AS pos"
            " FROM genotype_sample_position",
        ),
    ):
        _catalog_frame(spark, store, sql).createOrReplaceTempView(view)


_COUNTS_SQL = """
WITH s AS (
    SELECT p.batch_id, p.sample_key, p.pos FROM genotype_sample_position p
    {restrict}
),
nb AS (SELECT batch_id, count(*) AS n FROM s GROUP BY batch_id),
cov AS (
    SELECT bv.variant_key, sum(nb.n) AS n_covered
    FROM batch_variant bv JOIN nb ON nb.batch_id = bv.batch_id GROUP BY bv.variant_key
),
sparse AS (
    SELECT c.variant_key,
        sum(CASE WHEN (c.flags & 1) = 1 THEN 1 ELSE 0 END) AS n_miss,
        sum(CASE WHEN (c.flags & 3) = 0 AND c.dosage = 1 THEN 1 ELSE 0 END) AS n_het,
        sum(CASE WHEN (c.flags & 3) = 0 AND c.dosage = 2 THEN 1 ELSE 0 END) AS n_hom,
        sum(CASE WHEN (c.flags & 3) = 2 AND c.dosage = 0 THEN 1 ELSE 0 END) AS n_hap_ref,
        sum(CASE WHEN (c.flags & 3) = 2 AND c.dosage = 1 THEN 1 ELSE 0 END) AS n_hap_alt
    FROM genotype_call c JOIN s ON s.sample_key = c.sample_key GROUP BY c.variant_key
),
codes AS (
    SELECT p.variant_key,
        (shiftright(element_at(p.lo, CAST(s.pos DIV 64 AS INT) + 1), CAST(s.pos % 64 AS INT)) & 1)
        + 2 * (shiftright(element_at(p.hi, CAST(s.pos DIV 64 AS INT) + 1),
                          CAST(s.pos % 64 AS INT)) & 1) AS code
    FROM genotype_packed p JOIN s ON s.batch_id = p.batch_id
),
packed AS (
    SELECT variant_key,
        sum(CASE WHEN code = 3 THEN 1 ELSE 0 END) AS n_miss,
        sum(CASE WHEN code = 1 THEN 1 ELSE 0 END) AS n_het,
        sum(CASE WHEN code = 2 THEN 1 ELSE 0 END) AS n_hom
    FROM codes GROUP BY variant_key
),
n AS (
    SELECT v.variant_key,
        coalesce(cov.n_covered, 0) - coalesce(sp.n_miss, 0) - coalesce(pk.n_miss, 0)
            AS n_called,
        coalesce(sp.n_het, 0) + coalesce(pk.n_het, 0) AS n_het,
        coalesce(sp.n_hom, 0) + coalesce(pk.n_hom, 0) AS n_hom_alt,
        coalesce(sp.n_hap_ref, 0) AS n_haploid_ref,
        coalesce(sp.n_hap_alt, 0) AS n_haploid_alt
    FROM variant v
    LEFT JOIN cov ON cov.variant_key = v.variant_key
    LEFT JOIN sparse sp ON sp.variant_key = v.variant_key
    LEFT JOIN packed pk ON pk.variant_key = v.variant_key
)
SELECT variant_key, n_called, n_het, n_hom_alt, n_haploid_ref, n_haploid_alt,
    2 * (n_called - n_haploid_ref - n_haploid_alt) + n_haploid_ref + n_haploid_alt
        AS allele_total,
    n_het + 2 * n_hom_alt + n_haploid_alt AS alt_allele_count
FROM n
"""


def allele_counts(spark: SparkSession, sample_keys: list[int] | None = None) -> pl.DataFrame:
    """Genotype and allele counts and the ALT frequency per variant, computed by Spark.

    Parameters
    ----------
    spark
        A session with the store's views (:func:`register_views`).
    sample_keys
        The sample set (``genotype_sample.sample_key``); ``None``: every sample.
        Consent and the small-count rule are the caller's: pass only the keys of
        a permitted set (e.g. from :func:`biobank.genomes.reader.sample_table`).

    Returns
    -------
    polars.DataFrame
        :data:`COUNT_COLUMNS`, one row per variant, by ``variant_key``.
    """
    restrict = ""
    if sample_keys is not None:
        from pyspark.sql.types import IntegerType, StructField, StructType

        schema = StructType([StructField("sample_key", IntegerType())])
        keys = [(int(k),) for k in sample_keys]
        spark.createDataFrame(keys, schema).createOrReplaceTempView("sample_set")
        restrict = "JOIN sample_set k ON k.sample_key = p.sample_key"
    frame = spark.sql(_COUNTS_SQL.format(restrict=restrict)).toArrow()
    df = pl.from_arrow(frame)
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(pl.col(c).cast(pl.Int64) for c in df.columns).sort("variant_key")
    return df.with_columns(
        pl.when(pl.col("allele_total") > 0)
        .then(pl.col("alt_allele_count") / pl.col("allele_total"))
        .otherwise(None)
        .alias("alt_allele_frequency")
    ).select(COUNT_COLUMNS)
