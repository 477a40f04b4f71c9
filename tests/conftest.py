"""Shared fixtures: a small clinical store from committed files, and the tiny demo store.

``clinical_store`` registers the ten participants of ``tests/data/clinical/participants.csv``
(with the consent and registry studies given in its columns) and loads ``tests/data/clinical/good``.
``demo_store`` builds the tiny demo center once per test session with the real parts:
``generate_demo(preset="tiny")`` -> registry import -> ``load-vcf`` -> ``load-clinical``.
``family_store`` loads the simulated family study once per session (``families_support``).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from families_support import FamilyStore

DATA = Path(__file__).parent / "data"
CLINICAL = DATA / "clinical"


@dataclass(frozen=True)
class ClinicalStore:
    """A store with registered participants, consents, clinical data and four users.

    Users: ``ada`` (admin), ``reg`` (registrar), ``rita`` (researcher), ``aud`` (auditor).
    """

    path: Path
    admin: str = "ada"
    registrar: str = "reg"
    researcher: str = "rita"
    #: national id -> participant pseudonym, in participants.csv order
    ids: tuple[tuple[str, str], ...] = ()

    def pid(self, index: int) -> str:
        """Return the pseudonym of the participant on data row ``index`` (1-based)."""
        return self.ids[index - 1][1]


def build_clinical_store(
    path: Path, *, load: bool = True, genotypes: bool = False
) -> ClinicalStore:
    """Create a store at ``path`` with the committed test participants (and clinical data).

    With ``genotypes``, participant *i* gets a DNA specimen sequenced as sample
    ``S0i`` and ``tests/data/clinical/genotypes.vcf`` is loaded.
    """
    from biobank.clinical.load import load_clinical
    from biobank.core.access import Principal, Role, add_user, map_login, os_login
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.registry.consent import add_consent
    from biobank.registry.participants import register_participant
    from biobank.testing.access import grant_record_access

    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "ada", Role.ADMIN)
            add_user(con, admin, "reg", Role.REGISTRAR)
            add_user(con, admin, "rita", Role.RESEARCHER)
            add_user(con, admin, "aud", Role.AUDITOR)
            for user in ("ada", "reg", "rita", "aud"):  # the command line acts as a mapped user
                map_login(con, admin, os_login(), user)
        registrar = Principal(user="reg", role=Role.REGISTRAR)
        ids = []
        with open(CLINICAL / "participants.csv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                pid = register_participant(
                    store,
                    registrar,
                    national_id=row["national_id"],
                    name="测试",
                    sex=row["sex"],
                    birth_date=row["birth_date"],
                    enrolment_date=row["enrolment_date"],
                    site="BJ01",
                    cohorts=[c for c in row["studies"].split(";") if c],
                )
                code, _, disease = row["consent"].partition(":")
                add_consent(
                    store,
                    registrar,
                    pid,
                    version="v1",
                    signed_date=dt.date.fromisoformat(row["enrolment_date"]),
                    duo_codes=code,
                    disease=disease or None,
                )
                ids.append((row["national_id"], pid))
        grant_record_access(store, "rita", ("HMB", "DS:E11", "GRU", "POA"))
        if load:
            load_clinical(store, CLINICAL / "good", principal=registrar)
        if genotypes:
            from biobank.core.ids import make_label
            from biobank.genomes.load import load_vcf
            from biobank.registry.specimens import add_specimen

            for i, (_, pid) in enumerate(ids, start=1):
                add_specimen(
                    store,
                    registrar,
                    label=make_label("DN", i),
                    participant_id=pid,
                    specimen_type="dna",
                    collected_at="2020-01-01T09:00:00",
                    quantity=10.0,
                    unit="ug",
                    sequencing_sample_id=f"S{i:02d}",
                )
            load_vcf(store, CLINICAL / "genotypes.vcf", principal=registrar)
    return ClinicalStore(path=path, ids=tuple(ids))


@pytest.fixture
def clinical_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClinicalStore:
    """A fresh store with the ten test participants and their clinical data loaded."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    return build_clinical_store(tmp_path / "clinical.duckdb")


