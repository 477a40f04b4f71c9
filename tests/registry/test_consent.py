"""Tests for biobank.registry.consent: purposes, DUO codes, permitted participants, withdrawal."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_support import CHEN, LI, OUYANG, WANG, loaded, loaded_template, store, users

from biobank.core.access import Principal
from biobank.core.errors import ConflictError, ConsentError, NotFoundError, ValidationError
from biobank.core.ids import center_key, pseudonym
from biobank.core.store import Store
from biobank.registry.consent import (
    Purpose,
    add_consent,
    consent_permits,
    current_consent_sql,
    parse_duo_codes,
    parse_purpose,
    permitted_participants,
    permitted_participants_sql,
    withdraw_consent,
)
from biobank.registry.participants import list_participants

__all__ = ["loaded", "loaded_template", "store", "users"]  # fixtures used by the tests below

Users = dict[str, Principal]


def pid(store: Store, national_id: str) -> str:
    return pseudonym(national_id, center_key(store.path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GRU", Purpose("GRU")),
        ("hmb", Purpose("HMB")),
        (" POA ", Purpose("POA")),
        ("DS:E11", Purpose("DS", "E11")),
        ("ds:c509", Purpose("DS", "C50.9")),
        ("DS:E11.900x001", Purpose("DS", "E11.900x001")),
    ],
)
def test_parse_purpose__accepted_forms(text: str, expected: Purpose) -> None:
    assert parse_purpose(text) == expected


@pytest.mark.parametrize("text", ["", "NRES", "DS", "DS:", "DS:diabetes", "HMB;NPU", "research"])
def test_parse_purpose__rejects_and_lists_forms(text: str) -> None:
    with pytest.raises(ValidationError, match=r"GRU, HMB, POA or DS:<ICD-10 code>"):
        parse_purpose(text)


def test_permitted_participants_sql__rejects_bad_purpose() -> None:
    with pytest.raises(ValidationError, match="is not one of GRU, HMB, POA"):
        permitted_participants_sql("DROP TABLE consent")


# Fixture consents: WANG GRU, LI HMB, CHEN DS:C50, OUYANG POA (v1) then HMB (v2, withdrawn).
@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        ("GRU", {WANG}),
        ("HMB", {WANG, LI}),
        ("POA", {WANG}),
        ("DS:C50", {WANG, LI, CHEN}),
        ("DS:C50.9", {WANG, LI, CHEN}),
        ("DS:C51", {WANG, LI}),
        ("DS:E11", {WANG, LI}),
    ],
)
def test_permitted_participants__duo_rules(loaded: Store, purpose: str, expected: set[str]) -> None:
    assert set(permitted_participants(loaded.con, purpose)) == {pid(loaded, n) for n in expected}


def test_permitted_participants_sql__one_column_usable_in_joins(loaded: Store) -> None:
    cur = loaded.con.execute(permitted_participants_sql("HMB"))
    assert [d[0] for d in cur.description] == ["participant_id"]
    n = loaded.con.execute(
        "SELECT count(*) FROM specimen WHERE participant_id IN "
        f"({permitted_participants_sql('HMB')})"
    ).fetchone()
    assert n == (5,)  # WANG's 3 and LI's 2 specimens


def test_withdrawal__hides_participant_at_once_and_new_version_restores(
    loaded: Store, users: Users
) -> None:
    reg = users["registrar"]
    li = pid(loaded, LI)
    sql = permitted_participants_sql("DS:E11")
    assert li in {r[0] for r in loaded.con.execute(sql).fetchall()}
    withdraw_consent(loaded, reg, li, reason="phoned to withdraw")
    assert li not in {r[0] for r in loaded.con.execute(sql).fetchall()}
    assert li not in {r["participant_id"] for r in list_participants(loaded, users["researcher"])}
    with pytest.raises(ConsentError, match="already withdrawn"):
        withdraw_consent(loaded, reg, li, reason="again")
    add_consent(
        loaded,
        reg,
        li,
        version="v2",
        signed_date=dt.date.today(),
        duo_codes="DS;IRB",
        disease="E11",
    )
    assert li in permitted_participants(loaded.con, "DS:E11.9")
    assert li not in permitted_participants(loaded.con, "DS:I21")


def test_current_consent__latest_signed_version_counts(loaded: Store, users: Users) -> None:
    wang = pid(loaded, WANG)
    add_consent(
        loaded,
        users["registrar"],
        wang,
        version="v2",
        signed_date=dt.date(2024, 5, 1),
        duo_codes="POA",
    )
    assert wang in permitted_participants(loaded.con, "POA")
    assert wang not in permitted_participants(loaded.con, "HMB")
    # an older form registered later does not override the newer one
    add_consent(
        loaded,
        users["registrar"],
        wang,
        version="v0",
        signed_date=dt.date(2020, 1, 1),
        duo_codes="GRU",
    )
    assert wang not in permitted_participants(loaded.con, "HMB")


def test_add_consent__unknown_participant_and_duplicate_version(
    loaded: Store, users: Users
) -> None:
    with pytest.raises(NotFoundError, match="no participant P-AAAAAAAAAAAA"):
        add_consent(
            loaded,
            users["registrar"],
            "P-AAAAAAAAAAAA",
            version="v1",
            signed_date=dt.date(2024, 1, 1),
            duo_codes="GRU",
        )
    with pytest.raises(ConflictError, match="already registered"):
        add_consent(
            loaded,
            users["registrar"],
            pid(loaded, WANG),
            version="v1",
            signed_date=dt.date(2024, 1, 1),
            duo_codes="GRU",
        )


def test_withdraw_consent__date_checks(loaded: Store, users: Users) -> None:
    chen = pid(loaded, CHEN)
    with pytest.raises(ValidationError, match="future"):
        withdraw_consent(
            loaded,
            users["registrar"],
            chen,
            reason="x",
            withdrawn_date=dt.date.today() + dt.timedelta(days=1),
        )
    with pytest.raises(ValidationError, match="before the consent was signed"):
        withdraw_consent(
            loaded, users["registrar"], chen, reason="x", withdrawn_date=dt.date(2023, 1, 1)
        )
    with pytest.raises(ValidationError, match="reason"):
        withdraw_consent(loaded, users["registrar"], chen, reason=" ")
    assert chen in permitted_participants(loaded.con, "DS:C50")


@pytest.mark.parametrize(
    ("codes", "disease", "message"),
    [
        ("", None, "exactly one primary code"),
        ("GRU;HMB", None, "exactly one primary code .* GRU, HMB"),
        ("IRB;PUB", None, "exactly one primary code"),
        ("HMB;FOO", None, "'FOO' is not a DUO code"),
        ("DS", None, "needs the ICD-10 code"),
        ("DS", "diabetes", "not an ICD-10 code"),
        ("HMB", "E11", "only given for DS"),
        ("DS:E11", "I21", "give the disease once"),
    ],
)
def test_parse_duo_codes__errors(codes: str, disease: str | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_duo_codes(codes, disease)


def test_parse_duo_codes__modifiers_and_inline_disease() -> None:
    parsed = parse_duo_codes("ds:e119; npu;IRB;NPU")
    assert (parsed.primary_code, parsed.disease, parsed.modifiers) == (
        "DS",
        "E11.9",
        ("NPU", "IRB"),
    )


# -- the SQL and the Python rule agree on every combination -------------------------
CONSENT_CODES = [
    ("NRES", None),
    ("GRU", None),
    ("HMB", None),
    ("POA", None),
    ("DS", "C50"),
    ("DS", "C50.9"),
    ("DS", "E11"),
    ("DS", "E11.900x001"),
]
PURPOSES = [
    "GRU",
    "HMB",
    "POA",
    "DS:C50",
    "DS:C50.9",
    "DS:C50.1",
    "DS:E11",
    "DS:E11.9",
    "DS:E11.900x001",
    "DS:I21",
]


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(
        st.tuples(st.sampled_from(CONSENT_CODES), st.integers(0, 5), st.booleans()),
        min_size=1,
        max_size=3,
    )
)
def test_permitted_participants_sql__agrees_with_python_rule(
    history: list[tuple[tuple[str, str | None], int, bool]],
) -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE consent (participant_id VARCHAR, consent_version VARCHAR, consent_seq BIGINT,"
        " signed_date DATE, primary_code VARCHAR, disease VARCHAR, modifiers VARCHAR,"
        " withdrawn_date DATE)"
    )
    for seq, ((code, disease), year, withdrawn) in enumerate(history):
        con.execute(
            "INSERT INTO consent VALUES ('P-X', ?, ?, ?, ?, ?, '', ?)",
            [
                f"v{seq}",
                seq,
                dt.date(2020 + year, 1, 1),
                code,
                disease,
                dt.date(2026, 1, 1) if withdrawn else None,
            ],
        )
    # the current consent, worked out independently of current_consent_sql
    latest = max(enumerate(history), key=lambda item: (item[1][1], item[0]))[1]
    (code, disease), _, withdrawn = latest
    for purpose in PURPOSES:
        expected = not withdrawn and consent_permits(code, disease, purpose)
        got = con.execute(permitted_participants_sql(purpose)).fetchall() == [("P-X",)]
        assert got == expected, (history, purpose)
    assert len(con.execute(current_consent_sql()).fetchall()) == 1


@pytest.mark.parametrize(("consent", "purpose"), list(itertools.product(CONSENT_CODES, PURPOSES)))
def test_consent_permits__spec_table(consent: tuple[str, str | None], purpose: str) -> None:
    code, disease = consent
    p = parse_purpose(purpose)
    if code in {"NRES", "GRU"}:
        expected = True
    elif code == "HMB":
        expected = p.code in {"HMB", "DS"}
    elif code == "POA":
        expected = p.code == "POA"
    else:
        assert disease is not None
        expected = p.code == "DS" and (
            str(p)
            .removeprefix("DS:")
            .replace(".", "")
            .upper()
            .startswith(disease.replace(".", "").upper())
        )
    assert consent_permits(code, disease, purpose) is expected


def test_withdrawn_participant__hidden_from_researcher_views(loaded: Store, users: Users) -> None:
    researcher = users["researcher"]  # purpose HMB
    seen = {r["participant_id"] for r in list_participants(loaded, researcher)}
    assert seen == {pid(loaded, WANG), pid(loaded, LI)}
    assert pid(loaded, OUYANG) not in seen  # current consent v2 withdrawn
