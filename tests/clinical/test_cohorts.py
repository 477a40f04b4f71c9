"""Tests for biobank.clinical.cohorts: criteria, their SQL, JSON round trips, saved definitions.

Expected members are worked out by hand from tests/data/clinical/good (see the comments).
Consents (participants.csv): 1-3, 5, 7 HMB; 4, 6 GRU; 8 POA; 9 DS:E11; 10 DS:C50. So purpose
DS:E11 may use persons 1-7 and 9.
"""

from __future__ import annotations

import pytest
from conftest import ClinicalStore
from hypothesis import given, settings
from hypothesis import strategies as st

from biobank.clinical.cohorts import (
    Age,
    Criterion,
    Diagnosis,
    Died,
    InStudy,
    Lab,
    Sex,
    case_control_sql,
    cohort_sql,
    criterion_from_options,
    get_cohort,
    list_cohorts,
    parse_lab,
    save_cohort,
)
from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ConflictError, NotFoundError, ValidationError
from biobank.core.store import Store

RESEARCHER = Principal("rita", Role.RESEARCHER, purpose="DS:E11")


def _members(cs: ClinicalStore, criterion: Criterion | None, purpose: str = "DS:E11") -> set[int]:
    sql, params = cohort_sql(criterion, purpose=purpose)
    with Store(cs.path, read_only=True) as store:
        ids = {r[0] for r in store.con.execute(sql, params).fetchall()}
    index = {pid: i for i, (_, pid) in enumerate(cs.ids, start=1)}
    return {index[p] for p in ids}


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        (None, {1, 2, 3, 4, 5, 6, 7, 9}),
        # E11 hierarchy: E11.9, E11.900x001, E11.2, E11 (not E10.9 of person 4)
        (Diagnosis("E11"), {1, 2, 5, 9}),
        (Diagnosis("E11.9"), {1, 2}),
        (Diagnosis("I20-I25"), {3}),  # person 10 (I20.0) has no consent for DS:E11
        (Diagnosis("E10", "E11"), {1, 2, 4, 5, 9}),
        (Diagnosis("I10"), {5}),  # I10.x00x002
        (~Diagnosis("E11"), {3, 4, 6, 7}),
        (Sex("F"), {2, 4, 6}),
        (Age(min=60, at="2020-01-01"), {1, 2, 3}),  # born 1950, 1955, 1960
        (Age(max=48, at="2020-01-01"), {7, 9}),  # born 1972, 1980 (1975 and 1985: no consent)
        (Diagnosis("E11", min_age=60), {1, 2}),  # 2010-1950, 2015-1955; not 54 or 41
        (Diagnosis("E11", after="2015-01-01"), {2, 5, 9}),
        (Diagnosis("E11", before="2015-12-31", after="2011-01-01"), {2}),
        (Lab("HbA1c", ">=", 6.5), {1, 2, 4, 5, 9}),  # any value; 6.5 itself counts
        (Lab("hba1c", ">=", 6.5, which="latest"), {2, 4, 5, 9}),  # person 1 fell to 6.0
        (Lab("HbA1c", "<", 6.5, before="2019-01-01"), {3, 7}),  # 5.4 (2018), 5.6 (2011)
        (Lab("LDL-C", ">", 3.0), {1}),
        (Died(), {1, 3, 6}),
        (Died(causes=("I20-I25",)), {1, 3}),
        (Died(before="2021-01-01"), {6}),
        (Diagnosis("E11") & Sex("male"), {1, 5, 9}),
        (Died() | Sex("female"), {1, 2, 3, 4, 6}),
        (Diagnosis("E11") & ~Died(), {2, 5, 9}),
        (~(Sex("female") | Diagnosis("E11")), {3, 7}),
        (InStudy("CAD"), {2, 3}),
        (InStudy("CAD") & ~Diagnosis("I20-I25"), {2}),
    ],
)
def test_cohort_sql__selects_hand_checked_members(
    clinical_store_ro: ClinicalStore, criterion: Criterion | None, expected: set[int]
) -> None:
    assert _members(clinical_store_ro, criterion) == expected


def test_cohort_sql__purpose_restricts_the_universe(clinical_store_ro: ClinicalStore) -> None:
    assert _members(clinical_store_ro, None, "GRU") == {4, 6}
    assert _members(clinical_store_ro, None, "HMB") == {1, 2, 3, 4, 5, 6, 7}
    assert _members(clinical_store_ro, Diagnosis("C50"), "DS:C50.9") == {6}
    assert _members(clinical_store_ro, None, "POA") == {4, 6, 8}


