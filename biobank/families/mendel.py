"""Mendelian errors: genotypes of a child that its parents cannot have given.

For each trio (child, father, mother, all genotyped) and each variant where
the child is called, the child's genotype is *consistent* if one allele can
come from each parent: on the autosomes one from the father and one from the
mother; on chrX a son (haploid) takes his allele from his mother, and a
daughter takes her father's only allele and one of her mother's. A missing
parent contradicts nothing; a site where the child is missing is *skipped*. These are the rules of
``bcftools +mendelian`` (with the chrX rules ``M/M + F > M`` and
``M/M + F > M/F``), and the counts are tested to equal its output.

Counts are per trio (:attr:`MendelReport.trios`) and per variant
(:attr:`MendelReport.variants`: the number of trios in error, bcftools'
``INFO/MERR``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Principal
from biobank.families.members import check_read, decode, family_samples, is_x, trios
from biobank.genomes.filters import VariantFilter
from biobank.genomes.reader import dense_blocks, variant_keys, variants

__all__ = ["MendelReport", "consistent", "mendel_errors"]


@dataclass
class MendelReport:
    """Mendelian error counts.

    Attributes
    ----------
    trios
        ``family_id, child_sample, father_sample, mother_sample, n_consistent,
        n_errors, n_skipped, error_rate`` (errors / (consistent + errors)).
    variants
        ``variant_key, variant_contig, variant_position, variant_ref, variant_alt,
        n_trios_error`` for variants with at least one error.
    """

    trios: pl.DataFrame
    variants: pl.DataFrame


def _gives(
    d: np.ndarray, missing: np.ndarray, haploid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether a parent can give allele 0 and allele 1 (a missing parent can give either)."""
    give0 = missing | (d == 0) | ((d == 1) & ~haploid)
    give1 = missing | (d > 0)
    return give0, give1


def consistent(
    child: np.ndarray,
    father: tuple[np.ndarray, np.ndarray, np.ndarray],
    mother: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    child_haploid: np.ndarray,
) -> np.ndarray:
    """Whether called child dosages are Mendelian-consistent with the parents'.

    ``father`` and ``mother`` are ``(dosage, missing, haploid)`` arrays; a missing
    parent contradicts nothing (as in ``bcftools +mendelian``). A haploid child
    (a son on chrX) must have an allele of the mother; a diploid child one allele
    of each parent (a haploid father gives his only allele).
    """
    f0, f1 = _gives(*father)
    m0, m1 = _gives(*mother)
    diploid = (
        ((child == 0) & f0 & m0)
        | ((child == 2) & f1 & m1)
        | ((child == 1) & ((f0 & m1) | (f1 & m0)))
    )
    haploid = ((child == 0) & m0) | ((child == 1) & m1)
    return np.where(child_haploid, haploid, diploid)


def mendel_errors(
    con: duckdb.DuckDBPyConnection,
    *,
    principal: Principal,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
    variant_filter: VariantFilter | None = None,
) -> MendelReport:
    """Count Mendelian errors per trio and per variant (see the module docstring).

    Raises
    ------
    AccessDenied, ConsentError
        As :func:`biobank.families.members.check_read`.
    """
    purpose = check_read(principal, purpose)
    variant_filter = variant_filter or VariantFilter()
    vdf = variants(con, variant_filter)
    with family_samples(con, families=families, purpose=purpose) as fs:
        tr = trios(fs.members)
        keys = variant_keys(con, fs.table, variant_filter)
        contig_of = dict(
            zip(vdf["variant_key"].to_list(), vdf["variant_contig"].to_list(), strict=True)
        )
        n_t = tr.height
        ok = np.zeros(n_t, dtype=np.int64)
        bad = np.zeros(n_t, dtype=np.int64)
        skip = np.zeros(n_t, dtype=np.int64)
        per_variant: list[tuple[np.ndarray, np.ndarray]] = []
        if n_t and len(keys):
            cc, fc, mc = (tr[c].to_numpy() for c in ("c_col", "f_col", "m_col"))
            for block in dense_blocks(con, fs.table, keys):
                d, miss, hap = decode(block.dosage, block.flags)
                x = np.array([is_x(contig_of[int(k)]) for k in block.keys])[:, None]
                # a child is judged when called; a haploid child only on chrX (bcftools)
                skipped = miss[:, cc] | (hap[:, cc] & ~x)
                good = consistent(
                    d[:, cc],
                    (d[:, fc], miss[:, fc], hap[:, fc]),
                    (d[:, mc], miss[:, mc], hap[:, mc]),
                    child_haploid=hap[:, cc],
                )
                err = ~good & ~skipped
                ok += (good & ~skipped).sum(axis=0)
                bad += err.sum(axis=0)
                skip += skipped.sum(axis=0)
                per_variant.append((block.keys, err.sum(axis=1)))
        audit.record(
            con,
            principal,
            "genotype.read",
            "mendel_errors",
            {"purpose": purpose, "trios": n_t, "variants": len(keys)},
        )
    trio_df = tr.select("family_id", "child_sample", "father_sample", "mother_sample").with_columns(
        pl.Series("n_consistent", ok),
        pl.Series("n_errors", bad),
        pl.Series("n_skipped", skip),
    )
    trio_df = trio_df.with_columns(
        (pl.col("n_errors") / (pl.col("n_errors") + pl.col("n_consistent"))).alias("error_rate")
    )
    vk = np.concatenate([k for k, _ in per_variant]) if per_variant else np.zeros(0, np.int64)
    ve = np.concatenate([e for _, e in per_variant]) if per_variant else np.zeros(0, np.int64)
    counts = pl.DataFrame(
        {"variant_key": vk.astype(np.int64), "n_trios_error": ve.astype(np.int64)}
    )
    counts = counts.filter(pl.col("n_trios_error") > 0)
    var_df = (
        vdf.select(
            "variant_key", "variant_contig", "variant_position", "variant_ref", "variant_alt"
        )
        .with_columns(pl.col("variant_key").cast(pl.Int64))
        .join(counts, on="variant_key")
        .sort("variant_key")
    )
    return MendelReport(trios=trio_df, variants=var_df)
