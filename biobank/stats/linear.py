"""Linear regression of a quantitative trait on ALT dosage, as ``plink2 --glm`` does it.

* :func:`linear_regression`: ordinary least squares of a trait on each row of
  a genotype matrix plus covariates, vectorised: per row the normal equations
  of ``(g, 1, covariates)`` on that row's called samples, built from matrix
  products over a block of rows at once (the trait and covariates are
  centred first, which keeps them well conditioned). t test with
  ``n - k`` degrees of freedom, as plink2's ``.glm.linear`` and statsmodels'
  ``OLS``.
* :func:`linear_association`: the same over the store's genotypes for a
  sample set and a trait per participant (e.g. the latest HbA1c), with small
  counts suppressed as in :func:`biobank.stats.assoc.association`.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.core.errors import ValidationError
from biobank.genomes.encoding import FLAG_HAPLOID, FLAG_MISSING
from biobank.genomes.filters import VariantFilter
from biobank.genomes.reader import (
    DenseBlock,
    SampleSet,
    dense_blocks,
    sample_table,
    variant_keys,
    variants,
)
from biobank.stats.assoc import participant_values
from biobank.stats.frequencies import suppress_variant_rows

if TYPE_CHECKING:
    import duckdb

__all__ = ["linear_association", "linear_regression"]

logger = logging.getLogger(__name__)

#: genotypes per chunk of :func:`linear_regression` (the arrays stay in the CPU cache)
_CHUNK_CELLS = 200_000


def linear_regression(
    g: np.ndarray, y: np.ndarray, covariates: np.ndarray | None = None
) -> pl.DataFrame:
    """Least-squares fit of ``y = b*g + c0 + covariates @ c`` for every row of ``g``.

    A sample whose ``g`` is NaN is left out of that row's fit (as plink2
    and a complete-case statsmodels fit do). Rows whose ``g`` is constant
    among their samples, after the covariates, are null.

    Parameters
    ----------
    g
        (variants, samples) predictor (ALT dosage); NaN = missing.
    y
        (samples,) the trait.
    covariates
        (samples, k) covariates without intercept (added here), or ``None``.

    Returns
    -------
    polars.DataFrame
        ``beta, standard_error, t, p_value`` (Student t, ``n_obs - k``
        degrees of freedom with ``k`` coefficients), ``n_obs`` per row.
    """
    from scipy.stats import t as student

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    cov = np.ones((n, 1))
    if covariates is not None and covariates.size:
        x = np.asarray(covariates, dtype=np.float64)
        cov = np.column_stack([cov, x - x.mean(axis=0)])
    yc = y - y.mean()
    kc = cov.shape[1]
    k = kc + 1
    g = np.asarray(g, dtype=np.float64)
    v = len(g)
    mask = ~np.isnan(g)
    complete = mask.all(axis=1)
    cc = (cov[:, :, None] * cov[:, None, :]).reshape(n, -1)
    cy = cov * yc[:, None]
    shared = (cc.sum(axis=0), cy.sum(axis=0), float(yc @ yc))
    out = np.full((v, 3), np.nan)  # beta, se, df
    rows = max(8, _CHUNK_CELLS // max(n, 1))
    for lo in range(0, v, rows):
        sl = slice(lo, min(lo + rows, v))
        gz = np.where(mask[sl], g[sl], 0.0)
        m = mask[sl].astype(np.float64)
        full = complete[sl]
        a = np.empty((len(gz), k, k))
        b = np.empty((len(gz), k))
        yy = np.empty(len(gz))
        a[:, 0, 0] = (gz * gz).sum(axis=1)
        gc = gz @ cov
        a[:, 0, 1:] = gc
        a[:, 1:, 0] = gc
        b[:, 0] = gz @ yc
        a[full, 1:, 1:] = shared[0].reshape(kc, kc)
        b[full, 1:] = shared[1]
        yy[full] = shared[2]
        part = ~full
        if part.any():
            a[part, 1:, 1:] = (m[part] @ cc).reshape(-1, kc, kc)
            b[part, 1:] = m[part] @ cy
            yy[part] = m[part] @ (yc * yc)
        n_obs = m.sum(axis=1)
        sign, logdet = np.linalg.slogdet(a)
        ok = (sign > 0) & (logdet > -700) & (n_obs > k)
        if not ok.any():
            continue
        inv = np.linalg.inv(a[ok])
        coef = np.einsum("vij,vj->vi", inv, b[ok])
        # the genotype's variance left after the covariates: 1 / inv[0, 0]
        varies = 1.0 / inv[:, 0, 0] > 1e-9 * np.maximum(a[ok][:, 0, 0], 1e-300)
        rss = np.maximum(yy[ok] - np.einsum("vi,vi->v", coef, b[ok]), 0.0)
        df = n_obs[ok] - k
        se = np.sqrt(rss / df * inv[:, 0, 0])
        idx = lo + np.flatnonzero(ok)[varies]
        out[idx, 0], out[idx, 1], out[idx, 2] = coef[varies, 0], se[varies], df[varies]
    t = out[:, 0] / out[:, 1]
    p = 2 * student.sf(np.abs(t), out[:, 2])
    return pl.DataFrame(
        {
            "beta": out[:, 0],
            "standard_error": out[:, 1],
            "t": t,
            "p_value": p,
            "n_obs": mask.sum(axis=1),
        },
        nan_to_null=True,
    )


def _trait_table(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    phenotype: pl.DataFrame | str,
    covariates: pl.DataFrame | str | None,
) -> tuple[str, str, list[str]]:
    """A temp table of the samples with the trait ``y`` and covariates (complete rows).

    Returns the table name, the trait's name and the covariate names.
    """
    trait, names = participant_values(con, phenotype, field="phenotype")
    if len(names) != 1:
        raise ValidationError(
            f"phenotype needs participant_id and one numeric trait column, not {names}",
            field="phenotype",
        )
    table = trait.rename({names[0]: "y"})
    cov_names: list[str] = []
    if covariates is not None:
        cdf, cov_names = participant_values(con, covariates, field="covariates")
        if "y" in cov_names:
            raise ValidationError("a covariate may not be named y: rename it", field="covariates")
        table = table.join(cdf, on="participant_id", how="inner")
    name = f"_trait_{uuid.uuid4().hex[:12]}"
    con.register("_trait_df", table)
    try:
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT s.*, t.* EXCLUDE (participant_id)"
            f" FROM {sample_tbl} s JOIN _trait_df t USING (participant_id) ORDER BY s.sample_key"
        )
    finally:
        con.unregister("_trait_df")
    return name, names[0], cov_names


def _block_linear(
    blk: DenseBlock, y: np.ndarray, x: np.ndarray | None, *, xchr_model: int
) -> pl.DataFrame:
    """ALT/REF allele counts and the linear fits of one dense block."""
    keys, dosage, flags = blk.keys, blk.dosage, blk.flags
    called = (flags & FLAG_MISSING) == 0
    haploid = (flags & FLAG_HAPLOID) > 0
    g = dosage.astype(np.float64)
    alleles = (called.astype(np.int64) * 2 - (haploid & called)).sum(axis=1)
    n_alt = np.where(called, dosage, 0).sum(axis=1).astype(np.int64)
    if xchr_model == 2 and haploid.any():  # as a homozygous diploid call (plink2's default)
        g[haploid] *= 2
    g[~called] = np.nan
    fit = linear_regression(g, y, x)
    return pl.DataFrame(
        {
            "variant_key": keys,
            "variant_alt_count": n_alt,
            "variant_ref_count": alleles - n_alt,
        }
    ).hstack(fit.rename({c: f"variant_{c}" for c in fit.columns}))


def _empty_block(n: int) -> DenseBlock:
    """A block of no variants over ``n`` samples."""
    empty = np.zeros((0, n), dtype=np.uint8)
    return DenseBlock(keys=np.zeros(0, dtype=np.int64), dosage=empty, flags=empty)


def linear_association(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet,
    phenotype: pl.DataFrame | str,
    *,
    covariates: pl.DataFrame | str | None = None,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
    min_count: int | None = None,
    block: int = 4000,
    xchr_model: int = 2,
) -> pl.DataFrame:
    """Linear regression of a quantitative trait on ALT dosage per variant (additive model).

    As ``plink2 --glm`` on a quantitative phenotype (its ``.glm.linear``):
    ``trait ~ dosage + covariates`` by least squares on the participants with
    a call, the trait and every covariate.

    Parameters
    ----------
    con
        The store connection.
    samples
        The sample set (SQL with ``participant_id``, participant ids, or
        ``None`` for everyone with genotypes).
    phenotype
        A DataFrame (or SQL) with ``participant_id`` and one numeric column,
        the trait (one row per participant; null = left out).
    covariates
        A DataFrame (or SQL) with ``participant_id`` and numeric covariate
        columns; participants without a complete row are left out.
    variant_filter
        Which variants; frequency bounds apply to the analysed samples.
    purpose
        Restrict to participants whose consent permits this purpose.
    min_count
        Suppress ALT or REF allele counts below this (and the fit).
    block
        Variants read at a time.
    xchr_model
        A haploid call coded 0/2 (``2``, plink2's default) or 0/1 (``1``).

    Returns
    -------
    polars.DataFrame
        Variant columns, ``variant_alt_count, variant_ref_count`` (alleles
        among the analysed samples' calls), ``variant_beta`` (trait units per
        ALT allele), ``variant_standard_error, variant_t, variant_p_value,
        variant_n_obs``, and ``variant_suppressed`` with ``min_count``.

    Raises
    ------
    ValidationError
        If the phenotype or covariates are malformed, or fewer than three
        participants have a trait value and genotypes.
    """
    if xchr_model not in (1, 2):
        raise ValidationError(
            f"xchr_model must be 1 (haploid calls 0/1) or 2 (0/2, as plink2), not {xchr_model!r}",
            field="xchr_model",
        )
    variant_filter = variant_filter or VariantFilter()
    with sample_table(con, samples, purpose=purpose) as st:
        tbl, trait, cov_names = _trait_table(con, st, phenotype, covariates)
        try:
            df = con.execute(f"SELECT * FROM {tbl} ORDER BY sample_key").pl()
            if df.height < 3:
                raise ValidationError(
                    f"need at least 3 participants with genotypes and a {trait} value, "
                    f"have {df.height}",
                    field="phenotype",
                )
            y = df["y"].to_numpy().astype(np.float64)
            x = df.select(cov_names).to_numpy().astype(np.float64) if cov_names else None
            keys = variant_keys(con, tbl, variant_filter)
            parts = [
                _block_linear(blk, y, x, xchr_model=xchr_model)
                for blk in dense_blocks(con, tbl, keys, block=block)
            ]
        finally:
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
    logger.info("linear regression of %s: %d samples, %d variants", trait, len(y), len(keys))
    info = variants(con, variant_filter).select(
        "variant_key",
        "variant_contig",
        "variant_position",
        "variant_ref",
        "variant_alt",
        "variant_id",
        "variant_gene",
        "variant_consequence",
    )
    if not parts:  # no variant: the columns all the same
        parts = [_block_linear(_empty_block(len(y)), y, x, xchr_model=xchr_model)]
    res = pl.concat(parts).with_columns(pl.col("variant_key").cast(pl.Int32))
    out = info.join(res, on="variant_key", how="inner").sort("variant_key")
    return suppress_variant_rows(
        out,
        ["variant_alt_count", "variant_ref_count"],
        ["variant_beta", "variant_standard_error", "variant_t", "variant_p_value"],
        min_count,
    )
