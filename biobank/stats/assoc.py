"""Genetic statistics on the sparse genotype store, checked against plink2.

* :func:`allele_frequencies`: genotype and allele counts, ALT frequency, call
  rate and the Hardy-Weinberg exact p-value per variant (as ``plink2 --freq``,
  ``--missing``, ``--hardy``), computed in DuckDB from the sparse calls.
* :func:`association`: case/control test per variant: Fisher's exact test on
  the 2x2 table of ALT/REF allele counts in cases and controls (scipy), and
  logistic regression of case status on ALT dosage (additive model) with
  covariates, fitted for a block of variants at once by vectorised IRLS (the
  same maximum-likelihood estimate as statsmodels' ``Logit``; Wald SE and p).
  As ``plink2 --glm`` (its default ``firth-fallback``), variants where
  ordinary logistic regression does not converge, or where cases or controls
  carry no ALT allele (separation), are refitted with Firth's penalised
  likelihood; the ``variant_firth`` column says which. Firth fits follow
  plink2's own iteration, step-halving and stopping rules (those of the
  logistf R package: at most 25 iterations, step, score and penalised
  log-likelihood change below 1e-4), so their estimates are plink2's to
  ~1e-4; a fit that reaches 25 iterations is reported, as plink2 does
  (with its ERRCODE ``UNFINISHED``).
* :func:`burden`: gene-level burden test of rare damaging variants: carriers of
  any qualifying variant (ALT frequency below a threshold in cases and
  controls, damaging consequence) per gene, Fisher's exact test and logistic
  regression with covariates on the carrier indicator.
* :func:`hwe_exact`: the exact Hardy-Weinberg test of Wigginton, Cutler and
  Abecasis (2005), vectorised; :func:`hwe_exact_x`: its X-chromosome form
  with haploid male calls (Graffelman & Weir 2016), which
  :func:`allele_frequencies` uses for variants with haploid calls.

Sample sets and variant filters are as in :mod:`biobank.genomes.reader`. Pass
``min_count`` (e.g. :data:`SMALL_COUNT_THRESHOLD`) to suppress small counts in
research output: counts between 1 and ``min_count - 1`` and everything derived
from them become null and ``variant_suppressed`` is true.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.core.disclosure import SMALL_COUNT_THRESHOLD, suppress_rows
from biobank.core.errors import ValidationError
from biobank.genomes.load import FLAG_HAPLOID, FLAG_MISSING
from biobank.genomes.reader import (
    DAMAGING_CONSEQUENCES,
    VARIANT_COLUMNS,
    SampleSet,
    VariantFilter,
    _batch_columns,
    _dense_blocks,
    _variant_keys,
    packed_counts,
    sample_table,
)

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "SMALL_COUNT_THRESHOLD",
    "allele_frequencies",
    "allele_frequencies_in",
    "association",
    "burden",
    "hwe_exact",
    "hwe_exact_x",
    "logistic_regression",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- HWE
def _by_key(keys: np.ndarray) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield each distinct row of ``keys`` (n, k) with the indices of the rows equal to it."""
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(uniq) + 1))
    for gi, key in enumerate(uniq.tolist()):
        yield key, order[bounds[gi] : bounds[gi + 1]]


def _no_more_likely(probs: np.ndarray, observed: np.ndarray, rel_tol: float) -> np.ndarray:
    """Two-sided exact p-values from one (unnormalised) discrete distribution ``probs``.

    For each ``observed`` outcome index: the share of the probability in
    outcomes no more likely than it, counting ties within ``rel_tol``.
    """
    return _tail_mass(probs, probs[observed], rel_tol)


def _tail_mass(probs: np.ndarray, observed: np.ndarray, rel_tol: float) -> np.ndarray:
    """:func:`_no_more_likely` for outcomes given by their probabilities ``observed``."""
    ranked = np.sort(probs)
    cum = np.cumsum(ranked)
    at = np.searchsorted(ranked, observed * (1 + rel_tol), side="right") - 1
    return np.where(at >= 0, np.minimum(cum[np.maximum(at, 0)] / cum[-1], 1.0), 0.0)


def _hwe_probs(n: int, rare: int) -> np.ndarray:
    """Relative probabilities of each heterozygote count, Wigginton et al. (2005).

    Index ``h`` (0..``rare``) holds the probability of ``h`` heterozygotes among
    ``n`` diploid genotypes carrying ``rare`` copies of the minor allele, up to a
    common factor (counts of the wrong parity are 0).
    """
    probs = np.zeros(rare + 1)
    mid = rare * (2 * n - rare) // (2 * n)
    if mid % 2 != rare % 2:
        mid += 1
    probs[mid] = 1.0
    # towards fewer heterozygotes
    hs = np.arange(mid, 1, -2)
    if len(hs):
        r_homr = (rare - hs) // 2
        r_homc = n - hs - r_homr
        ratios = hs * (hs - 1) / (4.0 * (r_homr + 1) * (r_homc + 1))
        probs[hs - 2] = np.cumprod(ratios)
    # towards more heterozygotes
    hs = np.arange(mid, rare - 1, 2)
    if len(hs):
        r_homr = (rare - hs) // 2
        r_homc = n - hs - r_homr
        ratios = 4.0 * r_homr * r_homc / ((hs + 2.0) * (hs + 1.0))
        probs[hs + 2] = np.cumprod(ratios)
    return probs