def test_case_control__excludes_controls_with_the_case_code(
    clinical_store_ro: ClinicalStore,
) -> None:
    cases = Diagnosis("E11") & Lab("HbA1c", ">=", 6.5, which="latest")
    sql, params = case_control_sql(cases, purpose="DS:E11")
    index = {pid: i for i, (_, pid) in enumerate(clinical_store_ro.ids, start=1)}
    with Store(clinical_store_ro.path, read_only=True) as store:
        rows = {index[p]: c for p, c in store.con.execute(sql, params).fetchall()}
    # person 1 has E11 but a latest HbA1c of 6.0: neither case nor control
    assert rows == {2: True, 5: True, 9: True, 3: False, 4: False, 6: False, 7: False}


def test_case_control__controls_criterion_is_applied(clinical_store_ro: ClinicalStore) -> None:
    sql, params = case_control_sql(Diagnosis("E11"), Sex("female"), purpose="DS:E11")
    with Store(clinical_store_ro.path, read_only=True) as store:
        rows = store.con.execute(sql, params).fetchall()
    index = {pid: i for i, (_, pid) in enumerate(clinical_store_ro.ids, start=1)}
    assert {index[p]: c for p, c in rows} == {
        1: True,
        2: True,
        5: True,
        9: True,
        4: False,
        6: False,
    }


