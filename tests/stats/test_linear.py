"""Tests for biobank.stats.linear: linear regression of a quantitative trait per variant,
against ``plink2 --glm`` (its quantitative mode, ``.glm.linear``) and statsmodels' OLS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from stats_support import Cohort, keyed, plink_linear

from biobank.core.access import Principal, Role
from biobank.core.errors import ValidationError
from biobank.genomes.filters import VariantFilter
from biobank.stats.linear import linear_association, linear_regression


@pytest.fixture(scope="module")
def sim_trait(sim: Cohort, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The simulated cohort with a quantitative trait ``ldl`` (null for 12 participants)."""
    rng = np.random.default_rng(17)
    n = sim.pheno.height
    ldl = 3.2 + 2.0 * sim.pheno["status"].to_numpy() + 0.3 * sim.pheno["cov1"].to_numpy()
    ldl = ldl + rng.normal(scale=0.5, size=n)
    values = [None if i % 33 == 0 else float(v) for i, v in enumerate(ldl)]
    return sim.pheno.with_columns(ldl=pl.Series(values, dtype=pl.Float64))


def _check_plink(glm: pl.DataFrame, res: pl.DataFrame) -> int:
    """Compare ``linear_association`` with plink2's ``.glm.linear``; return rows compared."""
    glm = glm.filter(pl.col("ERRCODE") == ".").with_columns(
        pl.col("BETA", "SE", "T_STAT", "P").cast(pl.Float64), pl.col("OBS_CT").cast(pl.Int64)
    )
    single = glm.group_by("key").len().filter(pl.col("len") == 1)["key"].to_list()
    j = keyed(res).join(
        glm.filter(pl.col("key").is_in(single)),
        left_on=["key", "variant_ref", "variant_alt"],
        right_on=["key", "REF", "A1"],
    )
    assert (j["variant_n_obs"] == j["OBS_CT"]).all()
    assert j["variant_beta"].null_count() == 0
    # plink2 prints 6 significant digits
    assert np.allclose(j["variant_beta"], j["BETA"], rtol=1e-5, atol=1e-6 * j["SE"].min())
    assert np.allclose(j["variant_standard_error"], j["SE"], rtol=1e-5)
    assert np.allclose(j["variant_t"], j["T_STAT"], rtol=1e-5, atol=1e-5)
    assert np.allclose(-np.log10(j["variant_p_value"]), -np.log10(j["P"]), rtol=1e-5, atol=1e-6)
    return j.height


def test_linear_association__matches_plink2_glm_linear_with_missing_calls(
    sim: Cohort, sim_trait: pl.DataFrame, tmp_path: Path
) -> None:
    sim_trait.select("#IID", "ldl", "cov1").write_csv(
        tmp_path / "q.tsv", separator="\t", null_value="NA"
    )
    glm = plink_linear(sim.vcfs[0], tmp_path / "q.tsv", "ldl", ["cov1"], tmp_path / "q")
    res = linear_association(
        sim.store.con,
        sim_trait["participant_id"].to_list(),
        sim_trait.select("participant_id", "ldl"),
        covariates=sim_trait.select("participant_id", "cov1"),
    )
    assert res["variant_n_obs"].max() == sim_trait["ldl"].count()
    assert res.filter(pl.col("variant_n_obs") < 0.95 * sim_trait["ldl"].count()).height > 50
    assert _check_plink(glm, res) > 1000
    assert res["variant_p_value"].min() < 1e-4  # the causal variant of the case status