def hwe_exact(n_het: np.ndarray, n_hom_ref: np.ndarray, n_hom_alt: np.ndarray) -> np.ndarray:
    """Exact Hardy-Weinberg p-values (Wigginton, Cutler & Abecasis 2005).

    Two-sided: the sum of the probabilities of all heterozygote counts (given
    the allele counts) no more likely than the observed one, as
    ``plink2 --hardy``.

    Parameters
    ----------
    n_het, n_hom_ref, n_hom_alt
        Diploid genotype counts per variant.

    Returns
    -------
    numpy.ndarray
        p-values (1.0 where there are no genotypes or the variant is monomorphic).

    Examples
    --------
    >>> float(hwe_exact(np.array([0]), np.array([50]), np.array([50]))[0]) < 1e-20
    True
    """
    het = np.asarray(n_het, dtype=np.int64)
    h1 = np.asarray(n_hom_ref, dtype=np.int64)
    h2 = np.asarray(n_hom_alt, dtype=np.int64)
    out = np.ones(len(het))
    n = het + h1 + h2
    rare = 2 * np.minimum(h1, h2) + het
    todo = np.flatnonzero((n > 0) & (rare > 0))
    if not len(todo):
        return out
    # one distribution per distinct (genotypes, minor alleles); every variant
    # with those counts is a lookup in its sorted cumulative sum
    for (n_g, rare_g), rows in _by_key(np.column_stack([n[todo], rare[todo]])):
        members = todo[rows]
        out[members] = _no_more_likely(_hwe_probs(n_g, rare_g), het[members], 1e-8)
    return out


