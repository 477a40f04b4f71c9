"""Previewing an import (nothing written) and importing uploaded bytes."""

from __future__ import annotations

import pytest
from registry_support import DATA, SPECIMEN_HEADER, WANG, snapshot, store, users

from biobank.core.access import Principal
from biobank.core.errors import AccessDenied, ImportRejected, ValidationError
from biobank.core.store import Store
from biobank.registry.imports import import_upload, preview_import

__all__ = ["store", "users"]  # fixtures used by the tests below

Users = dict[str, Principal]


def test_preview_writes_nothing_and_says_what_the_import_adds(store: Store, users: Users) -> None:
    reg = users["registrar"]
    data = (DATA / "participants.csv").read_bytes()
    before = snapshot(store)
    preview = preview_import(store, reg, "participants", data, source="p.csv")
    assert snapshot(store) == before
    assert (preview.result.created, preview.problems) == (4, [])
    assert preview.added[0]["national_id"] != WANG  # masked
    assert all("name" not in r for r in preview.added)
    result = import_upload(store, reg, "participants", data, source="p.csv")
    assert result.created == 4
    again = preview_import(store, reg, "participants", data, source="other-name.csv")
    assert again.result.already_loaded
    assert import_upload(store, reg, "participants", data, source="x.csv").already_loaded


def test_preview_lists_every_bad_row_and_the_import_refuses(store: Store, users: Users) -> None:
    reg = users["registrar"]
    import_upload(store, reg, "participants", (DATA / "participants.csv").read_bytes(), source="p")
    rows = [
        SPECIMEN_HEADER,
        f"BB0000001N,{WANG},,whole_blood,2023-04-01T09:30,,10,mL,available,F01,R1,B01,A1,",
        f"BB0000003J,{WANG},,whole_blood,2023-04-01T09:30,,0,mL,available,F01,R1,B01,A2,",
        f"BB0000004H,{WANG},,whole_blood,2023-04-01T09:30,,5,mL,available,f01,r1,b01,a01,",
    ]
    data = ("\n".join(rows) + "\n").encode()
    preview = preview_import(store, reg, "specimens", data, source="s.csv")
    found = sorted((p.line, p.field) for p in preview.problems)
    assert found == [(3, "quantity"), (4, "position")]
    before = snapshot(store)
    with pytest.raises(ImportRejected):
        import_upload(store, reg, "specimens", data, source="s.csv")
    assert snapshot(store) == before


def test_preview_needs_write_access_and_a_known_kind(store: Store, users: Users) -> None:
    with pytest.raises(AccessDenied):
        preview_import(store, users["researcher"], "participants", b"x", source="p")
    with pytest.raises(ValidationError, match="unknown kind"):
        preview_import(store, users["registrar"], "people", b"x", source="p")
