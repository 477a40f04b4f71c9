"""Tests for biobank.stats.hwe: exact Hardy-Weinberg tests (autosomal and chrX)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biobank.stats.hwe import hwe_exact, hwe_exact_x


def test_hwe_exact__textbook_values() -> None:
    # Wigginton et al. 2005 style checks: perfect HWE gives 1; excess homozygotes is tiny
    p = hwe_exact(np.array([50, 0, 0]), np.array([25, 50, 100]), np.array([25, 50, 0]))
    assert p[0] == pytest.approx(1.0, abs=0.05)
    assert p[1] < 1e-25
    assert p[2] == 1.0


def _hwe_x_by_enumeration(het: int, hom_a: int, hom_b: int, male_a: int, male_b: int) -> float:
    """The X-chromosome exact test by brute force: every table, scipy's hypergeometric."""
    from scipy.stats import hypergeom

    nf, nm = het + hom_a + hom_b, male_a + male_b
    n_a = 2 * hom_a + het + male_a
    tables = {}
    for m in range(max(0, n_a - 2 * nf), min(nm, n_a) + 1):
        female_a = n_a - m
        log_row = float(hypergeom(2 * nf + nm, nm, n_a).logpmf(m))
        for h in range(female_a % 2, min(female_a, 2 * nf - female_a) + 1, 2):
            aa, bb = (female_a - h) // 2, nf - h - (female_a - h) // 2
            log_levene = (  # Levene (1949): the heterozygotes given the female alleles
                math.lgamma(nf + 1) + math.lgamma(female_a + 1) + math.lgamma(2 * nf - female_a + 1)
                - math.lgamma(2 * nf + 1) + h * math.log(2)
                - math.lgamma(aa + 1) - math.lgamma(h + 1) - math.lgamma(bb + 1)
            )  # fmt: skip
            tables[(h, m)] = math.exp(log_row + log_levene)
    observed = tables[(het, male_a)]
    return sum(p for p in tables.values() if p <= observed * (1 + 1e-7))


def test_hwe_exact_x__matches_enumeration_of_every_table() -> None:
    rng = np.random.default_rng(11)
    cases = [(0, 40, 0, 0, 30), (25, 25, 0, 0, 50), (3, 0, 0, 1, 0), (0, 5, 5, 10, 0)]
    for _ in range(40):  # random counts, some in equilibrium, some far from it
        nf, nm = (int(x) for x in rng.integers(1, 160, size=2))
        p_f, p_m = rng.uniform(0.02, 0.98, size=2)
        if rng.random() < 0.5:
            p_m = p_f
        g = rng.multinomial(nf, [p_f**2, 2 * p_f * (1 - p_f), (1 - p_f) ** 2])
        if rng.random() < 0.3:  # heterozygote deficit
            g = np.array([g[0] + g[1] // 2, g[1] - 2 * (g[1] // 2), g[2] + g[1] // 2])
        male_a = int(rng.binomial(nm, p_m))
        cases.append((int(g[1]), int(g[0]), int(g[2]), male_a, nm - male_a))
    cols = [np.array(c) for c in zip(*cases, strict=True)]
    ours = hwe_exact_x(*cols)
    expected = np.array([_hwe_x_by_enumeration(*c) for c in cases])
    assert np.allclose(ours, expected, rtol=1e-6, atol=1e-300)
    assert (expected < 1e-10).sum() >= 5
    assert (expected > 0.1).sum() >= 5
    # every male carrying the allele no female has: far out of equilibrium
    assert ours[1] < 1e-20
    assert hwe_exact(*cols[:3])[1] > 0.01
    # without males, the test of the females alone
    no_males = hwe_exact_x(*cols[:3], 0 * cols[3], 0 * cols[4])
    assert np.array_equal(no_males, hwe_exact(*cols[:3]))