class _XTables:
    """Probabilities of the X-chromosome tables of one set of allele counts.

    A table is (female heterozygotes ``h``, male A alleles ``m``) among
    ``n_female`` diploid and ``n_male`` haploid calls carrying ``n_a`` A
    alleles. Under Hardy-Weinberg equilibrium with equal allele frequencies
    in the sexes, given the allele counts, its probability is (Graffelman &
    Weir 2016; Levene's formula with males added)

        n_f! n_m! n_a! n_b! 2^h / (f_AA! h! f_BB! m! (n_m - m)! (2 n_f + n_m)!)

    where ``f_AA = (n_a - m - h) / 2`` and ``f_BB = n_f - h - f_AA``: ``m``
    is hypergeometric and, given ``m``, ``h`` follows Levene's distribution.
    """

    def __init__(self, n_female: int, n_male: int, n_a: int) -> None:
        from scipy.special import gammaln

        self.nf, self.nm, self.na = n_female, n_male, n_a
        total = 2 * n_female + n_male
        self.log_fact = gammaln(np.arange(total + 1) + 1.0)  # log k! for k = 0..total
        lf = self.log_fact
        self.const = lf[n_female] + lf[n_male] + lf[n_a] + lf[total - n_a] - lf[total]

    def prob(self, h: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Probability of tables ``(h, m)`` (0 where the table is impossible)."""
        h, m = np.broadcast_arrays(np.asarray(h, dtype=np.int64), np.asarray(m, dtype=np.int64))
        twice_aa = self.na - m - h
        f_aa = twice_aa // 2
        f_bb = self.nf - h - f_aa
        ok = (h >= 0) & (twice_aa >= 0) & (twice_aa % 2 == 0) & (f_bb >= 0)
        ok &= (m >= 0) & (m <= self.nm)
        lf = self.log_fact
        log_p = (
            self.const
            + h * np.log(2.0)
            - lf[np.where(ok, f_aa, 0)]
            - lf[np.where(ok, h, 0)]
            - lf[np.where(ok, f_bb, 0)]
            - lf[np.where(ok, m, 0)]
            - lf[np.where(ok, self.nm - m, 0)]
        )
        return np.where(ok, np.exp(np.minimum(log_p, 0.0)), 0.0)

    def all_above(self, floor: float) -> np.ndarray:
        """Probabilities of every table at least as likely as ``floor`` (and some below).

        Rows (male counts) whose whole (hypergeometric) mass is below
        ``floor`` are left out. In each other row, the heterozygote counts
        within a window around the most likely one: the window is widened
        until its edges are below ``floor``, which (each row being unimodal)
        leaves out only tables below it.
        """
        nf, na, nm, lf = self.nf, self.na, self.nm, self.log_fact
        m = np.arange(max(0, na - 2 * nf), min(nm, na) + 1)
        log_row = (
            lf[nm] - lf[m] - lf[nm - m]
            + lf[2 * nf] - lf[na - m] - lf[2 * nf - na + m]
            - lf[2 * nf + nm] + lf[na] + lf[2 * nf + nm - na]
        )  # fmt: skip
        m = m[log_row >= np.log(floor)]
        female_a = na - m
        rare = np.minimum(female_a, 2 * nf - female_a)
        mid = rare * (2 * nf - rare) // max(2 * nf, 1)
        mid += (mid % 2) != (rare % 2)
        most = int(rare.max(initial=0))
        width = 2 * (3 * int(np.sqrt(most)) + 4)
        while True:
            h = mid[:, None] + np.arange(-width, width + 1, 2)[None, :]
            probs = self.prob(h, m[:, None])
            ends = h[:, [0, -1]]
            inside = (ends > 0) & (ends < rare[:, None])
            if width >= most or not (inside & (probs[:, [0, -1]] >= floor)).any():
                return probs[probs > 0]
            width *= 2


def hwe_exact_x(
    n_het: np.ndarray,
    n_hom_ref: np.ndarray,
    n_hom_alt: np.ndarray,
    n_hap_ref: np.ndarray,
    n_hap_alt: np.ndarray,
) -> np.ndarray:
    """Exact Hardy-Weinberg p-values for X-chromosome variants (Graffelman & Weir 2016).

    The joint test of the female genotypes and the male (haploid) alleles,
    as ``plink2 --hardy`` reports for chrX (``.hardy.x``): the probability of
    all tables of female heterozygote count and male allele split, given the
    allele counts, no more likely than the observed one. Unlike the test of
    the females alone, it also detects allele frequencies that differ between
    the sexes. Without male calls it is :func:`hwe_exact`.

    Parameters
    ----------
    n_het, n_hom_ref, n_hom_alt
        Diploid (female) genotype counts per variant.
    n_hap_ref, n_hap_alt
        Haploid (male) REF and ALT calls per variant.

    Returns
    -------
    numpy.ndarray
        p-values (1.0 where there are no calls or the variant is monomorphic).

    Examples
    --------
    Females in equilibrium, but every male carries the other allele:

    >>> one = np.array([1])
    >>> float(hwe_exact(25 * one, 25 * one, 0 * one)[0]) > 0.01
    True
    >>> float(hwe_exact_x(25 * one, 25 * one, 0 * one, 0 * one, 50 * one)[0]) < 1e-20
    True
    """
    het, h1, h2, m1, m2 = (
        np.asarray(a, dtype=np.int64) for a in (n_het, n_hom_ref, n_hom_alt, n_hap_ref, n_hap_alt)
    )
    out = hwe_exact(het, h1, h2)
    n_f, n_m = het + h1 + h2, m1 + m2
    n_a = 2 * h1 + het + m1
    n_b = 2 * h2 + het + m2
    todo = np.flatnonzero((n_m > 0) & (n_a > 0) & (n_b > 0))
    for (nf, nm, na), rows in _by_key(np.column_stack([n_f[todo], n_m[todo], n_a[todo]])):
        members = todo[rows]
        tables = _XTables(nf, nm, na)
        observed = tables.prob(het[members], m1[members])
        # an observed table less likely than the smallest double: p ~ 0
        tiny = observed == 0
        out[members[tiny]] = 0.0
        if tiny.all():
            continue
        # tables less likely than 1e-12 of the least likely observed one,
        # over all (at most (n_m + 1) * (n_f + 1)) tables, change no p-value
        # by more than 1e-12 of itself (or, below the smallest normal double,
        # by more than ~1e-300)
        floor = 1e-12 * float(observed[~tiny].min()) / ((nm + 1) * (nf + 1))
        floor = max(floor, float(np.finfo(np.float64).tiny))
        out[members[~tiny]] = _tail_mass(tables.all_above(floor), observed[~tiny], 1e-8)
    return out


# --------------------------------------------------------------------------- counts
def _suppress(
    df: pl.DataFrame, count_cols: Sequence[str], derived: Sequence[str], min_count: int | None
) -> pl.DataFrame:
    """Null small counts (1 .. min_count-1) and what derives from them; flag the rows."""
    return suppress_rows(df, count_cols, derived, min_count=min_count, flag="variant_suppressed")


def _frequency_counts(
    con: duckdb.DuckDBPyConnection, sample_tbl: str, filter: VariantFilter
) -> pl.DataFrame:
    """Per-variant coverage and call counts of a sample set (before derived columns).

    Sparse calls are grouped in SQL, packed ones counted by popcount
    (:func:`biobank.genomes.reader.packed_counts`); both are integer arrays indexed
    by variant key, added in numpy and joined to the variant columns.
    """
    where, meta_params = filter.where("v")
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
    layout = _batch_columns(con, sample_tbl)
    n_in_batch = np.zeros(max(layout, default=0) + 1, dtype=np.int64)
    for batch_id, bc in layout.items():
        n_in_batch[batch_id] = len(bc.cols)
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
    pk = packed_counts(
        con,
        sample_tbl,
        *(("TRUE", []) if not in_v else (f"p.variant_key < ?{in_v}", [size, *params])),
        layout=layout,
    )
    pkey, pn = pk
    for row, col in ((1, 2), (2, 0), (3, 1)):  # missing, het, hom-alt
        np.add.at(counts[row], pkey, pn[:, col])
    names = ["n_covered", "n_missing_rows", "n_het", "n_hom_alt", "n_hap_ref", "n_hap_alt"]
    return meta.with_columns(pl.Series(name, counts[i, at]) for i, name in enumerate(names))


def allele_frequencies_in(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    filter: VariantFilter,
    *,
    hwe: bool = True,
) -> pl.DataFrame:
    """:func:`allele_frequencies` for a sample table (:func:`~biobank.genomes.reader.sample_table`).

    Frequency bounds of ``filter`` are not applied here.
    """
    n_row = con.execute(f"SELECT count(*) FROM {sample_tbl}").fetchone()
    n_samples = int(n_row[0]) if n_row else 0
    df = _frequency_counts(con, sample_tbl, filter)
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
    if hwe:
        p = hwe_exact_x(  # the joint test where there are haploid (male chrX) calls
            *(
                df[c].to_numpy()
                for c in ("variant_n_het", "variant_n_hom_ref", "variant_n_hom_alt")
            ),
            *(df[c].to_numpy() for c in ("variant_n_haploid_ref", "variant_n_haploid_alt")),
        )
        df = df.with_columns(pl.Series("variant_hwe_p_value", p))
    df = df.drop("n_covered", "n_missing_rows", "n_het", "n_hom_alt", "n_hap_ref", "n_hap_alt")
    return df.rename({k: v for k, v in VARIANT_COLUMNS.items() if k in df.columns})


def allele_frequencies(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    filter: VariantFilter | None = None,
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
    filter
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
    filter = filter or VariantFilter()
    with sample_table(con, samples, purpose=purpose) as tbl:
        df = allele_frequencies_in(con, tbl, filter, hwe=hwe)
    f = df["variant_alt_allele_frequency"]
    if filter.min_frequency is not None:
        df = df.filter((f >= filter.min_frequency).fill_null(False))
        f = df["variant_alt_allele_frequency"]
    if filter.max_frequency is not None:
        df = df.filter((f <= filter.max_frequency).fill_null(False))
    return _suppress(
        df,
        ["variant_alt_allele_count", "variant_n_het", "variant_n_hom_alt", "variant_n_haploid_alt"],
        ["variant_alt_allele_frequency", "variant_hwe_p_value"]
        if hwe
        else ["variant_alt_allele_frequency"],
        min_count,
    )


# --------------------------------------------------------------------------- regression
def _null_fit(y: np.ndarray, cov: np.ndarray, *, max_iter: int = 50) -> np.ndarray:
    """Coefficients of the covariates-only logistic model (the start for every variant)."""
    from scipy.special import expit

    b = np.zeros(cov.shape[1])
    for _ in range(max_iter):
        mu = expit(cov @ b)
        w = mu * (1 - mu)
        step = np.linalg.lstsq(cov.T @ (cov * w[:, None]), cov.T @ (y - mu), rcond=None)[0]
        b += np.clip(step, -5, 5)
        if np.abs(step).max() < 1e-10:
            break
    return b


#: genotypes per block of :func:`_newton` (the arrays of a block stay in the CPU cache)
_FIT_BLOCK_CELLS = 200_000


def _newton(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    *,
    firth: bool,
    line_search: bool = False,
    max_iter: int = 100,
    tol: float = 1e-6,
    threads: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``logit P(y) = b*g + cov @ c`` for every row of ``g``.

    Ordinary fits (``firth=False``) are Newton-Raphson (IRLS). With
    ``line_search`` a step that lowers the log-likelihood is halved; without
    it, full Newton steps (capped at 5) are taken and the likelihood is never
    computed, which is about twice as fast (the transcendental functions
    dominate); :func:`logistic_regression` refits the rows that did not
    converge that way with the line search. Firth fits (``firth=True``) are
    :func:`_firth_block`'s, plink2's own algorithm (``line_search``,
    ``max_iter`` and ``tol`` do not apply). The rows are fitted in blocks
    small enough to stay in the CPU cache (about 200,000 genotypes each);
    within a block all rows are iterated together (only those not yet
    converged), and blocks run on ``threads`` threads (numpy releases the GIL).

    Parameters
    ----------
    g
        (variants, samples) predictor; NaN = missing (that sample is left out).
    y
        (samples,) 0/1 outcome.
    cov
        (samples, k) covariates including the intercept column.
    firth
        Maximise the Firth-penalised likelihood.
    line_search
        Halve steps that lower the likelihood (ordinary fits).
    max_iter, tol
        Iteration limit and convergence (largest step below ``tol``) of
        ordinary fits.
    threads
        Blocks fitted at the same time.

    Returns
    -------
    tuple
        ``beta`` and ``se`` of the ``g`` coefficient, and whether each fit
        gave a result (converged, or for Firth also stopped at the iteration
        limit, as plink2 reports it).
    """
    from concurrent.futures import ThreadPoolExecutor

    v, n = g.shape
    start = _null_fit(y, cov)  # start at the covariates-only fit: few iterations
    cc = (cov[:, :, None] * cov[:, None, :]).reshape(n, -1)
    rows = max(8, _FIT_BLOCK_CELLS // max(n, 1))
    bounds = [(i, min(i + rows, v)) for i in range(0, v, rows)]
    beta = np.full(v, np.nan)
    se = np.full(v, np.nan)
    converged = np.zeros(v, dtype=bool)

    def fit(lo: int, hi: int) -> None:
        if firth:
            beta[lo:hi], se[lo:hi], converged[lo:hi] = _firth_block(g[lo:hi], y, cov, cc, start)
        else:
            beta[lo:hi], se[lo:hi], converged[lo:hi] = _newton_block(
                g[lo:hi], y, cov, cc, start, line_search=line_search, max_iter=max_iter, tol=tol
            )

    if threads <= 1 or len(bounds) == 1:
        for lo, hi in bounds:
            fit(lo, hi)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="glm") as pool:
            for fut in [pool.submit(fit, lo, hi) for lo, hi in bounds]:
                fut.result()
    return beta, se, converged


def _softplus(eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``log(1 + e^eta)`` given ``mu = expit(eta)``.

    ``eta - log(mu)`` for ``eta > 0``, else ``-log(1 - mu)``: one log of a
    number in [0.5, 1] (accurate) instead of :func:`numpy.logaddexp`, which
    costs two transcendental functions per element.
    """
    pos = eta > 0
    out = np.log(np.where(pos, mu, 1.0 - mu))
    np.negative(out, out=out)
    out += np.where(pos, eta, 0.0)
    return out


def _information(i00: np.ndarray, wg: np.ndarray, wcc: np.ndarray) -> np.ndarray:
    """(rows, k, k) ``X' W X`` from its genotype, genotype-covariate and covariate parts."""
    kc = wg.shape[1]
    info = np.empty((len(i00), kc + 1, kc + 1))
    info[:, 0, 0] = i00
    info[:, 0, 1:] = wg
    info[:, 1:, 0] = wg
    info[:, 1:, 1:] = np.reshape(wcc, (-1, kc, kc))
    return info


def _weighted_information(
    w: np.ndarray, gr: np.ndarray, cov: np.ndarray, cc: np.ndarray
) -> np.ndarray:
    """(rows, k, k) ``X' diag(w) X`` per row, ``X = (g, cov)``; ``w`` (rows, samples)."""
    wgr = w * gr
    return _information((wgr * gr).sum(axis=1), wgr @ cov, w @ cc)


def _usable(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose (k, k) matrix is positive definite enough to invert, and its log det."""
    sign, logdet = np.linalg.slogdet(info)
    return (sign > 0) & np.isfinite(logdet) & (logdet > -700), logdet


def _block_arrays(
    g: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """A fit block's genotypes (0 where missing), call mask, whether complete, start betas."""
    mask = ~np.isnan(g)
    gz = np.where(mask, g, 0.0).astype(np.float64, copy=False)
    beta = np.zeros((len(g), len(start) + 1))
    beta[:, 1:] = start
    return gz, mask.astype(np.float64), bool(mask.all()), beta


def _fit_state(
    gr: np.ndarray,
    mr: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    *,
    complete: bool,
    loglik: bool,
) -> tuple[np.ndarray, ...]:
    """The fits' state at coefficients ``b`` (rows, k) for genotype rows ``gr``.

    Returns the log-likelihood (zeros unless ``loglik``: it costs a ``log``
    per genotype), ``mu``, the weights ``mu (1 - mu)``, the information
    ``X'WX``, whether it is usable, and its log determinant. ``mr`` masks
    missing calls (unused when ``complete``).
    """
    from scipy.special import expit

    eta = b[:, 1:] @ cov.T
    eta += gr * b[:, :1]
    mu = expit(eta)
    if loglik:
        lae = _softplus(eta, mu)
        eta *= y
        eta -= lae
        if not complete:
            eta *= mr
        ll = eta.sum(axis=1)
    else:
        ll = np.zeros(len(b))
    w = 1.0 - mu
    w *= mu
    if not complete:
        w *= mr
    info = _weighted_information(w, gr, cov, cc)
    ok, logdet = _usable(info)
    return ll, mu, w, info, ok, logdet


def _firth_block(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    start: np.ndarray,
    *,
    max_iter: int = 25,
    conv: float = 1e-4,
    max_halvings: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth-penalised fits of a block of rows, with plink2's iteration and stopping rules.

    Newton steps on the penalised log-likelihood ``l + log det(I) / 2``
    (Firth 1993), with ``I = X'VX`` the Fisher information: the modified
    score ``U* = X'(y - p + h (1/2 - p))`` (``h`` the hat diagonal
    ``v_i x_i' I^-1 x_i``) times ``I^-1``, capped at 5. As in ``plink2
    --glm`` v2.00a3 (a port of the logistf R package): a step that lowers the
    penalised log-likelihood is halved up to ``max_halvings`` times and then
    taken anyway; the fit has converged when the step and ``U*`` are at most
    ``conv`` and the penalised log-likelihood changed by at most ``conv``
    (also when halving failed but the step was below 1e-3 and ``U*`` below
    0.05, plink2's bail-out); after ``max_iter`` iterations the estimate is
    reported as it is (plink2's UNFINISHED). The standard error is from
    ``I^-1`` at the estimate. Arguments as :func:`_newton_block`.

    Returns
    -------
    tuple
        ``beta``, ``se`` and whether the fit gave a result (not when an
        information matrix was singular).
    """
    v = g.shape[0]
    gz, m, complete, beta = _block_arrays(g, start)

    def evaluate(rows: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        """Penalised log-likelihood, p, v, information and whether it is usable."""
        ll, mu, w, info, ok, logdet = _fit_state(
            gz[rows], m[rows], b, y, cov, cc, complete=complete, loglik=True
        )
        return ll + 0.5 * np.where(ok, logdet, 0.0), mu, w, info, ok & np.isfinite(ll)

    ll, mu, w, info, ok = evaluate(np.arange(v), beta)
    result = np.zeros(v, dtype=bool)
    final = np.zeros_like(info)  # information at each row's estimate
    bailed = np.zeros(v, dtype=bool)  # plink2's hs_bail: once set, stays set
    active = np.flatnonzero(ok)
    mu, w, info, ll = mu[ok], w[ok], info[ok], ll[ok]
    for it in range(max_iter):
        if not len(active):
            break
        gr, mr = gz[active], m[active]
        inv = np.linalg.inv(info)
        # hat diagonal h_i = w_i x_i' I^-1 x_i with x_i = (g_i, c_i)
        h = (
            inv[:, 0, :1] * gr * gr
            + 2 * gr * (inv[:, 0, 1:] @ cov.T)
            + inv[:, 1:, 1:].reshape(len(active), -1) @ cc.T
        )
        h *= w
        h *= 0.5 - mu
        h += y - mu
        if not complete:
            h *= mr
        score = np.column_stack([(h * gr).sum(axis=1), h @ cov])
        delta = np.einsum("vij,vj->vi", inv, score)
        biggest = np.abs(delta).max(axis=1)
        delta *= np.minimum(1.0, 5.0 / np.maximum(biggest, 1e-300))[:, None]
        step_max = np.minimum(biggest, 5.0)
        grad_max = np.abs(score).max(axis=1)
        small = (step_max <= conv) & (grad_max < conv)
        threshold = ll - np.where(small, 0.999999 * conv, 0.0)
        new = evaluate(active, beta[active] + delta)
        # plink2's step halving: a step to below the threshold is halved up to
        # max_halvings times (then taken anyway); one that stays above it but
        # does not raise the likelihood is halved once more; when halving
        # fails on a nearly converged fit, the step is dropped and the fit
        # "bails out"
        frac = np.ones(len(active))
        halving = np.ones(len(active), dtype=np.int64)
        limit = np.full(len(active), max_halvings)
        open_ = np.ones(len(active), dtype=bool)
        while True:
            new_ll = new[0]
            open_ &= halving <= limit
            above = open_ & (new_ll >= threshold)
            # (an exact tie counts as not better unless the step was already
            # tiny: singleton fits otherwise jump across the optimum forever,
            # their map x -> x + I^-1 U*(x) having slope -1 there)
            better = (new_ll > ll) | (small & (new_ll >= ll))
            open_ &= ~(above & better)
            limit = np.where(above & open_, halving, limit)
            out = open_ & ~above & (halving == limit)
            out &= (step_max < 1e-3) & (grad_max < 0.05) & (new_ll >= ll - conv)
            halving[out] -= 1
            limit[out] -= 1
            bailed[active[out]] = True
            if not open_.any():
                break
            frac[open_] -= 2.0 ** -halving[open_]
            halving[open_] += 1
            wi = np.flatnonzero(open_)
            sub = evaluate(active[wi], beta[active[wi]] + frac[wi, None] * delta[wi])
            for part, value in zip(new, sub, strict=True):
                part[wi] = value
        new_ll, new_mu, new_w, new_info, new_ok = new
        beta[active] += frac[:, None] * delta
        done = (np.abs(new_ll - ll) <= conv) & (small | bailed[active])
        if it == max_iter - 1:
            done[:] = True
        finished = done & new_ok
        result[active[finished]] = True
        final[active[finished]] = new_info[finished]
        keep = ~done & new_ok
        active = active[keep]
        ll, mu, w, info = new_ll[keep], new_mu[keep], new_w[keep], new_info[keep]
    se = np.full(v, np.nan)
    if result.any():
        se[result] = np.sqrt(np.maximum(np.linalg.inv(final[result])[:, 0, 0], 0.0))
    return beta[:, 0], se, result & np.isfinite(beta[:, 0])


def _newton_block(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    start: np.ndarray,
    *,
    line_search: bool,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block of ordinary fits of :func:`_newton` (``cc``: covariate outer products)."""
    from scipy.special import expit

    v = g.shape[0]
    kc = cov.shape[1]
    k = kc + 1
    gz, m, complete, beta = _block_arrays(g, start)  # complete: skip the masking products

    def take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``a[rows]``, without the copy when ``rows`` is every row (the usual case)."""
        return a if len(rows) == v else a[rows]

    def state(rows: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        """Log-likelihood (only for step halving), mu, information and whether it is usable."""
        ll, mu, _, info, ok, _ = _fit_state(
            take(gz, rows), take(m, rows), b, y, cov, cc, complete=complete, loglik=line_search
        )
        return ll, mu, info, ok

    def start_state() -> tuple[np.ndarray, ...]:
        """:func:`state` at the start, where every row has the same linear predictor.

        With the genotype coefficient 0 all rows share ``mu`` and the weights
        (up to their missing calls): one ``expit`` over the samples instead of
        one per row, and the rows share a read-only ``mu`` until a row moves.
        """
        eta = cov @ start
        mu0 = expit(eta)
        w0 = (1.0 - mu0) * mu0
        ll = np.zeros(v)
        if line_search:
            per_sample = y * eta - _softplus(eta, mu0)
            ll = m @ per_sample if not complete else np.full(v, per_sample.sum())
        mu = np.broadcast_to(mu0, (v, len(y)))
        info = _information(  # gz is 0 where a call is missing
            (gz * gz) @ w0,
            gz @ (w0[:, None] * cov),
            np.broadcast_to(w0 @ cc, (v, kc * kc)) if complete else m @ (w0[:, None] * cc),
        )
        return ll, mu, info, _usable(info)[0]

    lik, mu, info, ok = start_state()
    converged = np.zeros(v, dtype=bool)
    failed = ~ok
    active = ok.copy()
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        inv = np.linalg.inv(take(info, idx))
        gr, mr, mu_a = take(gz, idx), take(m, idx), take(mu, idx)
        resid = y[None, :] - mu_a
        if not complete:
            resid *= mr
        score = np.empty((len(idx), k))
        score[:, 0] = (resid * gr).sum(axis=1)
        score[:, 1:] = resid @ cov
        delta = np.einsum("vij,vj->vi", inv, score)
        biggest = np.abs(delta).max(axis=1)
        delta *= np.minimum(1.0, 5.0 / np.maximum(biggest, 1e-300))[:, None]
        old = lik[idx]
        new_lik, new_mu, new_info, new_ok = state(idx, take(beta, idx) + delta)
        worse = ~new_ok | (new_lik < old) if line_search else ~new_ok
        for _half in range(25):  # step halving, only for the rows that got worse
            if not worse.any():
                break
            wi = np.flatnonzero(worse)
            delta[wi] /= 2
            sub = state(idx[wi], beta[idx[wi]] + delta[wi])
            new_lik[wi], new_mu[wi], new_info[wi], new_ok[wi] = sub
            worse[wi] = ~sub[3] | (sub[0] < old[wi]) if line_search else ~sub[3]
        beta[idx] += delta
        if len(idx) == v:
            lik, mu, info = new_lik, new_mu, new_info
        else:
            if not mu.flags.writeable:  # still the shared start: give each row its own
                mu = np.array(mu)
            lik[idx], mu[idx], info[idx] = new_lik, new_mu, new_info
        step = np.abs(delta).max(axis=1)
        done = step < tol
        converged[idx[done & new_ok]] = True
        failed[idx[~new_ok]] = True
        active[idx[done | ~new_ok]] = False
    se = np.full(v, np.nan)
    good = ~failed
    if good.any():
        se[good] = np.sqrt(np.maximum(np.linalg.inv(info[good])[:, 0, 0], 0.0))
    converged &= good & np.isfinite(beta[:, 0])
    return beta[:, 0], se, converged


def _fit_rows(g: np.ndarray, y: np.ndarray, cov: np.ndarray, *, firth_fallback: bool) -> np.ndarray:
    """Fits of :func:`logistic_regression`: (rows, 3) beta, standard error, Firth used (0/1)."""
    v = len(g)
    # carriers (g != 0, NaN is not) among cases and controls, as one matrix product
    groups = np.column_stack([y == 1, y == 0]).astype(np.float32)
    carriers = (g != 0).astype(np.float32) @ groups
    case_nz, ctrl_nz = carriers[:, 0] > 0, carriers[:, 1] > 0
    gmin = np.fmin.reduce(g, axis=1)  # fmin/fmax skip NaN (all-NaN rows give NaN)
    gmax = np.fmax.reduce(g, axis=1)
    const = ~(gmax > gmin)
    separated = ~(case_nz & ctrl_nz) & ~const
    out = np.full((v, 3), np.nan)
    out[:, 2] = 0
    plain = np.flatnonzero(~const & ~separated)
    if len(plain):
        b, s, ok = _newton(g[plain], y, cov, firth=False, line_search=False)
        ok &= np.abs(b) < 15
        if not ok.all():  # again with step halving before giving up on them
            again = np.flatnonzero(~ok)
            b[again], s[again], ok[again] = _newton(
                g[plain[again]], y, cov, firth=False, line_search=True
            )
            ok[again] &= np.abs(b[again]) < 15
        out[plain[ok], 0], out[plain[ok], 1] = b[ok], s[ok]
        separated[plain[~ok]] = True
    refit = np.flatnonzero(separated)
    if len(refit) and firth_fallback:
        b, s, ok = _newton(g[refit], y, cov, firth=True)
        out[refit[ok], 0], out[refit[ok], 1] = b[ok], s[ok]
        out[refit, 2] = 1
    return out


def logistic_regression(
    g: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    firth_fallback: bool = True,
    fit_cache: dict[bytes, tuple[float, float, float]] | None = None,
) -> pl.DataFrame:
    """Logistic regression of ``y`` on each row of ``g`` plus covariates, vectorised.

    Ordinary maximum likelihood (Newton/IRLS) for all rows at once. As
    ``plink2 --glm`` with its default ``firth-fallback``, rows where cases or
    controls all have ``g == 0`` (complete or quasi-complete separation) and
    rows whose ordinary fit does not converge (or gives |beta| > 15) are
    refitted with Firth's penalised likelihood when ``firth_fallback``,
    otherwise reported as null. Rows where ``g`` is constant are null.

    Parameters
    ----------
    g
        (variants, samples) predictor (e.g. ALT dosage); NaN = missing.
    y
        (samples,) 0/1 outcome.
    covariates
        (samples, k) covariates without intercept (added here), or ``None``.
    firth_fallback
        Refit problem rows with Firth regression.
    fit_cache
        Fits by row content (a 128-bit BLAKE2 digest of the row), shared
        between calls with the same ``y`` and ``covariates`` (e.g. the blocks
        of one association run). Identical rows are common (singletons of one
        sample, which need Firth fits, and variants in complete LD): each
        distinct row is fitted once, here and in later calls given the same
        dict. Within one call rows are always deduplicated.

    Returns
    -------
    polars.DataFrame
        ``beta, standard_error, z, p_value`` (Wald, normal), ``firth``
        (whether the Firth fit was used), ``n_obs`` per row of ``g``.
    """
    from scipy.stats import norm

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    cov = np.ones((n, 1))
    if covariates is not None and covariates.size:
        cov = np.column_stack([cov, np.asarray(covariates, dtype=np.float64)])
    g = np.asarray(g)
    if g.dtype not in (np.float32, np.float64):  # float32 holds dosages exactly, in half the memory
        g = np.asarray(g, dtype=np.float64)
    g = np.ascontiguousarray(g)
    v = len(g)
    mask = ~np.isnan(g)
    # one fit per distinct row content: identical rows (variants in complete LD,
    # singletons of the same sample) are common, and a fit depends on nothing else
    cache = {} if fit_cache is None else fit_cache
    keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in g]
    new = {key: r for r, key in zip(range(v), keys, strict=True) if key not in cache}
    if new:
        rows = np.fromiter(new.values(), dtype=np.int64, count=len(new))
        fitted = _fit_rows(g[rows], y, cov, firth_fallback=firth_fallback)
        cache.update(zip(new, map(tuple, fitted.tolist()), strict=True))
    fits = np.array([cache[key] for key in keys], dtype=np.float64).reshape(-1, 3)
    beta, se, firth = fits[:, 0], fits[:, 1], fits[:, 2] > 0
    z = beta / se
    p = 2 * norm.sf(np.abs(z))
    return pl.DataFrame(
        {
            "beta": beta,
            "standard_error": se,
            "z": z,
            "p_value": p,
            "firth": firth,
            "n_obs": mask.sum(axis=1),
        },
        nan_to_null=True,
    )


def _fisher(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's exact test (two-sided) for each 2x2 table ``[[a, b], [c, d]]`` (n, 4).

    The two-sided p-value of R's ``fisher.test`` (and of
    :func:`scipy.stats.fisher_exact`): the total hypergeometric probability of
    the tables with the observed margins that are no more likely than the
    observed one (R's relative tolerance of 1e-7 for ties). As R does, the
    probabilities come from the log pmf (here from a table of log factorials,
    :func:`scipy.special.gammaln`), scaled by their maximum and summed; each
    distinct set of margins is computed once, all of them in one vectorised
    step. The odds ratio is the sample
    odds ratio ``ad / bc`` (``inf`` when ``bc == 0``; NaN, with p = 1, when a
    row or column is empty), as scipy gives it.
    """
    from scipy.special import gammaln

    t = np.asarray(table, dtype=np.int64).reshape(-1, 4)
    a, b, c, d = t.T
    n_tab = len(t)
    odds = np.full(n_tab, np.inf)
    finite = (b > 0) & (c > 0)
    odds[finite] = (a[finite] * d[finite]) / (b[finite] * c[finite])
    pval = np.ones(n_tab)
    row1, row2, col1 = a + b, c + d, a + c
    empty = (row1 == 0) | (row2 == 0) | (col1 == 0) | (b + d == 0)
    odds[empty] = np.nan
    todo = np.flatnonzero(~empty)
    if not len(todo):
        return odds, pval
    margins = np.column_stack([row1[todo] + row2[todo], row1[todo], col1[todo]])
    # all supports in one vectorised logpmf call, then one lookup per set of margins
    groups = list(_by_key(margins))
    total, r1, c1 = np.array([key for key, _ in groups], dtype=np.int64).reshape(-1, 3).T
    lo = np.maximum(0, c1 - (total - r1))
    size = np.minimum(r1, c1) - lo + 1
    start = np.concatenate([[0], np.cumsum(size)])
    owner = np.repeat(np.arange(len(groups)), size)
    x = np.arange(start[-1]) - start[owner] + lo[owner]
    # log pmf up to a constant per set of margins (which the scaling below
    # removes): -log(x! (r1 - x)! (c1 - x)! (total - r1 - c1 + x)!), from a
    # table of log factorials
    log_fact = gammaln(np.arange(int(total.max()) + 1) + 1.0)
    r1o, c1o = r1[owner], c1[owner]
    logp = -(
        log_fact[x] + log_fact[r1o - x] + log_fact[c1o - x] + log_fact[total[owner] - r1o - c1o + x]
    )
    for gi, (_, rows) in enumerate(groups):
        members = todo[rows]
        lp = logp[start[gi] : start[gi + 1]]
        pval[members] = _no_more_likely(np.exp(lp - lp.max()), a[members] - lo[gi], 1e-7)
    return odds, pval


# --------------------------------------------------------------------------- case/control
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
    cdf = con.execute(covariates).pl() if isinstance(covariates, str) else covariates
    if "participant_id" not in cdf.columns:
        raise ValidationError("covariates need a column participant_id", field="covariates")
    cov_names = [c for c in cdf.columns if c != "participant_id"]
    bad = [c for c in cov_names if not cdf[c].dtype.is_numeric() and cdf[c].dtype != pl.Boolean]
    if bad:
        raise ValidationError(
            f"covariate column(s) {', '.join(bad)} are not numeric: encode them as numbers "
            "(e.g. sex as 0/1)",
            field="covariates",
        )
    if cdf["participant_id"].is_duplicated().any():
        raise ValidationError(
            "covariates have more than one row for a participant", field="covariates"
        )
    cdf = cdf.with_columns([pl.col(c).cast(pl.Float64) for c in cov_names]).drop_nulls()
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


def association(
    con: duckdb.DuckDBPyConnection,
    cases: SampleSet,
    controls: SampleSet,
    *,
    covariates: pl.DataFrame | str | None = None,
    filter: VariantFilter | None = None,
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
    filter
        Which variants; frequency bounds apply to cases+controls.
    purpose
        Restrict both sets to participants whose consent permits this purpose.
    firth_fallback
        Refit non-converged or separated variants with Firth regression.
    min_count
        Suppress ALT allele counts below this in cases or controls.
    tests
        Which tests to run: ``"fisher"``, ``"logistic"`` or both; the columns
        of a test not run are null.
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
        ``variant_standard_error, variant_z, variant_p_value, variant_firth,
        variant_n_obs``.

    Raises
    ------
    ValidationError
        If cases and controls overlap, either is empty, or covariates are bad.
    """
    filter = filter or VariantFilter()
    unknown = set(tests) - {"fisher", "logistic"}
    if unknown or not tests:
        raise ValidationError(
            f"tests must be 'fisher' and/or 'logistic', not {sorted(unknown) or 'nothing'}",
            field="tests",
        )
    if xchr_model not in (1, 2):
        raise ValidationError(
            f"xchr_model must be 1 (haploid calls 0/1) or 2 (0/2, as plink2), not {xchr_model!r}",
            field="xchr_model",
        )
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
            keys = _variant_keys(con, tbl, filter)
            parts = []
            is_case = y == 1
            # (samples, 2) indicator of case / control: counts are matrix products
            groups = np.column_stack([is_case, ~is_case]).astype(np.float32)
            fit_cache: dict[bytes, tuple[float, float, float]] = {}  # same y, x in all blocks
            for blk in _dense_blocks(con, tbl, keys, block=block):
                called = (blk.flags & FLAG_MISSING) == 0
                haploid = (blk.flags & FLAG_HAPLOID) > 0
                # float32 (exact for these small integers) halves the memory traffic
                g = blk.dosage.astype(np.float32)
                called_f = called.astype(np.float32)
                alleles = called_f * 2
                alleles -= haploid & called  # haploid: one allele
                n_alt = ((g * called_f) @ groups).round().astype(np.int64)
                if xchr_model == 2 and haploid.any():  # codes like a homozygous diploid call
                    g[haploid] *= 2
                g[~called] = np.nan
                n_tot = (alleles @ groups).round().astype(np.int64)
                n_called = (called_f @ groups).round().astype(np.int64)
                case_alt, ctrl_alt = n_alt[:, 0], n_alt[:, 1]
                case_tot, ctrl_tot = n_tot[:, 0], n_tot[:, 1]
                table = np.column_stack(
                    [case_alt, case_tot - case_alt, ctrl_alt, ctrl_tot - ctrl_alt]
                )
                if "fisher" in tests:
                    odds, pval = _fisher(table)
                else:
                    odds = pval = np.full(len(table), np.nan)
                if "logistic" in tests:
                    fit = logistic_regression(
                        g, y, x, firth_fallback=firth_fallback, fit_cache=fit_cache
                    )
                else:
                    fit = logistic_regression(np.empty((0, len(y))), y, x).clear(n=len(blk.keys))
                parts.append(
                    pl.DataFrame(
                        {
                            "variant_key": blk.keys,
                            "variant_n_cases": n_called[:, 0],
                            "variant_n_controls": n_called[:, 1],
                            "variant_case_alt_count": case_alt,
                            "variant_case_ref_count": case_tot - case_alt,
                            "variant_control_alt_count": ctrl_alt,
                            "variant_control_ref_count": ctrl_tot - ctrl_alt,
                            "variant_fisher_odds_ratio": odds,
                            "variant_fisher_p_value": pval,
                        },
                        nan_to_null=True,
                    ).hstack(fit.rename({c: f"variant_{c}" for c in fit.columns}))
                )
        finally:
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
    from biobank.genomes.reader import variants as lookup

    res = pl.concat(parts) if parts else None
    info = lookup(con, filter).select(
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
    return _suppress(
        out,
        ["variant_case_alt_count", "variant_control_alt_count"],
        [
            "variant_fisher_odds_ratio",
            "variant_fisher_p_value",
            "variant_beta",
            "variant_standard_error",
            "variant_z",
            "variant_p_value",
        ],
        min_count,
    )


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
                for blk in _dense_blocks(con, tbl, keys):
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
    odds, pval = _fisher(table) if len(table) else (np.zeros(0), np.zeros(0))
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
    ).hstack(fit.drop("n_obs").rename({c: f"gene_{c}" for c in fit.columns if c != "n_obs"}))
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
