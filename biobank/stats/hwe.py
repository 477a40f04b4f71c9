"""Exact Hardy-Weinberg tests: :func:`hwe_exact`, the test of Wigginton,
Cutler and Abecasis (2005), vectorised; :func:`hwe_exact_x`, its
X-chromosome form with haploid male calls (Graffelman & Weir 2016), which
:func:`biobank.stats.frequencies.allele_frequencies` uses for variants with
haploid calls. Both as ``plink2 --hardy``.
"""

from __future__ import annotations

import numpy as np

from biobank.stats.exact import by_key, no_more_likely, tail_mass

__all__ = ["hwe_exact", "hwe_exact_x"]


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
    for (n_g, rare_g), rows in by_key(np.column_stack([n[todo], rare[todo]])):
        members = todo[rows]
        out[members] = no_more_likely(_hwe_probs(n_g, rare_g), het[members], 1e-8)
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
    for (nf, nm, na), rows in by_key(np.column_stack([n_f[todo], n_m[todo], n_a[todo]])):
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
        out[members[~tiny]] = tail_mass(tables.all_above(floor), observed[~tiny], 1e-8)
    return out
