"""Project extracts: consented participants only, approved fields only, per-project pseudonyms."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from conftest import ClinicalStore
from research.access_support import (
    APPROVER,
    REGISTRAR,
    REX,
    add_access_users,
    approved,
    request,
)

from biobank.clinical.cohorts import Diagnosis
from biobank.core.classification import EXTRACTABLE, column_class
from biobank.core.errors import AccessDenied
from biobank.core.store import Store
from biobank.registry.consent import withdraw_consent
from biobank.research.access_requests import approve_request
from biobank.research.extracts import build_extract, map_back, withdrawal_list

# consents of tests/data/clinical/participants.csv that permit DS:E11 (all but POA and DS:C50)
DS_E11 = (1, 2, 3, 4, 5, 6, 7, 9)


def _tables(path: Path) -> dict[str, list[str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def _ids(path: Path, table: str = "clinical_person") -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT participant_id FROM {table} ORDER BY 1"
            ).fetchall()
        ]


def test_extract_holds_exactly_the_consented_participants_and_the_approved_fields(
    clinical_store: ClinicalStore, tmp_path: Path
) -> None:
    with Store(clinical_store.path) as store:
        add_access_users(store)
        req = approved(store)
        res = build_extract(store, APPROVER, req.request_id, tmp_path / "out")
        store_ids = {clinical_store.pid(i) for i in DS_E11}
        back = map_back(store, APPROVER, req.request_id, _ids(res.path))
    assert set(back.values()) == store_ids  # exactly the consented participants
    tables = _tables(res.path)
    assert tables == {
        "clinical_condition": ["participant_id", "code"],
        "clinical_measurement": ["participant_id", "name", "value"],
        "clinical_person": ["participant_id", "sex", "year_of_birth"],
    }
    for table, columns in tables.items():
        for column in columns[1:]:
            assert column_class(table, column) in EXTRACTABLE
    pseudonyms = _ids(res.path)
    assert not set(pseudonyms) & store_ids  # never the store's pseudonyms
    assert all(p.startswith(f"X{req.request_id}-") for p in pseudonyms)
    m = json.loads(res.manifest_path.read_text())
    assert m["files"]["extract"]["sha256"] == hashlib.sha256(res.path.read_bytes()).hexdigest()
    assert m["participants"] == len(DS_E11)
    assert m["tables"]["clinical_person"]["rows"] == len(DS_E11)
    assert m["approval"]["approved_by"] == "dac"
    assert m["approval"]["purpose"] == "DS:E11"
    assert {f["class"] for f in m["fields"]} <= {c.value for c in EXTRACTABLE}


def test_two_projects_cannot_link_their_participants(
    clinical_store: ClinicalStore, tmp_path: Path
) -> None:
    with Store(clinical_store.path) as store:
        add_access_users(store)
        a = approved(store)
        b = approved(store, project="second", cohort=Diagnosis("E11").to_json())
        ea = build_extract(store, APPROVER, a.request_id, tmp_path / "a")
        eb = build_extract(store, APPROVER, b.request_id, tmp_path / "b")
        in_b = map_back(store, APPROVER, b.request_id, _ids(eb.path))
        in_a = map_back(store, APPROVER, a.request_id, _ids(ea.path))
    assert set(in_b.values()) == {clinical_store.pid(i) for i in (1, 2, 5, 9)}  # the cohort
    assert not set(_ids(ea.path)) & set(_ids(eb.path))  # same people, unrelated pseudonyms
    assert set(in_b.values()) <= set(in_a.values())


def test_a_withdrawal_after_extraction_is_listed_and_the_reissue_removes_it(
    clinical_store: ClinicalStore, tmp_path: Path
) -> None:
    with Store(clinical_store.path) as store:
        add_access_users(store)
        req = approved(store)
        first = build_extract(store, APPROVER, req.request_id, tmp_path / "out")
        withdraw_consent(
            store,
            REGISTRAR,
            clinical_store.pid(2),
            withdrawn_date=dt.date.today(),
            reason="participant asked",
        )
        listed = withdrawal_list(store, APPROVER, req.request_id)
        second = build_extract(store, APPROVER, req.request_id, tmp_path / "out")
        (gone,) = listed["participant_id"].to_list()
        assert map_back(store, APPROVER, req.request_id, [gone]) == {gone: clinical_store.pid(2)}
        actions = [
            r[0]
            for r in store.con.execute(
                "SELECT action FROM audit_log WHERE action LIKE 'access.%' ORDER BY entry_id"
            ).fetchall()
        ]
    assert listed["reason"].to_list() == ["consent withdrawn or no longer permits the purpose"]
    assert gone in _ids(first.path)
    assert gone not in _ids(second.path)
    assert set(_ids(second.path)) == set(_ids(first.path)) - {gone}  # pseudonyms kept
    assert second.issue == 2
    assert second.manifest["withdrawn_since_previous_issue"] == 1
    assert second.withdrawals_path.read_text().splitlines()[1].startswith(gone + ",")
    assert actions.count("access.extract") == 2
    assert "access.withdrawals" in actions


def test_a_foreign_party_request_is_refused_at_extraction_without_hgr_approval(
    clinical_store: ClinicalStore, tmp_path: Path
) -> None:
    with Store(clinical_store.path) as store:
        add_access_users(store)
        req = request(store, country="US", institution="Overseas Institute")
        approve_request(store, APPROVER, req.request_id, reason="ok", hgr_approval="HGR-1")
        # the number is lost afterwards (edited in the database): extraction re-checks
        store.con.execute(
            "UPDATE access_request SET hgr_approval = NULL WHERE request_id = ?",
            [req.request_id],
        )
        with pytest.raises(AccessDenied, match="foreign party"):
            build_extract(store, APPROVER, req.request_id, tmp_path / "out")
        pending = request(store, project="not-yet")
        with pytest.raises(AccessDenied, match="pending"):
            build_extract(store, APPROVER, pending.request_id, tmp_path / "out")
        with pytest.raises(AccessDenied):
            build_extract(store, REX, req.request_id, tmp_path / "out")
        refusals = store.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'access.refused'"
        ).fetchone()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert refusals == (2,)


def test_genotype_calls_are_keyed_by_the_project_pseudonym(
    genotyped_store: ClinicalStore, tmp_path: Path
) -> None:
    import shutil

    path = tmp_path / "g.duckdb"
    shutil.copy(genotyped_store.path, path)
    for suffix in (".key", ".audit-head"):
        shutil.copy(str(genotyped_store.path) + suffix, str(path) + suffix)
    with Store(path) as store:
        add_access_users(store)
        req = approved(
            store,
            fields=["clinical_person.sex", "genotype_call_all.dosage", "variant.gene"],
            purpose="HMB",
        )
        res = build_extract(store, APPROVER, req.request_id, tmp_path / "out")
        n_calls = store.con.execute(
            "SELECT count(*) FROM genotype_call_all c JOIN genotype_sample s USING (sample_key)"
            " WHERE s.participant_id IN (SELECT participant_id FROM access_extract_member)"
        ).fetchone()
    assert _tables(res.path)["genotype_call"] == ["participant_id", "variant_key", "dosage"]
    assert set(_ids(res.path, "genotype_call")) <= set(_ids(res.path))
    assert n_calls is not None
    assert res.manifest["tables"]["genotype_call"]["rows"] == n_calls[0]
