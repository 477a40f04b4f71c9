"""Tests for biobank.stats.regression: vectorised logistic regression and Firth fits."""

from __future__ import annotations

import numpy as np
import pytest

from biobank.stats.regression import logistic_regression


def test_logistic_regression__identical_rows_share_one_fit() -> None:
    """Duplicate rows (singletons of one sample, variants in LD) get the fit of one copy."""

    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.4).astype(float)
    x = rng.normal(size=(n, 1))
    case, ctrl = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    single = np.zeros(n)
    single[case[0]] = 1  # separated: Firth
    double = np.zeros(n)
    double[case[1:3]] = [1, 2]
    double[ctrl[0]] = np.nan  # a missing call is part of the row's content
    common = rng.binomial(2, 0.3, n).astype(float)
    alone = [logistic_regression(r[None, :], y, x) for r in (single, double, common)]
    g = np.vstack([single, double, common, single, double, common])
    cache: dict[bytes, tuple[float, float, float]] = {}
    res = logistic_regression(g, y, x, fit_cache=cache)
    assert res["firth"].to_list() == [True, True, False, True, True, False]
    assert len(cache) == 3  # three distinct rows, each fitted once
    for row, want in enumerate([*alone, *alone]):
        for col in ("beta", "standard_error", "p_value"):
            assert res[col][row] == pytest.approx(want[col][0], rel=1e-9)
    # a later call with the same cache reuses the stored fits
    cache[next(iter(cache))] = (9.0, 1.0, 1.0)
    again = logistic_regression(single[None, :], y, x, fit_cache=cache)
    assert again["beta"][0] == 9.0
    assert again["firth"][0]


def test_logistic_regression__firth_fits_maximise_the_penalised_likelihood() -> None:
    """Firth estimates equal a general-purpose optimiser's maximum of ``l + log det(I) / 2``.

    An independent check of the estimator itself (the plink2 comparisons check
    the same numbers against plink2's float32 implementation): singletons in a
    case and in a control, a separated row with a missing call, and three
    carriers of which two hom-alt, with covariates.
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    rng = np.random.default_rng(11)
    n = 400
    y = (rng.random(n) < 0.35).astype(float)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    case, ctrl = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = np.zeros((4, n))
    rows[0, case[0]] = 1
    rows[1, ctrl[0]] = 1
    rows[2, ctrl[1:4]] = [1, 2, 1]
    rows[2, case[5]] = np.nan
    rows[3, case[1:4]] = [2, 1, 2]
    res = logistic_regression(rows, y, x)
    assert res["firth"].all()

    for i, g in enumerate(rows):
        ok = ~np.isnan(g)
        design = np.column_stack([g[ok], np.ones(ok.sum()), x[ok]])
        yy = y[ok]

        def penalised(b: np.ndarray, design: np.ndarray = design, yy: np.ndarray = yy) -> float:
            eta = design @ b
            p = expit(eta)
            info = design.T @ (design * (p * (1 - p))[:, None])
            ll = (yy * log_expit(eta) + (1 - yy) * log_expit(-eta)).sum()
            return -(ll + 0.5 * np.linalg.slogdet(info)[1])

        best = minimize(
            penalised, np.zeros(design.shape[1]), method="BFGS", options={"gtol": 1e-10}
        )
        p = expit(design @ best.x)
        info = design.T @ (design * (p * (1 - p))[:, None])
        se = np.sqrt(np.linalg.inv(info)[0, 0])
        assert res["beta"][i] == pytest.approx(best.x[0], abs=5e-5), i
        assert res["standard_error"][i] == pytest.approx(se, rel=1e-4), i
