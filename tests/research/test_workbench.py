"""Tests for biobank.research.workbench: roles, consent, audit, small counts and the SQL sandbox."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from conftest import ClinicalStore

import biobank
from biobank.clinical.cohorts import Diagnosis, Lab, Sex
from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, NotFoundError, StoreError, ValidationError
from biobank.core.store import Store
from biobank.registry.consent import withdraw_consent
from biobank.research.workbench import suppress_small_counts


def _audit_actions(cs: ClinicalStore, prefix: str) -> list[tuple[str, str, dict[str, object]]]:
    with Store(cs.path, read_only=True) as store:
        rows = store.con.execute(
            "SELECT user_name, action, CAST(detail AS VARCHAR) FROM audit_log"
            " WHERE action LIKE ? ORDER BY entry_id",
            [prefix + "%"],
        ).fetchall()
    return [(u, a, json.loads(d)) for u, a, d in rows]


@pytest.mark.parametrize("user", ["ada", "reg", "aud"])
def test_open__only_researchers_may_query(clinical_store: ClinicalStore, user: str) -> None:
    with pytest.raises(AccessDenied, match="researcher"):
        biobank.open(clinical_store.path, user=user, purpose="HMB")


def test_open__unknown_user_and_bad_purpose_are_refused(clinical_store: ClinicalStore) -> None:
    with pytest.raises(NotFoundError, match="no active user 'mallory'"):
        biobank.open(clinical_store.path, user="mallory", purpose="HMB")
    with pytest.raises(ValidationError, match="purpose 'cure everything'"):
        biobank.open(clinical_store.path, user="rita", purpose="cure everything")
    with pytest.raises(StoreError, match="does not exist"):
        biobank.open(clinical_store.path.with_name("nope.duckdb"), user="rita", purpose="HMB")


def test_cohort__returns_attributes_and_is_audited(clinical_store: ClinicalStore) -> None:
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        df = wb.cohort(Diagnosis("E11"), at=dt.date(2020, 6, 1))
    assert df["participant_id"].to_list() == sorted(clinical_store.pid(i) for i in (1, 2, 5, 9))
    row = df.filter(pl.col("participant_id") == clinical_store.pid(5)).to_dicts()[0]
    assert row["sex"] == "male"
    assert row["age"] == 2020 - 1965
    assert row["diagnoses"] == ["E11.2", "I10.x00x002"]
    entries = _audit_actions(clinical_store, "research.cohort")
    assert entries[-1][0] == "rita"
    assert entries[-1][2]["rows"] == 4
    assert entries[-1][2]["purpose"] == "DS:E11"


def test_saved_cohort__reevaluated_after_withdrawal(clinical_store: ClinicalStore) -> None:
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        wb.define_cohort("t2d", Diagnosis("E11") & Lab("HbA1c", ">=", 6.5), description="T2D")
        before = wb.participant_ids("t2d")
        assert clinical_store.pid(2) in before
        withdraw_consent(
            wb.store,
            Principal("reg", Role.REGISTRAR),
            clinical_store.pid(2),
            withdrawn_date=dt.date(2024, 1, 1),
            reason="participant asked",
        )
        after = wb.participant_ids("t2d")
        assert wb.cohorts()["name"].to_list() == ["t2d"]
    assert set(before) - set(after) == {clinical_store.pid(2)}


def test_case_control__labels_and_audit(clinical_store: ClinicalStore) -> None:
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        df = wb.case_control(Diagnosis("E11") & Lab("HbA1c", ">=", 6.5, which="latest"))
    cases = set(df.filter(pl.col("is_case"))["participant_id"].to_list())
    controls = set(df.filter(~pl.col("is_case"))["participant_id"].to_list())
    assert cases == {clinical_store.pid(i) for i in (2, 5, 9)}
    assert controls == {clinical_store.pid(i) for i in (3, 4, 6, 7)}
    assert _audit_actions(clinical_store, "research.case_control")[-1][2]["cases"] == 3


def test_count_and_summary__suppress_small_counts(clinical_store: ClinicalStore) -> None:
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        assert wb.count() == 8
        assert wb.count(Diagnosis("E11")) is None  # 4 < 5
        assert wb.count(Diagnosis("J45")) is None
        assert wb.count(Diagnosis("Z99")) == 0
        summary = wb.summary()
    assert summary["participants"].null_count() == summary.height  # every cell is below 5


def test_suppress_small_counts__keeps_zero_and_large() -> None:
    df = pl.DataFrame({"n": [0, 1, 4, 5, 100], "x": [1, 1, 1, 1, 1]})
    out = suppress_small_counts(df, ["n"], min_count=5)
    assert out["n"].to_list() == [0, None, None, 5, 100]
    assert out["x"].to_list() == [1, 1, 1, 1, 1]


# -- SQL sandbox ---------------------------------------------------------------


def test_sql__sees_only_permitted_participants(clinical_store: ClinicalStore) -> None:
    withdrawn = clinical_store.pid(2)
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        assert wb.sql("SELECT count(*) AS n FROM person")["n"].item() == 8
        withdraw_consent(
            wb.store,
            Principal("reg", Role.REGISTRAR),
            withdrawn,
            withdrawn_date=dt.date(2024, 1, 1),
            reason="withdrew",
        )
        ids = wb.sql("SELECT participant_id FROM person")["participant_id"].to_list()
        codes = wb.sql(
            "WITH t AS (SELECT participant_id FROM condition WHERE code_compact LIKE 'E11%')"
            " SELECT participant_id FROM t"
        )["participant_id"].to_list()
    assert withdrawn not in ids
    assert len(ids) == 7
    assert withdrawn not in codes
    assert clinical_store.pid(10) not in ids  # DS:C50 consent does not cover DS:E11
    entries = _audit_actions(clinical_store, "research.sql")
    assert len(entries) == 3
    assert entries[0][2]["tables"] == ["person"]


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("SELECT * FROM recontact_identifier", "not research tables: recontact_identifier"),
        ("SELECT * FROM consent", "not research tables: consent"),
        ("SELECT * FROM audit_log", "not research tables: audit_log"),
        (
            "SELECT * FROM person WHERE participant_id IN"
            " (SELECT participant_id FROM recontact_identifier)",
            "recontact_identifier",
        ),
        ("SELECT * FROM main.app_user", "app_user"),
        ("SELECT * FROM other.main.person", "qualified table"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table functions"),
        ("SELECT * FROM duckdb_tables()", "table functions"),
        ("SELECT * FROM '/etc/passwd'", "not research tables"),
        ("DELETE FROM person", "only SELECT"),
        ("COPY (SELECT * FROM person) TO '/tmp/leak.csv'", "only SELECT"),
        ("SELECT * FROM query_table('consent')", "table functions"),
        ("SELECT * FROM person, LATERAL (SELECT * FROM specimen)", "specimen"),
        ("ATTACH 'x.duckdb' AS x", "only SELECT"),
        ("PRAGMA show_tables", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_sql__refuses_non_research_access(
    clinical_store_ro: ClinicalStore, query: str, match: str
) -> None:
    with (
        biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb,
        pytest.raises(ValidationError, match=match),
    ):
        wb.sql(query)


def test_sql__sandbox_cannot_read_files_or_python_objects(clinical_store_ro: ClinicalStore) -> None:
    secret = pl.DataFrame({"x": [1]})  # noqa: F841 - a replacement scan would find it
    with biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb:
        with pytest.raises(ValidationError, match="not research tables: secret"):
            wb.sql("SELECT * FROM secret")
        assert wb.sql("SELECT current_setting('enable_external_access') AS v")["v"].item() is False


def test_sql__bad_column_is_a_store_error(clinical_store_ro: ClinicalStore) -> None:
    with (
        biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb,
        pytest.raises(StoreError, match="national_id"),
    ):
        wb.sql("SELECT national_id FROM person")


def test_workbench__criteria_are_exported_from_the_package() -> None:
    assert biobank.Diagnosis is Diagnosis
    assert biobank.Sex is Sex
    assert "open" in biobank.__all__


# -- genotypes (tests/data/clinical/genotypes.vcf: sample S0i is participant i) --------


def test_frequencies__hand_counted_and_small_counts_suppressed(
    genotyped_store: ClinicalStore,
) -> None:
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11", min_count=1) as wb:
        exact = wb.frequencies().sort("variant_position")
    # permitted for DS:E11: S01-S07, S09. rs1 = 0/1 1/1 0/0 0/0 0/1 0/0 0/0 . 0/1
    rs1 = exact.row(0, named=True)
    assert (rs1["variant_n_het"], rs1["variant_n_hom_alt"], rs1["variant_n_hom_ref"]) == (3, 1, 4)
    assert rs1["variant_alt_allele_frequency"] == pytest.approx(5 / 16)
    rs3 = exact.row(2, named=True)  # S01 is ./.
    assert rs3["variant_call_rate"] == pytest.approx(7 / 8)
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        safe = wb.frequencies(variant_ids=["rs1", "rs3"]).sort("variant_position")
    # rs1 has 1 hom-alt, rs3 has 1 ALT allele: below 5, so counts and frequency are hidden
    assert safe["variant_suppressed"].to_list() == [True, True]
    assert safe["variant_alt_allele_count"].to_list() == [None, None]
    assert safe["variant_alt_allele_frequency"].to_list() == [None, None]
    assert safe["variant_n_samples"].to_list() == [8, 8]


def test_carriers__joined_with_clinical_attributes_and_consent(
    genotyped_store: ClinicalStore,
) -> None:
    pid = genotyped_store.pid
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        df = wb.carriers(variant_ids="rs1")
        in_t2d = wb.carriers(Diagnosis("E11") & Sex("male"), variant_ids="rs1")
    # S08 (person 8, POA consent) carries rs1 but may not be used for DS:E11
    assert set(df["participant_id"]) == {pid(1), pid(2), pid(5), pid(9)}
    row = df.filter(pl.col("participant_id") == pid(2)).row(0, named=True)
    assert (row["call_dosage"], row["sex"], row["diagnoses"]) == (2, "female", ["E11.900x001"])
    assert set(in_t2d["participant_id"]) == {pid(1), pid(5), pid(9)}
    with biobank.open(genotyped_store.path, user="rita", purpose="HMB") as wb:
        hmb = wb.carriers(variant_ids="rs1")
    assert pid(9) not in set(hmb["participant_id"])  # DS:E11 consent does not permit HMB


def test_association__fisher_matches_scipy_on_hand_counted_table(
    genotyped_store: ClinicalStore,
) -> None:
    from scipy.stats import fisher_exact

    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11", min_count=1) as wb:
        res = wb.association(Diagnosis("E11"), variant_ids="rs1", covariates=())
    # cases 1, 2, 5, 9: rs1 dosages 1, 2, 1, 1 -> 5 ALT, 3 REF; controls 3, 4, 6, 7: 0 ALT, 8 REF
    row = res.row(0, named=True)
    assert (row["variant_case_alt_count"], row["variant_control_alt_count"]) == (5, 0)
    expected = fisher_exact([[5, 3], [0, 8]]).pvalue
    assert row["variant_fisher_p_value"] == pytest.approx(expected)


def test_survival__by_genotype_agrees_with_statsmodels(genotyped_store: ClinicalStore) -> None:
    from statsmodels.duration.hazard_regression import PHReg

    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        result = wb.survival(None, variant="rs2", origin="enrolment", covariates=())
    data = result.data.sort("participant_id")
    assert data.height == 8
    p6 = data.filter(pl.col("participant_id") == genotyped_store.pid(6)).row(0, named=True)
    assert p6["genotype"] == 2  # S06 is 1/1 at rs2
    assert p6["time"] == pytest.approx((dt.date(2020, 10, 10) - dt.date(2008, 9, 9)).days / 365.25)
    sm = PHReg(
        data["time"].to_numpy(),
        data.select("genotype").to_numpy().astype(float),
        status=data["event"].to_numpy(),
        ties="efron",
    ).fit()
    assert result.cox["coef"][0] == pytest.approx(float(sm.params[0]), abs=1e-5)
    assert result.km.height == 0  # every genotype group has fewer than 5 participants


def test_dosages__refuses_more_than_one_variant(genotyped_store: ClinicalStore) -> None:
    with (
        biobank.open(genotyped_store.path, user="rita", purpose="HMB") as wb,
        pytest.raises(ValidationError, match="selects 3 variants"),
    ):
        wb.dosages(variant="chr1:1-1000")


def test_genotype_matrix__cohort_by_region(genotyped_store: ClinicalStore) -> None:
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        m = wb.genotype_matrix(Diagnosis("E11"), region="chr1:1-1000")
    assert m.genotypes.shape == (3, 4, 2)
    assert m.genotypes.count_alleles()[0].tolist() == [3, 5]  # rs1 in cases: 3 REF, 5 ALT


# -- command line ----------------------------------------------------------------------


def _cli(cs: ClinicalStore, user: str, *args: str) -> int:
    from biobank.cli import main

    return main(["--store", str(cs.path), "--user", user, *args])


def test_cli__cohort_define_show_and_sql(
    clinical_store: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(
        clinical_store,
        "rita",
        "cohort",
        "define",
        "t2d",
        "--purpose",
        "DS:E11",
        "--diagnosis",
        "E11",
        "--lab",
        "HbA1c>=6.5",
        "--latest",
        "-f",
        "json",
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out[0]["participants"] is None  # 3 members: below the small-count threshold
    assert json.loads(out[0]["definition"])["type"] == "and"
    assert _cli(clinical_store, "rita", "cohort", "list", "--purpose", "DS:E11", "-f", "csv") == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("t2d,")
    assert (
        _cli(
            clinical_store,
            "rita",
            "cohort",
            "show",
            "t2d",
            "--members",
            "--purpose",
            "DS:E11",
            "-f",
            "json",
        )
        == 0
    )
    members = json.loads(capsys.readouterr().out)
    assert {m["participant_id"] for m in members} == {clinical_store.pid(i) for i in (2, 5, 9)}
    code = _cli(
        clinical_store,
        "rita",
        "query",
        "sql",
        "--purpose",
        "HMB",
        "SELECT count(*) AS n FROM person",
        "-f",
        "json",
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 7}]


def test_cli__research_query_refused_for_registrar(
    clinical_store_ro: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(
        clinical_store_ro, "reg", "query", "sql", "--purpose", "HMB", "SELECT 1 AS x FROM person"
    )
    assert code == 1
    assert "research queries need the 'researcher' role" in capsys.readouterr().err


def test_cli__sql_on_recontact_table_is_refused(
    clinical_store_ro: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(
        clinical_store_ro,
        "rita",
        "query",
        "sql",
        "--purpose",
        "HMB",
        "SELECT * FROM recontact_identifier",
    )
    assert code == 1
    assert "not research tables: recontact_identifier" in capsys.readouterr().err


def test_cli__carriers_lists_clinical_attributes(
    genotyped_store: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        _cli(
            genotyped_store,
            "rita",
            "query",
            "carriers",
            "--purpose",
            "DS:E11",
            "--variant",
            "rs1",
            "-f",
            "csv",
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5  # header + 4 carriers
    assert "diagnoses" in lines[0]


def test_burden__collapses_carriers_per_gene(genotyped_store: ClinicalStore) -> None:
    from scipy.stats import fisher_exact

    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11", min_count=1) as wb:
        res = wb.burden(Diagnosis("E11"), genes=["GENEA"], max_frequency=0.5, covariates=())
    row = res.row(0, named=True)
    # GENEA: rs1 (missense) and rs3 (stop_gained). Case carriers 1, 2, 5, 9 (rs1); of the
    # controls 3, 4, 6, 7 only person 4 carries (rs3)
    assert (row["gene_case_carriers"], row["gene_n_cases"]) == (4, 4)
    assert (row["gene_control_carriers"], row["gene_n_controls"]) == (1, 4)
    assert row["gene_fisher_p_value"] == pytest.approx(fisher_exact([[4, 0], [1, 3]]).pvalue)


def test_participant_ids_and_covariates__are_audited(clinical_store: ClinicalStore) -> None:
    with biobank.open(clinical_store.path, user="rita", purpose="DS:E11") as wb:
        ids = wb.participant_ids(Sex("female"))
        cov = wb.covariates(Sex("female"), at=dt.date(2020, 1, 1))
    assert ids == sorted(clinical_store.pid(i) for i in (2, 4, 6))
    assert cov.sort("age")["age"].to_list() == [50.0, 58.0, 65.0]  # born 1970, 1962, 1955
    assert cov["male"].to_list() == [0.0, 0.0, 0.0]
    assert [e[2]["rows"] for e in _audit_actions(clinical_store, "research.ids")] == [3]
    assert [e[2]["rows"] for e in _audit_actions(clinical_store, "research.covariates")] == [3]


def test_sql__genotype_tables_hold_only_permitted_samples(genotyped_store: ClinicalStore) -> None:
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        samples = wb.sql("SELECT sample_id FROM genotype_sample ORDER BY 1")["sample_id"]
        calls = wb.sql(
            "SELECT count(*) AS n FROM genotype_call c JOIN genotype_sample s USING (sample_key)"
        )["n"]
    assert samples.to_list() == ["S01", "S02", "S03", "S04", "S05", "S06", "S07", "S09"]
    # stored (non hom-ref or missing) calls of those samples: rs1 4, rs2 4, rs3 2 (one ./.), rs4 7
    assert calls.item() == 17
