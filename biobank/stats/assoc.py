"""Case/control association on the store's genotypes, checked against plink2.

* :func:`association`: case/control test per variant: Fisher's exact test on
  the 2x2 table of ALT/REF allele counts in cases and controls
  (:func:`biobank.stats.fisher.fisher_tables`), and logistic regression of
  case status on ALT dosage (additive model) with covariates
  (:func:`biobank.stats.regression.logistic_regression`, with plink2's Firth
  fallback); the ``variant_firth`` column says which variants were refitted
  with Firth's penalised likelihood. Beside the Wald test of that fit, the
  likelihood-ratio (``tests=[..., "lrt"]``) and score (Rao, ``"score"``)
  tests, as hail offers them. Quantitative traits:
  :func:`biobank.stats.linear.linear_association`.
* :func:`burden`: gene-level burden test of rare damaging variants: carriers of
  any qualifying variant (ALT frequency below a threshold in cases and
  controls, damaging consequence) per gene, Fisher's exact test and logistic
  regression with covariates on the carrier indicator.

Sample sets and variant filters are as in :mod:`biobank.genomes.reader`. Pass
``min_count`` (e.g. :data:`~biobank.core.disclosure.SMALL_COUNT_THRESHOLD`) to
suppress small counts in research output: counts between 1 and
``min_count - 1`` and everything derived from them become null and
``variant_suppressed`` is true.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.core.disclosure import SMALL_COUNT_THRESHOLD, suppress_rows
from biobank.core.errors import ValidationError
from biobank.genomes.encoding import FLAG_HAPLOID, FLAG_MISSING
from biobank.genomes.filters import DAMAGING_CONSEQUENCES, VariantFilter
from biobank.genomes.reader import (
    DenseBlock,
    SampleSet,
    dense_blocks,
    sample_table,
    variant_keys,
    variants,
)
from biobank.stats.fisher import fisher_tables
from biobank.stats.frequencies import allele_frequencies_in, suppress_variant_rows
from biobank.stats.regression import logistic_regression

if TYPE_CHECKING:
    import duckdb

__all__ = ["ASSOCIATION_TESTS", "SMALL_COUNT_THRESHOLD", "association", "burden"]

logger = logging.getLogger(__name__)


def participant_values(
    con: duckdb.DuckDBPyConnection, table: pl.DataFrame | str, *, field: str
) -> tuple[pl.DataFrame, list[str]]:
    """Numeric per-participant values (covariates, a trait) as Float64, complete rows only.

    ``table`` is a DataFrame or SQL with ``participant_id`` and numeric (or
    boolean) columns, one row per participant; returns it and the value
    column names. Raises :class:`ValidationError` (naming ``field``) otherwise.
    """
    cdf = con.execute(table).pl() if isinstance(table, str) else table
    if "participant_id" not in cdf.columns:
        raise ValidationError(f"{field} need a column participant_id", field=field)
    names = [c for c in cdf.columns if c != "participant_id"]
    bad = [c for c in names if not cdf[c].dtype.is_numeric() and cdf[c].dtype != pl.Boolean]
    if bad:
        raise ValidationError(
            f"{field} column(s) {', '.join(bad)} are not numeric: encode them as numbers "
            "(e.g. sex as 0/1)",
            field=field,
        )
    if cdf["participant_id"].is_duplicated().any():
        raise ValidationError(f"{field} have more than one row for a participant", field=field)
    return cdf.with_columns([pl.col(c).cast(pl.Float64) for c in names]).drop_nulls(), names


def _case_control_table(
    con: duckdb.DuckDBPyConnection,
    cases_tbl: str,
    controls_tbl: str,
    covariates: pl.DataFrame | str | None,
) -> tuple[str, list[str]]:
    """Create a temp table of cases+controls with ``y`` and covariates.

    Returns the table name and the covariate column names.
    """
    overlap = con.execute(
        f"SELECT count(*) FROM {cases_tbl} c JOIN {controls_tbl} k USING (sample_key)"
    ).fetchone()
    if overlap and overlap[0]:
        raise ValidationError(
            f"{overlap[0]} participant(s) are both cases and controls: make the two sets disjoint",
            field="controls",
        )
    name = f"_cc_{uuid.uuid4().hex[:12]}"
    cov_names: list[str] = []
    if covariates is None:
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT *, 1.0 AS y FROM {cases_tbl}"
            f" UNION ALL SELECT *, 0.0 AS y FROM {controls_tbl} ORDER BY sample_key"
        )
        return name, cov_names
    cdf, cov_names = participant_values(con, covariates, field="covariates")
    con.register("_cov_df", cdf)
    cols = ", ".join(f'v."{c}"' for c in cov_names)
    con.execute(
        f"CREATE TEMP TABLE {name} AS SELECT s.*, {cols} FROM"
        f" (SELECT *, 1.0 AS y FROM {cases_tbl} UNION ALL SELECT *, 0.0 AS y FROM {controls_tbl}) s"
        " JOIN _cov_df v USING (participant_id) ORDER BY s.sample_key"
    )
    con.unregister("_cov_df")
    return name, cov_names


def _design(
    con: duckdb.DuckDBPyConnection, tbl: str, cov_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    df = con.execute(f"SELECT * FROM {tbl} ORDER BY sample_key").pl()
    y = df["y"].to_numpy().astype(np.float64)
    x = df.select(cov_names).to_numpy().astype(np.float64) if cov_names else np.zeros((len(y), 0))
    return y, x


#: The tests :func:`association` runs, by the name given in ``tests=``.
ASSOCIATION_TESTS = ("fisher", "logistic", "lrt", "score")


def _check_options(tests: Sequence[str], xchr_model: int) -> None:
    """Raise ValidationError for unknown tests or X-chromosome model."""
    unknown = set(tests) - set(ASSOCIATION_TESTS)
    if unknown or not tests:
        raise ValidationError(
            f"tests must be among {', '.join(ASSOCIATION_TESTS)}, not "
            f"{sorted(unknown) or 'nothing'}",
            field="tests",
        )
    if xchr_model not in (1, 2):
        raise ValidationError(
            f"xchr_model must be 1 (haploid calls 0/1) or 2 (0/2, as plink2), not {xchr_model!r}",
            field="xchr_model",
        )


def _block_tests(
    blk: DenseBlock,
    y: np.ndarray,
    x: np.ndarray,
    *,
    tests: Sequence[str],
    xchr_model: int,
    firth_fallback: bool,
    fit_cache: dict[bytes, tuple[float, ...]],
) -> pl.DataFrame:
    """Allele counts, Fisher's test and logistic regression of one block of variants."""
    is_case = y == 1
    called = (blk.flags & FLAG_MISSING) == 0
    haploid = (blk.flags & FLAG_HAPLOID) > 0
    haploid &= called
    dosage = blk.dosage * called  # uint8: a missing call carries no allele
    # per-row sums in uint8/uint32 over all samples and over the cases' columns
    # (controls = all - cases): no float copies of the block

    def sums(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = a.view(np.uint8)
        total = a.sum(axis=1, dtype=np.uint32).astype(np.int64)
        case = np.compress(is_case, a, axis=1).sum(axis=1, dtype=np.uint32).astype(np.int64)
        return case, total - case

    case_alt, ctrl_alt = sums(dosage)
    case_called, ctrl_called = sums(called)
    case_hap, ctrl_hap = sums(haploid)
    case_tot, ctrl_tot = 2 * case_called - case_hap, 2 * ctrl_called - ctrl_hap  # haploid: 1
    # the regression's predictor, as small integers (-1 = missing) and as float32
    # (exact for them, half the memory of float64); the codes key the fit cache
    codes = dosage.view(np.int8)
    if xchr_model == 2 and haploid.any():  # codes like a homozygous diploid call
        codes = codes * np.where(haploid, 2, 1).astype(np.int8)
    codes = np.where(called, codes, np.int8(-1))
    g = codes.astype(np.float32)
    g[~called] = np.nan
    table = np.column_stack([case_alt, case_tot - case_alt, ctrl_alt, ctrl_tot - ctrl_alt])
    if "fisher" in tests:
        odds, pval = fisher_tables(table)
    else:
        odds = pval = np.full(len(table), np.nan)
    regression = [{"logistic": "wald"}.get(t, t) for t in tests if t != "fisher"]
    if regression:
        fit = logistic_regression(
            g,
            y,
            x,
            firth_fallback=firth_fallback,
            fit_cache=fit_cache,
            tests=regression,
            row_codes=codes,
        )
    else:
        fit = logistic_regression(np.empty((0, len(y))), y, x).clear(n=len(blk.keys))
    return pl.DataFrame(
        {
            "variant_key": blk.keys,
            "variant_n_cases": case_called,
            "variant_n_controls": ctrl_called,
            "variant_case_alt_count": case_alt,
            "variant_case_ref_count": case_tot - case_alt,
            "variant_control_alt_count": ctrl_alt,
            "variant_control_ref_count": ctrl_tot - ctrl_alt,
            "variant_fisher_odds_ratio": odds,
            "variant_fisher_p_value": pval,
        },
        nan_to_null=True,
    ).hstack(fit.rename({c: f"variant_{c}" for c in fit.columns}))


@contextmanager
def _read_ahead(blocks: Iterator[DenseBlock]) -> Iterator[Iterator[DenseBlock]]:
    """The blocks of ``blocks``, each read in a background thread while the caller
    tests the one before (DuckDB and numpy release the GIL, so the read overlaps
    the fits).

    Only the background thread advances ``blocks`` (and so uses the connection);
    on exit the read under way is waited for, so the caller may use the
    connection again.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blocks")

    def ahead() -> Iterator[DenseBlock]:
        pending = pool.submit(next, blocks, None)
        while (blk := pending.result()) is not None:
            pending = pool.submit(next, blocks, None)
            yield blk

    try:
        yield ahead()
    finally:
        pool.shutdown(wait=True)


def _association_result(
    con: duckdb.DuckDBPyConnection,
    parts: list[pl.DataFrame],
    variant_filter: VariantFilter,
    min_count: int | None,
) -> pl.DataFrame:
    """Join the blocks' tests to the variant columns, in key order; suppress small counts."""
    res = pl.concat(parts) if parts else None
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
    if res is None:
        return info.head(0)
    out = info.join(
        res.with_columns(pl.col("variant_key").cast(pl.Int32)), on="variant_key", how="inner"
    )
    out = out.sort("variant_key")
    return suppress_variant_rows(
        out,
        ["variant_case_alt_count", "variant_control_alt_count"],
        [
            "variant_fisher_odds_ratio",
            "variant_fisher_p_value",
            "variant_beta",
            "variant_standard_error",
            "variant_z",
            "variant_p_value",
            "variant_lrt_chi2",
            "variant_lrt_p_value",
            "variant_score_chi2",
            "variant_score_p_value",
        ],
        min_count,
    )


def association(
    con: duckdb.DuckDBPyConnection,
    cases: SampleSet,
    controls: SampleSet,
    *,
    covariates: pl.DataFrame | str | None = None,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
    firth_fallback: bool = True,
    min_count: int | None = None,
    tests: Sequence[str] = ("fisher", "logistic"),
    block: int = 4000,
    xchr_model: int = 2,
) -> pl.DataFrame:
    """Case/control association per variant: Fisher's exact test and logistic regression.

    Parameters
    ----------
    con
        The store connection.
    cases, controls
        Disjoint sample sets (SQL with ``participant_id`` or participant ids).
    covariates
        A DataFrame (or SQL) with ``participant_id`` and numeric covariate
        columns (e.g. sex as 0/1, age, PCs); participants without a complete
        row are left out (as plink2 does).
    variant_filter
        Which variants; frequency bounds apply to cases+controls.
    purpose
        Restrict both sets to participants whose consent permits this purpose.
    firth_fallback
        Refit non-converged or separated variants with Firth regression.
    min_count
        Suppress ALT allele counts below this in cases or controls.
    tests
        Which tests to run: ``"fisher"``, ``"logistic"`` (the Wald test of
        the logistic fit), ``"lrt"`` (likelihood-ratio test of the same fit
        against the covariates-only model on the same samples; null where
        only a Firth fit exists) and ``"score"`` (score/Rao test: only the
        covariates-only model is fitted, so alone it is the fastest); the
        columns of a test not run are null.
    block
        Variants fitted at a time (memory: block x samples x 8 bytes x ~6).
    xchr_model
        How logistic regression codes a haploid call (a male's chrX): ``2``
        (the default, as plink2's ``--xchr-model``) 0/2, like a homozygous
        diploid call (dosage compensation); ``1`` 0/1, its allele count.
        Fisher's test always counts a haploid call as one allele. On chrX,
        pass sex as a covariate (plink2 adds it itself there).

    Returns
    -------
    polars.DataFrame
        Variant columns, ``variant_n_cases, variant_n_controls`` (called),
        ``variant_case_alt_count, variant_case_ref_count,
        variant_control_alt_count, variant_control_ref_count,
        variant_fisher_odds_ratio, variant_fisher_p_value`` (allelic 2x2),
        ``variant_beta`` (log odds ratio per ALT allele),
        ``variant_standard_error, variant_z, variant_p_value, variant_firth``,
        ``variant_lrt_chi2, variant_lrt_p_value, variant_score_chi2,
        variant_score_p_value`` (chi-square, 1 df), ``variant_n_obs``.

    Raises
    ------
    ValidationError
        If cases and controls overlap, either is empty, or covariates are bad.
    """
    variant_filter = variant_filter or VariantFilter()
    _check_options(tests, xchr_model)
    with (
        sample_table(con, cases, purpose=purpose) as ct,
        sample_table(con, controls, purpose=purpose) as kt,
    ):
        tbl, cov_names = _case_control_table(con, ct, kt, covariates)
        try:
            y, x = _design(con, tbl, cov_names)
            if (y == 1).sum() == 0 or (y == 0).sum() == 0:
                raise ValidationError(
                    f"need cases and controls with genotypes: have {int((y == 1).sum())} cases and "
                    f"{int((y == 0).sum())} controls",
                    field="cases",
                )
            keys = variant_keys(con, tbl, variant_filter)
            fit_cache: dict[bytes, tuple[float, ...]] = {}  # same y, x, tests in all blocks
            with _read_ahead(dense_blocks(con, tbl, keys, block=block)) as blocks:
                parts = [
                    _block_tests(
                        blk,
                        y,
                        x,
                        tests=tests,
                        xchr_model=xchr_model,
                        firth_fallback=firth_fallback,
                        fit_cache=fit_cache,
                    )
                    for blk in blocks
                ]
        finally:
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
    return _association_result(con, parts, variant_filter, min_count)


def burden(
    con: duckdb.DuckDBPyConnection,
    cases: SampleSet,
    controls: SampleSet,
    *,
    covariates: pl.DataFrame | str | None = None,
    genes: Sequence[str] | None = None,
    consequences: Sequence[str] = DAMAGING_CONSEQUENCES,
    max_frequency: float = 0.01,
    purpose: str | None = None,
    firth_fallback: bool = True,
    min_count: int | None = None,
) -> pl.DataFrame:
    """Gene-level burden test of rare damaging variants (collapsing carriers per gene).

    A variant qualifies if its consequence (BCSQ) has one of ``consequences``
    and its ALT frequency in cases+controls is below ``max_frequency``
    (strictly; e.g. MAF < 1 % with ALT the minor allele). A participant is a
    carrier for a gene if they carry the ALT allele of any qualifying variant
    of the gene (a missing call counts as not carrying). Per gene: Fisher's
    exact test on carriers x case status, and logistic regression of case
    status on the carrier indicator with covariates (Firth fallback as in
    :func:`association`).

    Returns
    -------
    polars.DataFrame
        ``variant_gene, gene_n_variants, gene_case_carriers, gene_n_cases,
        gene_control_carriers, gene_n_controls, gene_fisher_odds_ratio,
        gene_fisher_p_value, gene_beta, gene_standard_error, gene_z,
        gene_p_value, gene_firth`` sorted by gene.
    """
    filt = VariantFilter(genes=genes, consequences=list(consequences))
    with (
        sample_table(con, cases, purpose=purpose) as ct,
        sample_table(con, controls, purpose=purpose) as kt,
    ):
        tbl, cov_names = _case_control_table(con, ct, kt, covariates)
        try:
            y, x = _design(con, tbl, cov_names)
            freq = allele_frequencies_in(con, tbl, filt, hwe=False)
            freq = freq.filter(
                (pl.col("variant_alt_allele_frequency") < max_frequency)
                & (pl.col("variant_alt_allele_count") > 0)
                & pl.col("variant_gene").is_not_null()
            )
            keys = freq["variant_key"].to_numpy().astype(np.int64)
            gene_names = sorted(set(freq["variant_gene"].to_list()))
            gene_idx = {gname: i for i, gname in enumerate(gene_names)}
            gene_of_key = dict(
                zip(freq["variant_key"].to_list(), freq["variant_gene"].to_list(), strict=True)
            )
            n_var = np.zeros(len(gene_names), dtype=np.int64)
            for gname in freq["variant_gene"].to_list():
                n_var[gene_idx[gname]] += 1
            carrier = np.zeros((len(gene_names), len(y)), dtype=bool)
            if len(keys):
                for blk in dense_blocks(con, tbl, keys):
                    hit = (blk.dosage > 0) & ((blk.flags & FLAG_MISSING) == 0)
                    rows = np.array([gene_idx[gene_of_key[int(k)]] for k in blk.keys])
                    np.logical_or.at(carrier, rows, hit)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
    is_case = y == 1
    case_c = (carrier & is_case).sum(axis=1)
    ctrl_c = (carrier & ~is_case).sum(axis=1)
    n_case, n_ctrl = int(is_case.sum()), int((~is_case).sum())
    table = np.column_stack([case_c, n_case - case_c, ctrl_c, n_ctrl - ctrl_c])
    odds, pval = fisher_tables(table) if len(table) else (np.zeros(0), np.zeros(0))
    fit = logistic_regression(carrier.astype(np.float64), y, x, firth_fallback=firth_fallback)
    out = pl.DataFrame(
        {
            "variant_gene": pl.Series(gene_names, dtype=pl.String),
            "gene_n_variants": n_var,
            "gene_case_carriers": case_c.astype(np.int64),
            "gene_n_cases": np.full(len(gene_names), n_case, dtype=np.int64),
            "gene_control_carriers": ctrl_c.astype(np.int64),
            "gene_n_controls": np.full(len(gene_names), n_ctrl, dtype=np.int64),
            "gene_fisher_odds_ratio": odds,
            "gene_fisher_p_value": pval,
        },
        nan_to_null=False,
    ).hstack(
        fit.select(
            pl.col(c).alias(f"gene_{c}")
            for c in ("beta", "standard_error", "z", "p_value", "firth")
        )
    )
    cols = [
        "gene_fisher_odds_ratio",
        "gene_fisher_p_value",
        "gene_beta",
        "gene_standard_error",
        "gene_z",
        "gene_p_value",
    ]
    return suppress_rows(
        out,
        ["gene_case_carriers", "gene_control_carriers"],
        cols,
        min_count=min_count,
        flag="gene_suppressed",
    )
