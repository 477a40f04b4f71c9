"""Support for tests/families: a family study store.

The simulated trios of :mod:`biobank.testing.families`, loaded with the real parts
(registry import, ``load-vcf`` with DP/GQ, PED and HPO imports). Built once per
session (about a minute); tests must not change it (use ``family_store_rw`` for writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biobank.testing.families import FamilyStudy


@dataclass(frozen=True)
class FamilyStore:
    """The store path and the study that was loaded into it."""

    path: Path
    study: FamilyStudy


def build_family_store(root: Path) -> FamilyStore:
    """Simulate the study under ``root/study`` and load it into ``root/families.duckdb``."""
    from biobank.core.access import Principal, Role, add_user, map_login, os_login
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all
    from biobank.registry.pedigree import import_pedigree
    from biobank.registry.phenotypes import import_phenotypes
    from biobank.testing.families import simulate_family_study

    study = simulate_family_study(root / "study")
    path = root / "families.duckdb"
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "admin", Role.ADMIN)
            add_user(con, admin, "registrar", Role.REGISTRAR)
            add_user(con, admin, "researcher", Role.RESEARCHER)
            for user in ("admin", "registrar", "researcher"):
                map_login(con, admin, os_login(), user)
        registrar = Principal("registrar", Role.REGISTRAR)
        import_all(store, registrar, study.registry)
        load_vcf(store, study.vcf, principal=registrar, call_fields=["DP", "GQ"])
        import_pedigree(store, registrar, study.ped)
        import_phenotypes(store, registrar, study.phenotypes)
    return FamilyStore(path=path, study=study)
