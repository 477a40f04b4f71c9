"""Field-level record access: an approved request shows its fields and no others.

``rex`` holds an approved HMB request for ``clinical_person.sex`` and
``clinical_condition.code`` only; ``rita`` of the fixture holds one for every
research field (:func:`biobank.testing.access.grant_record_access`).
"""

from __future__ import annotations

import json

import pytest
from conftest import ClinicalStore
from research.access_support import REX, add_access_users, approved

import biobank
from biobank.clinical.cohorts import Diagnosis
from biobank.core.errors import AccessDenied
from biobank.core.store import Store
from biobank.research.workbench import Workbench

FIELDS = ["clinical_person.sex", "clinical_condition.code"]


@pytest.fixture
def rex(clinical_store: ClinicalStore) -> ClinicalStore:
    with Store(clinical_store.path) as store:
        add_access_users(store)
        approved(store, REX, purpose="HMB", fields=FIELDS)
    return clinical_store


def _refusals(wb: Workbench) -> list[dict[str, object]]:
    rows = wb.store.con.execute(
        "SELECT CAST(detail AS VARCHAR) FROM audit_log WHERE action = 'access.refused'"
        " AND user_name = 'rex' ORDER BY entry_id"
    ).fetchall()
    return [json.loads(d) for (d,) in rows]


def test_cohort_and_case_control_show_only_the_approved_fields(rex: ClinicalStore) -> None:
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        mine = wb.cohort()
        cases = wb.case_control(Diagnosis("E11"))
    with biobank.open(rex.path, user="rita", purpose="HMB") as wb:
        full = wb.cohort()
    assert mine.columns == ["participant_id", "sex", "diagnoses"]
    assert {"year_of_birth", "age", "death_date"} <= set(full.columns)
    assert mine.to_dicts() == full.select(mine.columns).to_dicts()
    assert "year_of_birth" not in cases.columns
    assert "is_case" in cases.columns


def test_a_method_needing_an_unapproved_field_is_refused_naming_it(rex: ClinicalStore) -> None:
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        before = len(_refusals(wb))
        with pytest.raises(AccessDenied) as info:
            wb.measurement_values("HbA1c")
        message = str(info.value)
        assert "clinical_measurement.name" in message
        assert "clinical_measurement.value" in message
        assert "--field clinical_measurement.value" in message
        assert "biobank access request" in message
        with pytest.raises(AccessDenied, match=r"genotype_call_all\.dosage"):
            wb.genotype_matrix(region="chr1")
        with pytest.raises(AccessDenied, match=r"genotype_call_all\.dosage"):
            wb.covariates(n_pcs=2)
        new = _refusals(wb)[before:]
    assert [d["reason"] for d in new] == ["fields not approved"] * 3  # once each
    assert new[0]["fields"] == ["clinical_measurement.name", "clinical_measurement.value"]
    # covariates without PCs: only the approved column (male, from sex) is shown
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        assert wb.covariates().columns == ["participant_id", "male"]


def test_sql_loads_only_approved_columns(rex: ClinicalStore) -> None:
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        assert wb.sql("SELECT * FROM person").columns == ["participant_id", "sex"]
        n_codes = wb.sql("SELECT count(DISTINCT code) AS n FROM condition")["n"][0]
        assert n_codes > 0
        with pytest.raises(AccessDenied, match=r"clinical_person\.year_of_birth"):
            wb.sql("SELECT participant_id, year_of_birth FROM person")
        with pytest.raises(AccessDenied, match=r"clinical_measurement\.value"):
            wb.sql("SELECT * FROM measurement")
    with biobank.open(rex.path, user="rita", purpose="HMB") as wb:
        assert "year_of_birth" in wb.sql("SELECT * FROM person").columns


def test_aggregates_are_not_restricted_by_fields(rex: ClinicalStore) -> None:
    """Counts and summaries pass the output checks instead (as without a request)."""
    with biobank.open(rex.path, user="rex", purpose="HMB") as wb:
        assert wb.count() == 7
        assert set(wb.summary().columns) == {"sex", "age_band", "participants"}
