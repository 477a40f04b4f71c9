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


def test_participant_page__forms_register_phenotypes_and_family(app: object) -> None:
    from service.support import form

    staff = logged_in(app, Role.REGISTRAR)
    pid = register(staff).headers["location"].removeprefix("/participants/")
    page = f"/participants/{pid}"
    ok = form(staff, f"{page}/phenotypes", {"hpo_ids": "HP:0001394; HP:0010836"}, page=page)
    assert ok.status_code == 303
    bad = form(staff, f"{page}/phenotypes", {"hpo_ids": "HP:0000057"}, page=page)
    assert bad.status_code == 422
    assert "obsolete" in bad.text
    fam = form(staff, f"{page}/family", {"ped": f"FAMW {WANG} 0 0 2 2"}, page=page)
    assert fam.status_code == 303
    wrong = form(staff, f"{page}/family", {"ped": f"FAMV {WANG} 0 0 1 2"}, page=page)
    assert wrong.status_code == 422
    assert "differs from the registered female" in wrong.text
    text = staff.get(page).text
    assert "FAMW" in text
    assert "HP:0010836" in text
    researcher = logged_in(app, Role.RESEARCHER)
    refused = researcher.post(f"{page}/phenotypes", data={"hpo_ids": "HP:0001394"})
    assert refused.status_code == 403