@pytest.fixture(scope="session")
def clinical_store_ro(tmp_path_factory: pytest.TempPathFactory) -> ClinicalStore:
    """Like ``clinical_store`` but built once per session: tests must not change it."""
    return build_clinical_store(tmp_path_factory.mktemp("clinical_ro") / "clinical.duckdb")


@pytest.fixture(scope="session")
def genotyped_store(tmp_path_factory: pytest.TempPathFactory) -> ClinicalStore:
    """The ten test participants with clinical data and ``genotypes.vcf`` (session, read only)."""
    return build_clinical_store(tmp_path_factory.mktemp("genotyped") / "g.duckdb", genotypes=True)


DEMO_USERS = {"admin": "admin", "registrar": "registrar", "researcher": "researcher"}


def build_demo_store(root: Path, *, preset: str = "tiny", seed: int = 42) -> Path:
    """Build a demo center under ``root`` with the real parts; return the store path.

    ``root/demo`` is the folder of ``generate_demo``; ``root/demo.duckdb`` the store
    (key file ``root/demo.duckdb.key``) with users admin, registrar and researcher.
    """
    from biobank.clinical.load import load_clinical
    from biobank.core.access import Principal, Role, add_user, map_login, os_login
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all
    from biobank.testing import generate_demo
    from biobank.testing.access import grant_record_access

    demo = root / "demo"
    generate_demo(demo, preset=preset, seed=seed)
    path = root / "demo.duckdb"
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "admin", Role.ADMIN)
            add_user(con, admin, "registrar", Role.REGISTRAR)
            add_user(con, admin, "researcher", Role.RESEARCHER)
            for user in ("admin", "registrar", "researcher"):
                map_login(con, admin, os_login(), user)
        registrar = Principal("registrar", Role.REGISTRAR)
        import_all(store, registrar, demo / "registry")
        load_vcf(store, demo / "population" / "cohort.vcf.gz", principal=registrar)
        load_clinical(store, demo / "clinical", principal=registrar)
        grant_record_access(store, "researcher", ("HMB", "DS:E11", "GRU"))
    return path


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo center as a loaded store, built once per session (about 1-2 minutes).

    Returns the store path; the demo folder (``truth/``, ``reference/`` ...) is
    ``demo_store.parent / "demo"``. Users: ``admin``, ``registrar``, ``researcher``
    (see :data:`DEMO_USERS`). The center key is the file next to the store, so do
    not set ``BIOBANK_CENTER_KEY`` in tests that use it. Treat it as read-only.
    """
    return build_demo_store(tmp_path_factory.mktemp("demo_center"))


@pytest.fixture(scope="session")
def beacon_centre(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A small demo centre with three partner centres (``tests/beacon_support.py``), read only
    except for the query budget rows the Beacon writes."""
    from beacon_support import build_beacon_centre

    return build_beacon_centre(tmp_path_factory.mktemp("beacon_centre"))


@pytest.fixture(scope="session")
def family_store(tmp_path_factory: pytest.TempPathFactory) -> FamilyStore:
    """The loaded family study (``tests/families_support.py``; session, read only).

    Shared by ``tests/families`` and the service tests of the participant page.
    """
    from families_support import build_family_store

    return build_family_store(tmp_path_factory.mktemp("families"))


@pytest.fixture
def family_store_rw(family_store: FamilyStore, tmp_path: Path) -> FamilyStore:
    """A writable copy of the family store (with its key and audit head files)."""
    import shutil

    from families_support import FamilyStore

    path = tmp_path / "families.duckdb"
    shutil.copy(family_store.path, path)
    for suffix in (".key", ".audit-head"):  # the center key and the audit head file
        side = Path(str(family_store.path) + suffix)
        if side.exists():
            shutil.copy(side, str(path) + suffix)
    return FamilyStore(path=path, study=family_store.study)
