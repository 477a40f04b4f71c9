"""The probes of issue 16, as a new researcher without record-level access would try them.

``rex`` is a researcher with no approved data access request. With purpose HMB
the fixture's participants 1-7 are usable; participant 6 is the only one with
breast cancer (C50), the "one person" each probe tries to single out.
"""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pytest
from conftest import ClinicalStore

import biobank
from biobank.clinical.cohorts import Age, Diagnosis, Not
from biobank.core.access import Principal, Role, add_user, map_login, os_login
from biobank.core.errors import AccessDenied, DisclosureRefused
from biobank.core.store import Store
from biobank.research.output_checks import check_table

#: ICD-10 codes held by participants 1-5 (E11: 1, 2, 5; E10: 4; I21/I25: 3; I10: 5)
FIVE = ("E10", "E11", "I20-I25", "I10")


@pytest.fixture
def rex(clinical_store: ClinicalStore) -> ClinicalStore:
    """The clinical store with ``rex``, a researcher without approved requests."""
    with Store(clinical_store.path) as store, store.transaction() as con:
        admin = Principal("ada", Role.ADMIN)
        add_user(con, admin, "rex", Role.RESEARCHER)
        map_login(con, admin, os_login(), "rex")
    return clinical_store


def _cli(cs: ClinicalStore, *args: str) -> int:
    from biobank.cli import main

    return main(["--store", str(cs.path), "--user", "rex", *args])