def test_criterion__json_round_trip() -> None:
    c = (Diagnosis("e11", "I20-I25", after="2010-01-01") & ~Lab("HbA1c", ">=", 6.5)) | (
        Sex("M") & Age(min=40, at="2024-01-01") & Died(causes=("I21",))
    )
    again = Criterion.from_json(c.to_json())
    assert again == c
    assert again.to_dict()["args"][0]["args"][0]["codes"] == ["E11", "I20-I25"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"type": "diagnosis", "codes": ["E1"]}, "not an ICD-10 code"),
        ({"type": "lab", "name": "HbA1c", "op": "=>", "value": 6.5}, "operator"),
        ({"type": "sex", "sex": "x"}, "female or male"),
        ({"type": "planet"}, "unknown criterion type"),
        ({"type": "age"}, "Age needs min or max"),
        ({"type": "diagnosis", "codes": ["E11"], "colour": 1}, "bad fields"),
        ({"type": "diagnosis", "codes": ["E11"], "after": "2020-31-01"}, "YYYY-MM-DD"),
    ],
)
def test_criterion__invalid_definitions_are_refused(data: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Criterion.from_dict(data)


def test_save_cohort__definition_is_saved_and_audited(clinical_store: ClinicalStore) -> None:
    crit = Diagnosis("E11") & Lab("HbA1c", ">=", 6.5)
    with Store(clinical_store.path) as store:
        save_cohort(store, RESEARCHER, "t2d", crit, description="T2D with HbA1c")
        assert get_cohort(store.con, "t2d") == crit
        assert list_cohorts(store.con)["name"].to_list() == ["t2d"]
        with pytest.raises(ConflictError, match="exists"):
            save_cohort(store, RESEARCHER, "t2d", Diagnosis("E10"))
        save_cohort(store, RESEARCHER, "t2d", Diagnosis("E10"), replace=True)
        assert get_cohort(store.con, "t2d") == Diagnosis("E10")
        actions = store.con.execute(
            "SELECT action FROM audit_log WHERE action = 'cohort.define'"
        ).fetchall()
        assert len(actions) == 2
        with pytest.raises(NotFoundError, match="no saved cohort named 'nope'"):
            get_cohort(store.con, "nope")


def test_save_cohort__needs_researcher_and_a_valid_name(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path) as store:
        with pytest.raises(AccessDenied, match="research_read"):
            save_cohort(store, Principal("reg", Role.REGISTRAR), "x", Diagnosis("E11"))
        with pytest.raises(ValidationError, match="starts with a letter"):
            save_cohort(store, RESEARCHER, "1; drop table", Diagnosis("E11"))


def test_parse_lab__reads_name_operator_value() -> None:
    assert parse_lab("HbA1c>=6.5") == Lab("HbA1c", ">=", 6.5)
    assert parse_lab(" LDL-C < 3.4 ", which="latest") == Lab("LDL-C", "<", 3.4, which="latest")
    with pytest.raises(ValidationError, match="NAME OP VALUE"):
        parse_lab("HbA1c high")


def test_criterion_from_options__ands_the_options() -> None:
    crit = criterion_from_options(
        diagnoses=["E11"], exclude_diagnoses=["E10"], sex="f", labs=["HbA1c>=6.5"], died=False
    )
    assert (
        crit
        == Diagnosis("E11") & ~Diagnosis("E10") & Sex("female") & Lab("HbA1c", ">=", 6.5) & ~Died()
    )
    assert criterion_from_options() is None
    with pytest.raises(ValidationError, match="needs --diagnosis"):
        criterion_from_options(diagnosed_after="2020-01-01")


# -- property test: the SQL agrees with a plain-Python reading of the fixture CSVs --------

_OPS = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _fixture_tables() -> dict[str, list[dict[str, str]]]:
    import csv

    from conftest import CLINICAL

    out = {}
    for name in ("person", "condition_occurrence", "measurement", "death"):
        with open(CLINICAL / "good" / f"{name}.csv", encoding="utf-8") as fh:
            out[name] = list(csv.DictReader(fh))
    return out


def _python_eval(c: Criterion, person: int, t: dict[str, list[dict[str, str]]]) -> bool:
    import datetime as dt

    from biobank.clinical.cohorts import And, Not, Or
    from biobank.core import icd10

    d = dt.date.fromisoformat
    p = next(r for r in t["person"] if int(r["person_id"]) == person)
    yob = int(p["year_of_birth"])
    if isinstance(c, And):
        return all(_python_eval(a, person, t) for a in c.args)
    if isinstance(c, Or):
        return any(_python_eval(a, person, t) for a in c.args)
    if isinstance(c, Not):
        return not _python_eval(c.arg, person, t)
    if isinstance(c, Sex):
        return {"F": "female", "M": "male"}[p["gender_source_value"]] == c.sex
    if isinstance(c, Age):
        assert c.at is not None
        age = c.at.year - yob
        return (c.min is None or age >= c.min) and (c.max is None or age <= c.max)
    if isinstance(c, Diagnosis):
        for r in t["condition_occurrence"]:
            start = d(r["condition_start_date"])
            if (
                int(r["person_id"]) == person
                and any(icd10.matches(r["condition_source_value"], pat) for pat in c.codes)
                and (c.after is None or start >= c.after)
                and (c.before is None or start <= c.before)
                and (c.min_age is None or start.year - yob >= c.min_age)
                and (c.max_age is None or start.year - yob <= c.max_age)
            ):
                return True
        return False
    if isinstance(c, Lab):
        rows = [
            r
            for r in t["measurement"]
            if int(r["person_id"]) == person
            and r["measurement_source_value"].lower() == c.name.lower()
            and (c.after is None or d(r["measurement_date"]) >= c.after)
            and (c.before is None or d(r["measurement_date"]) <= c.before)
        ]
        if c.which == "latest":
            rows = sorted(rows, key=lambda r: r["measurement_date"])[-1:]
        return any(_OPS[c.op](float(r["value_as_number"]), c.value) for r in rows)
    if isinstance(c, Died):
        for r in t["death"]:
            day = d(r["death_date"])
            if (
                int(r["person_id"]) == person
                and (c.after is None or day >= c.after)
                and (c.before is None or day <= c.before)
                and (
                    not c.causes
                    or any(icd10.matches(r["cause_source_value"], pat) for pat in c.causes)
                )
            ):
                return True
        return False
    raise AssertionError(c)


def _criteria() -> st.SearchStrategy[Criterion]:
    dates = st.sampled_from([None, "2012-01-01", "2016-06-30", "2020-01-01"])
    leaves = st.one_of(
        st.builds(
            lambda codes, after, before, min_age: Diagnosis(
                codes, after=after, before=before, min_age=min_age
            ),
            st.lists(
                st.sampled_from(["E11", "E11.9", "E11.900", "E10-E14", "I20-I25", "C50", "I10"]),
                min_size=1,
                max_size=2,
            ),
            dates,
            dates,
            st.sampled_from([None, 45, 60]),
        ),
        st.builds(Sex, st.sampled_from(["female", "male"])),
        st.builds(
            lambda lo, hi: Age(min=lo, max=hi, at="2020-01-01"),
            st.sampled_from([50, 60]),
            st.sampled_from([None, 55, 70]),
        ),
        st.builds(
            lambda name, op, value, which, before: Lab(name, op, value, which=which, before=before),
            st.sampled_from(["HbA1c", "LDL-C"]),
            st.sampled_from(list(_OPS)),
            st.sampled_from([3.9, 5.5, 6.5, 7.0]),
            st.sampled_from(["any", "latest"]),
            dates,
        ),
        st.builds(
            lambda causes, before: Died(causes=causes, before=before),
            st.sampled_from([(), ("I20-I25",), ("C50",)]),
            dates,
        ),
    )
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.builds(lambda a, b: a & b, kids, kids),
            st.builds(lambda a, b: a | b, kids, kids),
            st.builds(lambda a: ~a, kids),
        ),
        max_leaves=5,
    )


@settings(max_examples=150, deadline=None)
@given(criterion=_criteria())
def test_cohort_sql__agrees_with_python_evaluation(
    clinical_store_ro: ClinicalStore, criterion: Criterion
) -> None:
    tables = _fixture_tables()
    permitted = {1, 2, 3, 4, 5, 6, 7, 9}  # DS:E11, see the module docstring
    expected = {i for i in permitted if _python_eval(criterion, i, tables)}
    assert _members(clinical_store_ro, criterion) == expected, criterion.to_json()
