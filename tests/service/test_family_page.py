"""The participant page shows staff the family, HPO terms and pedigree checks."""

from __future__ import annotations

from service.support import WANG, logged_in, register

from biobank.core.access import Principal, Role
from biobank.registry.pedigree import PedRow, register_family
from biobank.registry.phenotypes import add_phenotypes


def test_participant_page__family_section_for_staff(app: object) -> None:
    staff = logged_in(app, Role.REGISTRAR)
    pid = register(staff).headers["location"].removeprefix("/participants/")
    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    register_family(store, reg, [PedRow("FAMX", WANG, sex="2", phenotype="2")])
    add_phenotypes(store, reg, pid, ["HP:0001394"])
    page = staff.get(f"/participants/{pid}")
    assert page.status_code == 200
    assert "FAMX" in page.text
    assert "HP:0001394" in page.text
    assert "biobank family check" in page.text  # no check stored yet
    auditor = logged_in(app, Role.AUDITOR)
    assert "FAMX" not in auditor.get(f"/participants/{pid}").text
