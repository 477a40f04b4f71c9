"""Tests for biobank.stats.fisher vs scipy."""

from __future__ import annotations

import numpy as np
import pytest

from biobank.stats.fisher import fisher_tables


def test_fisher__matches_scipy_on_random_and_degenerate_tables() -> None:
    from scipy.stats import fisher_exact

    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(0, 80, 600), rng.integers(0, 80, 600)
    a = rng.binomial(n1, rng.random(600))
    c = rng.binomial(n2, rng.random(600) * rng.random(600))
    tables = np.column_stack([a, n1 - a, c, n2 - c]).tolist()
    # empty rows/columns, zero cells, the observed table at the mode, large margins
    tables += [[0, 0, 0, 0], [0, 5, 0, 7], [3, 0, 4, 0], [5, 0, 0, 5], [0, 5, 5, 0]]
    tables += [[4, 4, 4, 4], [10, 1828, 2, 4160], [0, 1838, 1, 4161], [500, 1338, 900, 3262]]
    odds, p = fisher_tables(np.array(tables))
    for row, o, pv in zip(tables, odds, p, strict=True):
        ref = fisher_exact([[row[0], row[1]], [row[2], row[3]]])
        assert pv == pytest.approx(float(ref.pvalue), rel=1e-9), row
        if np.isnan(ref.statistic):
            assert np.isnan(o), row
        else:
            assert o == pytest.approx(float(ref.statistic), rel=1e-12), row
