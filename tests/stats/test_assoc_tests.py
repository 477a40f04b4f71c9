"""Tests for the likelihood-ratio and score (Rao) tests of biobank.stats.assoc, against
statsmodels (plink2's ``--glm`` reports neither for logistic regression).

References per variant: the full and covariates-only ``Logit`` fits on the
variant's called samples (LRT ``2 (llf_full - llf_null)``, chi-square 1 df, the
``llr`` of statsmodels' nested comparison), and ``GLM(Binomial).score_test`` of
the covariates-only fit with the dosage as the extra regressor.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from stats_support import Cohort, cases_controls

from biobank.core.access import Principal, Role
from biobank.core.errors import ValidationError
from biobank.genomes.filters import VariantFilter
from biobank.stats.assoc import association

ALL_TESTS = ("fisher", "logistic", "lrt", "score")


@pytest.fixture(scope="module")
def sim_all_tests(sim: Cohort) -> pl.DataFrame:
    cases, controls, cov = cases_controls(sim.pheno, sim.covariates)
    return association(sim.store.con, cases, controls, covariates=cov, tests=ALL_TESTS)


def _statsmodels_tests(
    g: np.ndarray, y: np.ndarray, x: np.ndarray
) -> tuple[float, float, float, float]:
    """LRT chi2 and p, score chi2 and p of ``y ~ g + x`` vs ``y ~ x`` (complete cases)."""
    import statsmodels.api as sm
    from scipy.stats import chi2

    ok = ~np.isnan(g)
    null_x = sm.add_constant(x[ok])
    null = sm.Logit(y[ok], null_x).fit(disp=0, tol=1e-12)
    full = sm.Logit(y[ok], np.column_stack([null_x, g[ok]])).fit(
        disp=0, tol=1e-12, warn_convergence=False
    )
    lrt = 2 * (full.llf - null.llf)
    glm = sm.GLM(y[ok], null_x, family=sm.families.Binomial())
    score, score_p, df = glm.score_test(null.params, exog_extra=g[ok][:, None])
    assert df == 1
    return lrt, float(chi2.sf(lrt, 1)), float(score[0]), float(score_p[0])


def _design(
    cohort: Cohort, covariates: list[str], variant_filter: VariantFilter | None
) -> tuple[np.ndarray, dict[int, int], np.ndarray, np.ndarray]:
    from biobank.genomes.reader import genotype_matrix

    m = genotype_matrix(
        cohort.store.con, principal=Principal("ada", Role.ADMIN), variant_filter=variant_filter
    )
    dosage = m.genotypes.to_n_alt(fill=-1).astype(float)
    dosage[dosage < 0] = np.nan
    info = cohort.pheno.join(m.samples, on="participant_id")
    order = {p: i for i, p in enumerate(m.samples["participant_id"].to_list())}
    cols = np.array([order[p] for p in info["participant_id"].to_list()])
    y = info["status"].to_numpy().astype(float)
    x = info.select(covariates).to_numpy().astype(float)
    row_of = {k: i for i, k in enumerate(m.variants["variant_key"].to_list())}
    return dosage[:, cols], row_of, y, x


def _check_against_statsmodels(
    cohort: Cohort,
    rows: pl.DataFrame,
    covariates: list[str],
    variant_filter: VariantFilter | None = None,
) -> None:
    dosage, row_of, y, x = _design(cohort, covariates, variant_filter)
    for row in rows.iter_rows(named=True):
        g = dosage[row_of[row["variant_key"]]]
        lrt, lrt_p, score, score_p = _statsmodels_tests(g, y, x)
        assert row["variant_score_chi2"] == pytest.approx(score, rel=1e-6, abs=1e-10)
        assert row["variant_score_p_value"] == pytest.approx(score_p, rel=1e-6)
        if row["variant_firth"]:
            assert row["variant_lrt_chi2"] is None  # no ordinary fit: no LRT
            continue
        assert row["variant_lrt_chi2"] == pytest.approx(lrt, rel=1e-6, abs=1e-9)
        assert row["variant_lrt_p_value"] == pytest.approx(lrt_p, rel=1e-6)


def test_association__lrt_and_score_match_statsmodels_with_missing_calls(
    sim: Cohort, sim_all_tests: pl.DataFrame
) -> None:
    res = sim_all_tests
    regular = res.filter(~pl.col("variant_firth") & pl.col("variant_beta").is_not_null())
    missing = regular.filter(pl.col("variant_n_obs") < 390)
    firth = res.filter(pl.col("variant_firth") & pl.col("variant_score_chi2").is_not_null())
    assert missing.height >= 10
    assert firth.height >= 5
    rows = pl.concat([missing.head(12), regular.head(12), firth.head(8)])
    _check_against_statsmodels(sim, rows, sim.covariates)
    # the planted causal variant is found by all three tests
    for col in ("variant_p_value", "variant_lrt_p_value", "variant_score_p_value"):
        assert res[col].min() < 1e-6, col


def test_association__wald_columns_unchanged_by_the_extra_tests(
    sim_assoc: pl.DataFrame, sim_all_tests: pl.DataFrame
) -> None:
    """Asking for LRT and score adds their columns; the other columns are the same fits."""
    extra = [
        "variant_lrt_chi2",
        "variant_lrt_p_value",
        "variant_score_chi2",
        "variant_score_p_value",
    ]
    assert sim_assoc.select(extra).null_count().row(0) == (sim_assoc.height,) * 4
    assert sim_all_tests.drop(extra).equals(sim_assoc.drop(extra))
    # an LRT wherever there is an ordinary fit (not a Firth one)
    res = sim_all_tests
    ordinary = ~res["variant_firth"] & res["variant_beta"].is_not_null()
    assert res["variant_lrt_chi2"].is_not_null().equals(ordinary)
    assert ordinary.sum() > 700


def test_association__score_alone_fits_no_full_model(
    sim: Cohort, sim_all_tests: pl.DataFrame
) -> None:
    cases, controls, cov = cases_controls(sim.pheno, sim.covariates)
    res = association(sim.store.con, cases, controls, covariates=cov, tests=["score"])
    assert res["variant_beta"].null_count() == res.height
    assert res["variant_lrt_chi2"].null_count() == res.height
    assert res["variant_fisher_p_value"].null_count() == res.height
    assert np.allclose(
        res["variant_score_chi2"].to_numpy(),
        sim_all_tests["variant_score_chi2"].to_numpy(),
        rtol=1e-12,
        equal_nan=True,
    )


def test_association__lrt_and_score_suppressed_with_small_counts(sim: Cohort) -> None:
    cases, controls, cov = cases_controls(sim.pheno, sim.covariates)
    res = association(
        sim.store.con, cases, controls, covariates=cov, tests=["lrt", "score"], min_count=5
    )
    small = res.filter(pl.col("variant_suppressed"))
    assert small.height > 20
    assert small["variant_lrt_p_value"].null_count() == small.height
    assert small["variant_score_p_value"].null_count() == small.height


def test_association__rejects_an_unknown_test(sim: Cohort) -> None:
    ids = sim.pheno["participant_id"].to_list()
    with pytest.raises(ValidationError, match="tests must be among fisher, logistic, lrt, score"):
        association(sim.store.con, ids[:10], ids[10:20], tests=["wald2"])


@pytest.mark.shared
@pytest.mark.slow
def test_association__lrt_and_score_match_statsmodels_on_1000_genomes(kg: Cohort) -> None:
    cases, controls, cov = cases_controls(kg.pheno, kg.covariates)
    region = VariantFilter(region="22")
    res = association(
        kg.store.con, cases, controls, covariates=cov, variant_filter=region, tests=ALL_TESTS
    )
    regular = res.filter(~pl.col("variant_firth") & pl.col("variant_beta").is_not_null())
    firth = res.filter(pl.col("variant_firth") & pl.col("variant_score_chi2").is_not_null())
    assert regular.height > 300
    assert firth.height > 300
    rows = pl.concat([regular.sample(25, seed=1), firth.sample(10, seed=1)])
    _check_against_statsmodels(kg, rows, kg.covariates, region)
