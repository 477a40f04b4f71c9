"""Statistics over the store's genotypes: allele frequencies, Hardy-Weinberg
tests, Fisher's exact test, logistic regression (with Firth; Wald,
likelihood-ratio and score tests), case/control association and linear
regression of quantitative traits.

Modules: :mod:`~biobank.stats.hwe`, :mod:`~biobank.stats.frequencies`,
:mod:`~biobank.stats.fisher`, :mod:`~biobank.stats.regression`,
:mod:`~biobank.stats.assoc` (association, burden), :mod:`~biobank.stats.linear`;
they read genotypes only through :mod:`biobank.genomes`' public functions.
"""

from __future__ import annotations

from biobank.core.disclosure import SMALL_COUNT_THRESHOLD
from biobank.stats.assoc import association, burden
from biobank.stats.frequencies import allele_frequencies, allele_frequencies_in
from biobank.stats.hwe import hwe_exact, hwe_exact_x
from biobank.stats.linear import linear_association, linear_regression
from biobank.stats.regression import logistic_regression

__all__ = [
    "SMALL_COUNT_THRESHOLD",
    "allele_frequencies",
    "allele_frequencies_in",
    "association",
    "burden",
    "hwe_exact",
    "hwe_exact_x",
    "linear_association",
    "linear_regression",
    "logistic_regression",
]
