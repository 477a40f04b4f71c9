"""Tests for Workbench.linear and Workbench.measurement_values (quantitative traits from the
clinical tables), against statsmodels' OLS on the tiny demo center; and the workbench's
``tests=`` of association."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import biobank
from biobank.core.errors import ValidationError
from biobank.core.store import Store


def _latest_ldl(store_path: Path) -> pl.DataFrame:
    """The latest LDL-C per participant, straight from the table (mean of the latest date)."""
    with Store(store_path, read_only=True) as store:
        return store.con.execute(
            """
            SELECT participant_id, avg(value) AS ldl FROM clinical_measurement m
            WHERE name = 'LDL-C' AND measured_on = (
                SELECT max(measured_on) FROM clinical_measurement x
                WHERE x.participant_id = m.participant_id AND x.name = 'LDL-C')
            GROUP BY participant_id
            """
        ).pl()


def test_linear__ldl_matches_statsmodels_ols_with_covariates(demo_store: Path) -> None:
    import statsmodels.api as sm

    with biobank.open(demo_store, user="researcher", purpose="HMB", min_count=1) as wb:
        trait = wb.measurement_values("LDL-C")
        res = wb.linear("ldl-c", covariates=("age", "male"))  # case-insensitive name
        cov = wb.covariates()
        fitted = res.filter(pl.col("variant_beta").is_not_null()).sort("variant_p_value")
        # dosages() leaves males' haploid chrX calls out; the regression codes them 0/2
        fitted = fitted.filter(pl.col("variant_contig") != "chrX")
        assert fitted.height >= 3
        checks = {}
        for row in fitted.head(4).iter_rows(named=True):
            checks[row["variant_key"]] = wb.dosages(
                variant=f"{row['variant_contig']}:{row['variant_position']}"
            )
        permitted = set(wb.participant_ids())
    ref = _latest_ldl(demo_store).filter(pl.col("participant_id").is_in(permitted))
    assert trait.sort("participant_id")["LDL-C"].to_list() == pytest.approx(
        ref.sort("participant_id")["ldl"].to_list(), rel=1e-12
    )
    for row in fitted.head(4).iter_rows(named=True):
        data = ref.join(cov, on="participant_id").join(
            checks[row["variant_key"]], on="participant_id"
        )
        x = sm.add_constant(data.select("genotype", "age", "male").to_numpy().astype(float))
        fit = sm.OLS(data["ldl"].to_numpy(), x).fit()
        assert row["variant_n_obs"] == data.height
        assert row["variant_beta"] == pytest.approx(fit.params[1], rel=1e-8)
        assert row["variant_standard_error"] == pytest.approx(fit.bse[1], rel=1e-8)
        assert row["variant_p_value"] == pytest.approx(fit.pvalues[1], rel=1e-6)
    # the demo's LDLR stop-gain carriers have LDL-C raised by 2.6 mmol/L (genes are not
    # annotated in this store: the strongest association is that variant)
    top = fitted.row(0, named=True)
    assert top["variant_beta"] > 1.0
    assert top["variant_p_value"] < 1e-6


def test_measurement_values__mean_rule_and_errors(demo_store: Path) -> None:
    with biobank.open(demo_store, user="researcher", purpose="HMB") as wb:
        latest = wb.measurement_values("HbA1c")
        mean = wb.measurement_values("HbA1c", rule="mean")
        with pytest.raises(
            ValidationError,
            match=r"no permitted participant has a measurement "
            r"'HbA2c': measurements are .*HbA1c",
        ):
            wb.measurement_values("HbA2c")
        with pytest.raises(ValidationError, match="rule must be 'latest' or 'mean', not 'max'"):
            wb.measurement_values("HbA1c", rule="max")
    assert latest["participant_id"].equals(mean["participant_id"])
    with Store(demo_store, read_only=True) as store:
        ref = store.con.execute(
            "SELECT participant_id, avg(value) AS v FROM clinical_measurement"
            " WHERE name = 'HbA1c' GROUP BY 1 ORDER BY 1"
        ).pl()
    j = mean.join(ref, on="participant_id")
    assert j.height == mean.height
    assert np.allclose(j["HbA1c"], j["v"], rtol=1e-12)
    assert (latest["HbA1c"] != mean["HbA1c"]).sum() > 10  # repeated measurements differ


def test_linear__is_audited_and_suppresses_small_counts(demo_store: Path) -> None:
    with biobank.open(demo_store, user="researcher", purpose="HMB") as wb:
        res = wb.linear("LDL-C", covariates=())
    assert res.filter(pl.col("variant_suppressed")).height > 0
    assert res.filter(pl.col("variant_alt_count").is_in(range(1, 5))).height == 0
    with Store(demo_store, read_only=True) as store:
        row = store.con.execute(
            "SELECT target, detail FROM audit_log WHERE action = 'research.linear'"
            " ORDER BY entry_id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    detail = json.loads(row[1])
    assert (row[0], detail["measurement"], detail["covariates"]) == ("all", "LDL-C", [])
    assert detail["rows"] > 150


def test_association__lrt_and_score_through_the_workbench(demo_store: Path) -> None:
    with biobank.open(demo_store, user="researcher", purpose="HMB") as wb:
        res = wb.association(biobank.Diagnosis("E78"), tests=["score", "lrt"])
    assert res["variant_fisher_p_value"].null_count() == res.height
    assert res["variant_score_p_value"].drop_nulls().min() < 1e-4
    assert res["variant_lrt_p_value"].drop_nulls().len() > 0


def test_cli__query_linear_tsv_has_every_column_and_table_fits(
    demo_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from biobank.cli import main

    for name in ("BIOBANK_STORE", "BIOBANK_USER", "BIOBANK_PURPOSE"):
        monkeypatch.delenv(name, raising=False)
    base = ["--store", str(demo_store), "--user", "researcher", "query"]
    linear = [*base, "linear", "--purpose", "HMB", "--measurement", "LDL-C", "--region", "chr1"]
    assert main([*linear, "-f", "tsv"]) == 0
    rows = pl.read_csv(io.StringIO(capsys.readouterr().out), separator="\t")
    assert {"variant_beta", "variant_t", "variant_p_value", "variant_n_obs"} <= set(rows.columns)
    assert rows.height > 100
    monkeypatch.setenv("COLUMNS", "80")
    assert main(linear) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    # gene and consequence are all null in this unannotated store: not shown
    assert lines[0].split()[:5] == ["variant", "ALT", "n", "beta", "SE"]
