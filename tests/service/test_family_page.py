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


def test_participant_page__affected_status_per_phenotype(app: object) -> None:
    """Staff register a member's status for a phenotype; a bad term is refused on the page
    (422, nothing stored); researchers may not post it; the page lists the statuses."""
    from service.support import form

    staff = logged_in(app, Role.REGISTRAR)
    pid = register(staff).headers["location"].removeprefix("/participants/")
    page = f"/participants/{pid}"
    assert (
        form(staff, f"{page}/family", {"ped": f"FAMZ {WANG} 0 0 2 2"}, page=page).status_code == 303
    )
    before = staff.get(f"{page}?lang=en").text
    assert "overall status applies" in before
    ok = form(
        staff,
        f"{page}/affected",
        {"family_id": "FAMZ", "phenotype": "HP:0001250", "status": "unaffected"},
        page=page,
    )
    assert ok.status_code == 303
    bad = form(
        staff,
        f"{page}/affected",
        {"family_id": "FAMZ", "phenotype": "seizures", "status": "affected"},
        page=page,
    )
    assert bad.status_code == 422
    assert "既不是 HPO 术语" in bad.text  # the library's message, translated
    stranger = form(
        staff,
        f"{page}/affected",
        {"family_id": "FAMX", "phenotype": "HP:0001250", "status": "affected"},
        page=page,
    )
    assert stranger.status_code in (404, 422)
    text = staff.get(f"{page}?lang=en").text
    assert "HP:0001250 Seizure" in text
    assert "unaffected" in text
    store = app.state.service.store  # type: ignore[attr-defined]
    rows = store.con.execute(
        "SELECT phenotype, affected FROM family_member_affected WHERE participant_id = ?", [pid]
    ).fetchall()
    assert rows == [("HP:0001250", "unaffected")]
    researcher = logged_in(app, Role.RESEARCHER)
    refused = researcher.post(
        f"{page}/affected",
        data={"family_id": "FAMZ", "phenotype": "HP:0001250", "status": "affected"},
    )
    assert refused.status_code == 403
    assert "按表型的患病状态" in staff.get(f"{page}?lang=zh_CN").text
    assert "Affected status per phenotype" in staff.get(f"{page}?lang=en").text
