"""Shared helpers of the registry tests: a keyed store with one user per role, fixture CSVs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from biobank.core.access import Principal, Role, add_user, map_login, os_login
from biobank.core.ids import center_key
from biobank.core.store import Store
from biobank.registry.participants import register_participant
from biobank.testing.people import national_id

DATA = Path(__file__).parent / "data" / "registry"

#: The fixture's people, by their national ids (see tests/data/registry/participants.csv).
WANG = "110105196503120128"  # female 1965, GRU consent, specimens BB0000001N..BB0000003J (S0001)
LI = "310104197805210255"  # male 1978, HMB consent, S0002
CHEN = "440106198911300365"  # female 1989, DS:C50 consent, tissue, S0003
OUYANG = "510107199207040415"  # male 1992, POA v1 then HMB v2 withdrawn, S0004

PARTICIPANT_HEADER = "national_id,name,sex,birth_date,phone,enrolment_date,site,cohorts"
CONSENT_HEADER = "national_id,consent_version,signed_date,duo_codes,disease,withdrawn_date"
SPECIMEN_HEADER = (
    "label,national_id,parent_label,specimen_type,collected_at,anatomical_site,quantity,unit,"
    "status,freezer,rack,box,position,sequencing_sample_id"
)


USERS = {
    "admin": Principal("admin1", Role.ADMIN),
    "registrar": Principal("reg1", Role.REGISTRAR),
    "researcher": Principal("res1", Role.RESEARCHER, purpose="HMB"),
    "auditor": Principal("aud1", Role.AUDITOR),
}


def _new_store(path: Path) -> Store:
    s = Store(path)
    center_key(s.path, create=True)
    with s.transaction() as con:
        admin = add_user(con, None, USERS["admin"].user, Role.ADMIN)
        for name in ("registrar", "researcher", "auditor"):
            add_user(con, admin, USERS[name].user, USERS[name].role)
        for principal in USERS.values():  # the command line acts as a mapped user
            map_login(con, admin, os_login(), principal.user)
    return s


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A new store with its key file next to it and one user per role (see :data:`USERS`)."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    s = _new_store(tmp_path / "store.duckdb")
    yield s
    s.close()


@pytest.fixture
def users() -> dict[str, Principal]:
    """One principal per role: admin, registrar, researcher (purpose HMB), auditor."""
    return dict(USERS)


@pytest.fixture(scope="session")
def loaded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the fixture registry imported (built once, copied by :func:`loaded`)."""
    from biobank.registry.imports import import_all

    folder = tmp_path_factory.mktemp("loaded")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BIOBANK_CENTER_KEY", raising=False)
        mp.delenv("BIOBANK_KEY_FILE", raising=False)
        s = _new_store(folder / "store.duckdb")
        import_all(s, USERS["registrar"], DATA)
        s.close()
    return folder


@pytest.fixture
def loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loaded_template: Path
) -> Iterator[Store]:
    """A copy of the store with the fixture registry imported."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    for name in ("store.duckdb", "store.duckdb.key", "store.duckdb.audit-head"):
        shutil.copy2(loaded_template / name, tmp_path / name)
    s = Store(tmp_path / "store.duckdb")
    yield s
    s.close()


def write_csv(
    path: Path, header: str, rows: Sequence[str], *, encoding: str = "utf-8", bom: bool = False
) -> Path:
    """Write a CSV from a header line and raw row lines."""
    text = "\n".join([header, *rows]) + "\n"
    data = text.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def csv_line(values: Sequence[str]) -> str:
    """Return one CSV record (quoted as needed) without the line end."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def snapshot(store: Store) -> dict[str, object]:
    """Everything an import could change: registry state, events, provenance, audit length."""
    from biobank.registry.events import current_state

    con = store.con

    def count(table: str) -> int:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])

    return {
        "state": current_state(con),
        "events": count("registry_event"),
        "provenance": count("provenance"),
        "audit": count("audit_log"),
        "recontact": count("recontact_identifier"),
    }


# -- pedigrees (tests/registry/test_pedigree.py, test_affected.py) -------------------------
REG = Principal("reg", Role.REGISTRAR)
#: name -> (sex, birth date)
PEOPLE = {
    "dad": ("male", dt.date(1960, 3, 1)),
    "mum": ("female", dt.date(1962, 5, 2)),
    "son": ("male", dt.date(1990, 7, 3)),
    "girl": ("female", dt.date(1992, 9, 4)),
    "kid": ("male", dt.date(1985, 1, 5)),  # too young to be a parent of 'girl' (7 years)
    "granddad": ("male", dt.date(1930, 2, 6)),
}


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    """A keyed store with the :data:`PEOPLE` registered, no family yet: (path, name -> ID)."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    path = tmp_path / "ped.duckdb"
    ids = {}
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "ada", Role.ADMIN)
            add_user(con, admin, "reg", Role.REGISTRAR)
        for i, (name, (sex, birth)) in enumerate(PEOPLE.items()):
            nid = national_id("110105", birth, 10 + i, sex)
            register_participant(
                store, REG, national_id=nid, name="测试", sex=sex, birth_date=birth,
                enrolment_date="2020-01-01", site="BJ01",
            )  # fmt: skip
            ids[name] = nid
    return path, ids


def write_ped(tmp_path: Path, lines: list[str]) -> Path:
    """``family.ped`` under ``tmp_path`` with a comment header and ``lines``."""
    path = tmp_path / "family.ped"
    path.write_text("# fam ind father mother sex phenotype\n" + "\n".join(lines) + "\n")
    return path