def test_linear_association__matches_statsmodels_ols_per_variant(
    sim: Cohort, sim_trait: pl.DataFrame
) -> None:
    import statsmodels.api as sm

    from biobank.genomes.reader import genotype_matrix

    res = linear_association(
        sim.store.con,
        None,
        sim_trait.select("participant_id", "ldl"),
        covariates=sim_trait.select("participant_id", "cov1"),
    )
    m = genotype_matrix(sim.store.con, principal=Principal("ada", Role.ADMIN))
    dosage = m.genotypes.to_n_alt(fill=-1)
    info = sim_trait.drop_nulls("ldl").join(m.samples, on="participant_id")
    order = {p: i for i, p in enumerate(m.samples["participant_id"].to_list())}
    cols = np.array([order[p] for p in info["participant_id"].to_list()])
    y = info["ldl"].to_numpy()
    x = info["cov1"].to_numpy()
    row_of = {k: i for i, k in enumerate(m.variants["variant_key"].to_list())}
    fitted = res.filter(pl.col("variant_beta").is_not_null())
    missing_rows = fitted.filter(pl.col("variant_n_obs") < 380)
    assert missing_rows.height >= 10
    for row in pl.concat([missing_rows.head(15), fitted.head(15)]).iter_rows(named=True):
        g = dosage[row_of[row["variant_key"]], cols].astype(float)
        ok = g >= 0
        fit = sm.OLS(y[ok], sm.add_constant(np.column_stack([g[ok], x[ok]]))).fit()
        assert row["variant_n_obs"] == ok.sum()
        assert row["variant_beta"] == pytest.approx(fit.params[1], rel=1e-8, abs=1e-12)
        assert row["variant_standard_error"] == pytest.approx(fit.bse[1], rel=1e-8)
        assert row["variant_t"] == pytest.approx(fit.tvalues[1], rel=1e-8, abs=1e-12)
        assert row["variant_p_value"] == pytest.approx(fit.pvalues[1], rel=1e-7)


@pytest.mark.shared
@pytest.mark.slow
def test_linear_association__matches_plink2_glm_linear_on_1000_genomes(
    kg: Cohort, tmp_path: Path
) -> None:
    """The subset's quantitative ``outcome`` on chr22 with sex as covariate."""
    kg.pheno.select("#IID", "outcome", "sexcov").write_csv(tmp_path / "q.tsv", separator="\t")
    glm = plink_linear(kg.vcfs[1], tmp_path / "q.tsv", "outcome", ["sexcov"], tmp_path / "q")
    res = linear_association(
        kg.store.con,
        kg.pheno["participant_id"].to_list(),
        kg.pheno.select("participant_id", "outcome"),
        covariates=kg.pheno.select("participant_id", "sexcov"),
        variant_filter=VariantFilter(region="22"),
    )
    assert _check_plink(glm, res) > 1000


def test_linear_regression__constant_and_collinear_rows_are_null() -> None:
    rng = np.random.default_rng(4)
    n = 60
    x = rng.normal(size=(n, 1))
    y = rng.normal(size=n)
    g = np.vstack([np.ones(n), x[:, 0], rng.binomial(2, 0.4, n)]).astype(float)
    g[2, :3] = np.nan
    res = linear_regression(g, y, x)
    assert res["beta"].to_list()[:2] == [None, None]
    assert res["p_value"][2] is not None
    assert res["n_obs"].to_list() == [60, 60, 57]


def test_linear_association__suppresses_small_allele_counts(
    sim: Cohort, sim_trait: pl.DataFrame
) -> None:
    res = linear_association(
        sim.store.con,
        None,
        sim_trait.select("participant_id", "ldl"),
        min_count=5,
    )
    small = res.filter(
        pl.col("variant_alt_count").is_null() | pl.col("variant_ref_count").is_null()
    )
    assert small.height > 20
    assert small["variant_suppressed"].all()
    assert small["variant_beta"].null_count() == small.height
    assert small["variant_p_value"].null_count() == small.height
    kept = res.filter(~pl.col("variant_suppressed"))
    assert kept["variant_alt_count"].is_in(range(1, 5)).sum() == 0  # 0 is not a small count
    assert kept["variant_beta"].null_count() < kept.height


def test_linear_association__rejects_a_phenotype_without_one_trait(sim: Cohort) -> None:
    ids = sim.pheno["participant_id"].to_list()
    two = pl.DataFrame({"participant_id": ids, "a": 1.0, "b": 2.0})
    with pytest.raises(ValidationError, match="one numeric trait column"):
        linear_association(sim.store.con, None, two)
    text = pl.DataFrame({"participant_id": ids, "a": "high"})
    with pytest.raises(ValidationError, match=r"phenotype column\(s\) a are not numeric"):
        linear_association(sim.store.con, None, text)
