"""A family's phenopacket for a project: per-project pseudonyms, consent, approvals, audit.

The store is the family study of ``tests/families`` (``families_support``), with the
access users of ``research.access_support``. Every member of the planted recessive
family is given a GRU consent signed today, so a request for HMB covers them all
(planted truth); natural consents of the study decide the other families.
Expected pseudonyms are recomputed here from the scheme the extracts document
(HMAC-SHA256 with the project key), not by calling the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from families_support import FamilyStore, build_family_store
from google.protobuf import json_format
from phenopackets import Family
from research.access_support import (
    APPROVER,
    REGISTRAR,
    REX,
    add_access_users,
    approved,
    request,
)

from biobank.clinical.cohorts import Diagnosis
from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ConsentError, NotFoundError, ValidationError
from biobank.core.ids import center_key
from biobank.core.store import Store
from biobank.families.phenopacket import from_json, to_json
from biobank.registry.consent import add_consent, permitted_participants, withdraw_consent
from biobank.research.access_requests import reject_request
from biobank.research.extracts import build_extract, map_back
from biobank.research.family_exports import (
    PACKET_FIELDS,
    project_phenopacket,
    write_project_phenopacket,
)

RITA = Principal("rita", Role.RESEARCHER)
#: the OS login of the test run is mapped to this user (for the command line)
RESEARCHER = Principal("researcher", Role.RESEARCHER)
ALL_FIELDS = [f for fields in PACKET_FIELDS.values() for f in fields]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    for suffix in (".key", ".audit-head"):
        side = Path(str(src) + suffix)
        if side.exists():
            shutil.copy(side, str(dst) + suffix)
    return dst


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> FamilyStore:
    """The family store with access users, the recessive family all consented (GRU)."""
    fs = build_family_store(tmp_path_factory.mktemp("family-exports"))
    family = _family(fs)
    with Store(fs.path) as store:
        add_access_users(store, "rita")
        for pid in _members(store, family):
            add_consent(
                store,
                REGISTRAR,
                pid,
                version="v-export-test",
                signed_date=dt.date.today(),
                duo_codes="GRU",
            )
    return fs


@pytest.fixture
def fstore(prepared: FamilyStore, tmp_path: Path) -> FamilyStore:
    """A writable copy of the prepared store."""
    return FamilyStore(path=_copy(prepared.path, tmp_path / "f.duckdb"), study=prepared.study)


def _family(fs: FamilyStore) -> str:
    return next(p for p in fs.study.planted if p.mode == "recessive").family_id


def _members(store: Store, family: str) -> list[str]:
    rows = store.con.execute(
        "SELECT participant_id FROM family_member WHERE family_id = ? ORDER BY 1", [family]
    ).fetchall()
    return [str(r[0]) for r in rows]


def _project_key_of(path: Path, request_id: int) -> bytes:
    return hmac.new(
        center_key(path), f"biobank-extract:{request_id}".encode(), hashlib.sha256
    ).digest()


def _b32(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:12]


def _expected_ids(store: Store, request_id: int, family: str) -> tuple[str, dict[str, str]]:
    key = _project_key_of(Path(str(store.path)), request_id)
    people = {pid: f"X{request_id}-{_b32(key, pid)}" for pid in _members(store, family)}
    return f"XF{request_id}-{_b32(key, 'family:' + family)}", people


def _pedigree(store: Store, family: str) -> dict[str, tuple[str | None, str | None]]:
    rows = store.con.execute(
        "SELECT participant_id, father_id, mother_id FROM family_member WHERE family_id = ?",
        [family],
    ).fetchall()
    return {str(p): (f, m) for p, f, m in rows}


def _ids_in(message: Family) -> set[str]:
    ids = {message.proband.subject.id} | {r.subject.id for r in message.relatives}
    for person in message.pedigree.persons:
        ids |= {person.individual_id, person.paternal_id, person.maternal_id}
    return ids - {"0"}


def _refusals(store: Store) -> list[dict[str, str]]:
    rows = store.con.execute(
        "SELECT detail FROM audit_log WHERE action = 'access.refused' ORDER BY entry_id"
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_project_phenopacket__round_trip_with_project_pseudonyms(fstore: FamilyStore) -> None:
    study, family = fstore.study, _family(fstore)
    planted = next(p for p in study.planted if p.mode == "recessive")
    with Store(fstore.path) as store:
        req = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        packet = project_phenopacket(store, REX, family, req.request_id)
        family_pseudonym, people = _expected_ids(store, req.request_id, family)
        parents = _pedigree(store, family)
        child = store.con.execute(
            "SELECT participant_id FROM genotype_sample WHERE sample_id = ?",
            [study.sample_ids[planted.child]],
        ).fetchone()
        store_ids = [
            str(r[0])
            for r in store.con.execute("SELECT participant_id FROM participant").fetchall()
        ]
        samples = [
            str(r[0]) for r in store.con.execute("SELECT sample_id FROM genotype_sample").fetchall()
        ]
    text = to_json(packet.message)
    parsed = json_format.Parse(text, Family(), ignore_unknown_fields=False)
    assert parsed == packet.message == from_json(text)
    assert json_format.MessageToDict(parsed) == json.loads(text)
    assert parsed.id == family_pseudonym == packet.family_pseudonym
    assert {p.family_id for p in parsed.pedigree.persons} == {family_pseudonym}
    assert _ids_in(parsed) == set(people.values())  # everyone, and only project pseudonyms
    for person in parsed.pedigree.persons:
        store_id = next(s for s, p in people.items() if p == person.individual_id)
        father, mother = parents[store_id]
        assert person.paternal_id == (people[father] if father else "0")
        assert person.maternal_id == (people[mother] if mother else "0")
    assert child is not None
    assert parsed.proband.subject.id == people[child[0]]
    assert {f.type.id for f in parsed.proband.phenotypic_features} == set(
        study.child_terms[study.sample_ids[planted.child]]
    )
    genomic = parsed.proband.interpretations[0].diagnosis.genomic_interpretations
    first = genomic[0].variant_interpretation.variation_descriptor
    assert (first.vcf_record.chrom, first.vcf_record.pos) == (planted.contig, planted.pos + 1)
    assert first.gene_context.symbol == planted.gene
    assert {g.subject_or_biosample_id for g in genomic} == {people[child[0]]}
    assert parsed.meta_data.external_references[0].id == f"biobank-access-request:{req.request_id}"
    for secret in [*store_ids, *samples, family]:  # no store pseudonym, sample id, family id
        assert secret not in text
    assert (packet.members, packet.left_out) == (len(people), 0)


def test_project_phenopacket__two_projects_cannot_link_their_packets(
    fstore: FamilyStore,
) -> None:
    family = _family(fstore)
    with Store(fstore.path) as store:
        a = approved(store, REX, project="exome-a", purpose="HMB", fields=ALL_FIELDS)
        b = approved(store, RITA, project="exome-b", purpose="HMB", fields=ALL_FIELDS)
        pa = project_phenopacket(store, REX, family, a.request_id).message
        pb = project_phenopacket(store, RITA, family, b.request_id).message
        ids_a, ids_b = _ids_in(pa), _ids_in(pb)
        back_a = map_back(store, APPROVER, a.request_id, sorted(ids_a))
        back_b = map_back(store, APPROVER, b.request_id, sorted(ids_b))
        a_in_b = map_back(store, APPROVER, b.request_id, sorted(ids_a))
        store_ids = set(_members(store, family))
    assert not ids_a & ids_b
    assert not {i.split("-", 1)[1] for i in ids_a} & {i.split("-", 1)[1] for i in ids_b}
    assert not (ids_a | ids_b) & store_ids
    assert pa.id != pb.id
    assert pa.id.split("-", 1)[1] != pb.id.split("-", 1)[1]
    # only the center links them, through its key
    assert set(back_a.values()) == set(back_b.values()) == store_ids
    assert a_in_b == dict.fromkeys(sorted(ids_a))  # A's pseudonyms mean nothing to B


def test_project_phenopacket__refusals_are_audited(fstore: FamilyStore) -> None:
    family = _family(fstore)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    with Store(fstore.path) as store:
        with pytest.raises(NotFoundError, match="no data access request 999"):
            project_phenopacket(store, REX, family, 999)
        pending = request(store, REX, purpose="HMB", fields=ALL_FIELDS)
        with pytest.raises(AccessDenied, match="is pending: a family is exported only under"):
            project_phenopacket(store, REX, family, pending.request_id)
        rejected = request(store, REX, purpose="HMB", fields=ALL_FIELDS)
        reject_request(store, APPROVER, rejected.request_id, reason="no ethics approval")
        with pytest.raises(AccessDenied, match="is rejected"):
            project_phenopacket(store, REX, family, rejected.request_id)
        expired = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        store.con.execute(
            "UPDATE access_request SET expires_on = ? WHERE request_id = ?",
            [yesterday, expired.request_id],
        )
        with pytest.raises(AccessDenied, match=f"expired on {yesterday}"):
            project_phenopacket(store, REX, family, expired.request_id)
        foreign = approved(
            store, REX, purpose="HMB", fields=ALL_FIELDS, country="US", hgr_approval="MOST-1"
        )
        project_phenopacket(store, REX, family, foreign.request_id)  # with the number: fine
        store.con.execute(
            "UPDATE access_request SET hgr_approval = NULL WHERE request_id = ?",
            [foreign.request_id],
        )
        with pytest.raises(AccessDenied, match="involves a foreign party"):
            project_phenopacket(store, REX, family, foreign.request_id)
        mine = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        with pytest.raises(AccessDenied, match="is rex's: user 'rita' may not export"):
            project_phenopacket(store, RITA, family, mine.request_id)
        with pytest.raises(NotFoundError, match="no family 'NOPE'"):
            project_phenopacket(store, REX, "NOPE", mine.request_id)
        refusals = _refusals(store)
    assert len(refusals) == 7
    assert {r["attempted"] for r in refusals} == {"access.family_export"}


def test_project_phenopacket__needs_the_fields_of_what_it_carries(fstore: FamilyStore) -> None:
    family = _family(fstore)
    with Store(fstore.path) as store:
        no_pheno = approved(
            store,
            REX,
            purpose="HMB",
            fields=[*PACKET_FIELDS["pedigree"], *PACKET_FIELDS["variants"]],
        )
        with pytest.raises(AccessDenied, match=r"participant_phenotype\.hpo_id") as err:
            project_phenopacket(store, REX, family, no_pheno.request_id)
        assert "does not approve" in str(err.value)
        packet = project_phenopacket(store, REX, family, no_pheno.request_id, phenotypes=False)
        pedigree_only = approved(store, REX, purpose="HMB", fields=PACKET_FIELDS["pedigree"])
        with pytest.raises(AccessDenied, match=r"genotype_call_all\.dosage"):
            project_phenopacket(store, REX, family, pedigree_only.request_id, phenotypes=False)
        clinical_only = approved(store, REX, purpose="HMB")  # the clinical fields of the helper
        with pytest.raises(AccessDenied, match=r"family_member\.affected, participant\.sex"):
            project_phenopacket(
                store, REX, family, clinical_only.request_id, phenotypes=False, variants=False
            )
        assert len(_refusals(store)) == 3
    message = packet.message
    assert not message.proband.phenotypic_features
    assert all(not r.phenotypic_features for r in message.relatives)
    assert message.proband.interpretations  # the variants were approved


def test_project_phenopacket__withdrawn_and_unconsented_members_are_left_out(
    fstore: FamilyStore,
) -> None:
    study, family = fstore.study, _family(fstore)
    father_index, mother_index, _ = study.families[family]
    with Store(fstore.path) as store:
        father, mother = (
            store.con.execute(
                "SELECT participant_id FROM genotype_sample WHERE sample_id = ?",
                [study.sample_ids[i]],
            ).fetchone()[0]  # type: ignore[index]
            for i in (father_index, mother_index)
        )
        withdraw_consent(store, REGISTRAR, father, reason="participant asked")
        add_consent(  # a new consent for ancestry research only: not HMB
            store,
            REGISTRAR,
            mother,
            version="v-poa",
            signed_date=dt.date.today(),
            duo_codes="POA",
        )
        req = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        packet = project_phenopacket(store, REX, family, req.request_id)
        _, people = _expected_ids(store, req.request_id, family)
        permitted = set(permitted_participants(store.con, "HMB"))
    text = to_json(packet.message)
    assert father not in permitted
    assert mother not in permitted
    assert people[father] not in text
    assert people[mother] not in text
    assert _ids_in(packet.message) == set(people.values()) - {people[father], people[mother]}
    persons = packet.message.pedigree.persons
    assert {(p.paternal_id, p.maternal_id) for p in persons} == {("0", "0")}
    assert (packet.members, packet.left_out) == (len(people) - 2, 2)


def test_project_phenopacket__refused_when_no_affected_member_is_covered(
    fstore: FamilyStore,
) -> None:
    family = _family(fstore)
    with Store(fstore.path) as store:
        affected = store.con.execute(
            "SELECT participant_id FROM family_member"
            " WHERE family_id = ? AND affected = 'affected'",
            [family],
        ).fetchall()
        for (pid,) in affected:
            withdraw_consent(store, REGISTRAR, pid, reason="participant asked")
        req = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        with pytest.raises(ConsentError, match="covers none of the affected members"):
            project_phenopacket(store, REX, family, req.request_id)
        assert _refusals(store)[-1]["attempted"] == "access.family_export"


def test_project_phenopacket__the_request_cohort_restricts_the_members(
    fstore: FamilyStore,
) -> None:
    family = _family(fstore)  # its members have no clinical records: no E11 diagnosis
    with Store(fstore.path) as store:
        req = approved(
            store, REX, purpose="HMB", fields=ALL_FIELDS, cohort=Diagnosis("E11").to_json()
        )
        with pytest.raises(ConsentError, match="outside the request's cohort"):
            project_phenopacket(store, REX, family, req.request_id)


def test_write_project_phenopacket__file_and_audit(fstore: FamilyStore, tmp_path: Path) -> None:
    family = _family(fstore)
    out = tmp_path / "case.json"
    with Store(fstore.path) as store:
        req = approved(store, REX, purpose="HMB", fields=ALL_FIELDS)
        packet = write_project_phenopacket(store, REX, family, req.request_id, out)
        with pytest.raises(ValidationError, match="exists: choose another file name"):
            write_project_phenopacket(store, REX, family, req.request_id, out)
        rows = store.con.execute(
            "SELECT user_name, target, detail FROM audit_log"
            " WHERE action = 'access.family_export' ORDER BY entry_id"
        ).fetchall()
    assert from_json(out.read_text(encoding="utf-8")) == packet.message
    ((user, target, detail),) = rows
    entry = json.loads(detail)
    assert (user, target) == ("rex", f"access_request:{req.request_id}")
    assert entry["family"] == family
    assert entry["family_pseudonym"] == packet.family_pseudonym
    assert entry["members"] == packet.members
    assert entry["file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.partial"))


def test_extract__family_datasets_carry_project_pseudonyms(
    fstore: FamilyStore, tmp_path: Path
) -> None:
    family = _family(fstore)
    with Store(fstore.path) as store:
        req = approved(
            store,
            REX,
            purpose="HMB",
            fields=[
                "family_member.family_id",
                "family_member.affected",
                "participant_phenotype.hpo_id",
            ],
        )
        res = build_extract(store, APPROVER, req.request_id, tmp_path / "x")
        family_pseudonym, people = _expected_ids(store, req.request_id, family)
        parents = _pedigree(store, family)
        with_terms = {
            str(r[0])
            for r in store.con.execute(
                "SELECT DISTINCT participant_id FROM participant_phenotype"
                " WHERE participant_id IN (SELECT unnest(?::VARCHAR[]))",
                [permitted_participants(store.con, "HMB")],
            ).fetchall()
        }
    with duckdb.connect(str(res.path), read_only=True) as con:
        rows = con.execute(
            "SELECT participant_id, father_id, mother_id FROM family_member WHERE family_id = ?",
            [family_pseudonym],
        ).fetchall()
        leaked = con.execute(
            "SELECT count(*) FROM family_member WHERE family_id LIKE 'FAM%'"
        ).fetchone()
        pheno = con.execute("SELECT DISTINCT participant_id FROM participant_phenotype").fetchall()
    assert sorted(r[0] for r in rows) == sorted(people.values())
    for pid, father, mother in rows:
        store_id = next(s for s, p in people.items() if p == pid)
        f, m = parents[store_id]
        assert (father, mother) == (people.get(f) if f else None, people.get(m) if m else None)
    assert leaked == (0,)
    key = _project_key_of(fstore.path, req.request_id)
    assert {r[0] for r in pheno} == {f"X{req.request_id}-{_b32(key, p)}" for p in with_terms}


@pytest.mark.slow
def test_cli__family_phenopacket_under_a_request(fstore: FamilyStore, tmp_path: Path) -> None:
    family = _family(fstore)
    with Store(fstore.path) as store:
        req = approved(store, RESEARCHER, purpose="HMB", fields=ALL_FIELDS)
        family_pseudonym, _ = _expected_ids(store, req.request_id, family)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    out = tmp_path / "case.json"
    base = [sys.executable, "-m", "biobank", "--store", str(fstore.path), "--user", "researcher"]
    done = subprocess.run(
        [
            *base,
            "family",
            "phenopacket",
            family,
            "--request",
            str(req.request_id),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"family {family_pseudonym}" in done.stdout
    assert from_json(out.read_text(encoding="utf-8")).id == family_pseudonym
    refused = subprocess.run(
        [*base, "family", "phenopacket", family, "--request", "999"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1
    assert "no data access request 999" in refused.stderr
