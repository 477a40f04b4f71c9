"""Allele frequencies per variant: genotype and allele counts, ALT frequency,
call rate and the Hardy-Weinberg exact p-value (as ``plink2 --freq``,
``--missing``, ``--hardy``).

The counts are :func:`biobank.genomes.counts.allele_counts_in`'s; this module
adds the HWE tests, frequency bounds and small-count suppression. Pass
``min_count`` (e.g. :data:`~biobank.core.disclosure.SMALL_COUNT_THRESHOLD`) to
suppress small counts in research output: counts between 1 and
``min_count - 1`` and everything derived from them become null and
``variant_suppressed`` is true.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from biobank.core.disclosure import suppress_rows
from biobank.genomes.counts import allele_counts_in, within_frequency_bounds
from biobank.genomes.filters import VariantFilter
from biobank.genomes.reader import SampleSet, sample_table
from biobank.stats.hwe import hwe_exact_x

if TYPE_CHECKING:
    import duckdb

__all__ = ["allele_frequencies", "allele_frequencies_in", "suppress_variant_rows"]


def suppress_variant_rows(
    df: pl.DataFrame, count_cols: Sequence[str], derived: Sequence[str], min_count: int | None
) -> pl.DataFrame:
    """Null small counts (1 .. min_count-1) and what derives from them; flag the rows.

    :func:`biobank.core.disclosure.suppress_rows` with the flag column
    ``variant_suppressed``.
    """
    return suppress_rows(df, count_cols, derived, min_count=min_count, flag="variant_suppressed")


def allele_frequencies_in(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    variant_filter: VariantFilter,
    *,
    hwe: bool = True,
) -> pl.DataFrame:
    """:func:`allele_frequencies` for a sample table (:func:`~biobank.genomes.reader.sample_table`).

    Frequency bounds of ``variant_filter`` are not applied here.
    """
    df = allele_counts_in(con, sample_tbl, variant_filter)
    if hwe:
        p = hwe_exact_x(  # the joint test where there are haploid (male chrX) calls
            *(
                df[c].to_numpy()
                for c in ("variant_n_het", "variant_n_hom_ref", "variant_n_hom_alt")
            ),
            *(df[c].to_numpy() for c in ("variant_n_haploid_ref", "variant_n_haploid_alt")),
        )
        df = df.with_columns(pl.Series("variant_hwe_p_value", p))
    return df


def allele_frequencies(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
    hwe: bool = True,
    min_count: int | None = None,
) -> pl.DataFrame:
    """Genotype counts, ALT allele frequency, call rate and HWE p-value per variant.

    A sample whose batch did not cover a variant counts as missing there.
    Haploid calls count one allele. Multi-allelic records are split: a sample
    carrying another ALT of the record counts as REF for this ALT (as after
    ``bcftools norm -m-``).

    Parameters
    ----------
    con
        The store connection.
    samples
        The sample set (see :mod:`biobank.genomes.reader`).
    variant_filter
        Which variants; frequency bounds apply to the frequency in ``samples``.
    purpose
        Restrict to participants whose consent permits this purpose.
    hwe
        Also compute the exact HWE p-value (diploid calls only).
    min_count
        Suppress counts below this (see the module docstring).

    Returns
    -------
    polars.DataFrame
        ``variant_key, variant_contig, variant_position, variant_ref,
        variant_alt, variant_id, variant_gene, variant_consequence,
        variant_n_samples, variant_n_called, variant_n_missing,
        variant_call_rate, variant_n_hom_ref, variant_n_het, variant_n_hom_alt,
        variant_n_haploid_ref, variant_n_haploid_alt, variant_allele_total,
        variant_alt_allele_count, variant_alt_allele_frequency,
        variant_hwe_p_value`` (+ ``variant_suppressed`` with ``min_count``).
    """
    variant_filter = variant_filter or VariantFilter()
    with sample_table(con, samples, purpose=purpose) as tbl:
        df = allele_frequencies_in(con, tbl, variant_filter, hwe=hwe)
    df = within_frequency_bounds(df, variant_filter)
    return suppress_variant_rows(
        df,
        ["variant_alt_allele_count", "variant_n_het", "variant_n_hom_alt", "variant_n_haploid_alt"],
        ["variant_alt_allele_frequency", "variant_hwe_p_value"]
        if hwe
        else ["variant_alt_allele_frequency"],
        min_count,
    )
