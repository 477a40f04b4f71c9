"""Fixtures of tests/families: the loaded family study (see ``families_support``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from families_support import FamilyStore, build_family_store


@pytest.fixture(scope="session")
def family_store(tmp_path_factory: pytest.TempPathFactory) -> FamilyStore:
    """The loaded family study (session, read only)."""
    return build_family_store(tmp_path_factory.mktemp("families"))


@pytest.fixture
def family_store_rw(family_store: FamilyStore, tmp_path: Path) -> FamilyStore:
    """A writable copy of the family store (with its key file)."""
    path = tmp_path / "families.duckdb"
    shutil.copy(family_store.path, path)
    for suffix in (".key", ".audit-head"):  # the center key and the audit head file
        side = Path(str(family_store.path) + suffix)
        if side.exists():
            shutil.copy(side, str(path) + suffix)
    return FamilyStore(path=path, study=family_store.study)