def _define(cs: ClinicalStore, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = _cli(cs, "cohort", "define", *args, "--purpose", "HMB", "-f", "json")
    assert code == 0
    (out,) = json.loads(capsys.readouterr().out)
    return out  # type: ignore[no-any-return]


def test_the_issue_differencing_attack_recovers_nothing(
    rex: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """E11 male 56 vs E11+E83 male 57, here: FIVE codes 5 vs FIVE codes + C50 6."""
    codes = [a for c in FIVE for a in ("--diagnosis", c)]
    first = _define(rex, capsys, "five", *codes)
    second = _define(rex, capsys, "six", *codes, "--diagnosis", "C50")
    assert first["participants"] == 5  # the first is released: the check is not "refuse all"
    assert second["participants"] is None
    assert "differencing" in str(second["withheld"])
    with Store(rex.path, read_only=True) as store:
        (entry,) = store.con.execute(
            "SELECT user_name, CAST(detail AS VARCHAR) FROM audit_log"
            " WHERE action = 'disclosure.withheld'"
        ).fetchall()
    assert entry[0] == "rex"
    assert "differencing" in entry[1]


def test_variant_complement__excluding_one_diagnosis_recovers_nothing(rex: ClinicalStore) -> None:
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        everyone = wb.count(Age(min=0, at="2024-01-01"))
        without_c50 = wb.count_release(Age(min=0, at="2024-01-01") & Not(Diagnosis("C50")))
        again = wb.count(Age(min=0, at="2024-01-01"))
    assert everyone == 7
    assert again == 7
    assert without_c50.n is None
    assert "differencing" in str(without_c50.withheld)


def test_variant_summary__two_summaries_of_overlapping_cohorts_are_not_both_shown(
    rex: ClinicalStore,
) -> None:
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        first = wb.summary(Diagnosis(*FIVE))
        with pytest.raises(DisclosureRefused, match="differencing"):
            wb.summary(Diagnosis(*FIVE, "C50"))
        # and a count of the second cohort after its summary was refused is withheld too
        assert wb.count(Diagnosis(*FIVE, "C50")) is None
    # every cell of the first is small (5 people over sex x age band): all withheld
    assert first["participants"].null_count() == first.height


def test_the_count_is_not_given_by_members_or_sql_without_an_approved_request(
    rex: ClinicalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _define(rex, capsys, "bc", "--diagnosis", "C50")
    assert _cli(rex, "cohort", "show", "bc", "--members", "--purpose", "HMB") == 1
    assert "approved data access request" in capsys.readouterr().err
    sql = "SELECT count(*) AS n FROM condition WHERE code_compact LIKE 'C50%'"
    assert _cli(rex, "query", "sql", "--purpose", "HMB", sql, "-f", "json") == 1
    assert "approved data access request" in capsys.readouterr().err
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        for call in (wb.participant_ids, wb.cohort, wb.case_control):
            with pytest.raises(AccessDenied, match="approved data access request"):
                call(Diagnosis("C50"))
    with Store(rex.path, read_only=True) as store:
        refused = store.con.execute(
            "SELECT target FROM audit_log WHERE action = 'access.refused' AND user_name = 'rex'"
            " ORDER BY entry_id"
        ).fetchall()
    library = ["cohort", "sql", "participant_ids", "cohort", "case_control"]
    assert [r[0] for r in refused if r[0] in library] == library  # the CLI adds its own


def test_check_table_agrees_with_a_pandas_crosstab_and_flags_dominance() -> None:
    df = pl.DataFrame(
        {
            "sex": ["female"] * 6 + ["male"] * 7,
            "band": ["60-69"] * 6 + ["60-69"] * 7,
            "cost": [10.0] * 6 + [1.0] * 6 + [500.0],
        }
    )
    counts = check_table(df, "sex", "band")
    expected = pd.crosstab(df["sex"].to_pandas(), df["band"].to_pandas())
    assert counts.table["value"].to_list() == [
        float(expected.loc["female", "60-69"]),
        float(expected.loc["male", "60-69"]),
    ]
    assert counts.status == "pass"
    sums = check_table(df, "sex", "band", values="cost", aggfunc="sum")
    male = sums.table.filter(pl.col("sex") == "male").to_dicts()[0]
    assert male["value"] is None
    assert "NKCheck" in male["withheld"]
    female = sums.table.filter(pl.col("sex") == "female").to_dicts()[0]
    assert female["value"] == 60.0
    assert female["withheld"] == ""
    small = check_table(df.head(8), "sex", "band")
    assert small.table.filter(pl.col("sex") == "male")["withheld"].to_list() == [
        "MinimumThresholdCheck"
    ]


def test_checked_count__the_library_call_for_services_applies_the_same_checks(
    rex: ClinicalStore,
) -> None:
    from biobank.research.output_checks import checked_count

    rex_p, rita = Principal("rex", Role.RESEARCHER), Principal("rita", Role.RESEARCHER)
    with Store(rex.path) as store:
        assert checked_count(store, rex_p, Diagnosis(*FIVE), purpose="HMB").n == 5
        second = checked_count(store, rex_p, Diagnosis(*FIVE, "C50"), purpose="HMB")
        assert second.n is None
        assert "differencing" in str(second.withheld)
        # rita holds an approved HMB request (the fixture's): record-level, no differencing
        assert checked_count(store, rita, Diagnosis(*FIVE), purpose="HMB").n == 5
        assert checked_count(store, rita, Diagnosis(*FIVE, "C50"), purpose="HMB").n == 6
        assert checked_count(store, rita, Diagnosis("C50"), purpose="HMB").n is None  # small


def test_variant_frequencies__allele_counts_of_two_overlapping_cohorts_are_not_both_shown(
    genotyped_store: ClinicalStore, tmp_path: object
) -> None:
    import shutil
    from pathlib import Path

    path = Path(str(tmp_path)) / "g.duckdb"
    for suffix in ("", ".key", ".audit-head"):
        shutil.copy(str(genotyped_store.path) + suffix, str(path) + suffix)
    with Store(path) as store, store.transaction() as con:
        add_user(con, Principal("ada", Role.ADMIN), "rex", Role.RESEARCHER)
    with biobank.open(path, user="rex", purpose="HMB") as wb:
        first = wb.frequencies(Diagnosis(*FIVE))
        assert first.height > 0
        with pytest.raises(DisclosureRefused, match="differencing"):
            wb.frequencies(Diagnosis(*FIVE, "C50"))
