"""Statistics over the store's genotypes: allele frequencies, Hardy-Weinberg
tests, Fisher's exact test, logistic regression (with Firth) and
case/control association.
"""

from __future__ import annotations

from biobank.stats.assoc import (
    SMALL_COUNT_THRESHOLD,
    allele_frequencies,
    allele_frequencies_in,
    association,
    burden,
    hwe_exact,
    hwe_exact_x,
    logistic_regression,
)

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
